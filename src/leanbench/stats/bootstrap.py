"""Percentile bootstrap confidence intervals, plain and paired.

Every resample is a row of indices into the sample, drawn with replacement from
`np.random.default_rng(seed)` (Efron & Tibshirani 1993, *An Introduction to the Bootstrap*, ch. 13:
the percentile interval is [q_{alpha/2}, q_{1-alpha/2}] of the resampled statistic, alpha = 1 - confidence).
Quantiles use numpy's default linear interpolation, as `scipy.stats.bootstrap(method='percentile')` does.

A paired comparison draws one set of indices and applies it to both systems, so the per-example
correlation between them is kept (Koehn 2004, "Statistical significance tests for machine translation
evaluation"; Dror et al. 2018, "The hitchhiker's guide to testing statistical significance in NLP").

Indices are generated in chunks of at most `MAX_CHUNK_ELEMENTS` so that memory stays bounded for large
test sets; chunked draws give exactly the same indices as `bootstrap_indices` (the generator is consumed
in the same order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

MAX_CHUNK_ELEMENTS = 1 << 22  # 4M int64 indices = 32 MiB per chunk


@dataclass(frozen=True)
class CI:
    """A point estimate with its confidence interval.

    `value` is the statistic on the full sample; `low`/`high` are the interval bounds; `confidence` is the
    two-sided coverage (e.g. 0.95); `method` names how the interval was obtained (e.g. "percentile").
    """

    value: float
    low: float
    high: float
    confidence: float
    method: str

    def contains(self, x: float) -> bool:
        """True when low <= x <= high."""
        return self.low <= x <= self.high

    def as_dict(self) -> dict[str, float]:
        """The results-JSON form: {"value", "ci_low", "ci_high"}."""
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high}


def _check_args(n: int, n_resamples: int, confidence: float | None = None) -> None:
    if int(n) != n or n < 1:
        raise ValueError(f"bootstrap: the sample size n must be an integer >= 1, got {n!r}")
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"bootstrap: n_resamples must be an integer >= 1, got {n_resamples!r}")
    if confidence is not None and not 0.0 < confidence < 1.0:
        raise ValueError(f"bootstrap: confidence must be in (0, 1), got {confidence!r}")


def iter_bootstrap_indices(
    n: int, n_resamples: int, seed: int, *, max_elements: int = MAX_CHUNK_ELEMENTS
) -> Iterator[np.ndarray]:
    """Yield the rows of `bootstrap_indices(n, n_resamples, seed)` in chunks of shape (r, n), r >= 1."""
    _check_args(n, n_resamples)
    rng = np.random.default_rng(seed)
    rows = max(1, max_elements // n)
    for start in range(0, n_resamples, rows):
        yield rng.integers(0, n, size=(min(rows, n_resamples - start), n))


def bootstrap_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """Resample indices, shape (n_resamples, n), each row drawn with replacement from range(n).

    Deterministic: the same (n, n_resamples, seed) always gives the same array.
    """
    _check_args(n, n_resamples)
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def percentile_ci(value: float, resampled: np.ndarray, confidence: float) -> CI:
    """The percentile interval of `resampled` statistics around the full-sample `value`."""
    _check_args(1, 1, confidence)
    alpha = 1.0 - confidence
    low, high = np.quantile(np.asarray(resampled, dtype=float), [alpha / 2, 1.0 - alpha / 2])
    return CI(float(value), float(low), float(high), float(confidence), "percentile")


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n: int,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> CI:
    """Percentile bootstrap CI of any statistic.

    `statistic(idx)` receives an integer index array of length n into the sample (with repetition) and
    returns a float; `statistic(np.arange(n))` is the point estimate.
    """
    _check_args(n, n_resamples, confidence)
    values = [statistic(row) for chunk in iter_bootstrap_indices(n, n_resamples, seed) for row in chunk]
    return percentile_ci(statistic(np.arange(n)), np.asarray(values, dtype=float), confidence)


def paired_bootstrap_diff(
    stat_a: Callable[[np.ndarray], float],
    stat_b: Callable[[np.ndarray], float],
    n: int,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> CI:
    """Percentile CI of stat_a - stat_b, both evaluated on the same resample indices (paired bootstrap)."""
    return bootstrap_ci(
        lambda idx: stat_a(idx) - stat_b(idx), n, n_resamples=n_resamples, confidence=confidence, seed=seed
    )


def _as_vector(values: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"bootstrap: '{name}' must be a non-empty 1-d array, got shape {arr.shape}")
    return arr


def resampled_means(values: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Means of `values` over each resample row, shape (n_resamples,), vectorized by chunks."""
    values = _as_vector(values, "values")
    chunks = iter_bootstrap_indices(values.size, n_resamples, seed)
    return np.concatenate([values[idx].mean(axis=1) for idx in chunks])


def bootstrap_mean_ci(
    values: np.ndarray, *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> CI:
    """Fast percentile CI of the mean of per-example values (e.g. 0/1 correctness -> accuracy).

    Same indices, hence the same interval, as `bootstrap_ci(lambda i: values[i].mean(), len(values))`.
    """
    values = _as_vector(values, "values")
    _check_args(values.size, n_resamples, confidence)
    return percentile_ci(values.mean(), resampled_means(values, n_resamples, seed), confidence)


def paired_bootstrap_mean_diff(
    a: np.ndarray, b: np.ndarray, *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> CI:
    """Fast paired percentile CI of mean(a) - mean(b); a[i] and b[i] are the same example.

    The mean of differences equals the difference of means on every resample, so this bootstraps a - b.
    """
    a, b = _as_vector(a, "a"), _as_vector(b, "b")
    if a.shape != b.shape:
        raise ValueError(
            f"paired bootstrap: 'a' and 'b' must have the same shape, got {a.shape} and {b.shape}"
        )
    return bootstrap_mean_ci(a - b, n_resamples=n_resamples, confidence=confidence, seed=seed)

