"""Latency and throughput of a model's forward call under a stated setting (threads, batch, runs).

Follows optimum-benchmark ``trackers/latency.py``: warm-up calls first, then timed calls with a
monotonic high-resolution clock (``time.perf_counter_ns``). Inputs are prepared before timing starts,
so the figures are the model's forward only, not tokenization or tensor conversion (``include_prepare``
times both, end to end). Models with their own thread pool (ONNX Runtime) get the same thread count
through ``set_threads``. The garbage
collector is paused while timing so that a collection does not land inside one run.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from leanbench.errors import ConfigError, DataError
from leanbench.measure.threads import torch_threads
from leanbench.models.base import ModelAdapter

LATENCY_METHOD = "perf_counter, model forward only, inputs prepared in advance"
END_TO_END_METHOD = ("perf_counter, end to end: prepare (tokenization / tensor conversion) + model forward, "
                     "from raw examples")
MAX_PREPARED_BATCHES = 256


def _check_setting(**values: int) -> None:
    problems = [f"{name}: must be an integer >= {low}, got {v!r}" for name, (v, low) in values.items()
                if isinstance(v, bool) or not isinstance(v, int) or v < low]
    if problems:
        raise ConfigError(problems, source="measure")


def batch_rows(n_rows: int, batch: int, index: int, order: np.ndarray | None = None) -> np.ndarray:
    """Row indices of the ``index``-th batch, cycling through ``n_rows`` rows (tiled if batch > n_rows)."""
    rows = (index * batch + np.arange(batch)) % n_rows
    return rows if order is None else order[rows]


def prepare_batches(model: ModelAdapter, X: np.ndarray, batch: int, calls: int, seed: int = 0) -> list[Any]:
    """Prepared inputs for ``calls`` forward calls, cycling through the rows of X in a seeded order.

    Only as many distinct batches as needed to cover X once are prepared (at most
    ``MAX_PREPARED_BATCHES``); later calls reuse them in turn.
    """
    n = len(X)
    if n == 0:
        raise DataError("measure: X has no rows; latency needs at least one example")
    order = np.random.default_rng(seed).permutation(n)
    distinct = max(1, min(calls, math.ceil(n / batch), MAX_PREPARED_BATCHES))
    return [model.prepare(X[batch_rows(n, batch, i, order)]) for i in range(distinct)]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disables the garbage collector for the block, restoring its previous state after."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def timed_block(call: Callable[[Any], Any], batches: list[Any], start: int, calls: int) -> np.ndarray:
    """`calls` timed calls over ``batches`` in turn from position `start`; each call's duration in ms
    (``perf_counter_ns``; the caller pauses the garbage collector)."""
    durations = np.empty(calls, dtype=np.int64)
    for i in range(calls):
        inputs = batches[(start + i) % len(batches)]
        t0 = time.perf_counter_ns()
        call(inputs)
        durations[i] = time.perf_counter_ns() - t0
    return durations / 1e6


def time_calls(forward: Callable[[Any], Any], batches: list[Any], warmup: int, runs: int) -> np.ndarray:
    """Runs ``warmup`` untimed then ``runs`` timed calls over ``batches`` in turn; durations in ms."""
    for i in range(warmup):
        forward(batches[i % len(batches)])
    with gc_paused():
        return timed_block(forward, batches, warmup, runs)


def raw_batches(X: np.ndarray, batch: int, calls: int, seed: int = 0) -> list[np.ndarray]:
    """Raw rows of X for ``calls`` calls, in the same seeded order as ``prepare_batches``."""
    n = len(X)
    if n == 0:
        raise DataError("measure: X has no rows; latency needs at least one example")
    order = np.random.default_rng(seed).permutation(n)
    distinct = max(1, min(calls, math.ceil(n / batch), MAX_PREPARED_BATCHES))
    return [X[batch_rows(n, batch, i, order)] for i in range(distinct)]


@contextmanager
def model_threads(model: ModelAdapter, n: int) -> Iterator[int]:
    """``torch_threads(n)``, and the same count for a model with its own runtime thread pool (an ONNX
    Runtime session: ``model.set_threads``), restored after. Yields the count in force."""
    with torch_threads(n) as actual:
        set_threads = getattr(model, "set_threads", None)
        previous = getattr(model, "threads", None)
        if callable(set_threads):
            set_threads(actual)
        try:
            yield actual
        finally:
            if callable(set_threads) and isinstance(previous, int) and previous >= 0:
                set_threads(previous)


def _timed(model: ModelAdapter, X: np.ndarray, threads: int, batch: int, warmup: int, runs: int,
           seed: int, include_prepare: bool = False) -> tuple[np.ndarray, int]:
    from leanbench.models.device import synced

    if include_prepare:
        batches: list[Any] = raw_batches(X, batch, warmup + runs, seed)

        def call(rows: Any) -> Any:
            return model.forward(model.prepare(rows))
    else:
        batches = prepare_batches(model, X, batch, warmup + runs, seed)
        call = model.forward
    with model_threads(model, threads) as actual, torch.inference_mode():
        return time_calls(synced(model, call), batches, warmup, runs), actual


def measure_latency(model: ModelAdapter, X: np.ndarray, *, threads: int = 1, batch: int = 1,
                    warmup: int = 20, runs: int = 200, seed: int = 0,
                    include_prepare: bool = False) -> dict[str, Any]:
    """Per-call latency of ``model.forward`` on batches of ``batch`` rows of X, in milliseconds; with
    ``include_prepare`` of ``model.forward(model.prepare(rows))`` on raw rows (end to end: tokenization
    inside the timing). ``method`` says which was timed.

    Percentiles use ``np.percentile`` with linear interpolation (type 7 of Hyndman & Fan, 1996);
    ``std_ms`` is the sample standard deviation (ddof=1, 0 for a single run).
    """
    _check_setting(threads=(threads, 0), batch=(batch, 1), warmup=(warmup, 0), runs=(runs, 1))
    ms, actual = _timed(model, X, threads, batch, warmup, runs, seed, include_prepare)
    p50, p90, p99 = np.percentile(ms, [50, 90, 99], method="linear")
    return {
        "p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99),
        "mean_ms": float(ms.mean()), "std_ms": float(ms.std(ddof=1)) if runs > 1 else 0.0,
        "min_ms": float(ms.min()),
        "threads": actual, "batch": batch, "warmup": warmup, "runs": runs,
        "method": END_TO_END_METHOD if include_prepare else LATENCY_METHOD,
        "samples_ms": ms.tolist(),  # for percentile CIs (leanbench.measure.percentiles)
    }


def measure_throughput(model: ModelAdapter, X: np.ndarray, *, threads: int = 0, batch: int = 256,
                       warmup: int = 3, runs: int = 20, seed: int = 0) -> dict[str, Any]:
    """Examples per second at ``batch``: the median over timed runs of ``batch / seconds``.

    ``threads`` 0 means every available core; the count actually used is reported.
    """
    _check_setting(threads=(threads, 0), batch=(batch, 1), warmup=(warmup, 0), runs=(runs, 1))
    ms, actual = _timed(model, X, threads, batch, warmup, runs, seed)
    per_s = batch / np.maximum(ms / 1e3, 1e-9)
    return {
        "per_s": float(np.median(per_s)), "threads": actual, "batch": batch, "warmup": warmup, "runs": runs,
        "p50_batch_ms": float(np.median(ms)), "method": LATENCY_METHOD,
        "per_run_per_s": per_s.tolist(),  # for a CI of the median
    }


ENERGY_MIN_SECONDS = 0.25  # a window this long at least: a few calls of a tiny model would be all noise


def measure_energy(model: ModelAdapter, X: np.ndarray, *, threads: int = 0, batch: int = 256, warmup: int = 3,
                   runs: int = 20, memory_bytes: int | None = None, energy: Any = None,
                   min_seconds: float = ENERGY_MIN_SECONDS, seed: int = 0) -> dict[str, Any]:
    """Energy per query of ``model.forward`` at ``batch``: one window over the candidate's own timed calls.

    Inputs are prepared, ``warmup`` calls run and the garbage collector runs before the window opens, so the
    window holds ``runs`` calls (more, until it lasts ``min_seconds``) and nothing else. With
    ``memory_bytes`` (the model's weights + peak activations at this batch) the energy is attributed to the
    candidate (``EnergyMeter(memory_gb=...)``: its own memory, not the process's resident set, and its own
    CPU time); without, the process's. ``energy`` is the study's ``EnergyConfig``.
    """
    from contextlib import nullcontext

    from leanbench.measure.energy import EnergyMeter
    from leanbench.models.device import GpuEnergy, model_device, synced

    _check_setting(threads=(threads, 0), batch=(batch, 1), warmup=(warmup, 0), runs=(runs, 1))
    batches = prepare_batches(model, X, batch, warmup + runs, seed)
    memory_gb = None if memory_bytes is None else memory_bytes / 1e9
    calls = 0
    forward = synced(model, model.forward)  # on a GPU: the window closes when its work is done
    gpu = GpuEnergy() if model_device(model) == "cuda" else None
    with model_threads(model, threads) as actual, torch.inference_mode():
        for i in range(warmup):
            forward(batches[i % len(batches)])
        meter = EnergyMeter(energy, memory_gb=memory_gb)
        with gc_paused(), meter, gpu if gpu is not None else nullcontext():  # collection before the window
            until = time.perf_counter() + min_seconds
            while calls < runs or time.perf_counter() < until:
                forward(batches[(warmup + calls) % len(batches)])
                calls += 1
    r = meter.reading
    queries = calls * batch
    out = {"j_per_query": r.joules / queries, "joules": r.joules, "queries": queries, "calls": calls,
           "batch": batch, "threads": actual, "wall_s": r.wall_s, "cpu_s": r.cpu_s, "memory_gb": r.memory_gb,
           "method": r.method, "uncertainty": r.uncertainty_rel, "too_short": bool(r.too_short),
           "detail": r.detail}
    return out if gpu is None else _with_gpu_energy(out, gpu)


def _with_gpu_energy(out: dict[str, Any], gpu: Any) -> dict[str, Any]:
    """A GPU model's energy: the host's (CPU time, its memory) plus the GPU's NVML counter when it read (NVML
    power is specified to +/-5%; the relative uncertainties combine weighted by joules); otherwise the host's
    only, and the method says the GPU's was not measured (never a silent zero)."""
    from leanbench.models.device import NVML_METHOD

    if gpu.joules is None:
        return {**out, "gpu_joules": None, "detail": "; ".join(d for d in (out["detail"], gpu.reason) if d),
                "method": f"{out['method']}; host only: {gpu.reason}"}
    joules = out["joules"] + gpu.joules
    u = (out["uncertainty"] * out["joules"] + NVML_UNCERTAINTY_REL * gpu.joules) / joules if joules else 0.0
    return {**out, "joules": joules, "j_per_query": joules / out["queries"], "gpu_joules": gpu.joules,
            "uncertainty": u, "detail": "; ".join(d for d in (out["detail"], f"GPU {gpu.joules:.4g} J") if d),
            "method": f"{out['method']} + GPU: {NVML_METHOD}"}


NVML_UNCERTAINTY_REL = 0.05  # NVIDIA's stated accuracy of the board power reading (nvidia-smi docs: +/-5 W / 5%)
