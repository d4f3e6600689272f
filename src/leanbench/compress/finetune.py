"""The ``finetune`` step and the training loop shared by every text model step (finetune, lora, text
distillation, fine-tuning after transformer pruning, training text students).

Loop: AdamW (decoupled weight decay, Loshchilov & Hutter 2019; no decay on biases and LayerNorm weights, as
in BERT; torch's fused kernel when available), learning rate warmed up linearly over ``warmup_ratio`` of the
steps then decayed linearly to 0 (``transformers.get_linear_schedule_with_warmup``), gradient-norm clipping,
mini-batches drawn by a seeded ``torch.Generator`` and tokenized per batch (padding to the longest in the
batch). The validation loss (on a seeded subset of at most ``max_eval_examples``) is measured before
training and every ``eval_every`` steps (else after every epoch); the weights with the lowest validation
loss are restored at the end and ``patience`` evaluations without improvement stop training early.

FLOPs (Kaplan et al. 2020, "Scaling Laws for Neural Language Models", sec. 2.1): a forward pass costs
about 2·N FLOPs per token and a training step (forward + backward) about 6·N per token, with N the
non-embedding parameters (an embedding lookup does no multiply-adds). Tokens are the non-padding tokens
of the batches actually processed. For a 1-D CNN the same rule holds: every conv weight is used once per
position (2 FLOPs forward).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from leanbench.compress.base import StepContext, StepResult
from leanbench.data.base import TaskData
from leanbench.errors import ModelError
from leanbench.models.base import ModelAdapter
from leanbench.study import FinetuneConfig, TrainConfig

Progress = Callable[[int, int, str], None]
# loss(module, inputs, split name, example indices into that split) -> mean loss over the batch
BatchLoss = Callable[[nn.Module, dict[str, torch.Tensor], str, torch.Tensor], torch.Tensor]
NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


# --------------------------------------------------------------------------- models that train here
def text_trainable(model: Any, step: str) -> Any:
    """A copy of `model` (a Hugging Face classifier or a text student: the families these steps have
    handlers for) that `step` may change."""
    if getattr(model, "quantized", None):
        raise ModelError(f"step '{step}' cannot change a quantized model; apply it before quantize")
    return model.copy()


def as_finetune(cfg: TrainConfig | FinetuneConfig, **defaults: Any) -> FinetuneConfig:
    """A FinetuneConfig from a train-like config: only the fields the user set are carried over (the
    others take the fine-tuning defaults, or `defaults`), so `{epochs: 1}` does not bring lr=1e-3."""
    if isinstance(cfg, FinetuneConfig):
        return cfg
    fields = set(FinetuneConfig.model_fields)
    given = {k: getattr(cfg, k) for k in cfg.model_fields_set if k in fields}
    return FinetuneConfig(**{**defaults, **given})


# --------------------------------------------------------------------------- subsets and batches
MEGABATCH = 50  # batches sorted together by length when grouping (transformers' LengthGroupedSampler)


def epoch_batches(lengths: np.ndarray, batch_size: int, gen: torch.Generator, group: bool) -> list[torch.Tensor]:
    """One epoch's batches of positions 0..len(lengths)-1: a seeded permutation split into batches, or with
    `group`, each run of MEGABATCH batches of that permutation sorted by length (longest first) before
    splitting, then the batches shuffled, so a batch holds texts of similar length and pads little."""
    perm = torch.randperm(len(lengths), generator=gen)
    if not group:
        return list(perm.split(batch_size))
    batches: list[torch.Tensor] = []
    for chunk in perm.split(batch_size * MEGABATCH):
        order = torch.argsort(torch.as_tensor(lengths[chunk.numpy()]), descending=True, stable=True)
        batches.extend(chunk[order].split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]


def seeded_subset(n: int, limit: int | None, seed: int) -> np.ndarray:
    """All indices 0..n-1, or a seeded sample of `limit` of them (sorted)."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def non_embedding_params(module: nn.Module) -> int:
    """Parameters outside nn.Embedding layers (the N of Kaplan et al.'s 6·N FLOPs per token)."""
    emb = {id(p) for m in module.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    return int(sum(p.numel() for p in module.parameters() if id(p) not in emb))


def n_tokens(inputs: dict[str, torch.Tensor]) -> int:
    mask = inputs.get("attention_mask")
    return int(mask.sum()) if mask is not None else int(inputs["input_ids"].numel())


def model_logits(module: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    out = module(**inputs)
    return out.logits if hasattr(out, "logits") else out


def cross_entropy_loss(data: TaskData) -> BatchLoss:
    """Cross-entropy on the hard labels of the split."""
    labels = {s: torch.as_tensor(np.asarray(data.split(s).y, dtype=np.int64)) for s in ("train", "validation")}

    def loss(module: nn.Module, inputs: dict[str, torch.Tensor], split: str, idx: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model_logits(module, inputs), labels[split][idx])

    return loss


# --------------------------------------------------------------------------- the loop
@dataclass
class TextFit:
    """What one run of ``train_text`` did (steps, evaluations, tokens) and its FLOP estimate."""

    steps: int
    epochs: float
    best_step: int
    best_val_loss: float | None
    train_tokens: int
    eval_tokens: int
    examples: int
    seconds: float
    flops: float
    train_positions: int = 0  # tokens plus padding: what the model computed on

    def info(self) -> dict[str, Any]:
        return {"steps": self.steps, "epochs": round(self.epochs, 3), "best_step": self.best_step,
                "best_val_loss": self.best_val_loss, "train_examples_seen": self.examples,
                "train_tokens": self.train_tokens, "train_padding_share": round(
                    1 - self.train_tokens / self.train_positions, 3) if self.train_positions else None,
                "examples_per_s": round(self.examples / self.seconds, 1) if self.seconds > 0 else None}


def _optimizer(module: nn.Module, cfg: FinetuneConfig) -> torch.optim.Optimizer:
    """AdamW; with a LoRA `lr_ratio` (LoRA+) the B matrices get their own group at lr * lr_ratio.
    DoRA's magnitude vectors are not decayed (decay would pull every weight's norm towards 0)."""
    ratio = float(getattr(cfg, "lr_ratio", 1.0))
    decay, no_decay, lora_b = [], [], []
    for name, p in module.named_parameters():
        if p.requires_grad:
            if ratio != 1.0 and ".lora_B." in f".{name}.":
                lora_b.append(p)
            else:
                no = name.endswith(NO_DECAY) or ".lora_magnitude_vector." in name  # DoRA's magnitudes
                (no_decay if no else decay).append(p)
    groups = [g for g in ({"params": decay, "weight_decay": cfg.weight_decay},
                          {"params": no_decay, "weight_decay": 0.0},
                          {"params": lora_b, "weight_decay": cfg.weight_decay, "lr": cfg.lr * ratio})
              if g["params"]]
    try:  # the fused kernel: ~7x faster steps on CPU for a 22.7M-parameter model (measured, 1 thread)
        return torch.optim.AdamW(groups, lr=cfg.lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(groups, lr=cfg.lr)


def plan_steps(n: int, cfg: FinetuneConfig) -> tuple[int, int]:
    """(total optimizer steps, steps per epoch) for n training examples."""
    per_epoch = math.ceil(n / cfg.batch_size)
    return (cfg.max_steps if cfg.max_steps is not None else cfg.epochs * per_epoch), per_epoch


class _Validator:
    """Validation loss on a fixed subset, tracking the best weights."""

    def __init__(self, adapter: Any, module: nn.Module, X: np.ndarray, idx: np.ndarray, loss: BatchLoss,
                 batch_size: int):
        self.adapter, self.module, self.X, self.idx, self.loss = adapter, module, X, idx, loss
        self.batch_size = max(batch_size, 64)
        self.best = math.inf
        self.best_step = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.tokens = 0
        self.stale = 0

    def __call__(self, step: int) -> float:
        if len(self.idx) == 0:
            return math.nan
        self.module.eval()
        total = 0.0
        with torch.no_grad():
            for i in range(0, len(self.idx), self.batch_size):
                idx = self.idx[i:i + self.batch_size]
                inputs = self.adapter.prepare(self.X[idx])
                self.tokens += n_tokens(inputs)
                total += float(self.loss(self.module, inputs, "validation", torch.as_tensor(idx))) * len(idx)
        self.module.train()
        value = total / len(self.idx)
        if value < self.best:
            self.best, self.best_step, self.stale = value, step, 0
            self.best_state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        else:
            self.stale += 1
        return value


def train_text(adapter: Any, data: TaskData, cfg: FinetuneConfig, seed: int,
               progress: Progress = lambda d, t, i: None, loss: BatchLoss | None = None,
               after_step: Callable[[], None] | None = None) -> TextFit:
    """Trains ``adapter.torch_module()`` in place (see the module docstring) and returns what it did.
    ``loss`` defaults to cross-entropy on the hard labels; training and validation use the same one.
    ``after_step`` runs after every optimizer step (e.g. to re-apply a pruning mask)."""
    from transformers import get_linear_schedule_with_warmup

    from leanbench.models.hf import token_lengths

    module = adapter.torch_module()
    loss = loss or cross_entropy_loss(data)
    train_idx = seeded_subset(len(data.train), cfg.max_train_examples, seed)
    if len(train_idx) == 0:
        raise ModelError("cannot train: the training split is empty")
    total, per_epoch = plan_steps(len(train_idx), cfg)
    opt = _optimizer(module, cfg)
    sched = get_linear_schedule_with_warmup(opt, int(cfg.warmup_ratio * total), total)
    val = _Validator(adapter, module, data.validation.X,
                     seeded_subset(len(data.validation), cfg.max_eval_examples, seed + 1), loss, cfg.batch_size)
    eval_every = cfg.eval_every or per_epoch
    gen = torch.Generator().manual_seed(seed)
    lengths = token_lengths(adapter, data.train.X[train_idx]) if cfg.group_by_length else np.zeros(len(train_idx))
    step = seen = tokens = positions = 0
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # dropout masks
        val(0)
        module.train()
        while step < total:
            for batch in epoch_batches(lengths, cfg.batch_size, gen, cfg.group_by_length):
                idx = torch.as_tensor(train_idx[batch.numpy()])
                inputs = adapter.prepare(data.train.X[idx.numpy()])
                value = loss(module, inputs, "train", idx)
                opt.zero_grad(set_to_none=True)
                value.backward()
                if cfg.max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(module.parameters(), cfg.max_grad_norm)
                opt.step()
                sched.step()
                if after_step is not None:
                    after_step()
                step, seen, tokens = step + 1, seen + len(idx), tokens + n_tokens(inputs)
                positions += int(inputs["input_ids"].numel())
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                info = f"loss {float(value.detach()):.4f}, {rate:.0f} examples/s"
                if step % eval_every == 0 or step == total:
                    info += f", validation loss {val(step):.4f}"
                progress(step, total, info)
                if step >= total or (cfg.patience and val.stale >= cfg.patience):
                    break
            if cfg.patience and val.stale >= cfg.patience:
                break
    seconds = time.perf_counter() - t0
    if val.best_state is not None and len(val.idx):
        module.load_state_dict(val.best_state)
    module.eval()
    n = non_embedding_params(module)
    best = None if math.isinf(val.best) or math.isnan(val.best) else float(val.best)
    return TextFit(step, seen / len(train_idx), val.best_step, best, tokens, val.tokens, seen, seconds,
                   flops=6.0 * n * tokens + 2.0 * n * val.tokens, train_positions=positions)


def fit_text(adapter: Any, ctx: StepContext, cfg: FinetuneConfig, loss: BatchLoss | None = None,
             after_step: Callable[[], None] | None = None, data: TaskData | None = None) -> TextFit:
    """``train_text`` with the step's seed and progress, on `data` (default: the step's task data)."""
    seed = cfg.seed if cfg.seed is not None else ctx.seed
    return train_text(adapter, ctx.data if data is None else data, cfg, seed, ctx.progress, loss, after_step)


def finetune(cfg: FinetuneConfig, model: ModelAdapter | None, ctx: StepContext) -> StepResult:
    """Fine-tunes a copy of a Hugging Face classifier (or a text student) on the training split.
    FLOPs: 6·N per training token + 2·N per validation token (module docstring)."""
    adapter = text_trainable(model, "finetune")
    fit = fit_text(adapter, ctx, cfg)
    return StepResult(adapter, flops=fit.flops, info=fit.info())



def train_text_step(cfg: TrainConfig, model: ModelAdapter | None, ctx: StepContext) -> StepResult:
    """The ``train`` step on text models. TF-IDF + logistic regression is fitted by scikit-learn; a text
    student trains with every TrainConfig value (epochs, lr, ... its defaults suit a small CNN); a Hugging
    Face model takes only the fields that were set, the others from FinetuneConfig (lr 5e-5, not 1e-3)."""
    adapter = text_trainable(model, "train")
    fit = fit_text(adapter, ctx, text_config(cfg, adapter))
    return StepResult(adapter, flops=fit.flops, info=fit.info())


def text_config(cfg: TrainConfig, adapter: Any) -> FinetuneConfig:
    """The loop settings of a train / distill config for a text model: a text student takes every
    TrainConfig value (no warm-up); a Hugging Face model only the fields that were set."""
    if not getattr(adapter, "takes_train_settings", False):
        return as_finetune(cfg)
    return FinetuneConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
                          patience=cfg.patience, seed=cfg.seed, warmup_ratio=0.0,
                          max_steps=getattr(cfg, "max_steps", None),
                          max_train_examples=getattr(cfg, "max_train_examples", None),
                          group_by_length=cfg.group_by_length)
