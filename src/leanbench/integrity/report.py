"""The integrity cell of a study: contamination of the evaluated split by every split a step trains or
selects on (train, validation — distillation and early stopping use them too), and duplicates or
conflicting labels inside the evaluated split.

The result (JSON) holds, per training split (`against`), the contamination summary of
`ContaminationReport.as_dict` with every flagged evaluated example by its id (`flagged`, per method and
"any"), the matching training example's id (`flagged_train`) and the method's score (`flagged_score`); and,
over all training splits, the flagged rows (`contaminated_rows`, indices into the evaluated split) and their
ids (`contaminated_ids`, in the same order)."""

from __future__ import annotations

from typing import Any

import numpy as np

from leanbench.integrity.contamination import NGRAM_MAX_DF, NGRAM_MIN_COVERAGE


def integrity_report(training: dict[str, Any], evaluated: Any, *, ngram: int, near_dup_threshold: float,
                     seed: int, ngram_max_df: int | None = NGRAM_MAX_DF,
                     ngram_min_coverage: float = NGRAM_MIN_COVERAGE) -> dict[str, Any]:
    """JSON-ready integrity findings. `training` maps split names to Splits; `evaluated` is a Split."""
    from leanbench.integrity.contamination import check_contamination

    out: dict[str, Any] = {"evaluated": evaluated.name, "against": {}, "contaminated_rows": []}
    flagged: set[int] = set()
    settings = {"ngram": ngram, "ngram_max_df": ngram_max_df, "ngram_min_coverage": ngram_min_coverage,
                "near_dup_threshold": near_dup_threshold, "seed": seed}
    for name, split in training.items():
        if len(split) == 0 or len(evaluated) == 0 or split.X.dtype != evaluated.X.dtype:
            continue
        train_X, eval_X = split.X, evaluated.X
        if split.X.dtype == object and split.X.ndim > 1:  # sentence pairs: compare the joined texts
            train_X, eval_X = _joined(split.X), _joined(evaluated.X)
        report = check_contamination(train_X, eval_X, **settings)
        out["against"][name] = report.as_dict(eval_ids=_ids(evaluated), train_ids=_ids(split))
        flagged.update(int(i) for i in report.union())
    out["contaminated_rows"] = sorted(flagged)
    out["contaminated_ids"] = [str(i) for i in _ids(evaluated)[out["contaminated_rows"]]]
    out["duplicates"] = _duplicates(evaluated)
    return out


def _joined(X: np.ndarray) -> list[str]:
    return [" ".join(map(str, r)) for r in X]


def _ids(split: Any) -> np.ndarray:
    """The split's example ids, or "<split>:<row>" where it has none."""
    ids = getattr(split, "ids", None)
    if ids is None or len(ids) != len(split):
        return np.array([f"{split.name}:{i}" for i in range(len(split))], dtype=object)
    return np.asarray(ids, dtype=object)


def _duplicates(split: Any) -> dict[str, Any] | None:
    try:
        from leanbench.integrity.duplicates import find_duplicates
    except ImportError:  # pragma: no cover - the module ships with the package
        return None
    X = split.X
    if X.dtype == object and X.ndim > 1:
        X = np.array(_joined(X), dtype=object)
    return find_duplicates(X, np.asarray(split.y)).as_dict()
