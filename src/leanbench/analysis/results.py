"""The typed results of one study: what `analyse` fills, what the report reads, and the JSON contract
(docs/architecture.md, "Results JSON") they write with `to_dict()` (the `Record` base: `record.py`; figures
with CIs: `figures.py`; the study-level sections: `result_sections.py`, re-exported here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leanbench.analysis.figures import Interval, MetricValue  # noqa: F401
from leanbench.analysis.recommendation import (  # noqa: F401
    CandidateCheck,
    Constraint,
    ProfileCheck,
    Recommendation,
    TaskCheck,
)
from leanbench.analysis.record import Record, fld
from leanbench.analysis.result_sections import (  # noqa: F401
    Contamination,
    Decontaminated,
    ExamplePair,
    Holdout,
    Integrity,
    MethodRun,
    PerturbationCell,
    PhaseTotals,
    Prices,
    Reconcile,
    Robustness,
    RobustnessEntry,
    SliceInfo,
    SliceRow,
    Slices,
    StudyCost,
    Tco,
    Traffic,
)

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
class VerdictFamily(Record):
    """One family of comparisons, adjusted together: its metrics, how many comparisons it holds, whether it
    gives the verdicts (the primary family) or is reported beside them (secondary)."""

    metrics: list[str] | None = None
    comparisons: int | None = None
    decides: bool | None = None


@dataclass
class DecisionInfo(Record):
    """The decision rule as applied: metric, margin, alpha, CI level and resamples, test, correction, seeds.
    `correction` None means "no correction"; a results dict without the key predates corrections.
    `families` (primary, secondary): the comparisons adjusted together; results without it adjusted every
    candidate x metric comparison as one family."""

    metric: str | None = None
    margin: float | None = None
    alpha: float | None = None
    confidence: float | None = None
    bootstrap: int | None = None
    higher_is_better: bool | None = None
    test: str | None = None
    correction: str | None = None
    seeds: list[int] | None = None
    families: dict[str, VerdictFamily | None] | None = fld(omit_none=True)


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
    multiplicity correction, and TOST when the study asks for equivalence. `family` is "primary" (the
    decision metric: its verdict is the candidate's) or "secondary" (another metric: for information), with
    the number of comparisons adjusted with it (`family_size`); `inconclusive_because` says why an
    inconclusive verdict is one ("multiplicity", "power", "ci_straddles_margin":
    `leanbench.stats.multiplicity.inconclusive_reason`)."""

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
    family: str | None = fld(omit_none=True)
    family_size: int | None = fld(omit_none=True)
    verdict: str | None = None
    inconclusive_because: str | None = fld(omit_none=True)

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
    # the interleaved protocol (measurements before it have none of these)
    protocol: str | None = fld(omit_none=True)
    rounds: int | None = fld(omit_none=True)
    calls_per_round: int | None = fld(omit_none=True)
    disturbed_rounds: int | None = fld(omit_none=True)
    disturbed_rounds_any: int | None = fld(omit_none=True)
    attempts: int | None = fld(omit_none=True)
    unreliable: bool | None = fld(omit_none=True)
    load: dict[str, Any] | None = fld(omit_none=True)
    round_medians: list[float] | None = fld(omit_none=True)  # ms per call, per round (interleaved protocol)

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
class Speedup(Record):
    """A candidate's speed-up over the reference under one profile (> 1: faster), from interleaved rounds:
    exp(median over rounds of log(reference / candidate) per-round medians), with its CI; `faster` / `slower`
    only when the CI excludes 1 (leanbench.stats.speedup). A speed-up over another candidate (its parent,
    its runtime control) names it in `baseline`."""

    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    rounds: int | None = None
    disturbed_rounds: int | None = None
    faster: bool | None = None
    slower: bool | None = None
    confidence: float | None = None
    min_effect: float | None = None
    method: str | None = None
    baseline: str | None = fld(omit_none=True)


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
    speedup: dict[str, Speedup | None] | None = fld(omit_none=True)
    throughput_ratio: dict[str, Speedup | None] | None = fld(omit_none=True)
    speedup_vs_parent: dict[str, Speedup | None] | None = fld(omit_none=True)
    runtime_control: str | None = fld(omit_none=True)
    speedup_vs_control: dict[str, Speedup | None] | None = fld(omit_none=True)
    throughput_per_s: float | None = None
    throughput: Throughput | None = None
    profiles: dict[str, ProfileResult | None] | None = None
    peak_memory_bytes: int | None = None
    memory: Memory | None = None
    cost: CandidateCost | None = None
    n_evaluated: int | None = fld(omit_none=True)
    # LLM serving per profile (analysis/serving.py): figures with CIs by batch, speed-ups vs reference / control
    serving: dict[str, Any] | None = fld(omit_none=True)
    # a study of several tasks (analysis/multitask.py): per task the one-task entry's quality part, and the
    # cross-task summary; `metrics` and `vs_reference` above are then null
    tasks: dict[str, CandidateTask | None] | None = fld(omit_none=True)
    cross_task: CrossTask | None = fld(omit_none=True)

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

    def speedup_of(self, profile: str | None) -> Speedup | None:
        return (self.speedup or {}).get(profile) if profile is not None else None

    def speedup_vs_parent_of(self, profile: str | None) -> Speedup | None:
        return (self.speedup_vs_parent or {}).get(profile) if profile is not None else None

    def speedup_vs_control_of(self, profile: str | None) -> Speedup | None:
        return (self.speedup_vs_control or {}).get(profile) if profile is not None else None


