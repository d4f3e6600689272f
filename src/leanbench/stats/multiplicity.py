"""Multiplicity control across the candidate x metric verdicts of a study, and bootstrap p-values.

Approach (chosen over Holm-adjusting confidence levels of CIs, which has no simple step-down form):

1. For each comparison (candidate x metric) take the paired-bootstrap resampled differences, oriented so
   that higher is better (candidate - reference, sign flipped for lower-is-better metrics).
2. Compute one-sided bootstrap p-values with the +1 correction (Davison & Hinkley 1997, eq. 4.11;
   North, Curtis & Sham 2002, "A note on the calculation of empirical P values"), B = number of resamples:

       non-inferiority  H0: d <= -margin    p = (1 + #{d*_b <= -margin}) / (B + 1)
       superiority      H0: d <= 0          p = (1 + #{d*_b <= 0}) / (B + 1)
       inferiority      H0: d >= -margin    p = (1 + #{d*_b >= -margin}) / (B + 1)

   These are the test duals of the percentile interval: p < level  <=>  (about) the level-quantile of d*
   lies beyond the null boundary.
3. Holm (1979) step-down adjust each family across all comparisons of the study and reject where the
   adjusted p <= level. `stats.decision.verdict` reads one bound of a two-sided (1 - alpha) CI, i.e. a
   one-sided test at alpha/2 (CONSORT, Piaggio et al. 2012); `apply_holm_to_verdicts` therefore uses
   level = alpha / 2 by default, so that a study with a single comparison keeps its verdict.

Holm controls the family-wise error rate in the strong sense under any dependence between the tests, which
matters here because all candidates are compared against the same reference on the same examples.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from leanbench.stats.tests import holm_adjust

HOLM = "holm"
CORRECTION_NOTE = ("Holm-Bonferroni step-down adjustment (Holm 1979) of one-sided paired-bootstrap p-values "
                   "across all candidate x metric comparisons of the study")


def holm(p_values: Iterable[float], alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(Holm-adjusted p-values, reject = adjusted <= alpha), in the input order.

    Same as `statsmodels.stats.multitest.multipletests(p, alpha, method='holm')[:2]` (reversed order).
    """
    _check_level(alpha, "alpha")
    p = np.asarray(list(p_values), dtype=float)
    if p.size == 0:
        return np.zeros(0), np.zeros(0, dtype=bool)
    adjusted = holm_adjust(p)
    return adjusted, adjusted <= alpha


def _check_level(x: float, name: str) -> None:
    if not 0.0 < x < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {x!r}")


def _resampled(resampled_diffs: np.ndarray) -> np.ndarray:
    d = np.asarray(resampled_diffs, dtype=float).ravel()
    if d.size == 0 or not np.isfinite(d).all():
        raise ValueError(f"bootstrap p-value: need a non-empty array of finite resampled differences, got "
                         f"{d.size} values ({np.count_nonzero(~np.isfinite(d))} not finite)")
    return d


def _check_margin(margin: float) -> None:
    if not np.isfinite(margin) or margin < 0:
        raise ValueError(f"bootstrap p-value: margin must be a finite number >= 0, got {margin!r}")


def noninferiority_p_bootstrap(resampled_diffs_oriented: np.ndarray, margin: float) -> float:
    """One-sided p for H0: d <= -margin: (1 + #{d* <= -margin}) / (B + 1)."""
    d = _resampled(resampled_diffs_oriented)
    _check_margin(margin)
    return float((1 + np.count_nonzero(d <= -margin)) / (d.size + 1))


def superiority_p_bootstrap(resampled_diffs_oriented: np.ndarray) -> float:
    """One-sided p for H0: d <= 0: (1 + #{d* <= 0}) / (B + 1)."""
    d = _resampled(resampled_diffs_oriented)
    return float((1 + np.count_nonzero(d <= 0.0)) / (d.size + 1))


def inferiority_p_bootstrap(resampled_diffs_oriented: np.ndarray, margin: float) -> float:
    """One-sided p for H0: d >= -margin (evidence that the candidate is worse by more than the margin)."""
    d = _resampled(resampled_diffs_oriented)
    _check_margin(margin)
    return float((1 + np.count_nonzero(d >= -margin)) / (d.size + 1))


def comparison_p_values(resampled_diffs_oriented: np.ndarray, margin: float) -> dict[str, float]:
    """The three one-sided p-values of one comparison: p_noninferiority, p_superiority, p_inferiority."""
    return {
        "p_noninferiority": noninferiority_p_bootstrap(resampled_diffs_oriented, margin),
        "p_superiority": superiority_p_bootstrap(resampled_diffs_oriented),
        "p_inferiority": inferiority_p_bootstrap(resampled_diffs_oriented, margin),
    }


def apply_holm(
    rows: Iterable[Mapping[str, Any]],
    level: float,
    *,
    p_key: str = "p_value",
    adjusted_key: str = "p_adjusted",
    reject_key: str = "reject",
) -> list[dict[str, Any]]:
    """Copies of `rows` with `adjusted_key` (Holm over the rows whose `p_key` is not None) and `reject_key`.

    Rows without a p-value (e.g. a slice too small to test) get adjusted None and reject False and do not
    count in the family size.
    """
    out = [dict(r) for r in rows]
    tested = [i for i, r in enumerate(out) if r.get(p_key) is not None]
    adjusted, reject = holm([out[i][p_key] for i in tested], level)
    for r in out:
        r[adjusted_key], r[reject_key] = None, False
    for i, a, rej in zip(tested, adjusted, reject, strict=True):
        out[i][adjusted_key], out[i][reject_key] = float(a), bool(rej)
    return out


VERDICT_FAMILIES = ("p_noninferiority", "p_superiority", "p_inferiority")


def apply_holm_to_verdicts(
    rows: Iterable[Mapping[str, Any]], alpha: float, *, level: float | None = None
) -> list[dict[str, Any]]:
    """Holm-adjusted verdicts for candidate x metric comparisons.

    Each row holds `p_noninferiority`, `p_superiority`, `p_inferiority` (from `comparison_p_values`); the
    reference row is left out by the caller. Each family is Holm-adjusted separately across the rows, at
    `level` (default alpha / 2, see the module docstring). Adds `<family>_adjusted` and
    `verdict_adjusted`: superior if superiority is rejected, else non-inferior if non-inferiority is
    rejected, else inferior if inferiority is rejected, else inconclusive; and `correction` = "holm".
    """
    _check_level(alpha, "alpha")
    level = alpha / 2.0 if level is None else level
    out = [dict(r) for r in rows]
    for fam in VERDICT_FAMILIES:
        out = apply_holm(out, level, p_key=fam, adjusted_key=f"{fam}_adjusted", reject_key=f"_{fam}_reject")
    for r in out:
        ni, sup, inf = (r.pop(f"_{fam}_reject") for fam in VERDICT_FAMILIES)
        r["verdict_adjusted"] = ("superior" if sup and ni else "non-inferior" if ni else "inferior" if inf
                                 else "inconclusive")
        r["correction"] = HOLM
        r["level"] = level
    return out


__all__ = [
    "CORRECTION_NOTE",
    "HOLM",
    "apply_holm",
    "apply_holm_to_verdicts",
    "comparison_p_values",
    "holm",
    "inferiority_p_bootstrap",
    "noninferiority_p_bootstrap",
    "superiority_p_bootstrap",
]
