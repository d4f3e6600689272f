"""Hyper-parameter sweeps over step parameters with Optuna (TPE, median pruning), every trial costed.

A step parameter becomes a search space when its value is a one-key mapping:

==============================  ===================================================================
``{log_uniform: [low, high]}``  a float drawn log-uniformly, ``0 < low < high`` (learning rates)
``{uniform: [low, high]}``      a float drawn uniformly, ``low < high``
``{int: [low, high]}``          an integer in ``[low, high]`` inclusive, ``low < high``
``{choice: [a, b, ...]}``       one of the listed values (numbers, strings, booleans or null)
==============================  ===================================================================

for example ``distill: {lr: {log_uniform: [1.0e-4, 1.0e-2]}, temperature: {choice: [1, 2, 4]}}``.
:func:`find_search_space` finds them in a step (or candidate) config and names each by its path
(``steps[0].distill.lr``); :func:`validate_space` lists every problem with its path;
:func:`apply_params` writes one trial's values back into the config.

:func:`run_sweep` runs ``n_trials`` trials with Optuna's TPE sampler (Bergstra et al., "Algorithms for
Hyper-Parameter Optimization", NeurIPS 2011) seeded by ``seed`` and, by default, the median pruner
(a trial stops when its intermediate validation value is worse than the median of earlier trials at
the same step; the objective reports them with :func:`report`). Each trial is timed (wall and CPU
seconds) and its energy measured with :class:`~leanbench.measure.energy.EnergyMeter`, so that every
trial, kept or discarded, pruned or failed, becomes one ``sweep:trial`` ledger entry
(:meth:`SweepResult.ledger_entries`).

Optuna is an optional dependency, imported only when a sweep runs:
``pip install 'leanbench[sweep]'``.
"""

from __future__ import annotations

import copy
import importlib
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from leanbench.cost.ledger import LedgerEntry
from leanbench.errors import ConfigError, LeanbenchError
from leanbench.measure.energy import EnergyConfig, EnergyMeter

SPACE_KINDS = ("log_uniform", "uniform", "int", "choice")
DIRECTIONS = ("maximize", "minimize")
OPTUNA_MISSING = "the sweep feature needs optuna: pip install 'leanbench[sweep]'"
_SCALARS = (int, float, str, bool, type(None))


# --------------------------------------------------------------------------- finding and checking spaces
def is_space(value: Any) -> bool:
    """Whether a config value is a search-space mapping (it has a key among ``SPACE_KINDS``)."""
    return isinstance(value, Mapping) and any(k in value for k in SPACE_KINDS)