# ---------------------------------------------------------------------------------------------- several tasks


@dataclass
class CandidateTask(Record):
    """A candidate on one task of a study of several tasks, shaped like a one-task candidate entry's quality
    part: its metrics with CIs and its comparison with the reference (the verdict corrected across every task,
    candidate and metric of the study), every metric's comparison, the examples evaluated, the seeds' spread."""

    metrics: dict[str, MetricValue | None] | None = None
    vs_reference: Comparison | None = None
    comparisons: dict[str, Comparison | None] | None = fld(omit_none=True)
    n_evaluated: int | None = fld(omit_none=True)
    seeds: SeedSpread | None = fld(omit_none=True)


@dataclass
class WorstTask(Record):
    """The task on which a candidate loses most against the reference (its difference on the task's decision
    metric, oriented so that lower is worse), with that task's CI and verdict."""

    task: str | None = None
    metric: str | None = None
    diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    verdict: str | None = None


@dataclass
class CrossTask(Record):
    """A candidate across the tasks of the study: `macro_diff`, the mean over `tasks` of its difference from the
    reference on each task's decision metric (oriented: higher is better), with a CI (bootstrap: each task's
    examples resampled independently, paired with the reference within the task); the `worst` task; the tasks
    on which it is significantly worse than the reference beyond the margin (`inferior_tasks`, verdicts after
    the correction); the tasks it cannot serve (`skipped_tasks`) or has no evaluation on yet
    (`not_evaluated`); each task's verdict."""

    tasks: list[str] | None = None
    metrics: dict[str, str] | None = None
    macro_diff: MetricValue | None = None
    method: str | None = None
    worst: WorstTask | None = None
    inferior_tasks: list[str] | None = None
    verdicts: dict[str, str | None] | None = None
    skipped_tasks: list[str] | None = None
    not_evaluated: list[str] | None = None
    note: str | None = fld(omit_none=True)


@dataclass
class TaskResult(Record):
    """One task of a study of several tasks: its one-task study (`study`, in the store), kind, source, examples
    evaluated, decision metric and margin, the candidates evaluated on it and those that cannot serve it."""

    name: str | None = None
    study: str | None = None
    kind: str | None = None
    source: str | None = None
    n: int | None = None
    metric: str | None = None
    margin: float | None = None
    higher_is_better: bool | None = None
    metrics: list[str] | None = None
    candidates: list[str] | None = None
    skipped: list[str] | None = None


# ---------------------------------------------------------------------------------------------- the study


@dataclass
class FailedCell(Record):
    """A cell of the study's last run that failed (or was not run: `blocked_by` is the failed cell it needs)."""

    cell: str | None = None
    kind: str | None = None
    candidate: str | None = None
    error: str | None = None
    blocked_by: str | None = None


@dataclass
class StudyResults(Record):
    """Everything the report shows about one study; `to_dict()` is the results JSON. `recommendation` (what to
    ship, `analysis/recommendation.py`) is None in results written before it existed."""

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
    recommendation: Recommendation | None = fld(omit_none=True)
    failed_cells: list[FailedCell] | None = fld(omit_none=True)  # of the last run; None: none failed
    # generation tasks (analysis/generations.py): settings and a sample of each candidate's generated text
    generations: dict[str, Any] | None = fld(omit_none=True)
    # a study of several tasks (analysis/multitask.py): the tasks, and each task's one-task results (verdicts
    # corrected across the study)
    tasks: list[TaskResult] | None = fld(omit_none=True)
    task_results: dict[str, StudyResults | None] | None = fld(omit_none=True)

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
