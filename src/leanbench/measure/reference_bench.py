"""A fixed reference micro-benchmark, so that latencies from two machines can share one leaderboard.

The workload: a single-threaded fp32 matrix product ``(256 x 256) @ (256 x 256)`` — ``2 * 256^3 =
33.6 MFLOP`` per product (the usual ``2 m n k`` count, one multiply and one add per term). After
``warmup`` untimed products, ``repeats`` products are timed one by one with ``time.perf_counter_ns`` and
the score is ``FLOP / median seconds`` in GFLOP/s; the median ignores the odd slow repeat (a context
switch). Inputs are drawn once from a fixed seed. Torch runs it under ``torch.set_num_threads(1)``;
the NumPy variant limits its BLAS to one thread with ``threadpoolctl`` (installed with scikit-learn).
The default (100 repeats) takes tens of milliseconds on current CPUs (plus importing torch).

Normalised latency (:func:`normalise_latency`): a model's latency on this machine expressed in
"reference-machine milliseconds", ``latency_ms * machine_score / reference_score``: on a machine twice
as fast as the reference (twice the score), 1 ms here counts as 2 ms on the reference. This assumes
the model's forward scales like a dense fp32 matmul; memory-bound or int8 models can scale
differently, so normalised figures are for ranking across machines, not for claiming a speed-up.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from leanbench.errors import LeanbenchError

SIZE = 256
REPEATS = 100
WARMUP = 3
SEED = 0


def matmul_flops(n: int = SIZE) -> int:
    """FLOPs of one ``(n x n) @ (n x n)`` product: ``2 n^3``."""
    return 2 * n**3


def _time_median(op: Callable[[], Any], warmup: int, repeats: int) -> tuple[float, float]:
    """Median and interquartile range of ``repeats`` timed calls, in seconds."""
    for _ in range(warmup):
        op()
    ns = np.empty(repeats, dtype=np.int64)
    for i in range(repeats):
        t = time.perf_counter_ns()
        op()
        ns[i] = time.perf_counter_ns() - t
    q1, med, q3 = np.percentile(ns / 1e9, [25, 50, 75])
    return float(med), float(q3 - q1)


def _result(method: str, n: int, median_s: float, iqr_s: float, repeats: int) -> dict[str, Any]:
    flops = matmul_flops(n)
    return {"score": flops / median_s / 1e9, "unit": "GFLOP/s", "ms_per_op": median_s * 1e3,
            "iqr_ms": iqr_s * 1e3, "method": method, "threads": 1, "size": n, "repeats": repeats,
            "flops_per_op": flops}


def _check(n: int, warmup: int, repeats: int) -> None:
    for name, v, low in (("n", n, 1), ("warmup", warmup, 0), ("repeats", repeats, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise LeanbenchError(f"reference bench: {name} must be an integer >= {low}, got {v!r}")


def torch_matmul_score(n: int = SIZE, repeats: int = REPEATS, warmup: int = WARMUP) -> dict[str, Any]:
    """GFLOP/s of a single-threaded fp32 ``torch.mm`` of two ``n x n`` matrices (median of ``repeats``)."""
    import torch

    from leanbench.measure.threads import torch_threads

    _check(n, warmup, repeats)
    g = torch.Generator().manual_seed(SEED)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    out = torch.empty(n, n)
    with torch_threads(1), torch.inference_mode():
        med, iqr = _time_median(lambda: torch.mm(a, b, out=out), warmup, repeats)
    return _result(f"torch.mm fp32 {n}x{n}, 1 thread, median of {repeats}", n, med, iqr, repeats)


def numpy_matmul_score(n: int = SIZE, repeats: int = REPEATS, warmup: int = WARMUP) -> dict[str, Any]:
    """GFLOP/s of a single-threaded fp32 ``numpy.matmul`` (BLAS limited to 1 thread by threadpoolctl)."""
    from threadpoolctl import threadpool_limits

    _check(n, warmup, repeats)
    rng = np.random.default_rng(SEED)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    with threadpool_limits(limits=1):
        med, iqr = _time_median(lambda: np.matmul(a, b, out=out), warmup, repeats)
    return _result(f"numpy.matmul fp32 {n}x{n}, 1 BLAS thread, median of {repeats}", n, med, iqr, repeats)


def reference_score(backend: str = "torch", **kwargs: Any) -> dict[str, Any]:
    """The reference benchmark with ``backend`` ``torch`` (default, what models run on) or ``numpy``."""
    if backend == "torch":
        return torch_matmul_score(**kwargs)
    if backend == "numpy":
        return numpy_matmul_score(**kwargs)
    raise LeanbenchError(f"reference bench: backend must be 'torch' or 'numpy', got {backend!r}")


def normalise_latency(latency_ms: float, machine_score: float, reference_score: float) -> float:
    """Latency in reference-machine milliseconds: ``latency_ms * machine_score / reference_score``."""
    for name, v in (("machine_score", machine_score), ("reference_score", reference_score)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise LeanbenchError(f"normalise_latency: {name} must be a finite number > 0, got {v!r}")
    if not math.isfinite(latency_ms) or latency_ms < 0:
        raise LeanbenchError(f"normalise_latency: latency_ms must be a finite number >= 0, "
                             f"got {latency_ms!r}")
    return latency_ms * machine_score / reference_score
