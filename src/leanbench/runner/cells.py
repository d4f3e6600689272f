"""A cell's work as a function: a `CellTask` (which cell, where the models it loads are, where its artifact
goes) and the run's `WorkContext` (study, data, build keys) in, a `CellOutcome` out (what `Store.put_cell`
takes, and for a build the temporary folder its model was saved to). Nothing here writes to the store: the
driver (`runner.local.LocalRunner`) commits every outcome, whichever executor computed it (in this process,
in a pool of processes, on a Ray cluster).

Build, evaluate (clean and perturbed) and integrity cells are work; measure cells are not: they run in the
driver, alone on the machine (`LocalRunner._measure`).
"""

from __future__ import annotations

import os
import shutil
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leanbench.cost.ledger import ABANDONED
from leanbench.data.base import Split
from leanbench.errors import LeanbenchError, ModelError, StoreError
from leanbench.plugins import TASK_KINDS
from leanbench.runner.keys import trains
from leanbench.runner.plan import CellSpec
from leanbench.runner.progress import NullReporter, Reporter
from leanbench.store.db import prediction_rows
from leanbench.study import Study

WORK_KINDS = ("build", "evaluate", "perturbed", "integrity")  # measure cells run in the driver


class Timer:
    """Wall seconds, process CPU seconds and energy of a block (RAPL when readable, else the stated estimate).

    `entry(phase)` turns the measurement into a ledger row.
    """

    def __init__(self, energy: Any | None = None):
        from leanbench.measure.energy import EnergyMeter

        self._meter = EnergyMeter(energy)
        self.wall = self.cpu = 0.0
        self.reading: Any = None

    def __enter__(self) -> Timer:
        self._meter.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._meter.__exit__(*exc)
        self.reading = self._meter.reading
        self.wall, self.cpu = self.reading.wall_s, self.reading.cpu_s

    def entry(self, phase: str, flops: float | None = None, **extra: Any) -> dict[str, Any]:
        r = self.reading
        return {"phase": phase, "seconds": r.wall_s, "cpu_seconds": r.cpu_s, "flops": flops,
                "joules": r.joules, "energy_method": r.method, "energy_uncertainty": r.uncertainty_rel,
                "too_short": int(bool(r.too_short)), **extra}


def energy_config(study: Study) -> Any:
    from leanbench.measure.energy import EnergyConfig

    e = study.energy
    return EnergyConfig(cpu_watts_per_core=e.cpu_watts_per_core, memory_watts_per_gb=e.memory_watts_per_gb,
                        backend=e.backend)


@dataclass(frozen=True)
class CellTask:
    """One cell to compute: picklable (a perturbation travels as its label and is rebuilt from the study)."""

    kind: str  # build | evaluate | perturbed | integrity
    key: str
    label: str
    candidate: str | None = None
    seed: int | None = None
    perturbation: str | None = None  # label of the perturbation (perturbed cells)
    artifact: str | None = None  # builds: the final artifact folder (the driver renames the saved one into it)
    models: dict[str, str] = field(default_factory=dict)  # build key -> artifact folder of each model it loads
    staging: str | None = None  # builds: the folder the model is saved to (`staging_dir`, named by the driver)

    @classmethod
    def of(cls, cell: CellSpec, artifact_dir: Callable[[str], Path], keys: dict[int, dict[str, str]],
           study: Study) -> CellTask:
        """The task of a planned cell; `artifact_dir(key)` is the store's artifact folder of a build key."""
        needs: list[str] = []
        if cell.kind == "build":
            needs = [keys[cell.seed][d] for d in study.dependencies(cell.candidate)]
        elif cell.kind in ("evaluate", "perturbed"):
            needs = [keys[cell.seed][cell.candidate]]
        artifact = artifact_dir(cell.key) if cell.kind == "build" else None
        return cls(cell.kind, cell.key, cell.label, cell.candidate, cell.seed,
                   cell.perturbation.label if cell.perturbation is not None else None,
                   str(artifact) if artifact is not None else None, {k: str(artifact_dir(k)) for k in needs},
                   str(staging_dir(artifact, cell.key)) if artifact is not None else None)


