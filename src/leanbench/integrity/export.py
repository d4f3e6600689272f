"""The evaluated examples that the contamination check flagged, as a table to inspect or to drop them by id.

One row per (training split, method, flagged evaluated example): `against` (the training split), `method`,
`eval_id`, `train_id` (the training example it matches: for n-grams the one holding most of its shared
n-grams) and `score` (n-gram coverage or near-duplicate Jaccard; empty for the exact methods). Written as
CSV (`.csv`, those columns) or JSON (`.json`: `{"study", "evaluated", "contaminated_ids", "flags": [rows]}`),
atomically. `leanbench report --flags FILE` calls `write_flags`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from leanbench.errors import LeanbenchError

FLAG_COLUMNS = ("against", "method", "eval_id", "train_id", "score")
FLAG_FORMATS = (".csv", ".json")


def flag_rows(integrity: Any) -> list[dict[str, Any]]:
    """The rows (see the module docstring) of an `Integrity` record or its JSON form, in the order stored:
    training split, then method, then evaluated split order. "any" (the union) is not a method row."""
    from leanbench.analysis.results import Integrity

    integ = Integrity.coerce(integrity)
    rows: list[dict[str, Any]] = []
    for split, rep in ((integ.against or {}) if integ is not None else {}).items():
        if rep is None:
            continue
        trains, scores = rep.flagged_train or {}, rep.flagged_score or {}
        for method, ids in (rep.flagged or {}).items():
            if method == "any":
                continue
            train_ids, method_scores = trains.get(method) or [], scores.get(method) or []
            for k, eval_id in enumerate(ids or []):
                rows.append({"against": split, "method": method, "eval_id": eval_id,
                             "train_id": train_ids[k] if k < len(train_ids) else None,
                             "score": method_scores[k] if k < len(method_scores) else None})
    return rows


def has_flags(integrity: Any) -> bool:
    """Whether the integrity results list their flagged examples (results from before the flags do not)."""
    from leanbench.analysis.results import Integrity

    integ = Integrity.coerce(integrity)
    return integ is not None and any(rep is not None and rep.flagged is not None
                                     for rep in (integ.against or {}).values())


def write_flags(results: Any, path: str | Path) -> int:
    """Writes the flagged examples of a study's results (`StudyResults` or the results JSON) to `path`,
    CSV or JSON by its suffix; returns the number of rows. Raises LeanbenchError when the study has no
    contamination results with flags or the suffix is neither."""
    from leanbench.analysis.results import StudyResults
    from leanbench.atomic import atomic_path

    path = Path(path)
    if path.suffix.lower() not in FLAG_FORMATS:
        raise LeanbenchError(f"--flags: write a .csv or .json file, got '{path.name}'")
    res = StudyResults.coerce(results)
    integ = res.integrity if res is not None else None
    if integ is None or not integ.against:
        raise LeanbenchError(f"study '{getattr(res, 'study', None)}' has no contamination results (integrity "
                             "contamination disabled, or no text or rows to compare)")
    if not has_flags(integ):
        raise LeanbenchError(f"study '{res.study}': its integrity cell predates per-example flags; run the "
                             "study again (only the integrity cell reruns)")
    rows = flag_rows(integ)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".csv":
            with tmp.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, FLAG_COLUMNS)
                writer.writeheader()
                writer.writerows(rows)
        else:
            doc = {"study": res.study, "evaluated": integ.evaluated,
                   "contaminated_ids": integ.contaminated_ids, "flags": rows}
            tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return len(rows)


def read_flags(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a file `write_flags` wrote (CSV scores as floats, empty cells as None)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        doc = json.loads(path.read_text(encoding="utf-8"))
        return list(doc["flags"]) if isinstance(doc, Mapping) else []
    with path.open(newline="", encoding="utf-8") as fh:
        return [{k: (None if v == "" else float(v) if k == "score" else v) for k, v in row.items()}
                for row in csv.DictReader(fh)]


__all__ = ["FLAG_COLUMNS", "flag_rows", "has_flags", "read_flags", "write_flags"]
