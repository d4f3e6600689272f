"""What every analysis section reads: the study's config, plan and per-example rows, loaded once."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from leanbench.analysis.results import MetricValue
from leanbench.analysis.stored import (
    BuildCell,
    BuildResult,
    CandidateRow,
    Cell,
    MeasureCell,
    Predictions,
    StoredStudy,
)
from leanbench.cost.ledger import closure  # noqa: F401  (re-exported for the analysis sections)
from leanbench.errors import LeanbenchError
from leanbench.store.db import Store

if TYPE_CHECKING:
    from leanbench.study import Study


def seed_for(study_seed: int, *parts: str) -> int:
    """A bootstrap seed from the study seed and a label, stable across runs and machines."""
    return (study_seed * 1_000_003 + zlib.crc32("/".join(parts).encode())) % (2**32)


def ci_value(ci: Any) -> MetricValue:
    """A stats CI object as a MetricValue {value, ci_low, ci_high}."""
    return MetricValue.of(ci)


@dataclass
class Loaded:
    store: Store
    name: str
    info: StoredStudy
    rows: list[CandidateRow]
    seeds: list[int]  # the study's seeds
    seeds_of: dict[str, list[int]] = field(default_factory=dict)  # candidate -> the seeds it was built with
    preds: dict[str, list[Predictions]] = field(default_factory=dict)  # candidate -> one set per seed
    perturbed: dict[str, dict[str, list[Predictions]]] = field(default_factory=dict)  # candidate -> label -> seeds
    builds: dict[str, BuildCell | None] = field(default_factory=dict)  # first seed's build cell
    measures: dict[str, MeasureCell | None] = field(default_factory=dict)
    deps: dict[str, list[str]] = field(default_factory=dict)

    @property
    def study(self) -> Study:
        return self.info.study

    @property
    def reference(self) -> str:
        return self.study.reference

    @property
    def seed(self) -> int:
        return int(self.study.seed)


def _cell(store: Store, key: str) -> Cell | None:
    return Cell.of(store.cell(key))


def _predictions(store: Store, keys: list[str]) -> list[Predictions]:
    """The prediction sets of the distinct finished cells among `keys` (seeds sharing a cell count once)."""
    out, seen = [], set()
    for key in keys:
        if key in seen:
            continue
        seen.add(key)
        if store.cell(key) is not None:
            out.append(Predictions.of(store.predictions(key)))
    return out


def _build(cell: Cell | None) -> BuildCell | None:
    return None if cell is None else BuildCell(cell, BuildResult.from_dict(cell.result) or BuildResult())


def load(store: Store, study_name: str | None) -> Loaded:
    names = store.study_names()
    if not names:
        raise LeanbenchError(f"the store {store.location} holds no study yet; run one with `leanbench run`")
    name = study_name or names[-1]
    row = store.study(name)
    if row is None:
        from leanbench.registry import did_you_mean

        raise LeanbenchError(f"no study named '{name}' in {store.location}{did_you_mean(name, names)}; "
                             f"studies: {', '.join(names)}")
    info = StoredStudy.of(row)
    rows = [CandidateRow.of(r) for r in store.candidates(name)]
    loaded = Loaded(store, name, info, rows, info.study.seeds)
    loaded.deps = {c.name: info.study.dependencies(c.name) for c in info.study.candidates}
    for r in rows:
        cells = r.cells
        seed_keys = [str(s) for s in loaded.seeds if str(s) in cells.evaluate]  # a candidate may have fewer
        loaded.seeds_of[r.name] = [int(s) for s in seed_keys]
        complete = all(store.cell(cells.evaluate[s]) is not None for s in seed_keys)
        loaded.preds[r.name] = _predictions(store, [cells.evaluate[s] for s in seed_keys]) if complete else []
        labels = list(cells.perturbed[seed_keys[0]]) if seed_keys[0] in cells.perturbed else []
        loaded.perturbed[r.name] = {
            label: _predictions(store, [cells.perturbed[s][label] for s in seed_keys]) for label in labels}
        loaded.builds[r.name] = _build(_cell(store, cells.build[seed_keys[0]]))
        loaded.measures[r.name] = MeasureCell.of(_cell(store, cells.measure)) if cells.measure else None
    _check_same_examples(loaded)
    return loaded


def _check_same_examples(loaded: Loaded) -> None:
    ref = loaded.preds.get(loaded.reference)
    if not ref:
        return
    for name, runs in loaded.preds.items():
        for run in runs:
            if list(run.ids) != list(ref[0].ids):
                raise LeanbenchError(f"'{name}' and the reference were evaluated on different examples")
