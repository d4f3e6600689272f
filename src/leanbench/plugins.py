"""Every plugin is declared once, by a descriptor in one registry.

A descriptor holds what the rest of leanbench needs to know about a plugin without importing it: its
config class (part of the validated study schema), where its implementation lives (a lazy
``"module:attr"`` string, so ``import leanbench`` and ``leanbench validate`` stay light), and its traits.
The schema unions, cell keys, plan gating, stochasticity and the validate-time checks are derived from
the descriptors; nothing else lists plugins by name.

- ``STEPS``: build steps (``StepPlugin``): one handler per model family it supports.
- ``MODEL_KINDS``: the ``model:`` specs a candidate can start from (``ModelKind``): spec class, builder,
  and the family of the model it builds.
- ``FAMILIES``: model families (``Family``), one per saved-model adapter: the adapter class that loads
  the family's artifacts and the task kinds its models serve.
- ``TASK_KINDS``: task kinds (``TaskKindPlugin``): config class, implementation, metrics, and which
  evaluation extras (perturbations, slices) apply.

The built-in plugins are declared beside their config classes in ``leanbench.schema`` (importing
``leanbench.study`` registers them). A new plugin is one module for its implementation plus its
config class and descriptor; see docs/architecture.md, "How to add".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from leanbench.errors import ModelError
from leanbench.registry import Registry, resolve


def _never(cfg: Any) -> bool:
    return False


# --------------------------------------------------------------------------- steps
@dataclass(frozen=True)
class Handler:
    """The implementation of a step for one model family.

    ``target``: ``"module:function"`` (or the function), called as ``fn(config, model, ctx) -> StepResult``.
    ``methods``: the values of the config's ``method`` this family supports (None: every value).
    ``produces``: method -> the family of the model the step returns, where it differs from the input's.
    """

    target: str | Callable[..., Any]
    methods: tuple[str, ...] | None = None
    produces: Mapping[str, str] = field(default_factory=dict)

    def function(self) -> Callable[..., Any]:
        return resolve(self.target)


@dataclass(frozen=True)
class StepPlugin:
    """One build step.

    ``starts_model``: it may be the first step of a candidate built from scratch (it trains all weights).
    ``trains``: whether, with this config, it fits weights on the training split (early stopping and
    selection then look at the validation split). ``stochastic``: whether it draws random numbers (the seed
    enters the build key); default: ``trains``. ``names``: config fields that name another candidate (a
    distillation teacher): built first, and in the cell key by its build key, not its name. ``corpora``: config
    fields naming a text file it trains on beside the task's splits (the LM distillation corpus): the integrity
    cell checks the evaluated data against each (``integrity/corpora.py``). ``requires``:
    (package, extra) pairs of optional packages it needs (``leanbench validate`` names the extra to install).
    ``key_neutral``: settings added after results existed, left out of the key at these values (so the
    cells built before the setting existed, which behaved exactly so, are still found); ``nested_key_neutral``:
    the same inside a nested config field.
    """

    name: str
    config: type
    handlers: Mapping[str, Handler]
    description: str = ""
    starts_model: bool = False
    trains: Callable[[Any], bool] = _never
    stochastic: Callable[[Any], bool] | None = None
    names: tuple[str, ...] = ()
    corpora: tuple[str, ...] = ()  # config fields naming a text corpus it trains on (integrity checks each)
    requires: tuple[tuple[str, str], ...] = ()
    key_neutral: Mapping[str, Any] = field(default_factory=dict)
    nested_key_neutral: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def is_stochastic(self, cfg: Any) -> bool:
        return (self.stochastic or self.trains)(cfg)

    def named(self, cfg: Any) -> list[str]:
        """The candidates this step's config names (teachers)."""
        return [v for f in self.names if isinstance(v := getattr(cfg, f, None), str)]

    def supports(self) -> str:
        """"torch (magnitude, structured), hf (...)" for messages."""
        return ", ".join(f"{fam} ({', '.join(h.methods)})" if h.methods else fam
                         for fam, h in self.handlers.items())

    def problem(self, cfg: Any, family: str) -> str | None:
        """Why this step cannot run on a model of `family` with this config, or None."""
        handler = self.handlers.get(family)
        method = getattr(cfg, "method", None)
        if handler is not None and (handler.methods is None or method in handler.methods):
            return None
        what = f"{self.name} method '{method}'" if handler is not None else f"step '{self.name}'"
        fam = FAMILIES.get(family) if family in FAMILIES else None
        about = f" ({fam.description})" if fam is not None and fam.description else ""
        return f"{what} does not apply to a {family} model{about}; {self.name} supports: {self.supports()}"

    def handler(self, cfg: Any, family: str) -> Handler:
        problem = self.problem(cfg, family)
        if problem is not None:
            raise ModelError(problem)
        return self.handlers[family]

    def output_family(self, cfg: Any, family: str) -> str:
        return self.handler(cfg, family).produces.get(getattr(cfg, "method", None), family)


