"""The typed results of one study: what `analyse` fills, what the report reads, and the JSON contract
(docs/architecture.md, "Results JSON") they write with `to_dict()`.

Every record is a dataclass built on `Record`:

- `to_dict()` gives the JSON form: fields in declared order (a field marked `omit_none` is left out while it
  is None; a `flatten` field's keys sit in its parent's dict, the whole group left out when it is None),
  then `extra`.
- `from_dict(d)` reads a JSON form back, tolerantly: a missing or null part is None, a part that is not a
  mapping where a record belongs is None, keys this version does not know go to `extra`. The keys read are
  remembered (`keys`), so `to_dict()` writes exactly those keys back, in their order (a key that was absent
  stays absent; a field set afterwards is added at the end). `has(name)` says whether a key was given.

Records built in code may pass `keys` too, to fix a layout (the reference's short `vs_reference`).
Free-form parts stay plain dicts: a model's `describe()`, build steps' `info`, the manifest's extra entries,
task metadata, duplicate statistics.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

R = TypeVar("R", bound="Record")


def fld(default: Any = None, *, key: str | None = None, omit_none: bool = False, flatten: bool = False,
        factory: Any = None) -> Any:
    """A record field: `key` is its JSON name when it differs (`from`), `omit_none` leaves it out of
    `to_dict()` while None, `flatten` writes a nested record's keys into the parent."""
    meta = {"key": key, "omit_none": omit_none, "flatten": flatten}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class _Spec:
    name: str
    key: str
    omit_none: bool
    flatten: bool
    hint: Any


_SPECS: dict[type, list[_Spec]] = {}


def _specs(cls: type) -> list[_Spec]:
    """The data fields of a record class (not `extra`/`keys`), with their JSON keys and resolved types."""
    found = _SPECS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = [_Spec(f.name, f.metadata.get("key") or f.name, bool(f.metadata.get("omit_none")),
                       bool(f.metadata.get("flatten")), hints[f.name])
                 for f in dataclasses.fields(cls) if f.name not in ("extra", "keys")]
        _SPECS[cls] = found
    return found


def _json_keys(cls: type) -> list[str]:
    """Every JSON key a record class reads, its flattened groups' keys included."""
    out: list[str] = []
    for s in _specs(cls):
        out.extend(_json_keys(_record_in(s.hint)) if s.flatten else [s.key])
    return out


def _is_record(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Record)


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return tuple(a for a in typing.get_args(tp) if a is not type(None))
    return None


def _record_in(tp: Any) -> Any:
    args = _union_args(tp)
    for a in args if args is not None else (tp,):
        if _is_record(a):
            return a
    return None


def _convert(tp: Any, value: Any) -> Any:
    """`value` (from JSON) as type `tp`: records and containers of records are read recursively; a part of
    the wrong shape (not a mapping where one belongs) becomes None; anything else is kept as it is."""
    if value is None:
        return None
    args = _union_args(tp)
    if args is not None:
        shaped = [a for a in args if _is_record(a) or typing.get_origin(a) in (dict, list)]
        for a in shaped:
            if isinstance(value, Mapping) == (_is_record(a) or typing.get_origin(a) is dict):
                return _convert(a, value)
        return None if len(shaped) == len(args) else value
    if _is_record(tp):
        return tp.from_dict(value) if isinstance(value, Mapping) else None
    origin = typing.get_origin(tp)
    if origin is dict:
        if not isinstance(value, Mapping):
            return None
        item = typing.get_args(tp)[1] if typing.get_args(tp) else Any
        return {str(k): _convert(item, v) for k, v in value.items()}
    if origin is list:
        if not isinstance(value, (list, tuple)):
            return None
        item = typing.get_args(tp)[0] if typing.get_args(tp) else Any
        if _record_in(item) is not None:
            return [_convert(item, v) for v in value if isinstance(v, Mapping)]
        return list(value)
    return value