@dataclass
class WorkContext:
    """What every cell of a run shares: the study, its loaded data, the build keys per seed, the cache folder.
    Sent once to each worker."""

    study: Study
    data: Any
    keys: dict[int, dict[str, str]]
    cache_dir: str


@dataclass
class CellOutcome:
    """What a cell's work gave: `cell` (the keyword arguments of `Store.put_cell` but study and run) and, for a
    build, `staged` (the folder its model was saved to; the driver renames it to `cell["artifact"]`); or
    `error` (why it failed) with `abandoned` (the ledger entry of the work spent, when it was measured)."""

    key: str
    label: str
    cell: dict[str, Any] | None = None
    staged: str | None = None
    error: str | None = None
    abandoned: dict[str, Any] | None = None
    exception: BaseException | None = None  # in-process executor only: the exception, for the driver to raise

    @property
    def ok(self) -> bool:
        return self.cell is not None


def describe_error(exc: BaseException) -> str:
    """One line for a user error, the exception and the place it was raised for anything else."""
    if isinstance(exc, LeanbenchError):
        return str(exc)
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    at = f" (at {Path(where[0].filename).name}:{where[0].lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{at}"


def _default_apply_step(name: str, cfg: Any, model: Any, ctx: Any) -> Any:
    from leanbench.plugins import apply_step

    return apply_step(name, cfg, model, ctx)


