"""The ``prune`` step.

``magnitude``: global unstructured magnitude pruning (Han et al. 2015, "Learning both Weights and
Connections for Efficient Neural Networks"): over all Linear and Conv weights together (not biases), the
``round(sparsity * n)`` weights of smallest |w| are set to zero. Shapes stay; the mask is re-applied after
every optimizer step of the optional fine-tune, so pruned weights stay zero.

``structured``: removes whole hidden neurons and conv output channels, in the spirit of filter pruning
(Li et al. 2017, "Pruning Filters for Efficient ConvNets"). Each hidden unit is scored by the L2 norm of
its incoming weights and bias, sqrt(||W[j, :]||^2 + b[j]^2) (for a conv channel, over its whole 3x3
filter bank); Li et al. rank filters by the L1 norm and report that L2 ranks alike. In every hidden
layer independently, the ``round((1 - sparsity) * width)`` (at least 1) highest-scoring units are kept;
the next layer loses the matching input columns (for the CNN's first fc layer, every column of a removed
channel's feature map). The output layer is never pruned. The model really shrinks: smaller arch dict,
fewer parameters, a smaller saved file.
"""

from __future__ import annotations

import torch
from torch import nn

from leanbench.compress._training import fit_cross_entropy, step_seed, trainable
from leanbench.compress.base import StepContext, StepResult
from leanbench.compress.masks import apply_masks, keep_count, magnitude_masks, top_units, weight_sparsity
from leanbench.models.base import ModelAdapter
from leanbench.models.torch_models import LowRankLinear, TorchAdapter, cnn_feature_shape, module_from_arch
from leanbench.study import PruneConfig


# --------------------------------------------------------------------------- magnitude
def _magnitude(cfg: PruneConfig, adapter: TorchAdapter, ctx: StepContext) -> tuple[dict, float]:
    masks = magnitude_masks(adapter.module, cfg.sparsity)
    apply_masks(adapter.module, masks)
    flops, info = 0.0, {}
    if cfg.finetune is not None:
        seed = step_seed(cfg.finetune, ctx)
        result, flops = fit_cross_entropy(adapter, ctx.data, cfg.finetune, seed, ctx.progress,
                                          after_step=lambda: apply_masks(adapter.module, masks))
        info = {"finetune": result.info()}
    return {"sparsity": weight_sparsity(adapter.module), **info}, flops


# --------------------------------------------------------------------------- structured
def linear_unit_scores(layer: nn.Module) -> torch.Tensor:
    """sqrt(||W[j, :]||^2 + b[j]^2) per output unit j; a factorised layer uses W = W2 @ W1."""
    with torch.no_grad():
        if isinstance(layer, LowRankLinear):
            w, b = layer.second.weight @ layer.first.weight, layer.second.bias
        else:
            w, b = layer.weight, layer.bias
        return torch.sqrt((w.double() ** 2).sum(1) + b.double() ** 2)


def conv_unit_scores(conv: nn.Conv2d) -> torch.Tensor:
    """sqrt(||filter_c||^2 + b[c]^2) per output channel c."""
    with torch.no_grad():
        return torch.sqrt((conv.weight.double() ** 2).flatten(1).sum(1) + conv.bias.double() ** 2)


def _slice_linear(prefix: str, layer: nn.Module, rows: torch.Tensor, cols: torch.Tensor) -> dict:
    if isinstance(layer, LowRankLinear):
        return {f"{prefix}.first.weight": layer.first.weight[:, cols],
                f"{prefix}.second.weight": layer.second.weight[rows],
                f"{prefix}.second.bias": layer.second.bias[rows]}
    return {f"{prefix}.weight": layer.weight[rows][:, cols], f"{prefix}.bias": layer.bias[rows]}


def _slice_linears(linears: nn.ModuleList, keep: list[torch.Tensor], first_cols: torch.Tensor) -> dict:
    """Tensors of every Linear with hidden layer i keeping rows keep[i] (the last layer keeps all rows)
    and each layer's input columns following the previous layer's kept rows."""
    out, cols = {}, first_cols
    for i, layer in enumerate(linears):
        rows = keep[i] if i < len(keep) else torch.arange(_out_features(layer))
        out.update(_slice_linear(f"linears.{i}", layer, rows, cols))
        cols = rows
    return out


