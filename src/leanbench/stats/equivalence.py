"""Equivalence testing: two one-sided tests (TOST) of a paired difference against a margin +-Delta.

Schuirmann (1987), "A comparison of the two one-sided tests procedure and the power approach for assessing
the equivalence of average bioavailability", J. Pharmacokinet. Biopharm. 15:657. The difference d is
declared equivalent to 0 at level alpha when both one-sided nulls are rejected at alpha:

    H0_lower: d <= -Delta      and      H0_upper: d >= +Delta,      p_TOST = max(p_lower, p_upper),

which is the same as the (1 - 2 alpha) two-sided CI lying inside (-Delta, +Delta) (`tost_from_ci`).

Three ways to get the two p-values:
- `tost_paired`: per-example values a_i, b_i (scores, or 0/1 correctness for accuracy), d_i = a_i - b_i,
  t = (mean(d) +- Delta) / (sd(d) / sqrt(n)) with n - 1 degrees of freedom (`dist="t"`, as
  `statsmodels.stats.weightstats.ttost_paired`) or the standard normal (`dist="z"`, the large-sample test
  for paired proportions when a_i, b_i are 0/1).
- `tost_from_resamples`: paired-bootstrap resamples d*_b of any metric difference;
  p_lower = (1 + #{d* <= -Delta}) / (B + 1), p_upper = (1 + #{d* >= Delta}) / (B + 1), and the percentile
  (1 - 2 alpha) CI (same conventions as `stats.multiplicity`).
- `tost_bootstrap`: the same from two statistics of resample indices, like `bootstrap.paired_bootstrap_diff`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from leanbench.stats.bootstrap import iter_bootstrap_indices, percentile_ci


@dataclass(frozen=True)
class TOSTResult:
    """Outcome of a TOST: `equivalent` is p_value <= alpha; [ci_low, ci_high] is the (1 - 2 alpha) CI."""

    equivalent: bool
    diff: float
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float
    p_lower: float
    p_upper: float
    margin: float
    alpha: float
    method: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _check_margin(margin: float) -> None:
    if not math.isfinite(margin) or margin <= 0:
        raise ValueError(f"TOST: the equivalence margin must be a finite number > 0, got {margin!r}")


def _check(margin: float, alpha: float) -> None:
    _check_margin(margin)
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"TOST: alpha must be in (0, 0.5) (the CI has level 1 - 2 alpha), got {alpha!r}")


def tost_from_ci(ci_low: float, ci_high: float, margin: float) -> bool:
    """Equivalent when the (1 - 2 alpha) CI of the difference lies strictly inside (-margin, margin)."""
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)) or ci_low > ci_high:
        raise ValueError(f"TOST: need a finite CI with low <= high, got [{ci_low}, {ci_high}]")
    _check_margin(margin)
    return -margin < ci_low and ci_high < margin


def tost_paired(
    a: np.ndarray, b: np.ndarray, margin: float, alpha: float = 0.05, *, dist: str = "t"
) -> TOSTResult:
    """Paired TOST on per-example values a_i - b_i (t with n - 1 df, or z).

    When every difference is the same (sd = 0) the test is exact: each one-sided p is 0 if the mean is
    strictly on the alternative side, else 1.
    """
    _check(margin, alpha)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or a.size < 2:
        raise ValueError(f"tost_paired: need two 1-d arrays of the same length >= 2, got {a.shape} and "
                         f"{b.shape}")
    if dist not in ("t", "z"):
        raise ValueError(f"tost_paired: dist must be 't' or 'z', got {dist!r}")
    from scipy import stats

    d = a - b
    n, mean, se = d.size, float(d.mean()), float(d.std(ddof=1) / math.sqrt(d.size))
    law = stats.t(n - 1) if dist == "t" else stats.norm()
    if se == 0.0:
        p_lower, p_upper, half = float(mean <= -margin), float(mean >= margin), 0.0
    else:
        p_lower = float(law.sf((mean + margin) / se))
        p_upper = float(law.cdf((mean - margin) / se))
        half = float(law.ppf(1.0 - alpha)) * se
    p = max(p_lower, p_upper)
    return TOSTResult(p <= alpha, mean, mean - half, mean + half, 1.0 - 2.0 * alpha, p, p_lower, p_upper,
                      float(margin), float(alpha), f"paired-{dist} TOST (Schuirmann 1987)")


def tost_from_resamples(
    value: float, resampled_diffs: np.ndarray, margin: float, alpha: float = 0.05
) -> TOSTResult:
    """Bootstrap TOST from the full-sample difference and its paired-bootstrap resamples."""
    _check(margin, alpha)
    d = np.asarray(resampled_diffs, dtype=float).ravel()
    if d.size == 0 or not np.isfinite(d).all():
        raise ValueError("tost_from_resamples: need a non-empty array of finite resampled differences")
    p_lower = float((1 + np.count_nonzero(d <= -margin)) / (d.size + 1))
    p_upper = float((1 + np.count_nonzero(d >= margin)) / (d.size + 1))
    ci = percentile_ci(value, d, 1.0 - 2.0 * alpha)
    p = max(p_lower, p_upper)
    return TOSTResult(p <= alpha, float(value), ci.low, ci.high, ci.confidence, p, p_lower, p_upper,
                      float(margin), float(alpha), "paired-bootstrap TOST (percentile)")


def tost_bootstrap(
    stat_a: Callable[[np.ndarray], float],
    stat_b: Callable[[np.ndarray], float],
    n: int,
    *,
    margin: float,
    alpha: float = 0.05,
    n_resamples: int = 2000,
    seed: int = 0,
) -> TOSTResult:
    """Paired-bootstrap TOST of stat_a - stat_b; both statistics see the same resample indices.

    Indices as `bootstrap.bootstrap_indices(n, n_resamples, seed)`, so the CI equals
    `paired_bootstrap_diff(..., confidence=1 - 2 alpha)` on the same seed.
    """
    diffs = [stat_a(row) - stat_b(row) for idx in iter_bootstrap_indices(n, n_resamples, seed) for row in idx]
    full = np.arange(n)
    return tost_from_resamples(stat_a(full) - stat_b(full), np.asarray(diffs, dtype=float), margin, alpha)


__all__ = ["TOSTResult", "tost_bootstrap", "tost_from_ci", "tost_from_resamples", "tost_paired"]
