"""`leanbench export STUDY --predictions out.csv|out.parquet`: every per-example row the store holds for the
study, one row per (candidate, seed, split or perturbation, example).

Columns: `study`, `candidate`, `seed`, `split` (the evaluated split), `perturbation` (empty for the clean
split), `cell` (the evaluate cell's key), `example_id`, `target`, `prediction`, `score` (classification: the
predicted class's probability), `target_label` / `prediction_label` where the task has label names, then one
column per evaluated metric: the metric computed on that example alone (`metric_on_index_rows` with one
index per row: for accuracy 0/1, for nll the example's negative log-likelihood, for a language-modelling
metric the document's own figure). The metric over the whole split is the mean of its column only for
metrics that are means over examples (accuracy, nll; not macro_f1 or ece).

A study of several tasks: the rows of every task, each task's from its own one-task study's cells, with a
`task` column after `study` (the columns of the task's metrics; a metric another task lacks is left empty). A
one-task study's rows have no `task` column.

A seed whose evaluation is shared with another seed (a model evaluated as it is) is written for each seed.
Parquet needs pyarrow (`pip install 'leanbench[parquet]'`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from leanbench.errors import LeanbenchError

if TYPE_CHECKING:
    import pandas as pd

    from leanbench.export.source import StudySource, TaskView

FORMATS = (".csv", ".parquet")
PARQUET_HINT = "pip install 'leanbench[parquet]'"


def output_kind(path: Path, formats: tuple[str, ...], option: str) -> str:
    """The file's suffix when it is one of `formats`, else one message naming them."""
    suffix = Path(path).suffix.lower()
    if suffix not in formats:
        raise LeanbenchError(f"{option} {path}: unknown file type '{suffix or '(none)'}'; give a file ending in "
                             f"{' or '.join(formats)}")
    if suffix == ".parquet" and importlib.util.find_spec("pyarrow") is None:
        raise LeanbenchError(f"{option} {path}: writing Parquet needs pyarrow, which is not installed; "
                             f"{PARQUET_HINT} (or write .csv)")
    return suffix


def per_example_metrics(metrics: list[str], gold: np.ndarray, scores: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric on each example alone: (N,) per metric."""
    from leanbench.evaluate.metrics import get_metric, metric_on_index_rows

    one_each = np.arange(len(gold))[:, None]
    return {m: metric_on_index_rows(get_metric(m), gold, scores, one_each) for m in metrics}


def _cell_frame(src: StudySource, view: TaskView, name: str, seed: str, perturbation: str,
                key: str) -> pd.DataFrame | None:
    import pandas as pd

    if src.store.cell(key) is None:
        return None
    rows = src.store.predictions(key)
    gold, pred = rows["gold"], rows["pred"]
    if len(gold) == 0:
        return None
    task = view.results.task
    frame: dict[str, Any] = {"study": src.name, **({"task": view.name} if view.name is not None else {}),
                             "candidate": name, "seed": int(seed),
                             "split": (task.evaluated_split if task else None) or "test", "perturbation": perturbation,
                             "cell": key, "example_id": rows["ids"].astype(str), "target": gold, "prediction": pred,
                             "score": _top_score(rows["scores"], pred)}
    labels = (task.label_names if task else None) or []
    if labels:
        frame["target_label"] = [labels[g] if 0 <= g < len(labels) else None for g in gold]
        frame["prediction_label"] = [labels[p] if 0 <= p < len(labels) else None for p in pred]
    frame.update(per_example_metrics(list(view.study.evaluate.metrics or []), gold, rows["scores"]))
    return pd.DataFrame(frame)


def _top_score(scores: np.ndarray, pred: np.ndarray) -> np.ndarray:
    inside = (pred >= 0) & (pred < scores.shape[1])
    out = np.full(len(pred), np.nan)
    out[inside] = scores[np.flatnonzero(inside), pred[inside]]
    return out


def predictions_frame(src: StudySource) -> pd.DataFrame:
    """Every finished evaluation of the study, clean and perturbed, as one frame (see the module docstring)."""
    import pandas as pd

    parts = []
    for view in src.task_views():
        for cand in src.results.candidates:
            cells = src.evaluate_cells(str(cand.name), view.name)
            for seed, key in (cells.get("evaluate") or {}).items():
                parts.append(_cell_frame(src, view, str(cand.name), seed, "", key))
                for label, pkey in ((cells.get("perturbed") or {}).get(seed) or {}).items():
                    parts.append(_cell_frame(src, view, str(cand.name), seed, label, pkey))
    parts = [p for p in parts if p is not None]
    if not parts:
        raise LeanbenchError(f"study '{src.name}' has no evaluated candidate yet: no predictions to export")
    return pd.concat(parts, ignore_index=True)


def write_predictions(src: StudySource, path: Path) -> int:
    """Writes the predictions to `path` (.csv or .parquet, atomically); returns the number of rows."""
    from leanbench.atomic import atomic_path

    kind = output_kind(path, FORMATS, "--predictions")
    frame = predictions_frame(src)
    with atomic_path(path) as tmp:
        if kind == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
    return len(frame)
