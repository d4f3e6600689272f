"""The ``distill`` step for text students (dispatched from ``leanbench.compress.distill``): a Hugging Face
model (typically layer-initialised with ``keep_layers``) or a tiny text student (textcnn / embedbag).

loss = alpha · T² · KL(softmax(t / T) || softmax(s / T)) + (1 − alpha) · CE(s, y)     (Hinton et al. 2015)
       + hidden_weight · mean_i MSE(h_s[i], h_t[map(i)])                           (optional, HF students)

The hidden-state term (in the spirit of DistilBERT's cosine loss, Sanh et al. 2019, and TinyBERT's
layer-wise MSE, Jiao et al. 2020) matches the student's embedding output to the teacher's and student
layer i to the teacher layer it was copied from (``layer_map[i]``), over non-padding tokens. It needs the
teacher's hidden states, so the teacher runs on every training batch; without it the teacher's logits are
computed once, in batches sorted by length, and cached on disk under ``ctx.cache_dir`` with the key and
file format of the torch ``distill`` step (teacher cell key + train/validation fingerprints;
``leanbench.compress.kd``), so every student of the same teacher reuses them.

With ``augment``, the training split is extended by a transfer set of masked / n-gram variants of its
texts (``leanbench.compress.augment``, Tang et al. 2019) that the teacher labels once (cached beside the
split logits); those examples have no hard label and contribute the distillation term only.

The loop is ``finetune``'s. A text student takes every TrainConfig value of the step (the same budget as
the ``train`` step for the hard-label ablation); a Hugging Face student takes the fields that were set and
FinetuneConfig defaults for the others. Early stopping watches the validation distillation loss.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from leanbench.compress.augment import augment_key, mask_token, transfer_set, with_transfer_set
from leanbench.compress.base import StepContext, StepResult
from leanbench.compress.finetune import (
    BatchLoss,
    fit_text,
    model_logits,
    n_tokens,
    non_embedding_params,
    text_config,
    text_trainable,
)
from leanbench.compress.kd import (
    SPLITS,
    distillation_loss,
    text_teacher_logits,
    transfer_cache_path,
    transfer_logits,
)
from leanbench.data.base import TaskData
from leanbench.errors import ModelError
from leanbench.models.base import ModelAdapter
from leanbench.study import DistillConfig


# --------------------------------------------------------------------------- losses
def kd_loss(data: TaskData, logits: dict[str, torch.Tensor], cfg: DistillConfig) -> BatchLoss:
    labels = {s: torch.as_tensor(np.asarray(data.split(s).y, dtype=np.int64)) for s in SPLITS}

    def loss(module: nn.Module, inputs: dict[str, torch.Tensor], split: str, idx: torch.Tensor) -> torch.Tensor:
        return distillation_loss(model_logits(module, inputs), labels[split][idx], logits[split][idx],
                                 cfg.temperature, cfg.alpha)

    return loss


def hidden_mse(student: tuple[torch.Tensor, ...], teacher: tuple[torch.Tensor, ...], layer_map: list[int],
               mask: torch.Tensor) -> torch.Tensor:
    """Mean over matched pairs (embeddings, then student layer i ~ teacher layer layer_map[i]) of the MSE
    over non-padding tokens. hidden_states[0] is the embedding output, [i + 1] layer i's output."""
    pairs = [(0, 0)] + [(i + 1, t + 1) for i, t in enumerate(layer_map)]
    m = mask.unsqueeze(-1).to(student[0].dtype)  # (B, T, 1)
    denom = m.sum() * student[0].shape[-1]
    total = sum(((student[s] - teacher[t]) ** 2 * m).sum() / denom for s, t in pairs)
    return total / len(pairs)


def kd_hidden_loss(data: TaskData, logits: dict[str, torch.Tensor], cfg: DistillConfig, teacher: Any,
                   layer_map: list[int], counter: dict[str, int]) -> BatchLoss:
    """KD loss + hidden_weight · hidden_mse; the teacher runs on each batch (tokens counted in
    counter["teacher_tokens"] for the FLOP estimate)."""
    labels = {s: torch.as_tensor(np.asarray(data.split(s).y, dtype=np.int64)) for s in SPLITS}

    def loss(module: nn.Module, inputs: dict[str, torch.Tensor], split: str, idx: torch.Tensor) -> torch.Tensor:
        out = module(**inputs, output_hidden_states=True)
        with torch.no_grad():
            t_out = teacher.model(**inputs, output_hidden_states=True)
        counter["teacher_tokens"] += n_tokens(inputs)
        kd = distillation_loss(out.logits, labels[split][idx], logits[split][idx], cfg.temperature, cfg.alpha)
        hidden = hidden_mse(out.hidden_states, t_out.hidden_states, layer_map, inputs["attention_mask"])
        return kd + cfg.hidden_weight * hidden

    return loss


