"""The study-level sections of the typed results (robustness, slices, integrity, TCO, the study's cost),
beside the candidates' records in `leanbench.analysis.results`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leanbench.analysis.figures import MetricValue
from leanbench.analysis.record import Record, fld

# ---------------------------------------------------------------------------------------------- sections


@dataclass
class PerturbationCell(Record):
    metric: MetricValue | None = None
    drop: MetricValue | None = None
    vs_reference: MetricValue | None = fld(omit_none=True)


@dataclass
class RobustnessEntry(Record):
    by_perturbation: dict[str, PerturbationCell | None] | None = None
    worst: float | None = None
    mean: float | None = None
    worst_drop: float | None = None
    mean_drop: float | None = None


@dataclass
class Robustness(Record):
    metric: str | None = None
    higher_is_better: bool | None = None
    perturbations: list[str] | None = None
    candidates: dict[str, RobustnessEntry | None] | None = None
    method: str | None = None


@dataclass
class SliceInfo(Record):
    name: str | None = None
    n: int | None = None


@dataclass
class SliceRow(Record):
    """One candidate on one slice: its metric, the reference's, the difference, the loss beyond the overall
    loss (excess) with its p-value, Holm-adjusted, and whether it is flagged."""

    name: str | None = None
    slice: str | None = None
    kind: str | None = None
    n: int | None = None
    metric: str | None = None
    candidate: MetricValue | None = None
    reference: MetricValue | None = None
    diff: MetricValue | None = None
    excess: MetricValue | None = None
    p_value: float | None = None
    testable: bool | None = None
    note: str | None = None
    overall_diff: float | None = None
    p_adjusted: float | None = None
    flagged: bool | None = None


@dataclass
class Slices(Record):
    metric: str | None = None
    slices: list[SliceInfo] | None = None
    rows: list[SliceRow] | None = None
    method: str | None = None


@dataclass
class Holdout(Record):
    """Uses of the evaluated split in the store: report evaluations, selections, studies, warnings."""

    evaluations: int | None = None
    selections: int | None = None
    studies: list[str] | None = None
    warnings: list[str] | None = None


@dataclass
class MethodRun(Record):
    params: dict[str, Any] | None = None
    seconds: float | None = None


@dataclass
class ExamplePair(Record):
    eval_index: int | None = None
    train_index: int | None = None
    similarity: float | None = None
    eval_text: str | None = None
    train_text: str | None = None


@dataclass
class Contamination(Record):
    """The evaluated split against one training split: counts and fractions per method (and "any"),
    each method's settings and time, a few example pairs, and every flagged evaluated example: `flagged`
    (per method and "any", evaluated example ids in split order), `flagged_train` (per method, the matching
    training example's id, parallel to `flagged`), `flagged_score` (parallel, for the methods with a score:
    n-gram coverage, near-duplicate Jaccard). Results from before the flags lack the three keys."""

    n_train: int | None = None
    n_eval: int | None = None
    counts: dict[str, int | None] | None = None
    fraction: dict[str, float | None] | None = None
    methods: dict[str, MethodRun | None] | None = None
    examples: dict[str, list[ExamplePair] | None] | None = None
    flagged: dict[str, list[Any] | None] | None = fld(omit_none=True)
    flagged_train: dict[str, list[Any] | None] | None = fld(omit_none=True)
    flagged_score: dict[str, list[float | None] | None] | None = fld(omit_none=True)


@dataclass
class Decontaminated(Record):
    metric: str | None = None
    n_clean: int | None = None
    candidates: dict[str, MetricValue | None] | None = None


@dataclass
class Integrity(Record):
    """Holdout use, contamination per training split, the rows flagged by any method against any split
    (`contaminated_rows`: indices into the evaluated split; `contaminated_ids`: their example ids, in the
    same order), duplicates inside the evaluated split, the metric on the clean subset."""

    holdout: Holdout | None = None
    evaluated: str | None = None
    against: dict[str, Contamination | None] | None = None
    contaminated_rows: list[int] | None = None
    contaminated_ids: list[str] | None = fld(omit_none=True)
    duplicates: dict[str, Any] | None = None
    decontaminated: Decontaminated | None = fld(omit_none=True)


@dataclass
class Traffic(Record):
    queries_per_day: float | None = None
    horizon_days: float | None = None


@dataclass
class Prices(Record):
    usd_per_hour: float | None = None
    usd_per_kwh: float | None = None
    co2_kg_per_kwh: float | None = None
    utilisation: float | None = None


@dataclass
class Tco(Record):
    profile: str | None = None
    traffic: Traffic | None = None
    prices: Prices | None = None
    method: str | None = None


@dataclass
class PhaseTotals(Record):
    seconds: float | None = None
    cpu_seconds: float | None = None
    flops: float | None = None
    entries: int | None = None
    kwh: float | None = fld(omit_none=True)
    usd: float | None = fld(omit_none=True)


@dataclass
class Reconcile(Record):
    """The ledger's total against the run's measured wall time."""

    total: float | None = None
    measured: float | None = None
    gap: float | None = None
    gap_rel: float | None = None
    tolerance: float | None = None
    ok: bool | None = None


@dataclass
class StudyCost(Record):
    by_phase: dict[str, PhaseTotals | None] | None = None
    seconds: float | None = None
    reconcile: Reconcile | None = None
    energy_method: str | None = fld(omit_none=True)