def _dump(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


@dataclass
class Record:
    """Base of every results record (see the module docstring)."""

    extra: dict[str, Any] = field(default_factory=dict, kw_only=True, repr=False)
    keys: tuple[str, ...] | None = field(default=None, kw_only=True, repr=False, compare=False)

    @classmethod
    def from_dict(cls: type[R], data: Any) -> R | None:
        """The record read from its JSON form; None when `data` is not a mapping."""
        if not isinstance(data, Mapping):
            return None
        values: dict[str, Any] = {}
        for s in _specs(cls):
            if s.flatten:
                group = _record_in(s.hint)
                mine = {k: data[k] for k in _json_keys(group) if k in data}
                values[s.name] = group.from_dict(mine) if mine else None
            elif s.key in data:
                values[s.name] = _convert(s.hint, data[s.key])
        known = set(_json_keys(cls))
        extra = {str(k): v for k, v in data.items() if k not in known}
        return cls(**values, extra=extra, keys=tuple(str(k) for k in data))

    @classmethod
    def coerce(cls: type[R], data: Any) -> R | None:
        """`data` itself when it is already this record, else `from_dict(data)`."""
        return data if isinstance(data, cls) else cls.from_dict(data)

    def has(self, name: str) -> bool:
        """Whether the JSON key `name` is part of this record's JSON form: given when it was read (null
        included), or set since."""
        return name in self.to_dict()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see the module docstring)."""
        out: dict[str, Any] = {}
        for s in _specs(type(self)):
            value = getattr(self, s.name)
            if s.flatten:
                if value is not None:
                    out.update(value.to_dict())
                continue
            if value is None and (s.key not in self.keys if self.keys is not None else s.omit_none):
                continue
            out[s.key] = _dump(value)
        for k, v in self.extra.items():
            out.setdefault(k, _dump(v))
        if self.keys is None:
            return out
        ordered = {k: out[k] for k in self.keys if k in out}
        ordered.update((k, v) for k, v in out.items() if k not in ordered)
        return ordered


# ---------------------------------------------------------------------------------------------- figures


@dataclass
class MetricValue(Record):
    """A figure from a sample with its confidence interval; `method` when it is not the default one."""

    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    method: str | None = fld(omit_none=True)

    @classmethod
    def of(cls, ci: Any) -> MetricValue:
        """From a stats CI object (`value`, `low`, `high`)."""
        return cls(value=float(ci.value), ci_low=float(ci.low), ci_high=float(ci.high))


@dataclass
class Interval(Record):
    """A cost figure with the bounds of its uncertainty (TCO, serving cost)."""

    value: float | None = None
    low: float | None = None
    high: float | None = None


# ---------------------------------------------------------------------------------------------- study level


@dataclass
class ReferenceScore(Record):
    """The machine's score on the fixed matmul micro-benchmark (latency normalisation)."""

    score: float | None = None
    unit: str | None = None
    ms_per_op: float | None = None
    iqr_ms: float | None = None
    method: str | None = None
    threads: int | None = None
    size: int | None = None
    repeats: int | None = None
    flops_per_op: float | None = None


@dataclass
class Manifest(Record):
    """Provenance of the run: versions, machine, seed, run id. Other entries (e.g. more library versions)
    are kept in `extra`, in their order."""

    leanbench: str | None = None
    git_commit: str | None = None
    python: str | None = None
    torch: str | None = None
    numpy: str | None = None
    cpu: str | None = None
    cores: int | None = None
    platform: str | None = None
    seed: int | None = None
    reference_score: ReferenceScore | float | None = None
    run_id: int | None = None
    started_at: str | None = None
    run_seconds: float | None = None

    def items(self) -> list[tuple[str, Any]]:
        """(key, value) in the manifest's own order, values in their JSON form."""
        return list(self.to_dict().items())


@dataclass
class SplitInfo(Record):
    name: str | None = None
    n: int | None = None
    fingerprint: str | None = None


@dataclass
class TaskInfo(Record):
    kind: str | None = None
    source: str | None = None
    n_classes: int | None = None
    label_names: list[str] | None = None
    meta: dict[str, Any] | None = None
    splits: dict[str, SplitInfo | None] | None = None
    evaluated_split: str | None = None


