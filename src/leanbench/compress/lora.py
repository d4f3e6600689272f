"""The ``lora`` step: Low-Rank Adaptation (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language
Models") of a Hugging Face classifier through peft.

Every target Linear W (out x in) is frozen and learns W + (alpha / r) · B A with A (r x in), B (out x r),
B initialised to 0 (so training starts from the pretrained function); the classification head is new and
is trained in full (peft ``modules_to_save``). After training the update is merged into W
(``merge_and_unload``): the saved model is a plain transformers model of the original shape, with no
inference overhead. With ``use_dora`` (DoRA, Liu et al. 2024) each target also learns a magnitude per output
feature, m · (W + s B A) / ||W + s B A|| (norm over each output row), merged the same way. ``init``
chooses peft's initialisation: with ``pissa`` (Meng et al. 2024) B A starts as the top-r singular part of W
and the frozen W becomes the residual, so training also starts from the pretrained function but moves in
W's principal subspace. The training loop is ``finetune``'s (AdamW, warm-up, early stopping).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from leanbench.compress.base import StepContext, StepResult
from leanbench.compress.finetune import fit_text
from leanbench.errors import ModelError
from leanbench.models.base import ModelAdapter
from leanbench.study import LoraConfig

DEFAULT_TARGETS = {"bert": ["query", "value"], "roberta": ["query", "value"], "electra": ["query", "value"],
                   "distilbert": ["q_lin", "v_lin"]}


def target_modules(cfg: LoraConfig, model: nn.Module) -> list[str]:
    """The configured target modules, else the architecture's attention query and value projections."""
    if cfg.target_modules is not None:
        return list(cfg.target_modules)
    kind = getattr(model.config, "model_type", "")
    if kind not in DEFAULT_TARGETS:
        raise ModelError(f"lora: no default target_modules for model type '{kind}'; give target_modules "
                         f"(e.g. the names of the attention projections)")
    return DEFAULT_TARGETS[kind]


def trainable_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable parameters, all parameters)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return int(trainable), int(sum(p.numel() for p in model.parameters()))


def wrap_lora(model: nn.Module, cfg: LoraConfig) -> Any:
    """peft model with LoRA on the target modules and the classifier head trained in full."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import TaskType, get_peft_model

    targets = target_modules(cfg, model)
    names = [n for n, _ in model.named_modules()]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]  # peft's matching
    if missing:
        raise ModelError(f"lora: target_modules {missing} are not module names of this "
                         f"{type(model).__name__}")
    peft_cfg = PeftLoraConfig(task_type=TaskType.SEQ_CLS, r=cfg.r, lora_alpha=cfg.alpha,
                              lora_dropout=cfg.dropout, target_modules=targets, use_dora=cfg.use_dora,
                              init_lora_weights=True if cfg.init == "default" else cfg.init)
    with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
        warnings.simplefilter("ignore", FutureWarning)
        return get_peft_model(model, peft_cfg)


def lora(cfg: LoraConfig, model: ModelAdapter | None, ctx: StepContext) -> StepResult:
    """Trains LoRA adapters (and the head) on a copy of the model, then merges them.
    info: trainable parameters and their share of the model's, and the largest probability difference
    between the unmerged and merged models on (up to 64) validation examples."""
    adapter = model.copy()  # a Hugging Face classifier: the only family `lora` has a handler for
    total = adapter.num_params()  # the base model's parameters (LoRA and head copies excluded)
    # peft draws the A matrices (and gaussian B) from torch's global generator: seed it with the step's
    # seed, or the adapters depend on whatever ran before in the process
    torch.manual_seed(cfg.seed if cfg.seed is not None else ctx.seed)
    peft_model = wrap_lora(adapter.model, cfg)
    trainable, _ = trainable_counts(peft_model)
    adapter.model = peft_model
    fit = fit_text(adapter, ctx, cfg)
    probe = ctx.data.validation.X[:64]
    before = adapter.predict_proba(probe) if len(probe) else np.zeros((0, adapter.n_classes))
    adapter.model = peft_model.merge_and_unload().eval()
    after = adapter.predict_proba(probe) if len(probe) else before
    info = {**fit.info(), "r": cfg.r, "alpha": cfg.alpha, "use_dora": cfg.use_dora, "init": cfg.init,
            "target_modules": target_modules(cfg, adapter.model),
            "trainable_params": trainable, "total_params": total, "trainable_share": trainable / total,
            "merge_max_abs_prob_diff": float(np.abs(after - before).max()) if len(probe) else 0.0}
    return StepResult(adapter, flops=fit.flops, info=info)
