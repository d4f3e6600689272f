"""Multiplicity control of a study's verdicts, by family, and bootstrap p-values.

Families. A study decides each candidate on one metric, the decision metric: its comparisons (one per
candidate; later also per task) are the **primary family**, and only they give a candidate's verdict. The
other metrics are a **secondary family** (every candidate x other metric), Holm-adjusted among themselves
and reported for information: they never change a verdict. Putting every candidate x metric comparison in
one family (as leanbench did before) multiplies the decision metric's p-values by the number of metrics, so a
candidate clearly worse than the margin could read "inconclusive" only because NLL and ECE were also shown.

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
3. Holm (1979) step-down adjust each of the three p-value kinds within a family (`apply_holm_by_family`)
   and reject where the adjusted p <= level. `stats.decision.verdict` reads one bound of a two-sided
   (1 - alpha) CI, i.e. a one-sided test at alpha/2 (CONSORT, Piaggio et al. 2012); `apply_holm_to_verdicts`
   therefore uses level = alpha / 2 by default, so that a study with a single comparison keeps its verdict.

Holm controls the family-wise error rate in the strong sense under any dependence between the tests, which
matters here because all candidates are compared against the same reference on the same examples.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from leanbench.stats.tests import holm_adjust

HOLM = "holm"
PRIMARY, SECONDARY = "primary", "secondary"
CORRECTION_NOTE = ("Holm-Bonferroni step-down adjustment (Holm 1979) of one-sided paired-bootstrap p-values, "
                   "within each family: the primary family (the decision metric, across candidates) gives the "
                   "verdicts; the secondary family (the other metrics, across candidates x metrics) is adjusted "
                   "on its own and never changes a verdict")

# why an inconclusive verdict is inconclusive (`inconclusive_reason`)
BECAUSE_MULTIPLICITY = "multiplicity"  # decided before the correction, not after it
BECAUSE_POWER = "power"  # the CI is wider than the margin: too few examples (or seeds) to resolve it
BECAUSE_STRADDLES = "ci_straddles_margin"  # the CI is narrow enough but holds the margin: the difference is near it
INCONCLUSIVE_REASONS = (BECAUSE_MULTIPLICITY, BECAUSE_POWER, BECAUSE_STRADDLES)


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


# the three kinds of one-sided p-value of a comparison, each Holm-adjusted separately within a family
VERDICT_FAMILIES = ("p_noninferiority", "p_superiority", "p_inferiority")


def apply_holm_to_verdicts(
    rows: Iterable[Mapping[str, Any]], alpha: float, *, level: float | None = None
) -> list[dict[str, Any]]:
    """Holm-adjusted verdicts for the comparisons of one family (`apply_holm_by_family` splits a study's
    comparisons into its families).

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


def apply_holm_by_family(
    rows: Iterable[Mapping[str, Any]], alpha: float, *, family_key: str = "family", level: float | None = None
) -> list[dict[str, Any]]:
    """`apply_holm_to_verdicts` within each family: rows with the same `family_key` value are one family
    (adjusted among themselves only), in the input order; each row also gets `family_size`, the number of
    comparisons of its family."""
    out = [dict(r) for r in rows]
    families: dict[Any, list[int]] = {}
    for i, r in enumerate(out):
        families.setdefault(r.get(family_key), []).append(i)
    for members in families.values():
        adjusted = apply_holm_to_verdicts([out[i] for i in members], alpha, level=level)
        for i, adj in zip(members, adjusted, strict=True):
            out[i] = {**adj, "family_size": len(members)}
    return out


def inconclusive_reason(verdict: str | None, verdict_unadjusted: str | None, ci_low: float, ci_high: float,
                        margin: float) -> str | None:
    """Why a verdict is inconclusive (None when it is not): `BECAUSE_MULTIPLICITY` when the verdict before the
    multiplicity correction is decided; else `BECAUSE_POWER` when the CI of the (higher-is-better)
    difference is at least twice the margin wide, so that even a candidate with no difference at all could
    not be told non-inferior (too few examples, or seeds, for this margin); else `BECAUSE_STRADDLES`: the
    interval is narrow enough, but it holds the margin, the difference lies close to it."""
    if verdict != "inconclusive":
        return None
    if verdict_unadjusted not in (None, "inconclusive"):
        return BECAUSE_MULTIPLICITY
    if margin > 0 and (ci_high - ci_low) / 2.0 >= margin:
        return BECAUSE_POWER
    return BECAUSE_STRADDLES


__all__ = [
    "BECAUSE_MULTIPLICITY",
    "BECAUSE_POWER",
    "BECAUSE_STRADDLES",
    "CORRECTION_NOTE",
    "HOLM",
    "INCONCLUSIVE_REASONS",
    "PRIMARY",
    "SECONDARY",
    "VERDICT_FAMILIES",
    "apply_holm",
    "apply_holm_by_family",
    "apply_holm_to_verdicts",
    "inconclusive_reason",
    "comparison_p_values",
    "holm",
    "inferiority_p_bootstrap",
    "noninferiority_p_bootstrap",
    "superiority_p_bootstrap",
]
