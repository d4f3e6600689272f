"""Typed views of what the store holds for one study, as the analysis reads it: the study row (its config
validated into `Study`), the plan's candidate rows, finished cells, measure results and prediction sets.

The store's own API returns plain rows (`leanbench.store.db`); these wrap them once, at load time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from leanbench.analysis.record import Record
from leanbench.analysis.results import (
    AutoBatch,
    Latency,
    Manifest,
    Memory,
    ReferenceScore,
    Slo,
    Speedup,
    SplitInfo,
    Throughput,
)

if TYPE_CHECKING:
    from leanbench.study import Study

# ---------------------------------------------------------------------------------------------- the study row


@dataclass
class TaskSummary(Record):
    """The task as the runner summarised it: source, labels, splits with sizes and fingerprints, and the
    evaluated split's slices (row indices)."""

    kind: str | None = None
    source: str | None = None
    label_names: list[str] | None = None
    input_shape: list[int] | None = None
    meta: dict[str, Any] | None = None
    splits: dict[str, SplitInfo | None] | None = None
    slices: dict[str, list[int]] | None = None


@dataclass
class RunInfo:
    id: int
    started_at: str | None
    seconds: float | None
    status: str | None
    manifest: dict[str, Any]

    @classmethod
    def of(cls, row: dict[str, Any] | None) -> RunInfo | None:
        if row is None:
            return None
        return cls(id=row["id"], started_at=row["started_at"], seconds=row["seconds"], status=row["status"],
                   manifest=dict(row["manifest"] or {}))


@dataclass
class StoredStudy:
    """The `studies` row of one study, its config validated into a `Study`."""

    name: str
    study: Study
    source: str | None
    task: TaskSummary
    cells: dict[str, str]  # study-wide cells: kind -> key
    last_run_id: int | None
    run: RunInfo | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> StoredStudy:
        from leanbench.store.db import study_from_config

        return cls(name=row["name"],
                   study=study_from_config(row["config"], row["config_version"], source=row["source"],
                                           name=row["name"]),
                   source=row["source"], task=TaskSummary.from_dict(row["task"]) or TaskSummary(),
                   cells=dict(row["cells"] or {}), last_run_id=row["last_run_id"], run=RunInfo.of(row["run"]))

    def manifest(self) -> Manifest:
        """The run's manifest with the run's id, start and wall time."""
        run = self.run
        return Manifest.from_dict({**(run.manifest if run else {}), "run_id": self.last_run_id,
                                   "started_at": run.started_at if run else None,
                                   "run_seconds": run.seconds if run else None}) or Manifest()


# ---------------------------------------------------------------------------------------------- the plan


@dataclass
class CandidateCells:
    """A candidate's cells: build and evaluate per seed ("0", "1", ...), perturbed per seed and label, and
    the one measure cell."""

    build: dict[str, str]
    evaluate: dict[str, str]
    perturbed: dict[str, dict[str, str]]
    measure: str | None

    @classmethod
    def of(cls, cells: dict[str, Any]) -> CandidateCells:
        return cls(build=dict(cells["build"]), evaluate=dict(cells["evaluate"]),
                   perturbed={s: dict(v) for s, v in (cells["perturbed"] or {}).items()},
                   measure=cells["measure"] or None)


@dataclass
class CandidateRow:
    name: str
    position: int
    from_: str | None
    steps: list[Any]
    cells: CandidateCells

    @classmethod
    def of(cls, row: dict[str, Any]) -> CandidateRow:
        return cls(name=row["name"], position=row["position"], from_=row["from_"], steps=list(row["steps"]),
                   cells=CandidateCells.of(row["cells"]))


# ---------------------------------------------------------------------------------------------- cells


@dataclass
class Cell:
    """A finished cell; `result` is its JSON as the runner wrote it."""

    key: str
    kind: str
    run_id: int | None
    seconds: float
    cpu_seconds: float
    flops: float | None
    result: dict[str, Any]

    @classmethod
    def of(cls, row: dict[str, Any] | None) -> Cell | None:
        if row is None:
            return None
        return cls(key=row["key"], kind=row["kind"], run_id=row["run_id"], seconds=row["seconds"],
                   cpu_seconds=row["cpu_seconds"], flops=row["flops"], result=dict(row["result"]))


@dataclass
class BuildResult(Record):
    """A build cell's result: each step's time, FLOPs and free-form info, the model's `describe()`, the
    seed, the sweep (when one picked the parameters) and the split it selected on."""

    steps: list[dict[str, Any]] | None = None
    describe: dict[str, Any] | None = None
    seed: int | None = None
    sweep: dict[str, Any] | None = None
    selected_on: str | None = None


@dataclass
class FlopsInfo(Record):
    flops: float | None = None
    method: str | None = None


@dataclass
class MeasuredProfile(Record):
    """One deployment profile as the measure cell recorded it."""

    latency: Latency | None = None
    throughput: Throughput | None = None
    energy_j_per_query: float | None = None
    energy_uncertainty: float | None = None
    energy_method: str | None = None
    batch: int | None = None
    threads: int | None = None
    auto_batch: list[AutoBatch] | None = None
    slo: Slo | None = None
    memory: Memory | None = None
    memory_cap_ok: bool | None = None


@dataclass
class MeasureResult(Record):
    """A measure cell's result: size, FLOPs, every profile, and the contract fields (latency by profile,
    throughput and memory of the pricing profile), with the machine's micro-benchmark score."""

    params: int | None = None
    nonzero_params: int | None = None
    size_bytes: int | None = None
    flops: FlopsInfo | None = None
    profiles: dict[str, MeasuredProfile | None] | None = None
    latency: dict[str, Latency | None] | None = None
    throughput: Throughput | None = None
    memory: Memory | None = None
    reference_score: ReferenceScore | float | None = None
    speedup: dict[str, Speedup | None] | None = None
    throughput_ratio: dict[str, Speedup | None] | None = None


@dataclass
class BuildCell:
    cell: Cell
    result: BuildResult

    @property
    def seconds(self) -> float:
        return self.cell.seconds

    @property
    def flops(self) -> float | None:
        return self.cell.flops


@dataclass
class MeasureCell:
    cell: Cell
    result: MeasureResult

    @property
    def run_id(self) -> int | None:
        return self.cell.run_id

    @classmethod
    def of(cls, cell: Cell | None) -> MeasureCell | None:
        return None if cell is None else cls(cell, MeasureResult.from_dict(cell.result) or MeasureResult())


# ---------------------------------------------------------------------------------------------- predictions


@dataclass
class Predictions:
    """One evaluate cell's per-example rows, in row order."""

    ids: np.ndarray
    gold: np.ndarray
    pred: np.ndarray
    scores: np.ndarray  # (N, K), its layout the task kind's
    extra: list[dict | None] = field(default_factory=list)

    @classmethod
    def of(cls, rows: dict[str, Any]) -> Predictions:
        return cls(ids=rows["ids"], gold=rows["gold"], pred=rows["pred"], scores=rows["scores"],
                   extra=list(rows["extra"]))

    def __len__(self) -> int:
        return len(self.gold)
