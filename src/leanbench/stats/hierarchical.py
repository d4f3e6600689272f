"""Confidence intervals that account for both training-seed and test-sample variance.

A buildable candidate built with k seeds and evaluated on the same n test examples gives a k x n crossed
design: every seed sees every example. The statistic is the mean over seeds of a per-seed statistic
(accuracy, macro-F1, ...). One replicate of the two-level bootstrap

    1. draws k seed indices with replacement from 0..k-1 (the training-seed level), and
    2. draws n example indices with replacement from 0..n-1, ONE draw shared by all seeds of the
       replicate, because the examples are shared (they are the same test set for every seed),

and evaluates mean_j stat(seed*_j, examples*). The percentile interval of the replicates is the CI.
This is the two-stage / hierarchical bootstrap of Davison & Hinkley (1997, *Bootstrap Methods and their
Application*, §3.8, "hierarchical data") applied to crossed rather than nested factors, i.e. the
"pigeonhole" bootstrap of Owen (2007, Ann. Appl. Stat. 1:2, "The pigeonhole bootstrap"), which resamples
rows and columns independently. It is mildly conservative: its variance counts the seed x example
interaction once too often (McCullagh 2000, "Resampling and exchangeable arrays", Bernoulli 6:285). With
few seeds (k = 2 or 3) the seed level is estimated from very few values; the CI is wider than a one-seed CI
but still an approximation.

With k = 1 the seed draw is always 0 and the interval is exactly the ordinary bootstrap of that seed on the
same `seed` (the example indices are `bootstrap.bootstrap_indices(n, n_resamples, seed)`; the seed draws
come from a separate stream).

Statistic callables take (seed index, example indices). With `batched=False` the indices are one (n,)
array and the callable returns a float; with `batched=True` they are an (r, n) block and it returns (r,),
e.g. `lambda s, idx: metric.resampled(y, probs[s], idx)` for a leanbench `Metric`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from leanbench.stats.bootstrap import CI, iter_bootstrap_indices, percentile_ci

SEED_STREAM = 0x5EED  # second entropy word of the seed-level generator


def _seed_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, SEED_STREAM])


def _check(n_seeds: int, n_examples: int, n_resamples: int, confidence: float | None = None) -> None:
    for name, v in (("n_seeds", n_seeds), ("n_examples", n_examples), ("n_resamples", n_resamples)):
        if int(v) != v or v < 1:
            raise ValueError(f"seed x example bootstrap: {name} must be an integer >= 1, got {v!r}")
    if confidence is not None and not 0.0 < confidence < 1.0:
        raise ValueError(f"seed x example bootstrap: confidence must be in (0, 1), got {confidence!r}")


def _batched(stat: Callable, batched: bool) -> Callable[[int, np.ndarray], np.ndarray]:
    if batched:
        return lambda s, idx: np.asarray(stat(s, idx), dtype=float)
    return lambda s, idx: np.array([stat(s, row) for row in idx], dtype=float)


def _seed_weights(rng: np.random.Generator, n_seeds: int, n_resamples: int) -> np.ndarray:
    """(R, k): how often each seed was drawn in each replicate, divided by k (rows sum to 1)."""
    draws = rng.integers(0, n_seeds, size=(n_resamples, n_seeds))
    counts = np.zeros((n_resamples, n_seeds))
    np.add.at(counts, (np.repeat(np.arange(n_resamples), n_seeds), draws.ravel()), 1.0)
    return counts / n_seeds


def _weighted(
    stat: Callable[[int, np.ndarray], np.ndarray], weights: np.ndarray, idx: np.ndarray
) -> np.ndarray:
    """sum_s weights[:, s] * stat(s, idx) over the seeds with a nonzero weight in this block."""
    out = np.zeros(idx.shape[0])
    for s in np.flatnonzero(weights.any(axis=0)):
        out += weights[:, s] * stat(int(s), idx)
    return out


def _point(stat: Callable[[int, np.ndarray], np.ndarray], n_seeds: int, n_examples: int) -> float:
    full = np.arange(n_examples)[None, :]
    return float(np.mean([stat(s, full)[0] for s in range(n_seeds)]))


def seed_example_resamples(
    per_seed_stat: Callable, n_seeds: int, n_examples: int, *, n_resamples: int = 1000, seed: int = 0,
    batched: bool = False,
) -> tuple[float, np.ndarray]:
    """(mean over seeds of the full-sample statistic, its (R,) two-level bootstrap replicates)."""
    _check(n_seeds, n_examples, n_resamples)
    stat = _batched(per_seed_stat, batched)
    weights = _seed_weights(_seed_rng(seed), n_seeds, n_resamples)
    values, start = [], 0
    for idx in iter_bootstrap_indices(n_examples, n_resamples, seed):
        values.append(_weighted(stat, weights[start:start + len(idx)], idx))
        start += len(idx)
    return _point(stat, n_seeds, n_examples), np.concatenate(values)


def seed_example_bootstrap(
    per_seed_stat: Callable, n_seeds: int, n_examples: int, *, n_resamples: int = 1000,
    confidence: float = 0.95, seed: int = 0, batched: bool = False,
) -> CI:
    """Percentile CI of the seed-averaged statistic from the two-level (seeds x examples) bootstrap."""
    _check(n_seeds, n_examples, n_resamples, confidence)
    value, reps = seed_example_resamples(per_seed_stat, n_seeds, n_examples, n_resamples=n_resamples,
                                         seed=seed, batched=batched)
    ci = percentile_ci(value, reps, confidence)
    return CI(ci.value, ci.low, ci.high, ci.confidence, "seed-example-bootstrap")


def seed_example_bootstrap_mean(values: np.ndarray, *, n_resamples: int = 1000, confidence: float = 0.95,
                                seed: int = 0) -> CI:
    """Two-level CI of the mean of per-example values given as a (k seeds, n examples) array (e.g. 0/1
    correctness -> accuracy averaged over seeds)."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or v.size == 0:
        raise ValueError(f"seed_example_bootstrap_mean: values must be a (seeds, examples) array, "
                         f"got {v.shape}")
    return seed_example_bootstrap(lambda s, idx: v[s][idx].mean(axis=1), v.shape[0], v.shape[1],
                                  n_resamples=n_resamples, confidence=confidence, seed=seed, batched=True)


