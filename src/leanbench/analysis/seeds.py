"""Several seeds per candidate: the spread over seeds, and CIs that carry seed and test-sample variance.

Two-level (hierarchical) bootstrap, Davison & Hinkley (1997) §3.8: each replicate b draws one resample of
the examples idx_b (shared by every run, since every run saw the same examples) and, independently, k
seeds with replacement S_b from the candidate's k runs; the replicate's statistic is the mean over the
drawn seeds of the metric on idx_b. For a paired difference the candidate's and the reference's seeds are
drawn independently (they are different training runs) and the examples are shared.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from leanbench.analysis.common import Loaded, seed_for
from leanbench.analysis.results import MetricValue, SeedSpread
from leanbench.analysis.stored import Predictions
from leanbench.stats.bootstrap import iter_bootstrap_indices, percentile_ci

METHOD = "two-level bootstrap over seeds and examples (percentile; Davison & Hinkley 1997, §3.8)"


def _per_run(metric: Any, runs: list[Predictions], n_resamples: int, seed: int) -> np.ndarray:
    """(k, B): the metric of each run on each shared example resample."""
    from leanbench.evaluate.metrics import metric_on_index_rows

    gold = runs[0].gold
    out = np.empty((len(runs), n_resamples))
    start = 0
    for idx in iter_bootstrap_indices(len(gold), n_resamples, seed):
        for r, run in enumerate(runs):
            out[r, start:start + len(idx)] = metric_on_index_rows(metric, gold, run.scores, idx)
        start += len(idx)
    return out


def _seed_means(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    k, b = values.shape
    draws = rng.integers(0, k, size=(b, k))
    return values[draws, np.arange(b)[:, None]].mean(axis=1)


def seed_metric(loaded: Loaded, metric_name: str, runs: list[Predictions]) -> MetricValue:
    from leanbench.evaluate.metrics import get_metric

    ev = loaded.study.evaluate
    metric = get_metric(metric_name)
    seed = seed_for(loaded.seed, metric_name)
    per_run = _per_run(metric, runs, ev.bootstrap, seed)
    value = float(np.mean([metric.fn(r.gold, r.scores) for r in runs]))
    resampled = _seed_means(per_run, np.random.default_rng(seed + 1))
    ci = percentile_ci(value, resampled, ev.confidence)
    return MetricValue(value=value, ci_low=float(ci.low), ci_high=float(ci.high), method=METHOD)


def paired_seed_diffs(loaded: Loaded, metric: Any, cand: list[Predictions], ref: list[Predictions],
                      seed: int) -> tuple[float, np.ndarray, str]:
    """Mean-over-seeds candidate minus reference, and its two-level bootstrap resamples."""
    n_resamples = loaded.study.evaluate.bootstrap
    value = float(np.mean([metric.fn(r.gold, r.scores) for r in cand])
                  - np.mean([metric.fn(r.gold, r.scores) for r in ref]))
    rng = np.random.default_rng(seed + 1)
    diffs = (_seed_means(_per_run(metric, cand, n_resamples, seed), rng)
             - _seed_means(_per_run(metric, ref, n_resamples, seed), rng))
    return value, diffs, METHOD


def seed_spread(loaded: Loaded, name: str) -> SeedSpread | None:
    """The decision metric of each seed's run: values, mean, standard deviation (ddof=1), min, max."""
    from leanbench.evaluate.metrics import get_metric

    runs = loaded.preds.get(name) or []
    if not runs:
        return None
    metric = get_metric(loaded.study.decision.metric)
    values = [float(metric.fn(r.gold, r.scores)) for r in runs]
    return SeedSpread(metric=metric.name, n=len(values),
                      planned=loaded.seeds_of[name] if name in loaded.seeds_of else loaded.seeds,
                      values=values, mean=float(np.mean(values)),
                      std=float(np.std(values, ddof=1)) if len(values) > 1 else None,
                      min=float(min(values)), max=float(max(values)))