def find_search_space(config: Any, prefix: str = "") -> dict[str, dict[str, Any]]:
    """Every search space in a (nested) config, keyed by path: ``{"lr": {"log_uniform": [1e-5, 1e-3]}}``.

    Paths join mapping keys with dots and list positions with ``[i]``, as config errors do.
    """
    found: dict[str, dict[str, Any]] = {}
    if is_space(config):
        found[prefix] = dict(config)
    elif isinstance(config, Mapping):
        for k, v in config.items():
            found.update(find_search_space(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(config, (list, tuple)):
        for i, v in enumerate(config):
            found.update(find_search_space(v, f"{prefix}[{i}]"))
    return found


def validate_space(space: Mapping[str, Any]) -> list[str]:
    """Problems in a search space, each as ``path: what is wrong, got what``; empty when valid."""
    problems: list[str] = []
    for path, spec in space.items():
        problems.extend(f"{path}: {p}" for p in _spec_problems(spec))
    return problems


def _spec_problems(spec: Any) -> list[str]:
    if not isinstance(spec, Mapping) or len(spec) != 1 or next(iter(spec)) not in SPACE_KINDS:
        keys = list(spec) if isinstance(spec, Mapping) else spec
        return [f"a search space is a mapping with one key among {', '.join(SPACE_KINDS)}, got {keys!r}"]
    kind, args = next(iter(spec.items()))
    if kind == "choice":
        return _choice_problems(args)
    if not isinstance(args, (list, tuple)) or len(args) != 2:
        return [f"{kind} needs [low, high], got {args!r}"]
    low, high = args
    if kind == "int":
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in args):
            return [f"int needs two integers [low, high], got {list(args)!r}"]
    elif not all(_is_number(v) for v in args):
        return [f"{kind} needs two finite numbers [low, high], got {list(args)!r}"]
    if not low < high:
        return [f"{kind} needs low < high, got [{low!r}, {high!r}]"]
    if kind == "log_uniform" and low <= 0:
        return [f"log_uniform needs 0 < low, got low = {low!r} (use uniform for ranges that reach 0)"]
    return []


def _choice_problems(args: Any) -> list[str]:
    if not isinstance(args, (list, tuple)) or not args:
        return [f"choice needs a non-empty list of values, got {args!r}"]
    bad = [v for v in args if not isinstance(v, _SCALARS)]
    if bad:
        return [f"choice values must be numbers, strings, booleans or null, got {bad!r}"]
    if len({(type(v), v) for v in args}) != len(args):
        return [f"choice lists a value twice: {list(args)!r}"]
    return []


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_space(space: Mapping[str, Any], source: str = "sweep") -> None:
    """Raises a ConfigError listing every problem of :func:`validate_space` at once."""
    problems = validate_space(space)
    if problems:
        raise ConfigError(problems, source=source)


def spec_values(spec: Mapping[str, Any]) -> list[Any]:
    """Values that bound a spec (``[low, high]``, or every choice): substitute each into the config to
    check it against the step's own constraints before any trial runs."""
    kind, args = next(iter(spec.items()))
    return list(args)


def placeholder_params(space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One representative value per spec (geometric mean, midpoint, rounded midpoint, first choice),
    for type-checking a config whose parameters are spaces."""
    out = {}
    for path, spec in space.items():
        kind, args = next(iter(spec.items()))
        if kind == "log_uniform":
            out[path] = math.sqrt(args[0] * args[1])
        elif kind == "uniform":
            out[path] = (args[0] + args[1]) / 2
        elif kind == "int":
            out[path] = (args[0] + args[1]) // 2
        else:
            out[path] = args[0]
    return out


# --------------------------------------------------------------------------- applying values
_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _parts(path: str) -> list[str | int]:
    return [int(i) if i else k for k, i in _PART.findall(path)]


def apply_params(config: Any, params: Mapping[str, Any]) -> Any:
    """A deep copy of ``config`` with each path in ``params`` set to its value (the concrete config of
    one trial)."""
    out = copy.deepcopy(config)
    for path, value in params.items():
        parts = _parts(path)
        if not parts:
            return value
        node = out
        try:
            for p in parts[:-1]:
                node = node[p]
            node[parts[-1]] = value
        except (KeyError, IndexError, TypeError) as e:
            raise LeanbenchError(f"sweep: path {path!r} does not exist in the config ({e})") from e
    return out


# --------------------------------------------------------------------------- optuna
def _optuna() -> Any:
    try:
        return importlib.import_module("optuna")
    except ImportError as e:
        raise LeanbenchError(OPTUNA_MISSING) from e


def suggest(trial: Any, space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One value per path, drawn through an Optuna ``trial`` (the parameter name is the path)."""
    params = {}
    for path, spec in space.items():
        kind, args = next(iter(spec.items()))
        if kind == "log_uniform":
            params[path] = trial.suggest_float(path, float(args[0]), float(args[1]), log=True)
        elif kind == "uniform":
            params[path] = trial.suggest_float(path, float(args[0]), float(args[1]))
        elif kind == "int":
            params[path] = trial.suggest_int(path, int(args[0]), int(args[1]))
        else:
            params[path] = trial.suggest_categorical(path, list(args))
    return params


def report(trial: Any, value: float, step: int) -> None:
    """Reports an intermediate validation value (e.g. after an epoch) and stops the trial when the
    pruner says so (raises ``optuna.TrialPruned``, which :func:`run_sweep` records as pruned)."""
    trial.report(float(value), step)
    if trial.should_prune():
        raise _optuna().TrialPruned()


@dataclass
class SweepResult:
    """Outcome of a sweep: the best trial and every trial with its cost."""

    best_params: dict[str, Any]
    best_value: float
    best_trial: int
    direction: str
    seed: int
    trials: list[dict[str, Any]] = field(default_factory=list)
    method: str = ""

    @property
    def seconds(self) -> float:
        return float(sum(t["seconds"] for t in self.trials))

    def ledger_entries(self, candidate: str, kept: int | None = None) -> list[LedgerEntry]:
        """One ``sweep:trial`` entry per trial; ``kept`` marks the trial whose model was kept (default:
        the best; pass -1 when the winner is rebuilt and the build is ledgered on its own)."""
        kept = self.best_trial if kept is None else kept
        out = []
        for t in self.trials:
            r = t["energy"]
            out.append(LedgerEntry(phase="sweep:trial", candidate=candidate, seconds=t["seconds"],
                                   cpu_seconds=t["cpu_seconds"], joules=r.joules if r else None,
                                   energy_method=r.method if r else None,
                                   energy_uncertainty=r.uncertainty_rel if r else None,
                                   too_short=bool(r and r.too_short), trial=t["number"],
                                   kept=t["number"] == kept))
        return out

    def to_dict(self) -> dict[str, Any]:
        trials = [{**{k: v for k, v in t.items() if k != "energy"},
                   "energy": t["energy"].to_dict() if t["energy"] else None} for t in self.trials]
        return {"best_params": self.best_params, "best_value": self.best_value, "best_trial": self.best_trial,
                "direction": self.direction, "seed": self.seed, "method": self.method,
                "seconds": self.seconds, "n_trials": len(self.trials), "trials": trials}


Objective = Callable[[dict[str, Any], Any], float]


def run_sweep(objective: Objective, space: Mapping[str, Mapping[str, Any]], n_trials: int, seed: int = 0,
              direction: str = "maximize", pruner: Any = "median", energy: EnergyConfig | None = None,
              timeout_s: float | None = None, catch: tuple[type[Exception], ...] = ()) -> SweepResult:
    """Searches ``space`` with ``n_trials`` TPE trials; ``objective(params, trial)`` returns the
    validation score (and may call :func:`report`).

    ``pruner`` is ``"median"`` (Optuna's MedianPruner with its defaults: no pruning during the first 5
    trials), None (no pruning) or an Optuna pruner. Exceptions of the types in ``catch`` mark their
    trial FAIL and the sweep goes on (the trial's cost is still in the result); any other exception
    stops the sweep and propagates.
    """
    _check_args(space, n_trials, direction)
    optuna = _optuna()
    records: dict[int, dict[str, Any]] = {}

    def wrapped(trial: Any) -> float:
        rec = records.setdefault(trial.number, {"number": trial.number, "params": {}})
        meter, t0, c0 = EnergyMeter(energy), time.perf_counter(), time.process_time()
        try:
            with meter:
                rec["params"] = suggest(trial, space)
                return float(objective(rec["params"], trial))
        finally:
            rec.update(seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0,
                       energy=meter.reading)

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.WARNING)
    try:
        pruner_obj = _pruner(optuna, pruner)
        study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=seed),
                                    pruner=pruner_obj)
        study.optimize(wrapped, n_trials=n_trials, timeout=timeout_s, catch=catch)
    finally:
        optuna.logging.set_verbosity(previous)
    return _result(study, records, direction, seed, pruner_obj)