def paired_seed_example_resamples(
    stat_cand: Callable, stat_ref: Callable, n_seeds_cand: int, n_seeds_ref: int, n_examples: int, *,
    paired_seeds: bool | None = None, n_resamples: int = 1000, seed: int = 0, batched: bool = False,
) -> tuple[float, np.ndarray]:
    """(seed-mean candidate - seed-mean reference, its replicates), examples shared by both models.

    `paired_seeds`: resample seed j of both together (seed j of the candidate was built from seed j of
    the reference, e.g. `from:` chains); default True when both have the same number of seeds. Otherwise
    the two seed sets are resampled independently. Pairs of seeds that are in truth independent are still
    i.i.d. units, so pairing them is valid too; not pairing correlated seeds only widens the CI.
    """
    _check(n_seeds_cand, n_examples, n_resamples)
    _check(n_seeds_ref, n_examples, n_resamples)
    paired = (n_seeds_cand == n_seeds_ref) if paired_seeds is None else paired_seeds
    if paired and n_seeds_cand != n_seeds_ref:
        raise ValueError(f"paired seeds need the same number of seeds, got {n_seeds_cand} and {n_seeds_ref}")
    sc, sr = _batched(stat_cand, batched), _batched(stat_ref, batched)
    rng = _seed_rng(seed)
    w_c = _seed_weights(rng, n_seeds_cand, n_resamples)
    w_r = w_c if paired else _seed_weights(rng, n_seeds_ref, n_resamples)
    values, start = [], 0
    for idx in iter_bootstrap_indices(n_examples, n_resamples, seed):
        stop = start + len(idx)
        values.append(_weighted(sc, w_c[start:stop], idx) - _weighted(sr, w_r[start:stop], idx))
        start = stop
    value = _point(sc, n_seeds_cand, n_examples) - _point(sr, n_seeds_ref, n_examples)
    return value, np.concatenate(values)


def paired_seed_example_bootstrap(
    stat_cand: Callable, stat_ref: Callable, n_seeds_cand: int, n_seeds_ref: int, n_examples: int, *,
    paired_seeds: bool | None = None, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
    batched: bool = False,
) -> CI:
    """Percentile CI of candidate - reference (raw, not oriented) from `paired_seed_example_resamples`."""
    _check(n_seeds_cand, n_examples, n_resamples, confidence)
    value, reps = paired_seed_example_resamples(stat_cand, stat_ref, n_seeds_cand, n_seeds_ref, n_examples,
                                                paired_seeds=paired_seeds, n_resamples=n_resamples, seed=seed,
                                                batched=batched)
    ci = percentile_ci(value, reps, confidence)
    return CI(ci.value, ci.low, ci.high, ci.confidence, "paired-seed-example-bootstrap")


def seed_summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """{mean, std (ddof=1; None with one seed), min, max, n} of per-seed values."""
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0 or not np.isfinite(v).all():
        raise ValueError(f"seed_summary: need one or more finite values, got {list(v)}")
    std = float(v.std(ddof=1)) if v.size > 1 else None
    return {"mean": float(v.mean()), "std": std, "min": float(v.min()), "max": float(v.max()),
            "n": int(v.size)}


__all__ = [
    "paired_seed_example_bootstrap",
    "paired_seed_example_resamples",
    "seed_example_bootstrap",
    "seed_example_bootstrap_mean",
    "seed_example_resamples",
    "seed_summary",
]
