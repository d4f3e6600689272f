"""The study: one YAML file validated into typed, frozen config.

Every problem is reported at once, each with its path (``candidates[2].steps[0].distill.temperature``),
what was wrong and what was given. Unknown keys get a "did you mean". Cross-references (``reference``,
``from:``, ``teacher:``) are checked on the raw file too, so they are reported beside type errors.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from leanbench.errors import ConfigError
from leanbench.registry import did_you_mean

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
METRICS = ("accuracy", "macro_f1", "nll", "ece")
# metric names each task kind knows (the metric objects live in leanbench.evaluate; names here keep
# validation free of heavy imports). The first ones are the defaults.
KIND_METRICS: dict[str, tuple[str, ...]] = {
    "classification": METRICS,
}
SKLEARN_DATASETS = ("digits", "breast_cancer", "wine", "iris")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


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
        return self


# --------------------------------------------------------------------------- models
class MLPSpec(Strict):
    """A multi-layer perceptron over flat features (images are flattened)."""

    pretrained: ClassVar[bool] = False  # built from scratch: needs a train or distill step
    arch: Literal["mlp"] = "mlp"
    hidden: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [256, 128])
    dropout: float = Field(0.0, ge=0, lt=1)


class CNNSpec(Strict):
    """A small CNN for square single-channel images (8x8 digits, 28x28 MNIST-like)."""

    pretrained: ClassVar[bool] = False
    arch: Literal["cnn"] = "cnn"
    channels: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [16, 32], min_length=1)
    fc_hidden: int = Field(64, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)


class HFSpec(Strict):
    """A Hugging Face model: a local folder or a hub id, loaded through transformers' Auto classes."""

    pretrained: ClassVar[bool] = True  # may be evaluated as it is, without steps
    hf: str = Field(min_length=1, description="local folder or hub id")
    revision: str | None = None
    gguf_file: str | None = Field(None, description="a GGUF checkpoint file inside `hf` (causal LMs)")
    tokenizer: str | None = Field(None, description="tokenizer folder or id, when not beside the weights")
    trust_remote_code: bool = False
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    keep_layers: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, description="initialise a shallower student from these encoder layers (DistilBERT-style)")


def model_kind(spec: Any) -> str:
    """The builder name of a model spec: its `arch`, or "hf" for Hugging Face specs."""
    return "hf" if isinstance(spec, HFSpec) else spec.arch


def _arch_tag(v: Any) -> str | None:
    if isinstance(v, dict):
        return "~hf" if "hf" in v else "~" + str(v.get("arch", "mlp"))
    return "~" + (model_kind(v) if isinstance(v, BaseModel) else "mlp")


ModelSpec = Annotated[
    Annotated[MLPSpec, Tag("~mlp")] | Annotated[CNNSpec, Tag("~cnn")] | Annotated[HFSpec, Tag("~hf")],
    Discriminator(_arch_tag, custom_error_type="unknown_arch",
                  custom_error_message="unknown model: give `hf: <folder or id>` or `arch:` one of mlp, cnn"),
]


# --------------------------------------------------------------------------- steps
class TrainConfig(Strict):
    """Train from the current weights on the training split, early-stopping on validation loss."""

    epochs: int = Field(30, gt=0)
    batch_size: int = Field(64, gt=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    patience: int = Field(5, ge=0, description="epochs without validation improvement; 0 = never stop early")
    seed: int | None = None


class DistillConfig(TrainConfig):
    """Knowledge distillation (Hinton et al., 2015): alpha * T^2 * KL(teacher_T || student_T)
    + (1 - alpha) * cross-entropy on hard labels. Teacher outputs are computed once and cached."""

    teacher: str
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.5, ge=0, le=1)


class PruneConfig(Strict):
    """`magnitude`: global unstructured magnitude pruning (weights zeroed, shape kept).
    `structured`: removes whole hidden neurons / conv channels by L2 norm (the model really shrinks)."""

    method: Literal["magnitude", "structured"] = "magnitude"
    sparsity: float = Field(0.5, ge=0, lt=1)
    finetune: TrainConfig | None = None


class QuantizeConfig(Strict):
    method: Literal["dynamic-int8"] = "dynamic-int8"


