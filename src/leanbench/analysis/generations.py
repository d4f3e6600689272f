"""Generated text in the results (the `generation` task kind): a sample of examples with each candidate's
generation and extracted answer, the settings they were scored with, and notes.

Pure function of the store: the texts are the per-example `extra` rows of each candidate's first-seed evaluate
cell. Every candidate's stored scores are recomputed from its stored texts and targets (`evaluate.generation.
rescore`, with the settings the task summary holds); a difference is a note (the store's scores and texts
disagree). An extraction regex that matched no generation of a candidate is a note too: its exact_match is
then 0 by construction, not a finding about the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from leanbench.analysis.common import Loaded

MAX_EXAMPLES = 20


def _first(loaded: Loaded, name: str) -> Any:
    sets = loaded.preds.get(name) or []
    return sets[0] if sets else None


def _examples(loaded: Loaded, names: list[str]) -> list[dict[str, Any]]:
    """Up to MAX_EXAMPLES examples: those where a candidate's exact_match differs from the reference's first,
    then the rest, in row order."""
    ref = _first(loaded, loaded.reference)
    base = ref if ref is not None else _first(loaded, names[0])
    n = len(base)
    differs = np.zeros(n, dtype=bool)
    for name in names:
        p = _first(loaded, name)
        if p is not None and ref is not None and len(p) == n:
            differs |= p.scores[:, 0] != ref.scores[:, 0]
    order = list(np.flatnonzero(differs)) + list(np.flatnonzero(~differs))
    out = []
    for i in order[:MAX_EXAMPLES]:
        row: dict[str, Any] = {"id": str(base.ids[i]), "targets": (base.extra[i] or {}).get("targets") or [],
                               "differs": bool(differs[i]), "outputs": {}}
        for name in names:
            p = _first(loaded, name)
            if p is None or len(p) != n:
                continue
            e = p.extra[i] or {}
            row["outputs"][name] = {"generated": e.get("generated"), "answer": e.get("answer"),
                                    "exact_match": float(p.scores[i, 0])}
        out.append(row)
    return out


def generations_section(loaded: Loaded) -> tuple[dict[str, Any] | None, list[str]]:
    """(the `generations` section of the results, notes); (None, []) for other task kinds."""
    if loaded.study.task.kind != "generation":
        return None, []
    from leanbench.evaluate.generation import Settings, extraction_warning, rescore

    meta = loaded.info.task.meta or {}
    raw = meta.get("generation")
    if raw is None:
        return None, []
    settings = Settings.from_json(raw)
    names = [r.name for r in loaded.rows if _first(loaded, r.name) is not None]
    if not names:
        return None, []
    notes = []
    for name in names:
        p = _first(loaded, name)
        if not np.array_equal(rescore(p.extra, settings), p.scores):
            notes.append(f"'{name}': the stored generation scores differ from those recomputed from its stored "
                         "texts (the store was changed after the run?)")
        warning = extraction_warning(p.scores[:, 3], settings)
        if warning:
            notes.append(f"'{name}': {warning}.")
    section = {"settings": settings.to_json(), "n": len(_first(loaded, names[0])),
               "examples": _examples(loaded, names)}
    return section, notes