@dataclass
class DecisionInfo(Record):
    """The decision rule as applied: metric, margin, alpha, CI level and resamples, test, correction, seeds.
    `correction` None means "no correction"; a results dict without the key predates corrections."""

    metric: str | None = None
    margin: float | None = None
    alpha: float | None = None
    confidence: float | None = None
    bootstrap: int | None = None
    higher_is_better: bool | None = None
    test: str | None = None
    correction: str | None = None
    seeds: list[int] | None = None


@dataclass
class Power(Record):
    n: int | None = None
    minimum_detectable_margin: float | None = None
    required_n: int | None = None
    underpowered: bool | None = None
    margin: float | None = None
    p_discordant: float | None = None
    alpha: float | None = None
    power: float | None = None


@dataclass
class MetricInfo(Record):
    higher_is_better: bool | None = None
    unit: str | None = None
    description: str | None = None


# ---------------------------------------------------------------------------------------------- comparisons


@dataclass
class Equivalence(Record):
    """TOST at ±margin."""

    equivalent: bool | None = None
    p_value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None
    method: str | None = None


REFERENCE_KEYS = ("metric", "diff", "ci_low", "ci_high", "p_value", "margin", "verdict")


@dataclass
class Comparison(Record):
    """Candidate minus reference on one metric: the paired difference with its CI, the one-sided bootstrap
    p-values, McNemar where the metric has per-example correctness, the verdict before and after the
    multiplicity correction, and TOST when the study asks for equivalence."""

    metric: str | None = None
    diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    method: str | None = None
    margin: float | None = None
    verdict_unadjusted: str | None = None
    p_value: float | None = None
    p_value_test: str | None = None
    p_noninferiority: float | None = None
    p_superiority: float | None = None
    p_inferiority: float | None = None
    discordant: float | None = fld(omit_none=True)
    mcnemar_b: int | None = fld(omit_none=True)
    mcnemar_c: int | None = fld(omit_none=True)
    equivalence: Equivalence | None = fld(omit_none=True)
    p_noninferiority_adjusted: float | None = fld(omit_none=True)
    p_superiority_adjusted: float | None = fld(omit_none=True)
    p_inferiority_adjusted: float | None = fld(omit_none=True)
    verdict_adjusted: str | None = fld(omit_none=True)
    correction: str | None = fld(omit_none=True)
    level: float | None = fld(omit_none=True)
    verdict: str | None = None

    @classmethod
    def for_reference(cls, metric: str, margin: float) -> Comparison:
        """The reference against itself: zero difference, verdict "reference"."""
        return cls(metric=metric, diff=0.0, ci_low=0.0, ci_high=0.0, p_value=None, margin=margin,
                   verdict="reference", keys=REFERENCE_KEYS)


# ---------------------------------------------------------------------------------------------- candidates


@dataclass
class SeedSpread(Record):
    """The decision metric of each seed's run: values, mean, std (ddof=1), min, max."""

    metric: str | None = None
    n: int | None = None
    planned: list[int] | None = None
    values: list[float] | None = None
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None


@dataclass
class EndToEnd(Record):
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    method: str | None = None

    def percentile(self, p: int) -> float | None:
        return {50: self.p50_ms, 90: self.p90_ms, 99: self.p99_ms}.get(p)


@dataclass
class Latency(Record):
    """Latency of one deployment profile: percentiles (with CIs), the setting, and for text models the end
    to end figures (tokenization inside the timing); `normalised_ms` in reference-machine milliseconds."""

    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    std_ms: float | None = None
    min_ms: float | None = None
    threads: int | None = None
    batch: int | None = None
    warmup: int | None = None
    runs: int | None = None
    method: str | None = None
    p50_ci: list[float | None] | None = None
    ci_method: str | None = None
    p90_ci: list[float | None] | None = None
    p99_ci: list[float | None] | None = None
    end_to_end: EndToEnd | None = fld(omit_none=True)
    normalised_ms: float | dict[str, Any] | None = fld(omit_none=True)

    def percentile(self, p: int) -> float | None:
        return {50: self.p50_ms, 90: self.p90_ms, 99: self.p99_ms}.get(p)

    def percentile_ci(self, p: int) -> list[float | None] | None:
        return {50: self.p50_ci, 90: self.p90_ci, 99: self.p99_ci}.get(p)


