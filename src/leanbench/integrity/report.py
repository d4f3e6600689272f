"""The integrity cell of a study: contamination of the evaluated split by every split a step trains or
selects on (train, validation — distillation and early stopping use them too) and every text corpus a step
trains on (`integrity.corpora`: the causal-LM distillation corpus), and duplicates or conflicting labels
inside the evaluated split. Prompts are compared by their own text (the question, not few-shot examples,
template or choices).

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
                     ngram_min_coverage: float = NGRAM_MIN_COVERAGE,
                     spans: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON-ready integrity findings. `training` maps names to Splits (the task's splits, and the corpora steps
    train on: `integrity.corpora`); `evaluated` is a Split. Text is compared as each example's own text
    (`evaluate.perturb.own_texts` with `spans`, split name -> id -> spans: a prompt's question, not its few-shot
    examples, template or choices)."""
    from leanbench.integrity.contamination import check_contamination

    out: dict[str, Any] = {"evaluated": evaluated.name, "against": {}, "contaminated_rows": []}
    flagged: set[int] = set()
    settings = {"ngram": ngram, "ngram_max_df": ngram_max_df, "ngram_min_coverage": ngram_min_coverage,
                "near_dup_threshold": near_dup_threshold, "seed": seed}
    for name, split in training.items():
        if len(split) == 0 or len(evaluated) == 0 or split.X.dtype != evaluated.X.dtype:
            continue
        train_X, eval_X = _texts(split, spans), _texts(evaluated, spans)
        report = check_contamination(train_X, eval_X, **settings, documents=name not in ("train", "validation"))
        out["against"][name] = report.as_dict(eval_ids=_ids(evaluated), train_ids=_ids(split))
        flagged.update(int(i) for i in report.union())
    out["contaminated_rows"] = sorted(flagged)
    out["contaminated_ids"] = [str(i) for i in _ids(evaluated)[out["contaminated_rows"]]]
    out["duplicates"] = _duplicates(evaluated, spans)
    return out


def _joined(X: np.ndarray) -> list[str]:
    return [" ".join(map(str, r)) for r in X]


def _texts(split: Any, spans: dict[str, Any] | None) -> np.ndarray:
    """What contamination compares: sentence pairs joined; text (a prompt, a multiple-choice (context, choices)
    pair) as its own text; features as they are."""
    X = split.X
    if X.dtype == object and X.ndim > 1:
        return np.array(_joined(X), dtype=object)
    if X.dtype == object and X.ndim == 1:
        from leanbench.evaluate.perturb import own_texts

        return own_texts(X, _ids(split), (spans or {}).get(split.name))
    return X


def _ids(split: Any) -> np.ndarray:
    """The split's example ids, or "<split>:<row>" where it has none."""
    ids = getattr(split, "ids", None)
    if ids is None or len(ids) != len(split):
        return np.array([f"{split.name}:{i}" for i in range(len(split))], dtype=object)
    return np.asarray(ids, dtype=object)


def _duplicates(split: Any, spans: dict[str, Any] | None = None) -> dict[str, Any] | None:
    try:
        from leanbench.integrity.duplicates import find_duplicates
    except ImportError:  # pragma: no cover - the module ships with the package
        return None
    X = split.X
    if X.dtype == object and X.ndim > 1:
        X = np.array(_joined(X), dtype=object)
    elif X.dtype == object and X.ndim == 1:  # own texts; a multiple-choice question with its choices
        own = _texts(split, spans)
        X = np.array([f"{t} {' '.join(x[1])}" if isinstance(x, tuple) else t for t, x in zip(own, X, strict=True)],
                     dtype=object)
    return find_duplicates(X, np.asarray(split.y)).as_dict()
