"""The ``lowrank`` step: truncated SVD of Linear layers.

W (out x in) = U S V^T; keeping the r largest singular values gives the best rank-r approximation in
Frobenius and spectral norm (Eckart & Young 1936), W ~ (U_r S_r)(V_r^T): a Linear(in, r, bias=False) with
weight V_r^T followed by a Linear(r, out) with weight U_r S_r and the original bias. The rank is cfg.rank,
or the smallest r whose kept energy sum_{i<r} s_i^2 / sum_i s_i^2 reaches cfg.energy; it is capped at
min(in, out). A layer is factorised only when that saves parameters, r (in + out) < in out; otherwise,
and when it is already factorised, it is left as it is.
"""

from __future__ import annotations

import torch

from leanbench.compress._training import fit_cross_entropy, step_seed, trainable
from leanbench.compress.base import StepContext, StepResult
from leanbench.models.base import ModelAdapter
from leanbench.models.torch_models import LowRankLinear, TorchAdapter, module_from_arch
from leanbench.study import LowRankConfig

ENERGY_TOLERANCE = 1e-9  # so that energy=1.0 is reached despite rounding in the cumulative sum


def choose_rank(s: torch.Tensor, rank: int | None, energy: float | None) -> int:
    """The kept rank for singular values `s` (descending): `rank` capped at len(s), or the smallest r
    with sum(s[:r]^2) / sum(s^2) >= energy."""
    if rank is not None:
        return min(rank, len(s))
    e = s.double() ** 2
    total = float(e.sum())
    if total == 0.0:
        return 1
    kept = torch.cumsum(e, 0) / total
    return min(int((kept < energy - ENERGY_TOLERANCE).sum()) + 1, len(s))


def svd_flops(m: int, n: int) -> float:
    """Approximate FLOPs of a thin SVD (U_1, S, V) of an m x n matrix: 6 m n^2 + 20 n^3 with m >= n
    (R-SVD; Golub & Van Loan, Matrix Computations, 4th ed., fig. 8.6.1)."""
    m, n = max(m, n), min(m, n)
    return 6.0 * m * n * n + 20.0 * n ** 3


def factorise(weight: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(V_r^T (r x in), U_r S_r (out x r), kept energy) of the truncated SVD, computed in float64."""
    u, s, vh = torch.linalg.svd(weight.detach().double(), full_matrices=False)
    e = s ** 2
    kept = float(e[:r].sum() / e.sum()) if float(e.sum()) > 0 else 1.0
    return vh[:r].float().contiguous(), (u[:, :r] * s[:r]).float().contiguous(), kept


def _plan_layer(layer: torch.nn.Module, cfg: LowRankConfig) -> tuple[int | None, dict]:
    """(rank to factorise with, or None to keep whole; report) for one Linear layer."""
    if isinstance(layer, LowRankLinear):
        return None, {"rank": layer.first.out_features, "status": "already factorised"}
    out_f, in_f = layer.weight.shape
    s = torch.linalg.svdvals(layer.weight.detach().double())
    r = choose_rank(s, cfg.rank, cfg.energy)
    if r * (in_f + out_f) >= in_f * out_f:
        return None, {"rank": None, "status": f"kept whole (rank {r} would not save parameters)"}
    return r, {"rank": r, "status": "factorised"}


def lowrank_model(adapter: TorchAdapter, cfg: LowRankConfig) -> tuple[TorchAdapter, list[dict], float]:
    """A new model with the Linear layers factorised as planned; per-layer reports; SVD FLOPs."""
    module = adapter.module
    ranks = list(adapter.arch["ranks"])
    tensors = {k: v.detach().clone() for k, v in module.state_dict().items()}
    reports, flops = [], 0.0
    for i, layer in enumerate(module.linears):
        r, report = _plan_layer(layer, cfg)
        if r is not None:
            first, second, kept = factorise(layer.weight, r)
            flops += svd_flops(*layer.weight.shape)
            del tensors[f"linears.{i}.weight"], tensors[f"linears.{i}.bias"]
            tensors.update({f"linears.{i}.first.weight": first, f"linears.{i}.second.weight": second,
                            f"linears.{i}.second.bias": layer.bias.detach().clone()})
            ranks[i] = r
            report["energy_kept"] = kept
        reports.append({"layer": f"linears.{i}", **report})
    arch = {**adapter.arch, "ranks": ranks}
    new = module_from_arch(arch)
    new.load_state_dict(tensors, strict=True)
    return TorchAdapter(new, arch, adapter.input_shape), reports, flops


def lowrank(cfg: LowRankConfig, model: ModelAdapter | None, ctx: StepContext) -> StepResult:
    """Factorises a copy of `model`, then optionally fine-tunes it. FLOPs: the SVDs plus the fine-tune.
    info: ranks per Linear layer (None = kept whole), per-layer reports, params before/after."""
    adapter = trainable(model, "lowrank")
    result, reports, flops = lowrank_model(adapter, cfg)
    info = {"ranks": result.arch["ranks"], "layers": reports,
            "params_before": adapter.num_params(), "params_after": result.num_params()}
    if cfg.finetune is not None:
        seed = step_seed(cfg.finetune, ctx)
        fitted, ft_flops = fit_cross_entropy(result, ctx.data, cfg.finetune, seed, ctx.progress)
        flops += ft_flops
        info["finetune"] = fitted.info()
    return StepResult(result, flops=float(flops), info=info)
