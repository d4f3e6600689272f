"""The training loop shared by the train, distill and fine-tune steps, and FLOP bookkeeping.

Adam, mini-batches shuffled by a seeded ``torch.Generator``, early stopping on the validation loss with
the best weights restored. Training FLOPs are estimated as 3x the forward FLOPs per example seen
(forward + backward ~ 3 forwards; Kaplan et al. 2020, "Scaling Laws for Neural Language Models",
sec. 2.1) plus one forward per validation example per validation pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from leanbench.compress.base import StepContext
from leanbench.data.base import Split, TaskData
from leanbench.errors import ModelError
from leanbench.models.base import ModelAdapter
from leanbench.models.torch_models import TorchAdapter
from leanbench.study import TrainConfig

LossFn = Callable[..., torch.Tensor]  # loss_fn(logits, *targets) -> mean loss over the batch
Progress = Callable[[int, int, str], None]


@dataclass
class FitResult:
    """What one run of ``fit`` did: epochs, the epoch whose weights were kept (0 = the starting
    weights), its validation loss, and how many examples went forward (+ backward) in training and
    forward only in validation."""

    epochs_run: int
    best_epoch: int
    best_val_loss: float | None
    train_examples: int
    val_examples: int

    def info(self) -> dict[str, Any]:
        return {"epochs_run": self.epochs_run, "best_epoch": self.best_epoch,
                "best_val_loss": self.best_val_loss}

    def flops(self, forward_flops: float) -> float:
        """3 x forward FLOPs per training example seen + 1 x per validation example evaluated."""
        return 3.0 * forward_flops * self.train_examples + forward_flops * self.val_examples


def trainable(model: TorchAdapter, step: str) -> TorchAdapter:
    """A copy of a leanbench torch model (the family these steps have handlers for) that `step` may change:
    not a quantized one."""
    if model.quantized:
        raise ModelError(f"step '{step}' cannot change a quantized model ({model.quantized}); "
                         f"apply it before the quantize step")
    return model.copy()


def step_seed(cfg: TrainConfig, ctx: StepContext) -> int:
    return cfg.seed if cfg.seed is not None else ctx.seed


def split_tensors(adapter: TorchAdapter, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs (N, *input_shape) float32, labels (N,) int64) of a split."""
    return adapter.prepare(split.X), torch.as_tensor(np.asarray(split.y, dtype=np.int64))


def forward_flops(model: ModelAdapter, X: np.ndarray) -> int:
    """Forward FLOPs of one example (the first row of X): the adapter's own count when it has one,
    else torch's FlopCounterMode around its forward (0 for models that do not run torch ops)."""
    if isinstance(model, TorchAdapter):
        return model.flops_per_example()
    if model.torch_module() is None or len(X) == 0:
        return 0
    with FlopCounterMode(display=False) as counter:
        model.forward(model.prepare(X[:1]))
    return int(counter.get_total_flops())


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y)


def evaluate_loss(module: nn.Module, tensors: Sequence[torch.Tensor], loss_fn: LossFn,
                  batch_size: int = 1024) -> float:
    """Mean per-example loss over a split in eval mode (nan when the split is empty)."""
    n = len(tensors[0])
    if n == 0:
        return math.nan
    module.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, n, batch_size):
            batch = [t[i:i + batch_size] for t in tensors]
            total += float(loss_fn(module(batch[0]), *batch[1:])) * len(batch[0])
    return total / n


def _train_epoch(module: nn.Module, tensors: Sequence[torch.Tensor], opt: torch.optim.Optimizer,
                 loss_fn: LossFn, batch_size: int, gen: torch.Generator,
                 after_step: Callable[[], None] | None) -> float:
    """One pass over shuffled mini-batches; returns the mean training loss."""
    module.train()
    n = len(tensors[0])
    order = torch.randperm(n, generator=gen)
    total = 0.0
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size]
        batch = [t[idx] for t in tensors]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(module(batch[0]), *batch[1:])
        loss.backward()
        opt.step()
        if after_step is not None:
            after_step()
        total += float(loss.detach()) * len(idx)
    return total / n


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def fit(module: nn.Module, train: Sequence[torch.Tensor], val: Sequence[torch.Tensor], cfg: TrainConfig,
        seed: int, loss_fn: LossFn, progress: Progress = lambda d, t, i: None,
        after_step: Callable[[], None] | None = None) -> FitResult:
    """Trains `module` in place with Adam(lr, weight_decay) for up to cfg.epochs epochs.

    ``train``/``val`` are tensors indexed alike: inputs first, then whatever ``loss_fn(logits, ...)`` takes.
    The validation loss is measured before training and after every epoch; training stops after
    cfg.patience epochs without a strict improvement (0 = never early) and the weights with the lowest
    validation loss are restored (those of the last epoch when there is no validation data).
    ``after_step`` runs after every optimizer step (e.g. to re-apply a pruning mask).
    """
    if getattr(cfg, "max_steps", None) is not None:
        raise ModelError("max_steps is for text models; mlp and cnn models train for `epochs`")
    n, n_val = len(train[0]), len(val[0])
    if n == 0:
        raise ModelError("cannot train: the training split is empty")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best_loss = evaluate_loss(module, val, loss_fn) if n_val else math.inf
    best_state, best_epoch, stale, epoch = _snapshot(module), 0, 0, 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # dropout masks
        for epoch in range(1, cfg.epochs + 1):
            train_loss = _train_epoch(module, train, opt, loss_fn, cfg.batch_size, gen, after_step)
            val_loss = evaluate_loss(module, val, loss_fn)
            if n_val == 0 or val_loss < best_loss:
                best_loss, best_state, best_epoch, stale = val_loss, _snapshot(module), epoch, 0
            else:
                stale += 1
            progress(epoch, cfg.epochs, f"loss {train_loss:.4f}, validation loss {val_loss:.4f}")
            if hasattr(progress, "report"):  # a sweep trial: intermediate value for pruning
                progress.report(epoch, val_loss)
            if cfg.patience and stale >= cfg.patience:
                break
    module.load_state_dict(best_state)
    module.eval()
    best = None if math.isnan(best_loss) or math.isinf(best_loss) else float(best_loss)
    return FitResult(epoch, best_epoch, best, n * epoch, n_val * (epoch + 1))


def fit_cross_entropy(adapter: TorchAdapter, data: TaskData, cfg: TrainConfig, seed: int,
                      progress: Progress = lambda d, t, i: None,
                      after_step: Callable[[], None] | None = None) -> tuple[FitResult, float]:
    """Supervised training of `adapter` (in place) on data.train, early-stopping on data.validation.
    Returns the fit and its FLOP estimate."""
    result = fit(adapter.module, split_tensors(adapter, data.train), split_tensors(adapter, data.validation),
                 cfg, seed, cross_entropy, progress, after_step)
    return result, result.flops(adapter.flops_per_example())