def _check_args(space: Mapping[str, Any], n_trials: int, direction: str) -> None:
    problems = validate_space(space)
    if not space:
        problems.append("space: no search space given "
                        "(no parameter written as {log_uniform|uniform|int|choice: ...})")
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        problems.append(f"n_trials: must be an integer >= 1, got {n_trials!r}")
    if direction not in DIRECTIONS:
        problems.append(f"direction: must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    if problems:
        raise ConfigError(problems, source="sweep")


def _pruner(optuna: Any, pruner: Any) -> Any:
    if pruner == "median":
        return optuna.pruners.MedianPruner()
    if pruner is None:
        return optuna.pruners.NopPruner()
    if isinstance(pruner, str):
        raise LeanbenchError(f"sweep: pruner must be 'median', None or an Optuna pruner, got {pruner!r}")
    return pruner


def _result(study: Any, records: dict[int, dict[str, Any]], direction: str, seed: int,
            pruner: Any) -> SweepResult:
    trials = []
    for t in study.get_trials(deepcopy=False):
        rec = records.get(t.number, {"params": dict(t.params), "seconds": 0.0, "cpu_seconds": 0.0,
                                     "energy": None})
        trials.append({"number": t.number, "params": rec["params"], "value": t.value, "state": t.state.name,
                       "seconds": rec["seconds"], "cpu_seconds": rec["cpu_seconds"], "energy": rec["energy"]})
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    if not complete:
        states = ", ".join(sorted({t["state"] for t in trials})) or "none ran"
        raise LeanbenchError(f"sweep: no trial completed ({len(trials)} trials: {states}); "
                             "every trial was pruned or failed")
    best = study.best_trial
    method = (f"optuna {_optuna().__version__} TPE (seed {seed}), {type(pruner).__name__}, "
              f"{direction} validation score, {len(trials)} trials")
    return SweepResult(best_params=dict(records[best.number]["params"]), best_value=float(best.value),
                       best_trial=best.number, direction=direction, seed=seed, trials=trials, method=method)
