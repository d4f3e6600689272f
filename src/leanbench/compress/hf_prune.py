"""Pruning for Hugging Face encoders (BERT-style: ``attention.self.{query,key,value}``,
``attention.output.dense``, ``intermediate.dense``, ``output.dense``), dispatched from the ``prune`` step.

Structured methods remove whole units, so the model really shrinks (fewer parameters, a smaller file,
smaller matrix multiplies); the saved folder records the resized Linear shapes and reloads exactly.

- ``heads``: in every layer the ``round((1 - sparsity) · heads)`` (at least 1) heads with the largest
  importance are kept. Importance is gradient-free: the Frobenius norm of the head's slice of the
  attention output projection, ||W_o[:, h·d:(h+1)·d]||_F — the weights through which the head writes into
  the residual stream (a magnitude proxy in the spirit of Michel et al. 2019, "Are Sixteen Heads Really
  Better than One?", who score heads by gradients; the proxy needs no data). The query, key and value rows
  of a dropped head and its output-projection columns are removed.
- ``ffn``: in every layer the ``round((1 - sparsity) · d_ff)`` intermediate neurons with the largest
  sqrt(||W_in[j, :]||² + b_in[j]² ) · ||W_out[:, j]|| are kept (input and output weights of the neuron);
  ``intermediate.dense`` rows and ``output.dense`` columns are removed.
- ``layers``: whole encoder layers are dropped: the listed ``layers``, else the top ``round(sparsity · L)``
  layers (Sajjad et al. 2023, "On the Effect of Dropping Layers of Pre-trained Transformer Models", find
  top-layer dropping the best simple strategy).
- ``magnitude``: global unstructured magnitude pruning of every Linear weight (the same masks as the torch
  ``prune`` step); shapes stay, so the model is no smaller or faster — the report shows nonzero parameters
  and the *measured* latency, never an assumed speed-up.

An optional ``finetune`` (``FinetuneConfig`` fields; given ``TrainConfig`` fields are carried over) follows.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from leanbench.compress.base import StepContext, StepResult
from leanbench.compress.finetune import as_finetune, fit_text, text_trainable
from leanbench.compress.masks import apply_masks, keep_count, magnitude_masks, top_units, weight_sparsity
from leanbench.errors import ModelError
from leanbench.models.base import ModelAdapter
from leanbench.models.hf import HFClassifierAdapter, encoder_layers, keep_encoder_layers, sync_attention_heads
from leanbench.study import PruneConfig


def slice_linear(layer: nn.Linear, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None) -> nn.Linear:
    """A new Linear keeping output rows `rows` and input columns `cols` (None = all)."""
    w = layer.weight.detach()
    b = layer.bias.detach() if layer.bias is not None else None
    if rows is not None:
        w, b = w[rows], (b[rows] if b is not None else None)
    if cols is not None:
        w = w[:, cols]
    new = nn.Linear(w.shape[1], w.shape[0], bias=b is not None, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if b is not None:
            new.bias.copy_(b)
    return new


def _bert_parts(layer: nn.Module) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
    """(self-attention, attention output, intermediate, output) of a BERT-style layer."""
    try:
        return layer.attention.self, layer.attention.output, layer.intermediate, layer.output
    except AttributeError:
        raise ModelError(f"structured pruning supports BERT-style layers (attention.self, intermediate, "
                         f"output); got {type(layer).__name__}") from None


# --------------------------------------------------------------------------- heads
def head_scores(attn_self: nn.Module, attn_out: nn.Module) -> torch.Tensor:
    """||W_o[:, h·d:(h+1)·d]||_F per head h."""
    d = attn_self.attention_head_size
    w = attn_out.dense.weight.detach().double()  # (hidden, heads·d)
    return w.reshape(w.shape[0], -1, d).pow(2).sum(dim=(0, 2)).sqrt()


def prune_heads(model: nn.Module, sparsity: float) -> list[int]:
    """Keeps the most important heads of every layer, in place; returns the heads kept per layer."""
    parent, attr = encoder_layers(model)
    kept = []
    for layer in getattr(parent, attr):
        attn_self, attn_out, _, _ = _bert_parts(layer)
        scores = head_scores(attn_self, attn_out)
        heads = top_units(scores, keep_count(len(scores), sparsity))
        d = attn_self.attention_head_size
        cols = (heads[:, None] * d + torch.arange(d)[None, :]).flatten()
        for name in ("query", "key", "value"):
            setattr(attn_self, name, slice_linear(getattr(attn_self, name), rows=cols))
        attn_out.dense = slice_linear(attn_out.dense, cols=cols)
        kept.append(len(heads))
    sync_attention_heads(model)
    return kept


# --------------------------------------------------------------------------- FFN neurons
def ffn_scores(intermediate: nn.Module, output: nn.Module) -> torch.Tensor:
    """sqrt(||W_in[j]||² + b_in[j]²) · ||W_out[:, j]|| per intermediate neuron j."""
    w_in = intermediate.dense.weight.detach().double()
    b_in = intermediate.dense.bias.detach().double()
    w_out = output.dense.weight.detach().double()
    return torch.sqrt(w_in.pow(2).sum(1) + b_in.pow(2)) * w_out.pow(2).sum(0).sqrt()


def prune_ffn(model: nn.Module, sparsity: float) -> list[int]:
    """Keeps the highest-scoring FFN neurons of every layer, in place; returns the widths kept."""
    parent, attr = encoder_layers(model)
    kept = []
    for layer in getattr(parent, attr):
        _, _, intermediate, output = _bert_parts(layer)
        scores = ffn_scores(intermediate, output)
        rows = top_units(scores, keep_count(len(scores), sparsity))
        intermediate.dense = slice_linear(intermediate.dense, rows=rows)
        output.dense = slice_linear(output.dense, cols=rows)
        kept.append(len(rows))
    return kept


# --------------------------------------------------------------------------- layers
def layers_to_drop(n: int, cfg: PruneConfig) -> list[int]:
    """The configured layer indices, else the top round(sparsity · n) layers (at least one kept)."""
    if cfg.layers is not None:
        bad = [i for i in cfg.layers if i >= n]
        if bad or len(set(cfg.layers)) >= n:
            raise ModelError(f"prune.layers must name distinct layers in [0, {n - 1}] and keep at least one "
                             f"(the model has {n}), got {list(cfg.layers)}")
        return sorted(set(cfg.layers))
    k = min(n - 1, int(math.floor(cfg.sparsity * n + 0.5)))
    return list(range(n - k, n))


def prune_layers(adapter: HFClassifierAdapter, cfg: PruneConfig) -> list[int]:
    """Drops encoder layers in place; updates the adapter's layer_map. Returns the layers kept."""
    parent, attr = encoder_layers(adapter.model)
    n = len(getattr(parent, attr))
    drop = set(layers_to_drop(n, cfg))
    keep = [i for i in range(n) if i not in drop]
    keep_encoder_layers(adapter.model, keep)
    source = adapter.layer_map or list(range(n))
    adapter.layer_map = [source[i] for i in keep]
    return keep


