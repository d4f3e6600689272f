"""Duplicates and conflicting labels inside one split.

Two examples are duplicates when their inputs are equal after normalisation: text with
`contamination.normalize_text` (NFKC, lower case, punctuation removed, whitespace collapsed), numbers
(features, images) after rounding to `decimals` (`contamination.row_keys`). Texts that normalise to ""
are left out. A duplicate group whose examples carry more than one label is *conflicting*: the same
input is labelled two ways, so no model can get all of them right, and the metric's ceiling is below 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from leanbench.errors import DataError
from leanbench.integrity.contamination import is_text, normalize_text, row_keys


@dataclass(frozen=True, eq=False)
class DuplicateReport:
    """Groups of example indices (each of size >= 2, sorted) with equal normalised input."""

    n: int
    groups: list[np.ndarray]
    conflicting: list[np.ndarray]
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_duplicated(self) -> int:
        """Examples in some duplicate group."""
        return int(sum(g.size for g in self.groups))

    @property
    def n_redundant(self) -> int:
        """Examples beyond the first of each group (what deduplication would remove)."""
        return int(sum(g.size - 1 for g in self.groups))

    @property
    def n_conflicting(self) -> int:
        """Examples in a group whose labels disagree."""
        return int(sum(g.size for g in self.conflicting))

    def as_dict(self, max_examples: int = 5) -> dict[str, Any]:
        return {"n": self.n, "duplicate_groups": len(self.groups), "duplicated_examples": self.n_duplicated,
                "redundant_examples": self.n_redundant, "conflicting_groups": len(self.conflicting),
                "conflicting_examples": self.n_conflicting, "examples": self.examples[:max_examples]}


def input_keys(X: Any, decimals: int = 6) -> list[Any]:
    """A hashable key per example: its normalised text, or its rounded row bytes."""
    if is_text(X):
        return [normalize_text(str(s)) or None for s in X]
    return list(row_keys(np.asarray(X), decimals))


def find_duplicates(X: Any, y: np.ndarray, *, decimals: int = 6, max_examples: int = 5) -> DuplicateReport:
    """Duplicate groups of one split and the ones with conflicting labels (largest groups first)."""
    y = np.asarray(y)
    if len(X) != y.size:
        raise DataError(f"duplicates: {len(X)} inputs but {y.size} labels")
    groups: dict[Any, list[int]] = {}
    for i, k in enumerate(input_keys(X, decimals)):
        if k is not None:
            groups.setdefault(k, []).append(i)
    dup = sorted((np.array(v) for v in groups.values() if len(v) > 1), key=lambda g: (-g.size, g[0]))
    conflicting = [g for g in dup if np.unique(y[g]).size > 1]
    examples = [{"indices": g.tolist(), "labels": y[g].tolist(),
                 "input": str(X[g[0]]) if is_text(X) else None} for g in conflicting[:max_examples]]
    return DuplicateReport(int(y.size), dup, conflicting, examples)


__all__ = ["DuplicateReport", "find_duplicates", "input_keys"]