STEPS: Registry[StepPlugin] = Registry("step")


def step_plugin(name: str) -> StepPlugin:
    return STEPS.get(name)


def apply_step(name: str, cfg: Any, model: Any, ctx: Any) -> Any:
    """Runs step `name` on `model` with the handler registered for the model's family."""
    if model is None:
        raise ModelError(f"step '{name}' needs a model to start from, got none")
    return step_plugin(name).handler(cfg, model.adapter_name).function()(cfg, model, ctx)


# --------------------------------------------------------------------------- model kinds and families
@dataclass(frozen=True)
class ModelKind:
    """A ``model:`` spec. It is recognised by ``arch: <name>`` or, with ``key``, by that key being present
    (``hf: <folder or id>``). ``builder`` and ``family`` may depend on the task kind (a mapping from task kind,
    with "*" for any other)."""

    name: str
    spec: type
    builder: str | Callable[..., Any] | Mapping[str, str]
    family: str | Mapping[str, str]
    key: str | None = None

    def _for(self, value: Any, task_kind: str) -> Any:
        if not isinstance(value, Mapping):
            return value  # one target for every task kind
        return value.get(task_kind, value.get("*"))

    def builder_for(self, task_kind: str) -> Callable[..., Any]:
        target = self._for(self.builder, task_kind)
        if target is None:
            raise ModelError(f"model kind '{self.name}' cannot be built for a {task_kind} task")
        return resolve(target)

    def family_for(self, task_kind: str) -> str | None:
        return self._for(self.family, task_kind)


MODEL_KINDS: Registry[ModelKind] = Registry("model kind")


def model_kind_of_mapping(value: Mapping[str, Any]) -> str:
    """The kind a raw ``model:`` mapping names: a kind whose ``key`` is present, else its ``arch`` (default mlp)."""
    for name in MODEL_KINDS.in_order():
        kind = MODEL_KINDS.get(name)
        if kind.key is not None and kind.key in value:
            return name
    return str(value.get("arch", "mlp"))


def model_kind(spec: Any) -> str:
    """The kind name of a validated model spec."""
    arch = getattr(spec, "arch", None)
    if isinstance(arch, str):
        return arch
    for name in MODEL_KINDS.in_order():
        if type(spec) is MODEL_KINDS.get(name).spec:
            return name
    raise ModelError(f"no model kind for spec {type(spec).__name__}")


@dataclass(frozen=True)
class Family:
    """A model family: the models one adapter saves and loads (``adapter.json``'s "adapter"). Steps
    register their handlers per family; ``serves`` lists the task kinds its models evaluate on."""

    name: str
    adapter: str
    serves: tuple[str, ...]
    description: str = ""
    requires: tuple[tuple[str, str], ...] = ()  # (package, extra) of the optional packages its models need
    generates: bool = False  # its adapter has `generate_greedy`: the LLM serving figures apply (measure/serving.py)
    devices: tuple[str, ...] = ("cpu",)  # where its models run: ("cpu", "cuda") for PyTorch modules (models/device.py)


FAMILIES: Registry[Family] = Registry("model family")


def adapter_class(family: str) -> Any:
    return resolve(FAMILIES.get(family).adapter)


# --------------------------------------------------------------------------- task kinds
@dataclass(frozen=True)
class TaskKindPlugin:
    """A task kind: its config class (``task: {kind: <name>, ...}``), its implementation (an object with
    ``load(task, seed=, base_dir=) -> TaskData`` and ``evaluate(model, split, study, data) -> EvalOutput``),
    the metric names it knows (the first ones are the defaults), whether the perturbation suite and the
    slices apply, and what its evaluate-cell key adds."""

    name: str
    config: type
    target: str | Any
    metrics: tuple[str, ...]
    perturbations: bool = False
    slices: bool = False
    eval_key: Mapping[str, Any] = field(default_factory=dict)
    # the Hugging Face task id model cards give (`model-index` task type): a string, or fn(task config) -> str
    hub_task: str | Callable[[Any], str] = "other"

    def implementation(self) -> Any:
        return resolve(self.target)

    def hub_task_of(self, task: Any) -> str:
        return self.hub_task(task) if callable(self.hub_task) else self.hub_task


TASK_KINDS: Registry[TaskKindPlugin] = Registry("task kind")