class CellWorker:
    """Computes cells. In the driver's process it keeps every model it built or loaded (the in-process
    executor and the measure cells share them); in a worker process it lives for one cell."""

    def __init__(self, context: WorkContext, reporter: Reporter | None = None,
                 apply_step: Callable[..., Any] = _default_apply_step):
        self.context = context
        self.study, self.data, self.keys = context.study, context.data, context.keys
        self.cache_dir = Path(context.cache_dir)
        self.reporter = reporter or NullReporter()
        self.energy = energy_config(self.study)
        self.apply_step = apply_step
        self._models: dict[str, Any] = {}  # build key -> loaded model
        self._paths: dict[str, Path] = {}  # build key -> its artifact folder

    def model(self, key: str, path: str | Path | None = None) -> Any:
        """A built model, loaded from its artifact folder (kept for later cells)."""
        from leanbench.models.base import load_model

        if key not in self._models:
            path = Path(path) if path is not None else self._paths.get(key)
            if path is None or not path.is_dir():
                raise ModelError(f"no built model at {path}")
            self._models[key] = load_model(path)
        return self._models[key]

    def run(self, task: CellTask) -> CellOutcome:
        """Computes the cell; an exception propagates (the caller decides what a failure does)."""
        self._paths.update({k: Path(p) for k, p in task.models.items()})
        work = {"build": self._build, "evaluate": self._evaluate, "perturbed": self._evaluate,
                "integrity": self._integrity}[task.kind]
        return work(task)

    def run_caught(self, task: CellTask) -> CellOutcome:
        """`run`, with an error turned into a failed outcome that carries the work spent (worker processes)."""
        work = Timer(self.energy)
        try:
            with work:
                return self.run(task)
        except Exception as exc:  # noqa: BLE001  (any failure of one cell is that cell's, recorded by the driver)
            return CellOutcome(task.key, task.label, error=describe_error(exc),
                               abandoned=abandoned_entry(task, work, "error"))

    # ----------------------------------------------------------------- build
    def _apply_steps(self, cand: Any, seed: int, progress: Any) -> tuple[Any, list[dict], list[dict]]:
        """Builds one candidate configuration: its starting model, then each step. Returns the model, the
        ledger entries (init and one per step) and the per-step build info."""
        from leanbench.compress.base import StepContext

        keys = self.keys[seed]
        ctx = StepContext(data=self.data, seed=seed, cache_dir=self.cache_dir,
                          teacher=lambda t: (self.model(keys[t]), keys[t]), progress=progress)
        with Timer(self.energy) as init_timer:
            if cand.model is not None:
                from leanbench.models.base import build_model

                model = build_model(cand.model, self.data, seed)
            else:
                model = self.model(keys[cand.from_])
        entries, info = [init_timer.entry("build:init")], []
        for step in cand.steps:
            self.reporter.step_start(f"{cand.name}: {step.name}")
            with Timer(self.energy) as timer:
                result = self.apply_step(step.name, step.config, model, ctx)
            model = result.model
            entries.append(timer.entry(f"build:{step.name}", result.flops))
            info.append({"step": step.name, "seconds": timer.wall, "flops": result.flops, "info": result.info})
        return model, entries, info

    def _build(self, task: CellTask) -> CellOutcome:
        name, seed = task.candidate, task.seed
        cand = self.study.candidate(name)
        progress = lambda done, total, info: self.reporter.step_progress(done, total, info)  # noqa: E731
        sweep = None
        if cand.sweep is not None and cand.sweep.space:
            from leanbench.runner.sweep_cell import run_search

            def build(c: Any, trial_progress: Any) -> tuple[Any, float, list[dict]]:
                model, _, info = self._apply_steps(c, seed, trial_progress)
                return model, 0.0, info

            model, result, build_info = run_search(cand, self.study, self.data, build, self.energy, progress)
            entries = [e.to_row() for e in result.ledger_entries(name)]
            for e in entries:
                e.pop("candidate", None), e.pop("usd", None), e.pop("co2_kg", None)
                e["too_short"], e["kept"] = int(bool(e["too_short"])), int(bool(e["kept"]))
            sweep = result.to_dict()
        else:
            model, entries, build_info = self._apply_steps(cand, seed, progress)
        with Timer(self.energy) as save_timer:
            tmp = Path(task.staging) if task.staging else staging_dir(Path(task.artifact), task.key)
            shutil.rmtree(tmp, ignore_errors=True)
            save_artifact(model, tmp, task.label)
        entries.append(save_timer.entry("build:save"))
        self._models[task.key] = model
        self._paths[task.key] = Path(task.artifact)
        trained = sweep is not None or trains(cand)
        cell = dict(
            key=task.key, kind="build", candidate=name,
            seconds=sum(e["seconds"] for e in entries), cpu_seconds=sum(e["cpu_seconds"] for e in entries),
            flops=sum(e.get("flops") or 0.0 for e in entries), artifact=task.artifact, ledger_entries=entries,
            result={"steps": build_info, "describe": model.describe(), "seed": seed, "sweep": sweep,
                    # early stopping and selection look at the validation split, never the test split
                    "selected_on": self.data.validation.fingerprint if trained else None},
        )
        return CellOutcome(task.key, task.label, cell=cell, staged=str(tmp))

    # ----------------------------------------------------------------- evaluate
    def _perturbation(self, label: str) -> Any:
        from leanbench.runner.plan import perturbations_for

        for p in perturbations_for(self.study, self.data):
            if p.label == label:
                return p
        raise ModelError(f"no perturbation '{label}' in this study")

    def _evaluate(self, task: CellTask) -> CellOutcome:
        """Per-example predictions on the evaluation split, clean or under one perturbation."""
        split = self.data.split(self.study.evaluate.split)
        model = self.model(self.keys[task.seed][task.candidate])
        perturbation = self._perturbation(task.perturbation) if task.perturbation is not None else None
        from leanbench.models.device import on_device, supports

        # evaluate.device: a PyTorch model on the GPU for this cell (back on the CPU after); other runtimes on theirs
        device = self.study.evaluate.device if supports(model, self.study.evaluate.device) else "cpu"
        with Timer(self.energy) as timer:
            if perturbation is not None:
                from leanbench.evaluate.perturb import perturb_inputs, split_spans  # the example's own text only

                spans = split_spans(self.data, split.name)
                X = perturb_inputs(perturbation, split.X, split.ids, self.study.seed, spans)
                split = Split(split.name, X, split.y, split.ids)
            try:
                kind = TASK_KINDS.get(self.study.task.kind).implementation()
                with on_device(model, device):
                    out = kind.evaluate(model, split, self.study, self.data)
            except ModelError as exc:
                raise ModelError(f"candidate '{task.candidate}': {exc}") from None
        rows = prediction_rows(split.ids, split.y, out.scores, out.pred, out.extra)
        cell = dict(
            key=task.key, kind=task.kind, candidate=task.candidate,
            seconds=timer.wall, cpu_seconds=timer.cpu, flops=None,
            result={"split": split.name, "fingerprint": self.data.split(split.name).fingerprint, "n": len(split),
                    "batch_size": self.study.evaluate.batch_size, "seed": task.seed,
                    "perturbation": task.perturbation, **({"device": device} if device != "cpu" else {}),
                    **(out.info or {})},
            ledger_entries=[timer.entry("evaluate" if perturbation is None else "evaluate:perturbed")],
            prediction_rows=rows,
        )
        return CellOutcome(task.key, task.label, cell=cell)

    def _integrity(self, task: CellTask) -> CellOutcome:
        """Contamination between the training data (splits, and the corpora steps train on) and the evaluation
        split, duplicates inside it."""
        from leanbench.integrity.corpora import training_sources
        from leanbench.integrity.report import integrity_report

        evaluated = self.data.split(self.study.evaluate.split)
        cfg = self.study.integrity
        with Timer(self.energy) as timer:
            result = integrity_report(
                training_sources(self.study, self.data), evaluated,
                ngram=cfg.ngram, ngram_max_df=cfg.ngram_max_df, ngram_min_coverage=cfg.ngram_min_coverage,
                near_dup_threshold=cfg.near_duplicate_threshold, seed=self.study.seed,
                spans=(self.data.meta or {}).get("input_spans"))
        cell = dict(key=task.key, kind="integrity", candidate="", seconds=timer.wall, cpu_seconds=timer.cpu,
                    flops=None, result=result, ledger_entries=[timer.entry("integrity")])
        return CellOutcome(task.key, task.label, cell=cell)


