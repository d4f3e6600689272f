"""Paired significance tests and multiplicity correction.

McNemar (1947), exact form: under H0 the two systems are equally often right where they disagree, so the
number b of discordant pairs won by system A is Binomial(b + c, 1/2). The two-sided p-value doubles the
smaller tail, p = min(1, 2 * BinomCDF(min(b, c); b + c, 1/2)), as statsmodels'
`contingency_tables.mcnemar(table, exact=True)` does; p = 1 when there is no discordant pair.

Holm (1979) step-down adjustment controls the family-wise error rate over several candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class McNemarResult:
    """b: A correct and B wrong; c: A wrong and B correct; p_value: exact two-sided McNemar p-value."""

    b: int
    c: int
    p_value: float


def _as_bool_vector(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"mcnemar_exact: '{name}' must be a 1-d array of per-example correctness, "
                         f"got shape {arr.shape}")
    if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
        raise ValueError(
            f"mcnemar_exact: '{name}' must hold booleans or 0/1, got values {np.unique(arr)[:5]}"
        )
    return arr.astype(bool)


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemarResult:
    """Exact two-sided McNemar test on paired per-example correctness of systems A and B."""
    a, b_ = _as_bool_vector(correct_a, "correct_a"), _as_bool_vector(correct_b, "correct_b")
    if a.shape != b_.shape:
        raise ValueError(f"mcnemar_exact: 'correct_a' and 'correct_b' must have the same length, "
                         f"got {a.size} and {b_.size}")
    b = int(np.count_nonzero(a & ~b_))
    c = int(np.count_nonzero(~a & b_))
    return McNemarResult(b, c, mcnemar_exact_p(b, c))


def mcnemar_exact_p(b: int, c: int) -> float:
    """p = min(1, 2 * BinomCDF(min(b, c); b + c, 1/2)); 1.0 when b + c == 0."""
    if b < 0 or c < 0:
        raise ValueError(f"mcnemar_exact_p: discordant counts must be >= 0, got b={b}, c={c}")
    if b + c == 0:
        return 1.0
    from scipy.stats import binom

    return float(min(1.0, 2.0 * binom.cdf(min(b, c), b + c, 0.5)))


def holm_adjust(p_values: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values, in the input order.

    Sorted ascending p_(1..m): adj_(i) = max_{j<=i} min(1, (m - j + 1) * p_(j)) (Holm 1979), the same as
    `statsmodels.stats.multitest.multipletests(p, method='holm')[1]`.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or np.any((p < 0) | (p > 1)) or np.isnan(p).any():
        raise ValueError(f"holm_adjust: p_values must be a 1-d array of numbers in [0, 1], got {p!r}")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted
