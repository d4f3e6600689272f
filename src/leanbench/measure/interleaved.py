"""Interleaved timing: every candidate of a profile measured together, round by round.

A block of timed calls per candidate, one candidate after another, turns a noisy neighbour during one
block into a speed-up (or a slow-down) that does not exist. Here each candidate is warmed up, then in each
of ``rounds`` rounds every candidate runs a short block of ``calls`` timed calls, in an order shuffled per
round (seeded) and balanced: each candidate runs at each position of a round equally often. Drift and
bursts hit every candidate of a round alike; percentiles come from the pooled calls, and speed-ups from
per-round medians paired by round (``leanbench.stats.speedup``).

The same protocol times the model's forward on prepared inputs (``include_prepare=False``), end to end
from raw examples (``include_prepare=True``), and throughput (a larger batch), for every runtime: a model
is anything with ``prepare`` and ``forward`` (and ``set_threads`` when it has its own thread pool).
``protocol="blocks"`` runs the old one-block-per-candidate protocol with the same calls, for comparison.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from leanbench.errors import ConfigError
from leanbench.measure.latency import gc_paused, model_threads, prepare_batches, raw_batches, timed_block


@dataclass
class Timings:
    """One candidate's timed calls: ``samples_ms`` (rounds, calls) and the position it ran at per round."""

    samples_ms: np.ndarray
    positions: list[int] = field(default_factory=list)
    threads: int = 0

    @property
    def round_medians(self) -> np.ndarray:
        return np.median(self.samples_ms, axis=1)


def machine_load() -> dict[str, Any]:
    """The 1-minute load average and, where /proc/stat is readable, the CPU steal jiffies so far."""
    out: dict[str, Any] = {"loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    try:
        with open("/proc/stat") as f:
            cpu = f.readline().split()
        out["steal_jiffies"] = int(cpu[8]) if cpu[0] == "cpu" and len(cpu) > 8 else None
        out["total_jiffies"] = sum(int(v) for v in cpu[1:]) if cpu[0] == "cpu" else None
    except (OSError, ValueError, IndexError):
        out["steal_jiffies"] = out["total_jiffies"] = None
    return out


def load_change(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """Load before and after, and the share of CPU time stolen by the hypervisor in between."""
    steal = None
    if before.get("steal_jiffies") is not None and after.get("steal_jiffies") is not None:
        total = after["total_jiffies"] - before["total_jiffies"]
        steal = (after["steal_jiffies"] - before["steal_jiffies"]) / total if total > 0 else 0.0
    return {"loadavg_1m_before": before.get("loadavg_1m"), "loadavg_1m_after": after.get("loadavg_1m"),
            "steal_share": steal}


def _calls(model: Any, X: np.ndarray, batch: int, n: int, seed: int, include_prepare: bool) -> tuple[Any, list]:
    """The timed call (CUDA-synchronised for a model on a GPU: ``models.device.synced``) and its inputs."""
    from leanbench.models.device import synced

    if include_prepare:
        return synced(model, lambda rows: model.forward(model.prepare(rows))), raw_batches(X, batch, n, seed)
    return synced(model, model.forward), prepare_batches(model, X, batch, n, seed)


def balanced_orders(names: list[str], rounds: int, rng: np.random.Generator) -> list[list[str]]:
    """The order of every round: a seeded permutation rotated by one place per round, a new permutation every
    len(names) rounds, so that each candidate runs at each position of a round equally often (a position
    effect, such as the first block after the round's start being slower, then cancels in the ratios)."""
    out: list[list[str]] = []
    while len(out) < rounds:
        perm = [names[i] for i in rng.permutation(len(names))]
        out.extend(perm[k:] + perm[:k] for k in range(len(names)))
    return out[:rounds]


def time_interleaved(models: Mapping[str, Any], X: np.ndarray, *, threads: int = 1, batch: int | Mapping[str, int] = 1,
                     warmup: int = 20, rounds: int = 20, calls: int = 10, seed: int = 0,
                     include_prepare: bool = False, protocol: str = "interleaved",
                     on_round: Callable[[int, int], None] | None = None) -> dict[str, Timings]:
    """Times every model of `models` on the same rows of X (`batch` rows per call, or a batch per model):
    `warmup` untimed calls each, then `rounds` rounds of `calls` timed calls per model (order shuffled per
    round, seeded by `seed`). With ``protocol="blocks"`` each model runs all its rounds back to back instead
    (the protocol this replaces). `on_round(done, total)`, when given, is called after the warm-up (done 0)
    and after every round (with "blocks": every model's block of a round), between timed blocks."""
    if protocol not in ("interleaved", "blocks"):
        raise ConfigError([f"measure.protocol: must be 'interleaved' or 'blocks', got {protocol!r}"], "measure")
    names = list(models)
    batches = {n: batch[n] for n in names} if isinstance(batch, Mapping) else dict.fromkeys(names, batch)
    problems = [f"measure.{k}: must be an integer >= {lo}, got {v!r}" for k, v, lo in
                (("rounds", rounds, 1), ("calls", calls, 1), ("warmup", warmup, 0),
                 *(("batch", b, 1) for b in batches.values()))
                if isinstance(v, bool) or not isinstance(v, int) or v < lo]
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)), "measure")
    prepared = {n: _calls(models[n], X, batches[n], warmup + rounds * calls, seed, include_prepare) for n in names}
    samples = {n: np.empty((rounds, calls)) for n in names}
    positions: dict[str, list[int]] = {n: [] for n in names}
    used: dict[str, int] = {}
    rng = np.random.default_rng([seed, 27])
    with torch.inference_mode():
        for n in names:  # warm-up, each model once, before any timed call
            call, batches = prepared[n]
            with model_threads(models[n], threads) as used[n]:
                for i in range(warmup):
                    call(batches[i % len(batches)])
        if protocol == "interleaved":
            schedule = [(r, order) for r, order in enumerate(balanced_orders(names, rounds, rng))]
        else:
            schedule = [(r, [n]) for n in names for r in range(rounds)]
        if on_round is not None:
            on_round(0, len(schedule))
        with gc_paused():  # one collection before the rounds, none inside them
            for i, (r, order) in enumerate(schedule):
                for pos, n in enumerate(order):
                    call, batches = prepared[n]
                    with model_threads(models[n], threads):
                        samples[n][r] = timed_block(call, batches, warmup + r * calls, calls)
                    positions[n].append(pos)
                if on_round is not None:
                    on_round(i + 1, len(schedule))
    return {n: Timings(samples[n], positions[n], used[n]) for n in names}