def save_artifact(model: Any, folder: Path, label: str) -> None:
    """Saves a built model to its staging folder; a disk that is full (or any error writing it) removes the
    half-written folder and is one message (`StoreError`), not the writer's traceback."""
    from safetensors import SafetensorError

    try:
        model.save(folder)
    except (OSError, SafetensorError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise StoreError(f"{label}: cannot save the model to {folder.parent}: {exc}") from None


def staging_dir(artifact: Path, key: str) -> Path:
    """The temporary folder a build saves to (`.tmp-<key>-<pid>` beside its final folder, with the pid of the
    driver that will rename it, whichever process saves): a run that finds one whose driver is gone removes it
    (`runner.local.remove_stale_temporaries`); one of a live driver, another run's on the same store, is kept."""
    return artifact.with_name(f".tmp-{key}-{os.getpid()}")


def abandoned_entry(task: CellTask | CellSpec, work: Timer, why: str) -> dict[str, Any] | None:
    """The ledger entry of work that did not finish (`abandoned:<kind>:<why>`), None when nothing was measured."""
    if work.reading is None:
        return None
    return {**work.entry(f"{ABANDONED}{task.kind}:{why}"), "candidate": task.candidate or None, "cell_key": task.key}


def unmeasured_abandoned(task: CellTask, seconds: float, cpu_seconds: float, why: str) -> dict[str, Any]:
    """The ledger entry of a cell whose worker process ended without reporting (killed, crashed): the wall
    seconds the driver saw and the CPU seconds it last read from the process; no energy reading."""
    return {"phase": f"{ABANDONED}{task.kind}:{why}", "seconds": seconds, "cpu_seconds": cpu_seconds,
            "flops": None, "joules": None, "energy_method": None, "energy_uncertainty": None, "too_short": 0,
            "candidate": task.candidate or None, "cell_key": task.key}