class LowRankConfig(Strict):
    """Truncated SVD of Linear layers: W (out x in) ~ U_r S_r V_r^T, kept by `rank` or kept `energy`
    (fraction of the squared singular values). Layers where the factorisation would not save
    parameters are left whole."""

    rank: int | None = Field(None, gt=0)
    energy: float | None = Field(None, gt=0, le=1)
    finetune: TrainConfig | None = None

    @model_validator(mode="after")
    def _one_of(self) -> LowRankConfig:
        if (self.rank is None) == (self.energy is None):
            raise ValueError("give exactly one of 'rank' or 'energy'")
        return self


STEP_CONFIGS: dict[str, type[Strict]] = {
    "train": TrainConfig,
    "distill": DistillConfig,
    "prune": PruneConfig,
    "quantize": QuantizeConfig,
    "lowrank": LowRankConfig,
}
TRAINING_STEPS = ("train", "distill")


class StepSpec(Strict):
    """One build step, written in YAML as a one-key mapping: ``{distill: {teacher: t, alpha: 0.5}}``."""

    train: TrainConfig | None = None
    distill: DistillConfig | None = None
    prune: PruneConfig | None = None
    quantize: QuantizeConfig | None = None
    lowrank: LowRankConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_key(cls, data: Any) -> Any:
        if isinstance(data, str) and data in STEP_CONFIGS:
            return {data: {}}
        if not isinstance(data, dict) or len(data) != 1:
            raise ValueError(
                f"a step is a mapping with one key, the step name ({', '.join(STEP_CONFIGS)}), got {data!r}"
            )
        name, value = next(iter(data.items()))
        return {name: {} if value is None else value}

    @property
    def name(self) -> str:
        return next(k for k in STEP_CONFIGS if getattr(self, k) is not None)

    @property
    def config(self) -> Strict:
        return getattr(self, self.name)


# --------------------------------------------------------------------------- candidates and study
class CandidateConfig(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    model: ModelSpec | None = None
    from_: str | None = Field(None, alias="from")
    steps: list[StepSpec] = Field(default_factory=list)

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


class EvaluateConfig(Strict):
    split: Literal["test", "validation"] = "test"
    metrics: list[str] | None = Field(None, min_length=1, description="default: every metric of the task kind")
    bootstrap: int = Field(1000, ge=100, description="bootstrap resamples for every CI")
    confidence: float = Field(0.95, gt=0.5, lt=1)
    batch_size: int = Field(256, gt=0)


class DecisionConfig(Strict):
    metric: str | None = Field(None, description="default: the task kind's first metric (accuracy)")
    margin: float = Field(0.01, ge=0, lt=1, description="non-inferiority margin, in the metric's units")
    alpha: float = Field(0.05, gt=0, le=0.5)


class LatencyConfig(Strict):
    threads: int = Field(1, ge=1)
    batch: int = Field(1, ge=1)
    warmup: int = Field(20, ge=0)
    runs: int = Field(200, ge=10)


class ThroughputConfig(Strict):
    threads: int = Field(0, ge=0, description="0 = all cores")
    batch: int = Field(256, ge=1)
    warmup: int = Field(3, ge=0)
    runs: int = Field(20, ge=3)


class MeasureConfig(Strict):
    enabled: bool = True
    latency: LatencyConfig = LatencyConfig()
    throughput: ThroughputConfig = ThroughputConfig()


class Study(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    seed: int = 0
    task: TaskConfig
    reference: str
    candidates: list[CandidateConfig] = Field(min_length=1)
    evaluate: EvaluateConfig = EvaluateConfig()
    decision: DecisionConfig = DecisionConfig()
    measure: MeasureConfig = MeasureConfig()
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
                cls = {"~mlp": MLPSpec, "~cnn": CNNSpec, "~files": DataFiles}.get(part, cls)
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


def parse_study(raw: Any, source: str | None = None, base_dir: str | Path = ".") -> Study:
    """Validates a mapping (from YAML) into a Study, or raises ConfigError with every problem."""
    if not isinstance(raw, dict):
        raise ConfigError([f"(top level): a study is a mapping of keys, got {type(raw).__name__}"], source)
    problems: list[str] = []
    raw = _interpolate(raw, "", problems)
    try:
        study = Study.model_validate({**raw, "base_dir": str(base_dir)})
    except ValidationError as exc:
        problems.extend(_describe(e) for e in exc.errors())
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