@dataclass
class Throughput(Record):
    """The throughput setting of the pricing profile (the rate itself is the candidate's
    `throughput_per_s`); in a measure cell also `per_s`."""

    per_s: float | None = fld(omit_none=True)
    threads: int | None = None
    batch: int | None = None
    warmup: int | None = None
    runs: int | None = None
    p50_batch_ms: float | None = None
    method: str | None = None
    ci: list[float | None] | None = None
    ci_method: str | None = None
    profile: str | None = fld(omit_none=True)


@dataclass
class Memory(Record):
    peak_bytes: int | None = None
    weights_bytes: int | None = None
    activation_bytes: int | None = None
    batch: int | None = None
    rss_peak_delta_bytes: int | None = None
    method: str | None = None


@dataclass
class Slo(Record):
    """A latency target at a percentile: met (the CI is within it), missed, or uncertain (None)."""

    meets: bool | None = None
    status: str | None = None
    slo_ms: float | None = None
    latency_ms: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    headroom_ms: float | None = None
    percentile: float | None = None


@dataclass
class AutoBatch(Record):
    batch: int | None = None
    per_s: float | None = None


@dataclass
class ProfileResult(Record):
    """Serving under one deployment profile: throughput with its CI, the setting, energy per query (and
    how it was obtained), memory against the cap, the SLO."""

    throughput_per_s: float | None = None
    throughput_ci: list[float | None] | None = None
    batch: int | None = None
    threads: int | None = None
    auto_batch: list[AutoBatch] | None = None
    energy_j_per_query: float | None = None
    energy_method: str | None = None
    energy_uncertainty: float | None = None
    memory_cap_ok: bool | None = None
    peak_memory_bytes: int | None = None
    slo: Slo | None = None


@dataclass
class BuildPhase(Record):
    seconds: float | None = None
    kwh: float | None = None
    usd: float | None = None


@dataclass
class BuildLedger(Record):
    """What the ledger says a candidate cost to build (it and everything it derives from, each once)."""

    build_kwh: float | None = None
    build_usd: float | None = None
    build_co2_kg: float | None = None
    build_by_phase: dict[str, BuildPhase | None] | None = None
    energy_method: str | None = None
    energy_uncertainty: float | None = None
    seeds_built: int | None = None


@dataclass
class Serving(Record):
    """Serving cost at the study's traffic on the pricing profile, and the total cost of ownership."""

    serve_usd_per_million: Interval | float | None = None
    tco_usd: Interval | float | None = None
    tco_kwh: Interval | float | None = None
    tco_co2_kg: Interval | float | None = None
    keeps_up: bool | None = None
    profile: str | None = None


@dataclass
class BreakEven(Record):
    """Queries after which a candidate's cumulative cost crosses the reference's; `status` says which way
    (after, until, immediately, never, equal)."""

    status: str | None = None
    queries: float | None = None
    extra_build_usd: float | None = None
    saving_per_query_usd: float | None = None
    low: float | None = None
    high: float | None = None
    status_range: list[str | None] | None = None


@dataclass
class BreakEvenGroup(Record):
    break_even: BreakEven | None = None
    break_even_queries: float | None = None


@dataclass
class SweepCost(Record):
    n_trials: int | None = None
    seconds: float | None = None
    usd: float | None = None
    best_params: dict[str, Any] | None = None
    best_value: float | None = None


