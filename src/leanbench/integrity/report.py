"""The integrity cell of a study: contamination of the evaluated split by every split a step trains or
selects on (train, validation — distillation and early stopping use them too), and duplicates or
conflicting labels inside the evaluated split."""

from __future__ import annotations

from typing import Any

import numpy as np


def integrity_report(training: dict[str, Any], evaluated: Any, *, ngram: int, near_dup_threshold: float,
                     seed: int) -> dict[str, Any]:
    """JSON-ready integrity findings. `training` maps split names to Splits; `evaluated` is a Split."""
    from leanbench.integrity.contamination import check_contamination

    out: dict[str, Any] = {"evaluated": evaluated.name, "against": {}, "contaminated_rows": []}
    flagged: set[int] = set()
    for name, split in training.items():
        if len(split) == 0 or len(evaluated) == 0 or split.X.dtype != evaluated.X.dtype:
            continue
        if split.X.dtype == object and split.X.ndim > 1:  # sentence pairs: compare the joined texts
            report = check_contamination([" ".join(map(str, r)) for r in split.X],
                                         [" ".join(map(str, r)) for r in evaluated.X], ngram=ngram,
                                         near_dup_threshold=near_dup_threshold, seed=seed)
            out["against"][name] = report.as_dict()
            flagged.update(int(i) for i in report.union())
            continue
        report = check_contamination(split.X, evaluated.X, ngram=ngram, near_dup_threshold=near_dup_threshold,
                                     seed=seed)
        out["against"][name] = report.as_dict()
        flagged.update(int(i) for i in report.union())
    out["contaminated_rows"] = sorted(flagged)
    out["duplicates"] = _duplicates(evaluated)
    return out


def _duplicates(split: Any) -> dict[str, Any] | None:
    try:
        from leanbench.integrity.duplicates import find_duplicates
    except ImportError:  # pragma: no cover - the module ships with the package
        return None
    X = split.X
    if X.dtype == object and X.ndim > 1:
        X = np.array([" ".join(map(str, r)) for r in X], dtype=object)
    return find_duplicates(X, np.asarray(split.y)).as_dict()
