"""The study: the typed, frozen config a study YAML file is validated into.

Reading the file, ``${VAR}`` interpolation and the one-message-per-problem errors live in
``leanbench.study_loader`` (``load_study``, ``parse_study``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    field_validator,
    model_validator,
)

from leanbench.errors import LeanbenchError
from leanbench.plugins import FAMILIES, MODEL_KINDS, STEPS, TASK_KINDS, model_kind  # noqa: F401
from leanbench.registry import did_you_mean
from leanbench.schema.base import Strict
from leanbench.schema.models import (  # noqa: F401  (re-exported: the schema is importable from here)
    CNNSpec,
    HFSpec,
    MLPSpec,
    ModelSpec,
    TextStudentSpec,
    TfidfLogRegSpec,
)
from leanbench.schema.steps import (  # noqa: F401
    AugmentConfig,
    DistillConfig,
    FinetuneConfig,
    LoraConfig,
    LowRankConfig,
    PruneConfig,
    QuantizeConfig,
    StepSpec,
    TrainConfig,
)
from leanbench.schema.tasks import (  # noqa: F401
    CLASSIFICATION_METRICS,
    SKLEARN_DATASETS,
    DataFiles,
    DataSource,
    LanguageModelingTask,
    MultipleChoiceTask,
    SplitFractions,
    TaskConfig,
    TaskSpec,
    ValidationHoldout,
)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
METRICS = CLASSIFICATION_METRICS



# --------------------------------------------------------------------------- candidates and study
class SweepConfig(Strict):
    """Hyper-parameter search over the candidate's steps: any step parameter may be a space,
    `{log_uniform: [lo, hi]}`, `{uniform: [lo, hi]}`, `{int: [lo, hi]}` or `{choice: [a, b, ...]}`;
    trials are scored on the validation split (never the test split) and every trial is in the ledger."""

    n_trials: int = Field(10, ge=1)
    metric: str | None = Field(None, description="validation metric to optimise; default: the decision metric")
    pruner: Literal["median", "none"] = "median"
    space: dict[str, dict[str, Any]] = Field(default_factory=dict, description="filled from the steps")


def _distinct_seeds(seeds: list[int]) -> list[int]:
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    return seeds


Seeds = Annotated[list[int], AfterValidator(_distinct_seeds)]


class CandidateConfig(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    model: ModelSpec | None = None
    from_: str | None = Field(None, alias="from")
    steps: list[StepSpec] = Field(default_factory=list)
    sweep: SweepConfig | None = None
    seeds: Seeds | None = Field(
        None, min_length=1, description="build this candidate with only these of the study's seeds (an expensive "
                                        "one with fewer); default: its parent's seeds, else every seed")

    @model_validator(mode="after")
    def _origin(self) -> CandidateConfig:
        if (self.model is None) == (self.from_ is None):
            raise ValueError("give exactly one of 'model' (build from scratch) or 'from' (start from a candidate)")
        if self.model is not None and not self.model.pretrained and (
                not self.steps or not self.steps[0].plugin.starts_model):
            starting = " or ".join(n for n in STEPS.in_order() if STEPS.get(n).starts_model)
            raise ValueError(f"a candidate built from scratch ('{model_kind(self.model)}') needs a {starting} "
                             "step first")
        return self

    @property
    def teachers(self) -> list[str]:
        """The other candidates its steps name (distillation teachers): built before it."""
        return [name for s in self.steps for name in s.plugin.named(s.config)]


class SliceConfig(Strict):
    """Named subsets of the evaluation split, each reported with its own metric and CI."""

    labels: bool = Field(True, description="one slice per gold label")
    length_quantiles: int = Field(4, ge=0, le=20, description="text only: slices by word-count quantile; 0 = off")
    keywords: dict[str, list[str]] = Field(default_factory=dict,
                                           description="slice name -> words (case-insensitive, whole words)")
    regex: dict[str, str] = Field(default_factory=dict, description="slice name -> regular expression")

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"slice '{name}': invalid regular expression {pattern!r} ({exc})") from None
        return value


Perturbations = Literal["default", "none"] | list[dict[str, dict[str, Any] | None]]
Device = Literal["cpu", "cuda"]  # where a PyTorch model runs (models/device.py); key-neutral at "cpu"


class EvaluateConfig(Strict):
    split: Literal["test", "validation"] = "test"
    metrics: list[str] | None = Field(None, min_length=1, description="default: every metric of the task kind")
    bootstrap: int = Field(1000, ge=100, description="bootstrap resamples for every CI")
    confidence: float = Field(0.95, gt=0.5, lt=1)
    batch_size: int = Field(256, gt=0, description="examples per forward; causal LMs: sequences per forward (one "
                            "per question, its context and every choice; one per window for perplexity)")
    seeds: Seeds | None = Field(None, min_length=1,
                                description="build every stochastic candidate once per seed; default [seed]")
    perturbations: Perturbations = Field(
        "default", description="'default' (the suite for the input kind), 'none', or a list of {name: {params}}")
    slices: SliceConfig = SliceConfig()
    device: Device = Field("cpu", description="where PyTorch candidates are evaluated ('cuda': on the GPU); other "
                           "runtimes (ONNX Runtime, llama.cpp, scikit-learn) evaluate on the CPU as always")

    @field_validator("perturbations")
    @classmethod
    def _known_perturbations(cls, value: Any) -> Any:
        if isinstance(value, list):
            from leanbench.evaluate.perturb import perturbation_from_config

            problems = []
            for i, item in enumerate(value):
                if len(item) != 1:
                    problems.append(f"[{i}] must be a one-key mapping {{name: {{params}}}}, got {item!r}")
                    continue
                name, params = next(iter(item.items()))
                try:
                    perturbation_from_config(name, params or {})
                except LeanbenchError as exc:
                    problems.append(f"[{i}] {exc}")
            if problems:
                raise ValueError("; ".join(problems))
        return value


class DecisionConfig(Strict):
    metric: str | None = Field(None, description="default: the task kind's first metric (accuracy)")
    margin: float = Field(0.01, ge=0, lt=1, description="non-inferiority margin, in the metric's units")
    alpha: float = Field(0.05, gt=0, le=0.5)
    test: Literal["non-inferiority", "equivalence"] = Field(
        "non-inferiority", description="equivalence adds a TOST at ±margin beside the non-inferiority verdict")
    correction: Literal["holm", "none"] = Field(
        "holm", description="multiplicity control over all candidate x metric comparisons of the study")


class IntegrityConfig(Strict):
    """Checks between the data a study trains on and the data it reports on (leanbench.integrity.contamination
    describes the methods). The n-gram method ignores boilerplate (n-grams held by more than `ngram_max_df`
    texts, training and evaluated together) and flags a text when its shared n-grams cover
    `ngram_min_coverage` of its other words; `ngram_max_df: null, ngram_min_coverage: 0` is the plain GPT-3
    rule (any shared n-gram). These settings enter the integrity cell's key: changing them reruns only that
    cell."""

    contamination: bool = True
    ngram: int = Field(13, ge=3, le=50, description="word n-gram overlap length (GPT-3 / lm-evaluation-harness: 13)")
    ngram_max_df: int | None = Field(
        20, ge=1, description="n-grams held by more than this many distinct texts (training and evaluated "
        "together) are boilerplate and ignored (null: none ignored)")
    ngram_min_coverage: float = Field(
        0.3, ge=0, le=1, description="share of an evaluated text's non-boilerplate words that its shared n-grams "
        "must cover for the n-gram method to flag it (0: any shared n-gram)")
    near_duplicate_threshold: float = Field(0.8, gt=0, le=1, description="MinHash Jaccard threshold")


class ServingConfig(Strict):
    """LLM serving figures (``measure/serving.py``) for every candidate that generates (a causal LM on any
    runtime): prefill tokens/s and time to first token at each prompt length, decode tokens/s and time per
    output token over `new_tokens` generated tokens, at each batch, and peak memory with the KV cache at the
    longest context; each over `rounds` interleaved rounds, with CIs. Threads come from each profile."""

    enabled: bool = True
    prompt_lengths: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [128, 512], min_length=1, description="prompt tokens of the prefill figures "
                                                                      "(llama-bench pp512); the first is the "
                                                                      "decode prompt")
    new_tokens: int = Field(128, ge=2, description="generated tokens per decode figure (llama-bench tg128)")
    batches: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [1, 4], min_length=1,
                                                       description="sequences per call")
    rounds: int = Field(6, ge=3, description="interleaved rounds (6 is the fewest that bound a 95% CI of a "
                        "median on both sides)")
    warmup: int = Field(1, ge=0, description="untimed generations per candidate and setting before the rounds")


class MeasureConfig(Strict):
    """The timing protocol, the same for every candidate and runtime; the settings (threads, batch) come
    from the deployment profiles. Every candidate of a profile is timed together in `rounds` interleaved
    rounds (each a short block per candidate, order shuffled per round), so that a noisy neighbour or a
    drift hits all of them alike; speed-ups come with a CI from per-round medians paired by round."""

    enabled: bool = True
    warmup: int = Field(20, ge=0, description="untimed calls before latency timing")
    runs: int = Field(200, ge=10, description="timed calls per latency figure (more when a percentile needs it), "
                      "spread over the rounds")
    rounds: int = Field(20, ge=6, description="interleaved rounds (6 is the fewest that bound a 95% CI of a "
                        "median speed-up on both sides)")
    protocol: Literal["interleaved", "blocks"] = Field(
        "interleaved", description="'blocks': each candidate's rounds back to back (the old protocol, to compare)")
    max_disturbed_share: float = Field(0.25, ge=0, le=1, description="share of disturbed rounds above which a "
                                       "measurement is repeated, then marked unreliable")
    repeats: int = Field(1, ge=0, description="repeats of a measurement with too many disturbed rounds")
    min_speedup: float = Field(0.05, ge=0, lt=1, description="a speed-up is claimed only when its whole CI is "
                               "above 1 + this (a slow-down below 1 / (1 + this)): identical models timed "
                               "side by side differ by up to 3% here")
    throughput_warmup: int = Field(3, ge=0)
    throughput_runs: int = Field(20, ge=3, description="interleaved rounds of one call at the profile's batch "
                                 "(fewer than 6 leave the throughput ratio's CI open)")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="confidence of latency-percentile and speed-up CIs")
    serving: ServingConfig = ServingConfig()


class Traffic(Strict):
    queries_per_day: float = Field(100_000, gt=0)
    horizon_days: float = Field(365, gt=0)


class ProfileConfig(Strict):
    """A deployment setting: threads, batch, optional memory cap and latency SLO."""

    name: str = Field(pattern=NAME_PATTERN)
    threads: int = Field(1, ge=0, description="0 = all cores")
    batch: int | Literal["auto"] = Field(1, description="'auto' = the best throughput of `deploy.auto_batches`")
    memory_cap_mb: float | None = Field(None, gt=0)
    slo_ms: float | None = Field(None, gt=0, description="latency target at `slo_percentile`")
    slo_percentile: float = Field(0.9, gt=0, lt=1)
    device: Device = Field("cpu", description="where PyTorch candidates run while measured: 'cuda' times them on "
                           "the GPU (CUDA-synchronised calls, GPU memory, NVML energy); every candidate of a cuda "
                           "profile must be a PyTorch model")

    @field_validator("batch")
    @classmethod
    def _positive(cls, batch: int | str) -> int | str:
        if isinstance(batch, int) and batch < 1:
            raise ValueError(f"batch must be >= 1 or 'auto', got {batch}")
        return batch


def _default_profiles() -> list[ProfileConfig]:
    return [ProfileConfig(name="edge", threads=1, batch=1), ProfileConfig(name="server", threads=0, batch="auto")]


class DeployConfig(Strict):
    profiles: list[ProfileConfig] = Field(default_factory=_default_profiles, min_length=1)
    traffic: Traffic = Traffic()
    tco_profile: str | None = Field(None, description="profile whose throughput prices serving; default: server")
    auto_batches: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [1, 8, 32, 128, 256],
                                                            min_length=1)

    @model_validator(mode="after")
    def _names(self) -> DeployConfig:
        names = [p.name for p in self.profiles]
        if len(set(names)) != len(names):
            raise ValueError(f"profile names must be distinct, got {names}")
        if self.tco_profile is not None and self.tco_profile not in names:
            raise ValueError(f"tco_profile: no profile named '{self.tco_profile}'"
                             f"{did_you_mean(self.tco_profile, names)}; profiles: {', '.join(names)}")
        return self

    @property
    def pricing_profile(self) -> str:
        names = [p.name for p in self.profiles]
        return self.tco_profile or ("server" if "server" in names else names[0])


class CostConfig(Strict):
    """Prices: hardware per hour, energy per kWh, grid carbon intensity."""

    usd_per_hour: float = Field(0.10, ge=0, description="hardware price per hour of the serving machine")
    usd_per_kwh: float = Field(0.15, ge=0)
    co2_kg_per_kwh: float = Field(0.4, ge=0)
    utilisation: float = Field(1.0, gt=0, le=1, description="share of paid hardware hours spent serving")


class EnergySettings(Strict):
    """Energy: RAPL counters when readable, otherwise the stated CPU-power estimate."""

    backend: Literal["auto", "rapl", "estimate", "codecarbon"] = "auto"
    cpu_watts_per_core: float = Field(7.0, gt=0)
    memory_watts_per_gb: float = Field(0.375, ge=0)


class RunSettings(Strict):
    """How a run executes its cells; `leanbench run --jobs/--timeout/--max-memory` win over these. Never part
    of a cell key: the same cells come out whatever runs them."""

    jobs: int | None = Field(None, ge=1, description="cells at a time, each in a process of its own when > 1 "
                             "(default 1: in the driver's process)")
    timeout: float | None = Field(None, gt=0, description="seconds a cell may run before it is killed and "
                                  "recorded as failed (cells in processes of their own)")
    max_memory: int | str | None = Field(None, description="data memory a cell's process may use: MiB, or a size "
                                         "such as 512M or 4G; a cell past it is recorded as failed")

    @field_validator("max_memory")
    @classmethod
    def _size(cls, value: int | str | None) -> int | str | None:
        from leanbench.sizes import parse_memory

        try:
            parse_memory(value, "max_memory")
        except LeanbenchError:
            raise ValueError("expected a positive size such as 512M or 4G (a plain number is MiB)") from None
        return value


class TaskDecision(Strict):
    """A task's own decision metric and margin (the study's `decision` otherwise)."""

    metric: str | None = Field(None, description="default: the study's decision.metric, else the task's first metric")
    margin: float | None = Field(None, ge=0, lt=1, description="default: the study's decision.margin")


TASK_OWN_KEYS = ("name", "metrics", "decision")
PROBLEMS_SEP = "\n"  # before each problem of a study-level check: the loader lists each on its own, at its path


class NamedTask(Strict):
    """One task of a multi-task study (`tasks:`): `name`, its own `metrics` and `decision` (metric, margin), and
    everything a `task:` has (kind, data, ...), written flat: ``{name: obqa, kind: multiple-choice, data: ...}``."""

    name: str = Field(pattern=NAME_PATTERN)
    metrics: list[str] | None = Field(None, min_length=1, description="default: the study's evaluate.metrics "
                                      "where given, else every metric of the task kind")
    decision: TaskDecision | None = None
    task: TaskSpec

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, value: Any) -> Any:
        """The flat YAML form (`name` beside the task's keys) as {name, metrics, decision, task: {...}}; the
        nested form (a stored config) as it is."""
        if not isinstance(value, dict) or isinstance(value.get("task"), dict):
            return value
        return {**{k: value[k] for k in TASK_OWN_KEYS if k in value},
                "task": {k: v for k, v in value.items() if k not in TASK_OWN_KEYS}}


def _task_metrics(kind: str, metrics: list[str] | None, decision: str | None, where: str,
                  problems: list[str]) -> tuple[list[str], str] | None:
    """A task's metrics and decision metric, checked against its kind (problems appended, None: not valid)."""
    known = TASK_KINDS.get(kind).metrics
    bad = [f"{where[0]}[{i}]: unknown metric '{m}' for a {kind} task{did_you_mean(m, known)}; known: "
           f"{', '.join(known)}" for i, m in enumerate(metrics or []) if m not in known]
    if decision is not None and decision not in known:
        bad.append(f"{where[1]}: unknown metric '{decision}' for a {kind} task{did_you_mean(decision, known)}; "
                   f"known: {', '.join(known)}")
    if bad:
        problems.extend(bad)
        return None
    metrics = list(metrics or known)
    decision = decision or metrics[0]
    if decision not in metrics:
        problems.append(f"{where[1]}: '{decision}' is not in {where[0]} {metrics}")
        return None
    return metrics, decision


class Study(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    seed: int = 0
    task: TaskSpec = Field(None, description="the task (one-task form); or `tasks:`, several")
    tasks: list[NamedTask] | None = Field(
        None, min_length=1, description="several named tasks, each with its own kind, data, metrics and decision "
                                        "metric / margin; every candidate is evaluated on every task it can serve")
    reference: str
    candidates: list[CandidateConfig] = Field(min_length=1)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)  # filled in place below: one each
    decision: DecisionConfig = Field(default_factory=DecisionConfig)
    measure: MeasureConfig = MeasureConfig()
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    cost: CostConfig = CostConfig()
    energy: EnergySettings = EnergySettings()
    integrity: IntegrityConfig = IntegrityConfig()
    run: RunSettings = RunSettings()
    base_dir: str = Field(".", exclude=True, description="folder of the study file; relative paths start here")

    @model_validator(mode="after")
    def _metrics_of_the_task(self) -> Study:
        if (self.task is None) == (self.tasks is None):
            raise ValueError("give exactly one of 'task' (one task) or 'tasks' (a list of named tasks)")
        if self.tasks is not None:
            return self._check_tasks()
        known = TASK_KINDS.get(self.task.kind).metrics
        problems = [f"evaluate.metrics[{i}]: unknown metric '{m}' for a {self.task.kind} task"
                    f"{did_you_mean(m, known)}; known: {', '.join(known)}"
                    for i, m in enumerate(self.evaluate.metrics or []) if m not in known]
        if self.decision.metric is not None and self.decision.metric not in known:
            problems.append(f"decision.metric: unknown metric '{self.decision.metric}' for a {self.task.kind} task"
                            f"{did_you_mean(self.decision.metric, known)}; known: {', '.join(known)}")
        if problems:
            raise ValueError("; ".join(problems))
        metrics = list(self.evaluate.metrics or known)
        decision = self.decision.metric or metrics[0]
        if decision not in metrics:
            raise ValueError(f"decision.metric '{decision}' is not in evaluate.metrics {metrics}")
        # frozen models: fill the defaults in place once, here
        object.__setattr__(self.evaluate, "metrics", metrics)
        object.__setattr__(self.decision, "metric", decision)
        return self

    def _check_tasks(self) -> Study:
        """A multi-task study: distinct task names; each task's metrics and decision metric known to its kind
        (its own, else the study's `evaluate.metrics` / `decision.metric`)."""
        problems: list[str] = []
        seen: dict[str, int] = {}
        for i, t in enumerate(self.tasks or []):
            if t.name in seen:
                problems.append(f"tasks[{i}].name: task name '{t.name}' given twice (first at tasks[{seen[t.name]}])")
            seen.setdefault(t.name, i)
            own = t.decision.metric if t.decision is not None else None
            metrics = t.metrics if t.metrics is not None else self.evaluate.metrics
            where = (f"tasks[{i}].metrics" if t.metrics is not None else f"evaluate.metrics (for tasks[{i}])",
                     f"tasks[{i}].decision.metric" if own is not None else f"decision.metric (for tasks[{i}])")
            _task_metrics(t.task.kind, metrics, own or self.decision.metric, where, problems)
        if problems:
            raise ValueError("".join(PROBLEMS_SEP + p for p in problems))
        return self

    @property
    def task_names(self) -> list[str]:
        """The names of the study's tasks (none for a one-task study)."""
        return [t.name for t in self.tasks or []]

    def task_study(self, name: str) -> Study:
        """The one-task study of task `name` of a multi-task study: the same candidates (those that serve the
        task's kind, and what they are built from), reference, seeds, measurement and deployment, `task:` that
        task, named `<study>.<task>`, with the task's metrics and decision metric / margin. The runner runs it
        as any one-task study, so its cells are the ones that study alone would make."""
        entry = next(t for t in self.tasks or [] if t.name == name)
        serving = set(self.serving_candidates(entry.task.kind))
        keep = set(self.build_order([c.name for c in self.candidates if c.name in serving]))
        own = entry.decision or TaskDecision()
        fields = {f: getattr(self, f) for f in type(self).model_fields if f in self.model_fields_set}
        # copies: validation fills the task's metrics in place (the configs are otherwise shared, as they are)
        evaluate = self.evaluate.model_copy(update={"metrics": entry.metrics if entry.metrics is not None
                                                    else self.evaluate.metrics})
        decision = self.decision.model_copy(update={
            "metric": own.metric or self.decision.metric,
            "margin": own.margin if own.margin is not None else self.decision.margin})
        fields.update(name=f"{self.name}.{name}", task=entry.task, tasks=None, base_dir=self.base_dir,
                      candidates=[c for c in self.candidates if c.name in keep], evaluate=evaluate, decision=decision)
        fields.pop("tasks")
        return Study.model_validate(fields)

    def per_task(self) -> list[tuple[str, Study]]:
        """(task name, its one-task study) for every task of a multi-task study, in order; a one-task study is
        its own single entry, named by its task kind."""
        if self.tasks is None:
            return [(self.task.kind, self)]
        return [(t.name, self.task_study(t.name)) for t in self.tasks]

    def serving_candidates(self, kind: str) -> list[str]:
        """The candidates whose final model family serves a task of `kind` (in the study's order)."""
        families = self.families(kind)
        return [c.name for c in self.candidates
                if families.get(c.name) is not None and kind in FAMILIES.get(families[c.name]).serves]

    @property
    def seeds(self) -> list[int]:
        return list(self.evaluate.seeds or [self.seed])

    def seeds_of(self, name: str) -> list[int]:
        """The seeds a candidate is built with: its own `seeds`, else its parent's, else the study's."""
        cand = self.candidate(name)
        if cand.seeds is not None:
            return [s for s in self.seeds if s in cand.seeds]
        return self.seeds_of(cand.from_) if cand.from_ else self.seeds

    def candidate(self, name: str) -> CandidateConfig:
        for c in self.candidates:
            if c.name == name:
                return c
        raise KeyError(name)

    def resolve_path(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

    def build_order(self, names: list[str] | None = None) -> list[str]:
        """Candidate names so that every `from:` parent and `teacher:` comes before its dependants: all of
        them, or `names` and what they are built from."""
        done: list[str] = []
        for name in [c.name for c in self.candidates] if names is None else names:
            _visit(self, name, done)
        return done

    def dependencies(self, name: str) -> list[str]:
        c = self.candidate(name)
        return ([c.from_] if c.from_ else []) + c.teachers

    def families(self, kind: str | None = None) -> dict[str, str | None]:
        """The model family each candidate ends as (None where a step does not apply), in build order."""
        return {name: path[-1][1] for name, path in self.family_paths(kind).items()}

    def family_paths(self, kind: str | None = None) -> dict[str, list[tuple[str | None, str | None]]]:
        """Per candidate, in build order: (problem, family) for its starting model, then after each step (the
        problem why the step does not apply, else None; the family None from the first such step on). `kind`:
        for a task of that kind (default: the study's task; a multi-task study's first task)."""
        kind = kind or (self.task.kind if self.task is not None else self.tasks[0].task.kind)
        paths: dict[str, list[tuple[str | None, str | None]]] = {}
        for name in self.build_order():
            cand = self.candidate(name)
            if cand.model is not None:
                family = MODEL_KINDS.get(model_kind(cand.model)).family_for(kind)
            else:
                family = paths[cand.from_][-1][1]  # build order: the parent is done
            path: list[tuple[str | None, str | None]] = [(None, family)]
            for step in cand.steps:
                problem = None if family is None else step.plugin.problem(step.config, family)
                family = None if family is None or problem else step.plugin.output_family(step.config, family)
                path.append((problem, family))
            paths[name] = path
        return paths

    def plugin_problems(self) -> list[str]:
        """What the plugins cannot do for this study, found before anything runs: a step that has no handler
        for the model family it gets (or not for that method), a model whose family does not serve the task.
        With several tasks a candidate is evaluated on the tasks it can serve: a problem only when it serves
        none of them, when the reference does not serve one, or when it serves one that a candidate it is built
        from does not serve."""
        if self.tasks is not None:
            return self._tasks_plugin_problems()
        problems = self._step_problems(self.task.kind)
        index = {c.name: i for i, c in enumerate(self.candidates)}
        for name, family in self.families().items():
            if family is not None and self.task.kind not in FAMILIES.get(family).serves:
                problems.append(f"candidates[{index[name]}]: a {family} model cannot serve a {self.task.kind} task "
                                f"(it serves {', '.join(FAMILIES.get(family).serves)})")
        return problems

    def _step_problems(self, kind: str) -> list[str]:
        index = {c.name: i for i, c in enumerate(self.candidates)}
        problems = []
        for name, path in self.family_paths(kind).items():
            i = index[name]
            for j, (problem, _) in enumerate(path[1:]):
                if problem:
                    problems.append(f"candidates[{i}].steps[{j}].{self.candidates[i].steps[j].name}: {problem}")
        return problems

    def _tasks_plugin_problems(self) -> list[str]:
        problems: list[str] = []
        kinds = list(dict.fromkeys(t.task.kind for t in self.tasks or []))
        for kind in kinds:
            problems.extend(p for p in self._step_problems(kind) if p not in problems)
        if problems:
            return problems
        serving = {kind: set(self.serving_candidates(kind)) for kind in kinds}
        for i, c in enumerate(self.candidates):
            if not any(c.name in s for s in serving.values()):
                fams = {self.families(k).get(c.name) for k in kinds}
                problems.append(f"candidates[{i}]: '{c.name}' cannot serve any task of the study (a "
                                f"{' / '.join(sorted(f for f in fams if f))} model; the tasks are "
                                f"{', '.join(sorted(kinds))})")
        for t_i, t in enumerate(self.tasks or []):
            kind = t.task.kind
            if self.reference in self.candidate_names and self.reference not in serving[kind]:
                problems.append(f"tasks[{t_i}]: the reference '{self.reference}' cannot serve a {kind} task, so no "
                                f"candidate can be compared on '{t.name}'")
            for c in self.candidates:
                if c.name in serving[kind]:
                    problems.extend(
                        f"tasks[{t_i}]: '{c.name}' serves this {kind} task but '{d}', which it is built from, does not"
                        for d in self.build_order([c.name]) if d not in serving[kind])
        return problems

    @property
    def candidate_names(self) -> list[str]:
        return [c.name for c in self.candidates]

    def device_problems(self) -> list[str]:
        """`device: cuda` where it cannot hold: no CUDA device on this machine (checked only when a study asks
        for one: torch is imported then), or a cuda profile measuring a candidate whose family runs on the CPU
        only (ONNX Runtime, llama.cpp, scikit-learn, dynamic int8): its time would not be comparable."""
        wanted = [f"deploy.profiles[{i}].device" for i, p in enumerate(self.deploy.profiles) if p.device != "cpu"]
        if self.evaluate.device != "cpu":
            wanted.insert(0, "evaluate.device")
        if not wanted:
            return []
        from leanbench.models.device import cuda_problem

        missing = cuda_problem()
        if missing:
            return [f"{where}: 'cuda' asked for, but {missing}; use device: cpu" for where in wanted]
        problems = []
        for where in (w for w in wanted if w.startswith("deploy")):
            for kind in dict.fromkeys(t.task.kind for t in self.tasks or []) or [self.task.kind]:
                cpu_only = {n: f for n, f in self.families(kind).items()
                            if f is not None and "cuda" not in FAMILIES.get(f).devices}
                if cpu_only:
                    listed = ", ".join(f"'{n}' ({f})" for n, f in cpu_only.items())
                    problems.append(f"{where}: cuda measures PyTorch models only; {listed} run on the CPU only: "
                                    "measure them in a cpu profile (a study may have both) or leave them out")
        return list(dict.fromkeys(problems))


def _visit(study: Study, name: str, done: list[str]) -> None:
    if name in done:
        return
    for dep in study.dependencies(name):
        _visit(study, dep, done)
    done.append(name)