@dataclass
class CandidateCost(Record):
    """A candidate's bill: build time (own cells and incl. what it derives from), and, where the ledger and
    the measurements allow, energy, money, serving cost, TCO and break-even vs the reference."""

    build_seconds: float | None = None
    build_seconds_own: float | None = None
    build_flops: float | None = None
    ledger: BuildLedger | None = fld(flatten=True)
    serving: Serving | None = fld(flatten=True)
    sweep: SweepCost | None = fld(omit_none=True)
    break_even: BreakEvenGroup | None = fld(flatten=True)


@dataclass
class CandidateResult(Record):
    """One candidate: what it is, its metrics with CIs, its comparison with the reference, how fast, how
    big and what it costs."""

    name: str | None = None
    from_: str | None = fld(key="from")
    steps: list[Any] | None = None
    describe: dict[str, Any] | None = None
    build_info: list[dict[str, Any]] | None = None
    params: int | None = None
    nonzero_params: int | None = None
    size_bytes: int | None = None
    flops_per_example: float | None = None
    flops_method: str | None = None
    metrics: dict[str, MetricValue | None] | None = None
    vs_reference: Comparison | None = None
    comparisons: dict[str, Comparison | None] | None = None
    seeds: SeedSpread | None = None
    latency: dict[str, Latency | None] | None = None
    speedup_vs_reference: float | None = None
    throughput_per_s: float | None = None
    throughput: Throughput | None = None
    profiles: dict[str, ProfileResult | None] | None = None
    peak_memory_bytes: int | None = None
    memory: Memory | None = None
    cost: CandidateCost | None = None
    n_evaluated: int | None = fld(omit_none=True)

    @property
    def verdict(self) -> str | None:
        return self.vs_reference.verdict if self.vs_reference is not None else None

    def metric(self, name: str) -> MetricValue:
        """The metric's value and CI (an empty one when it is missing)."""
        return (self.metrics or {}).get(name) or MetricValue()

    def latency_of(self, profile: str | None) -> Latency | None:
        return (self.latency or {}).get(profile) if profile is not None else None

    def profile(self, name: str) -> ProfileResult | None:
        return (self.profiles or {}).get(name)

    def comparison(self, metric: str) -> Comparison | None:
        return (self.comparisons or {}).get(metric)


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
    each method's settings and time, a few example pairs."""

    n_train: int | None = None
    n_eval: int | None = None
    counts: dict[str, int | None] | None = None
    fraction: dict[str, float | None] | None = None
    methods: dict[str, MethodRun | None] | None = None
    examples: dict[str, list[ExamplePair] | None] | None = None


@dataclass
class Decontaminated(Record):
    metric: str | None = None
    n_clean: int | None = None
    candidates: dict[str, MetricValue | None] | None = None


@dataclass
class Integrity(Record):
    holdout: Holdout | None = None
    evaluated: str | None = None
    against: dict[str, Contamination | None] | None = None
    contaminated_rows: list[int] | None = None
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


# ---------------------------------------------------------------------------------------------- the study


@dataclass
class StudyResults(Record):
    """Everything the report shows about one study; `to_dict()` is the results JSON."""

    study: str | None = None
    description: str | None = None
    reference: str | None = None
    generated_at: str | None = None
    manifest: Manifest | None = None
    task: TaskInfo | None = None
    decision: DecisionInfo | None = None
    power: Power | None = None
    metrics_info: dict[str, MetricInfo | None] | None = None
    measurement: dict[str, Any] | None = None
    candidates: list[CandidateResult] = fld(factory=list)
    robustness: Robustness | None = None
    slices: Slices | None = None
    integrity: Integrity | None = None
    tco: Tco | None = None
    cost: StudyCost | None = None
    notes: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        """The results JSON as a dict (the same as `to_dict()`)."""
        return self.to_dict()

    def candidate(self, name: Any) -> CandidateResult | None:
        return next((c for c in self.candidates if c.name == name), None)

    @property
    def reference_candidate(self) -> CandidateResult | None:
        return self.candidate(self.reference)


__all__ = [name for name, obj in list(globals().items())
           if isinstance(obj, type) and issubclass(obj, Record)] + ["fld"]