# --------------------------------------------------------------------------- the step
def _magnitude(adapter: HFClassifierAdapter, cfg: PruneConfig, ctx: StepContext) -> tuple[dict, float]:
    module = adapter.model
    masks = magnitude_masks(module, cfg.sparsity)
    apply_masks(module, masks)
    flops, info = 0.0, {}
    if cfg.finetune is not None:
        fit = fit_text(adapter, ctx, as_finetune(cfg.finetune), after_step=lambda: apply_masks(module, masks))
        flops, info = fit.flops, {"finetune": fit.info()}
    return {"sparsity": weight_sparsity(module), "speedup": "none assumed: shapes unchanged, measure it",
            **info}, flops


def _structured(adapter: HFClassifierAdapter, cfg: PruneConfig, ctx: StepContext) -> tuple[dict, float]:
    before = adapter.num_params()
    if cfg.method == "heads":
        info: dict[str, Any] = {"heads_kept": prune_heads(adapter.model, cfg.sparsity)}
    elif cfg.method == "ffn":
        info = {"ffn_kept": prune_ffn(adapter.model, cfg.sparsity)}
    else:
        info = {"layers_kept": prune_layers(adapter, cfg)}
    info["sparsity"] = 1.0 - adapter.num_params() / before
    flops = 0.0
    if cfg.finetune is not None:
        fit = fit_text(adapter, ctx, as_finetune(cfg.finetune))
        flops, info["finetune"] = fit.flops, fit.info()
    return info, flops


def prune_hf(cfg: PruneConfig, model: ModelAdapter | None, ctx: StepContext) -> StepResult:
    """The ``prune`` step on a Hugging Face classifier (see the module docstring)."""
    adapter = text_trainable(model, "prune")
    before = {"params_before": adapter.num_params(), "nonzero_params_before": adapter.nonzero_params()}
    if cfg.method == "magnitude":
        info, flops = _magnitude(adapter, cfg, ctx)
    else:
        info, flops = _structured(adapter, cfg, ctx)
    info = {"method": cfg.method, "sparsity_requested": cfg.sparsity, **info, **before,
            "params_after": adapter.num_params(), "nonzero_params_after": adapter.nonzero_params()}
    return StepResult(adapter, flops=float(flops), info=info)