def _check_hidden(student: Any, teacher: ModelAdapter) -> list[int]:
    from leanbench.models.hf import HFClassifierAdapter

    if not isinstance(student, HFClassifierAdapter) or not isinstance(teacher, HFClassifierAdapter):
        raise ModelError("distill.hidden_weight > 0 needs a Hugging Face student and teacher")
    if student.layer_map is None:
        raise ModelError("distill.hidden_weight > 0 needs a student built with keep_layers (its layers must "
                         "map to teacher layers)")
    s_dim, t_dim = student.model.config.hidden_size, teacher.model.config.hidden_size
    if s_dim != t_dim:
        raise ModelError(f"distill.hidden_weight > 0 needs equal hidden sizes, student {s_dim} vs teacher {t_dim}")
    return list(student.layer_map)


# --------------------------------------------------------------------------- the transfer set
def augmented(cfg: DistillConfig, student: Any, teacher: ModelAdapter, teacher_key: str, ctx: StepContext,
              logits: dict[str, torch.Tensor], seed: int) -> tuple[TaskData, dict[str, torch.Tensor], dict]:
    """(task data whose train split ends with the transfer set, logits to match, what was done)."""
    aug = cfg.augment
    mask = mask_token(aug, teacher, student)
    texts = transfer_set(ctx.data.train.X, aug, mask, seed)
    key = augment_key(aug, mask, seed)
    path = transfer_cache_path(ctx.cache_dir, teacher_key, ctx.data, key)
    extra, computed = transfer_logits(teacher, path, texts, ctx.data.n_classes, ctx.progress)
    data = with_transfer_set(ctx.data, texts)
    info = {"examples": len(texts), "sources": int(sum(len(str(t).split()) >= aug.min_words
                                                       for t in ctx.data.train.X)),
            "mask_token": mask, "teacher_logits": "computed" if computed else "cached"}
    return data, {**logits, "train": torch.cat([logits["train"], extra])}, info


# --------------------------------------------------------------------------- the step
def distill_text(cfg: DistillConfig, model: ModelAdapter | None, ctx: StepContext) -> StepResult:
    """Distils the teacher candidate into a copy of the text student `model` (module docstring), on the
    training split and, with `augment`, a transfer set drawn from it (``leanbench.compress.augment``).
    FLOPs: the loop's 6·N per training token + 2·N per validation token, plus the teacher's forwards
    (2·N_teacher per token) over what it labelled in this step."""
    student = text_trainable(model, "distill")
    teacher, teacher_key = ctx.teacher(cfg.teacher)
    logits, computed = text_teacher_logits(teacher, teacher_key, ctx.data, ctx.cache_dir)
    labelled_now = [ctx.data.split(s).X for s in SPLITS] if computed else []
    loop = text_config(cfg, student)
    data, transfer = ctx.data, None
    if cfg.augment is not None:
        seed = next(s for s in (cfg.augment.seed, loop.seed, ctx.seed) if s is not None)
        data, logits, transfer = augmented(cfg, student, teacher, teacher_key, ctx, logits, seed)
        if transfer["teacher_logits"] == "computed":
            labelled_now.append(data.train.X[len(ctx.data.train):])
    counter = {"teacher_tokens": 0}
    if cfg.hidden_weight > 0:
        loss = kd_hidden_loss(data, logits, cfg, teacher, _check_hidden(student, teacher), counter)
    else:
        loss = kd_loss(data, logits, cfg)
    fit = fit_text(student, ctx, loop, loss, data=data)
    flops = fit.flops + _teacher_flops(teacher, labelled_now, counter["teacher_tokens"])
    info = {**fit.info(), "teacher": cfg.teacher, "teacher_logits": "computed" if computed else "cached",
            "temperature": cfg.temperature, "alpha": cfg.alpha, "hidden_weight": cfg.hidden_weight}
    if transfer is not None:
        info["transfer_set"] = transfer
    return StepResult(student, flops=float(flops), info=info)


def _teacher_flops(teacher: ModelAdapter, labelled: list[np.ndarray], hidden_tokens: int) -> float:
    """2 · N_teacher (non-embedding) per teacher token: the logit passes over the texts it labelled in
    this step (tokens counted with the teacher's tokenizer), plus the per-batch hidden-state passes."""
    module = teacher.torch_module()
    if module is None:
        return 0.0
    tokens = hidden_tokens
    if hasattr(teacher, "prepare"):
        for X in labelled:
            for i in range(0, len(X), 1024):
                tokens += n_tokens(teacher.prepare(X[i:i + 1024]))
    return 2.0 * non_embedding_params(module) * tokens