def _out_features(layer: nn.Module) -> int:
    return layer.second.out_features if isinstance(layer, LowRankLinear) else layer.out_features


def _in_features(layer: nn.Module) -> int:
    return layer.first.in_features if isinstance(layer, LowRankLinear) else layer.in_features


def _structured_mlp(adapter: TorchAdapter, sparsity: float) -> tuple[dict, dict]:
    linears = adapter.module.linears
    keep = [top_units(linear_unit_scores(layer), keep_count(_out_features(layer), sparsity))
            for layer in list(linears)[:-1]]
    tensors = _slice_linears(linears, keep, torch.arange(_in_features(linears[0])))
    return {**adapter.arch, "hidden": [len(k) for k in keep]}, tensors


def _structured_cnn(adapter: TorchAdapter, sparsity: float) -> tuple[dict, dict]:
    module = adapter.module
    tensors, cols = {}, torch.arange(adapter.arch["in_shape"][0])
    keep_ch = []
    for i, conv in enumerate(module.convs):
        rows = top_units(conv_unit_scores(conv), keep_count(conv.out_channels, sparsity))
        tensors[f"convs.{i}.weight"] = conv.weight[rows][:, cols]
        tensors[f"convs.{i}.bias"] = conv.bias[rows]
        keep_ch.append(rows)
        cols = rows
    h, w, _ = cnn_feature_shape(adapter.arch)
    # flatten is channel-major: channel c owns columns c*h*w ... (c+1)*h*w - 1
    fc_cols = (cols[:, None] * (h * w) + torch.arange(h * w)[None, :]).flatten()
    fc_keep = top_units(linear_unit_scores(module.linears[0]),
                        keep_count(_out_features(module.linears[0]), sparsity))
    tensors.update(_slice_linears(module.linears, [fc_keep], fc_cols))
    arch = {**adapter.arch, "channels": [len(k) for k in keep_ch], "fc_hidden": len(fc_keep)}
    return arch, tensors


def structured_prune(adapter: TorchAdapter, sparsity: float) -> TorchAdapter:
    """A new, smaller model keeping the highest-L2 units of every hidden layer (see the module doc)."""
    build = _structured_mlp if adapter.arch["arch"] == "mlp" else _structured_cnn
    arch, tensors = build(adapter, sparsity)
    module = module_from_arch(arch)
    module.load_state_dict({k: v.detach().clone().contiguous() for k, v in tensors.items()}, strict=True)
    return TorchAdapter(module, arch, adapter.input_shape)


def _structured(cfg: PruneConfig, adapter: TorchAdapter,
                ctx: StepContext) -> tuple[TorchAdapter, dict, float]:
    pruned = structured_prune(adapter, cfg.sparsity)
    flops, info = 0.0, {}
    if cfg.finetune is not None:
        seed = step_seed(cfg.finetune, ctx)
        result, flops = fit_cross_entropy(pruned, ctx.data, cfg.finetune, seed, ctx.progress)
        info = {"finetune": result.info()}
    width = {k: pruned.arch[k] for k in ("hidden", "channels", "fc_hidden") if k in pruned.arch}
    sparsity = 1.0 - pruned.num_params() / adapter.num_params()
    return pruned, {"sparsity": sparsity, "arch": width, **info}, flops


def prune(cfg: PruneConfig, model: ModelAdapter | None, ctx: StepContext) -> StepResult:
    """Prunes a copy of a leanbench torch model (``magnitude`` or ``structured``; Hugging Face models:
    ``hf_prune``, causal LMs: ``lm_compress``). FLOPs: those of the optional fine-tune (the pruning itself is a sort
    and a few slices, negligible). info: method, sparsity reached (magnitude: fraction of zero
    Linear/Conv weights; structured: fraction of parameters removed), params and nonzero params before
    and after."""
    adapter = trainable(model, "prune")
    before = {"params_before": adapter.num_params(), "nonzero_params_before": adapter.nonzero_params()}
    if cfg.method == "magnitude":
        result, (info, flops) = adapter, _magnitude(cfg, adapter, ctx)
    else:
        result, info, flops = _structured(cfg, adapter, ctx)
    info = {"method": cfg.method, "sparsity_requested": cfg.sparsity, **info, **before,
            "params_after": result.num_params(), "nonzero_params_after": result.nonzero_params()}
    return StepResult(result, flops=float(flops), info=info)
