"""Pruning masks and unit selection, shared by the torch ``prune`` step (``leanbench.compress.prune``) and
the Hugging Face one (``leanbench.compress.hf_prune``).

- Global unstructured magnitude pruning (Han et al. 2015, "Learning both Weights and Connections for
  Efficient Neural Networks"): over the weights (not biases) of all Linear and Conv layers together, the
  ``round(sparsity * n)`` of smallest |w| are masked out; ``apply_masks`` zeroes them (again after every
  optimizer step of a fine-tune, so pruned weights stay zero).
- Structured pruning keeps, in each layer, the ``round((1 - sparsity) * width)`` (at least 1) units of
  highest score (``keep_count``, ``top_units``); the scores are the callers'.
"""

from __future__ import annotations

import math

import torch
from torch import nn


# --------------------------------------------------------------------------- magnitude
def prunable_weights(module: nn.Module) -> dict[str, nn.Parameter]:
    """The weight (not bias) of every Linear and Conv layer, by parameter name."""
    return {f"{name}.weight": m.weight for name, m in module.named_modules()
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))}


def magnitude_masks(module: nn.Module, sparsity: float) -> dict[str, torch.Tensor]:
    """Boolean keep-masks zeroing exactly round(sparsity * n) of the n prunable weights, those of smallest
    |w| over all layers together (ties broken by position, stably)."""
    weights = prunable_weights(module)
    flat = torch.cat([w.detach().abs().flatten() for w in weights.values()])
    k = int(math.floor(sparsity * flat.numel() + 0.5))
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    keep[torch.argsort(flat, stable=True)[:k]] = False
    masks, start = {}, 0
    for name, w in weights.items():
        masks[name] = keep[start:start + w.numel()].view_as(w)
        start += w.numel()
    return masks


def apply_masks(module: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zeroes the masked-out weights in place."""
    params = dict(module.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].mul_(mask)


def weight_sparsity(module: nn.Module) -> float:
    """Fraction of the prunable weights that are exactly zero."""
    weights = list(prunable_weights(module).values())
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / total if total else 0.0


# --------------------------------------------------------------------------- structured
def keep_count(width: int, sparsity: float) -> int:
    """Units kept in a layer of `width` units: round((1 - sparsity) * width), at least 1."""
    return max(1, int(math.floor((1.0 - sparsity) * width + 0.5)))


def top_units(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (ascending) of the k highest scores; ties keep the earlier unit."""
    return torch.argsort(-scores, stable=True)[:k].sort().values
