"""Latency percentiles with confidence intervals, and how many timed runs a percentile needs.

**Distribution-free CI of a quantile** (the default; Hahn & Meeker, *Statistical Intervals*, 1991,
section 5.2; Conover, *Practical Nonparametric Statistics*, 3rd ed., 1999, section 3.2). With ``n``
samples sorted ``x(1) <= ... <= x(n)`` from a continuous distribution whose ``p``-quantile is ``xi``, the
number of samples below ``xi`` is ``B ~ Binomial(n, p)``, so for ranks ``l < u``::

    P(x(l) <= xi < x(u)) = P(l <= B <= u - 1) = F(u - 1) - F(l - 1)

with ``F`` the Binomial(n, p) CDF. Taking ``l`` = the smallest ``k`` with ``F(k) >= alpha/2`` and
``u - 1`` = the smallest ``k`` with ``F(k) >= 1 - alpha/2`` gives coverage ``>= 1 - alpha`` whatever the
latency distribution (the same ranks as ``scipy.stats.quantile_test(...).confidence_interval``).
When ``l < 1`` or ``u > n`` the sample is too small to bound that side: the bound is None and
``runs_needed`` says how many runs would bound both. The interval is widened to contain the point
estimate if it does not (it can only gain coverage). The point estimate is ``np.percentile`` with
linear interpolation, as in :mod:`leanbench.measure.latency`. A percentile bootstrap is available
(``method="bootstrap"``) for comparison; for tail quantiles it is known to under-cover.

**Runs needed.** MLPerf Inference (rules v0.5, appendix "Number of Queries") sizes a run so that the
tail-latency percentile ``p`` is estimated within a margin at a confidence ``c``, by the normal
approximation to the binomial (the sample size of a poll)::

    n = z^2 * p * (1 - p) / margin^2,   z = Phi^-1((1 - c) / 2),   margin = (1 - p) / 20 by default

For p = 0.90 and c = 0.99: ``2.5758^2 * 0.09 / 0.005^2 = 23,886`` queries (the rules round up to 24,576),
see :func:`min_runs_for_percentile`. Since v1.1 MLPerf replaced fixed counts by *early stopping*
(``loadgen/early_stopping.cc``): with ``t`` runs over a latency bound and ``h`` under it, the run
passes when ``P(Binomial(h + t, 1 - p) <= t) <= 1 - c``; the single-stream minimum is the smallest
``h + 1`` that passes with ``t = 1`` (64 runs for p90 at 99 %), see :func:`early_stopping_min_runs`, and
the reported p90 is the ``t``-th largest latency for the largest ``t`` the run count allows, an upper
confidence bound for the percentile (:func:`early_stopping_estimate`). MLPerf's single-stream scenario
also asks for at least 1024 queries (``MLPERF_SINGLE_STREAM_MIN_QUERIES``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from leanbench.errors import LeanbenchError

MLPERF_SINGLE_STREAM_MIN_QUERIES = 1024
BINOMIAL_METHOD = "distribution-free order-statistic CI (binomial), point: np.percentile linear"
BOOTSTRAP_METHOD = "percentile bootstrap CI, point: np.percentile linear"


def _check_p(p: float, name: str = "p") -> None:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p < 1:
        raise LeanbenchError(f"{name}: must be a number strictly between 0 and 1 (e.g. 0.9 for p90), "
                             f"got {p!r}")


def _samples(samples_ms: Any) -> np.ndarray:
    x = np.asarray(samples_ms, dtype=float).ravel()
    if x.size == 0:
        raise LeanbenchError("percentile: no latency samples were given")
    if not np.all(np.isfinite(x)):
        bad = int((~np.isfinite(x)).sum())
        raise LeanbenchError(f"percentile: samples must be finite, got {bad} non-finite of {x.size}")
    return x


def order_statistic_ranks(n: int, p: float, confidence: float) -> tuple[int, int]:
    """1-based ranks ``(l, u)`` of the distribution-free CI; ``l < 1`` or ``u > n`` means unbounded."""
    _check_p(p)
    _check_p(confidence, "confidence")
    alpha = 1 - confidence
    b = stats.binom(n, p)
    return int(b.ppf(alpha / 2)), int(b.ppf(1 - alpha / 2)) + 1


def runs_for_ci(p: float, confidence: float = 0.95) -> int:
    """Fewest runs for which the distribution-free CI of the ``p``-quantile is bounded on both sides.

    Needs ``(1 - p)^n <= alpha/2`` (a lower rank >= 1) and ``p^n <= alpha/2`` (an upper rank <= n).
    """
    _check_p(p)
    _check_p(confidence, "confidence")
    half = (1 - confidence) / 2
    n = math.ceil(max(math.log(half) / math.log(p), math.log(half) / math.log(1 - p)))
    while True:  # guard against rounding at the boundary
        lo, hi = order_statistic_ranks(n, p, confidence)
        if lo >= 1 and hi <= n:
            return n
        n += 1


def percentile_with_ci(samples_ms: Any, p: float, confidence: float = 0.95, *, method: str = "binomial",
                       n_resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """The ``p``-quantile of the samples (``p`` in (0, 1), e.g. 0.9) with a CI at ``confidence``.

    Returns ``{"value", "ci_low", "ci_high", "method", "n", "confidence", "runs_needed"}``; a bound is
    None when ``n`` is too small to give it (``runs_needed`` is the count that would).
    """
    x = np.sort(_samples(samples_ms))
    _check_p(p)
    _check_p(confidence, "confidence")
    value = float(np.percentile(x, 100 * p, method="linear"))
    if method == "binomial":
        lo, hi = order_statistic_ranks(len(x), p, confidence)
        low = float(x[lo - 1]) if lo >= 1 else None
        high = float(x[hi - 1]) if hi <= len(x) else None
        label = BINOMIAL_METHOD
    elif method == "bootstrap":
        low, high = _bootstrap_ci(x, p, confidence, n_resamples, seed)
        label = f"{BOOTSTRAP_METHOD}, {n_resamples} resamples, seed {seed}"
    else:
        raise LeanbenchError(f"percentile: method must be 'binomial' or 'bootstrap', got {method!r}")
    low = None if low is None else min(low, value)
    high = None if high is None else max(high, value)
    return {"value": value, "ci_low": low, "ci_high": high, "method": label, "n": int(len(x)),
            "confidence": confidence, "runs_needed": runs_for_ci(p, confidence)}


def _bootstrap_ci(x: np.ndarray, p: float, confidence: float, n_resamples: int,
                  seed: int) -> tuple[float, float]:
    if n_resamples < 1:
        raise LeanbenchError(f"percentile: n_resamples must be >= 1, got {n_resamples!r}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_resamples, len(x)))
    reps = np.percentile(x[idx], 100 * p, axis=1, method="linear")
    alpha = 1 - confidence
    lo, hi = np.percentile(reps, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def latency_percentiles(samples_ms: Any, ps: tuple[float, ...] = (0.5, 0.9, 0.99),
                        confidence: float = 0.95) -> dict[str, dict[str, Any]]:
    """``{"p50_ms": {...}, "p90_ms": {...}, ...}``: :func:`percentile_with_ci` for each ``p``."""
    return {f"p{100 * p:g}_ms": percentile_with_ci(samples_ms, p, confidence) for p in ps}


# --------------------------------------------------------------------------- runs needed
def min_runs_for_percentile(p: float, tolerance: float | None = None, confidence: float = 0.99) -> int:
    """MLPerf's sample size for a tail percentile: ``ceil(z^2 p (1 - p) / tolerance^2)``.

    ``tolerance`` is the margin on the percentile's *level* (0.005 means the estimate's rank is within
    p +/- 0.5 %), by default ``(1 - p) / 20`` as in the MLPerf Inference rules (appendix "Number of
    Queries"); ``z`` is the two-sided normal quantile of ``confidence``. p = 0.9, 99 %: 23,886.
    """
    _check_p(p)
    _check_p(confidence, "confidence")
    tolerance = (1 - p) / 20 if tolerance is None else tolerance
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 < tolerance < 1:
        raise LeanbenchError(f"tolerance: must be a number in (0, 1), got {tolerance!r}")
    z = stats.norm.ppf((1 - confidence) / 2)
    return math.ceil(round(z * z * p * (1 - p) / tolerance**2, 9))


def _passes(h: int, t: int, p: float, confidence: float, tolerance: float) -> bool:
    """MLPerf early stopping: P(at most t of h + t runs over the bound) <= 1 - confidence."""
    return stats.binom.cdf(t, h + t, 1 - (p - tolerance)) <= 1 - confidence


def _min_passing(t: int, p: float, confidence: float, tolerance: float) -> int:
    lo, hi = 1, 1
    while not _passes(hi, t, p, confidence, tolerance):
        hi *= 2
    while lo < hi:  # smallest h that passes (passing is monotone in h)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _passes(mid, t, p, confidence, tolerance) else (mid + 1, hi)
    return lo


def early_stopping_min_runs(p: float, confidence: float = 0.99, tolerance: float = 0.0) -> int:
    """Fewest runs for an MLPerf early-stopping estimate of the ``p``-quantile: ``h_min(t=1) + 1``
    (64 for p90 at 99 %, 662 for p99 at 99 %)."""
    _check_p(p)
    _check_p(confidence, "confidence")
    return _min_passing(1, p, confidence, tolerance) + 1


def early_stopping_estimate(samples_ms: Any, p: float, confidence: float = 0.99,
                            tolerance: float = 0.0) -> dict[str, Any]:
    """MLPerf's early-stopping estimate (loadgen ``results.cc``, single stream): the ``t``-th largest
    sample for the largest ``t`` with ``n >= h_min(t) + t``; an upper confidence bound for the
    percentile. ``value`` None when ``n`` is below :func:`early_stopping_min_runs`."""
    x = np.sort(_samples(samples_ms))
    n = len(x)
    needed = early_stopping_min_runs(p, confidence, tolerance)
    if n < needed:
        return {"value": None, "discarded": None, "n": n, "runs_needed": needed,
                "method": f"MLPerf early stopping ({confidence:.0%})"}
    # n >= h_min(t) + t  <=>  t runs over the bound out of n still pass; that holds for t = 1 .. t_max
    ts = np.arange(1, n + 1)
    t = int(np.count_nonzero(stats.binom.cdf(ts, n, 1 - (p - tolerance)) <= 1 - confidence))
    return {"value": float(x[n - t]), "discarded": t - 1, "n": n, "runs_needed": needed,
            "method": f"MLPerf early stopping ({confidence:.0%})"}
