"""The local runner: plans a study into cells and runs the ones not already in the store.

Order: load data -> build every candidate (dependency order) -> evaluate each -> measure each.
A cell's result, its per-example rows and its ledger entries are committed together; artifacts are
written to a temporary folder and renamed into place, so a run killed at any point keeps every finished
cell and the next run completes the rest.

Work that does not finish is billed too: a cell ended by Ctrl-C (KeyboardInterrupt) or an error writes one
ledger entry, phase ``abandoned:<cell kind>:<interrupted | error>``, with the wall and CPU seconds and energy
it spent, its candidate and cell key; the cell itself is not written, so the next run does it again. The run
is marked ``interrupted`` or ``failed``; a run left ``running`` by a process that no longer exists (killed:
SIGKILL cannot be caught) is marked ``stale`` when the next run starts on the store.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leanbench.cost.ledger import ABANDONED
from leanbench.data.base import Split
from leanbench.errors import ModelError
from leanbench.plugins import TASK_KINDS, apply_step
from leanbench.runner.keys import trains
from leanbench.runner.manifest import build_manifest
from leanbench.runner.plan import CellSpec, Plan, make_plan
from leanbench.runner.progress import NullReporter, Reporter
from leanbench.store.db import Store, prediction_rows
from leanbench.study import Study


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


@dataclass
class RunSummary:
    study: str
    run_id: int
    seconds: float
    cells_run: list[str] = field(default_factory=list)
    cells_reused: list[str] = field(default_factory=list)


def energy_config(study: Study) -> Any:
    from leanbench.measure.energy import EnergyConfig

    e = study.energy
    return EnergyConfig(cpu_watts_per_core=e.cpu_watts_per_core, memory_watts_per_gb=e.memory_watts_per_gb,
                        backend=e.backend)


def load_data(study: Study) -> Any:
    """Loads the study's task data, measuring it for the ledger (meta: load_entry, load_started)."""
    started = time.perf_counter()
    with Timer(energy_config(study)) as timer:
        kind = TASK_KINDS.get(study.task.kind).implementation()
        data = kind.load(study.task, seed=study.seed, base_dir=Path(study.base_dir))
    data.meta["load_entry"] = timer.entry("data")
    data.meta["load_started"] = started
    return data


def task_summary(study: Study, data: Any) -> dict:
    """What the report needs to know about the data: sizes, fingerprints, labels, slices (row indices)."""
    split = data.split(study.evaluate.split)
    return {
        "kind": study.task.kind,
        "source": data.source,
        "label_names": list(data.label_names),
        "input_shape": list(data.input_shape),
        "meta": {k: v for k, v in data.meta.items() if k in ("license", "citation", "sources", "files")},
        "splits": {s.name: {"name": s.name, "n": len(s), "fingerprint": s.fingerprint}
                   for s in (data.train, data.validation, data.test)},
        "slices": slice_rows(study, data, split),
    }


def slice_rows(study: Study, data: Any, split: Any) -> dict[str, list[int]]:
    """Slices of the evaluation split as row indices: by label, by length quantile, by keyword, by regex."""
    if not TASK_KINDS.get(study.task.kind).slices:
        return {}
    from leanbench.evaluate.slices import keyword_slices, label_slices, length_slices, regex_slices

    cfg = study.evaluate.slices
    found = []
    if cfg.labels:
        found += label_slices(split.y, data.label_names)
    is_text = split.X.dtype == object and split.X.ndim == 1
    if is_text and cfg.length_quantiles:
        found += length_slices(split.X, cfg.length_quantiles)
    if is_text and cfg.keywords:
        found += keyword_slices(split.X, cfg.keywords)
    if is_text and cfg.regex:
        found += regex_slices(split.X, cfg.regex)
    return {sl.name: [int(i) for i in np.flatnonzero(sl.mask)] for sl in found}


def overhead_entry(timers: list[Timer]) -> dict[str, Any]:
    """One ledger row summing the run's bookkeeping windows (each measured, none inferred)."""
    joules = [t.reading.joules for t in timers if t.reading.joules is not None]
    return {"phase": "overhead", "seconds": sum(t.wall for t in timers), "cpu_seconds": sum(t.cpu for t in timers),
            "flops": None, "joules": sum(joules) if joules else None,
            "energy_method": timers[0].reading.method if timers else None,
            "energy_uncertainty": timers[0].reading.uncertainty_rel if timers else None, "too_short": 0}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def run_process() -> dict[str, Any]:
    """Who runs this run, recorded with it while it runs (`Store.start_run`) so that a later run can tell
    whether it is still alive: the process id, the machine (a hash of the host name) and the boot."""
    host = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:16]
    return {"pid": os.getpid(), "host": host, "boot": _boot_id()}


def process_ended(process: dict[str, Any] | None, here: dict[str, Any] | None = None) -> bool:
    """Whether the process of a run (`run_process()` of its day) has certainly ended: it ran on this machine
    and the machine has rebooted since, or its pid is gone. A run on another machine, or without a record,
    is never judged."""
    here = here or run_process()
    if not isinstance(process, dict) or not isinstance(process.get("pid"), int) or process.get("host") != here["host"]:
        return False
    if process.get("boot") and here.get("boot") and process["boot"] != here["boot"]:
        return True
    return process["pid"] != here["pid"] and not _alive(process["pid"])


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Holds Ctrl-C back during a short piece of bookkeeping (the main thread only) and raises it after,
    so that a second Ctrl-C does not cut the recording of the first."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
        if pending and previous is not signal.SIG_IGN:
            raise KeyboardInterrupt


def remove_stale_temporaries(artifacts: Path) -> list[Path]:
    """Removes the half-written artifact folders (`.tmp-<key>-<pid>`) of runs that were killed mid-save.

    A folder whose process is still alive belongs to a run in progress on the same store and is kept.
    """
    removed = []
    for tmp in artifacts.glob(".tmp-*") if artifacts.is_dir() else []:
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


class LocalRunner:
    def __init__(self, study: Study, store: Store, reporter: Reporter | None = None, source: str | None = None):
        self.study = study
        self.store = store
        self.reporter = reporter or NullReporter()
        self.source = source
        self.run_id: int | None = None
        self.plan: Plan | None = None
        self._models: dict[str, Any] = {}  # build key -> loaded model
        self.energy = energy_config(study)
        self._overhead: list[Timer] = []  # bookkeeping windows, written as one ledger entry per run
        self._measured_together: bool | None = None  # see _measures_side_by_side
        self._measurement: tuple[dict, dict] | None = None  # every candidate's, measured together

    # ----------------------------------------------------------------- entry point
    def run(self, data: Any | None = None) -> RunSummary:
        """Runs the study; `data` is what `load_data` returned when the caller loaded it already.

        The run's wall time starts when its data started loading; every part of it is in the ledger: data,
        plan, each cell's work, and the bookkeeping between (store reads and writes, progress display).
        """
        data = data if data is not None else load_data(self.study)
        t0 = data.meta.get("load_started", time.perf_counter())
        self.data = data
        with Timer(self.energy) as plan_timer:
            self.manifest = manifest = build_manifest(self.study.seed, Path(self.study.base_dir))
            config = self.study.model_dump(mode="json", by_alias=True)
            self.plan = plan = make_plan(self.study, data, manifest)
            summary_task = task_summary(self.study, data)
        with Timer(self.energy) as start_timer:
            here = run_process()
            self.store.mark_stale_runs(lambda process: process_ended(process, here))
            self.run_id = self.store.start_run(self.study.name, manifest, config, process=here)
            remove_stale_temporaries(self.store.root / "artifacts")
        self._overhead.append(start_timer)
        summary = RunSummary(self.study.name, self.run_id, 0.0)
        status = "failed"
        try:
            with Timer(self.energy) as save_timer:
                self.store.save_plan(self.study.name, config, self.source, summary_task, self.run_id, plan.rows,
                                     plan.study_cells)
                self.store.add_ledger(self.study.name, self.run_id, [data.meta["load_entry"],
                                                                      plan_timer.entry("plan")])
                self.reporter.start(len(plan.cells))
            self._overhead.append(save_timer)
            for cell in plan.cells:
                self._cell(summary, cell)
            status = "finished"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            with interrupts_deferred():
                with Timer(self.energy) as end_timer:
                    self.reporter.finish()
                self._overhead.append(end_timer)
                self.store.add_ledger(self.study.name, self.run_id, [overhead_entry(self._overhead)])
                summary.seconds = time.perf_counter() - t0
                self.store.finish_run(self.run_id, status, summary.seconds)
        return summary

    def _cell(self, summary: RunSummary, cell: CellSpec) -> None:
        with Timer(self.energy) as lookup:
            done = self.store.cell(cell.key)
            reuse = done is not None and (cell.kind != "build" or Path(done["artifact"] or "").is_dir())
            if reuse and cell.kind == "measure" and not self._measures_side_by_side():
                reuse = False
            if reuse:
                summary.cells_reused.append(cell.label)
                self.reporter.cell_done(cell.label, reused=True, seconds=0.0)
            else:
                self.reporter.cell_start(cell.label)
        self._overhead.append(lookup)
        if reuse:
            return
        t = time.perf_counter()
        work = Timer(self.energy)
        try:
            with work:
                {"build": self._build, "evaluate": self._evaluate, "perturbed": self._evaluate,
                 "measure": self._measure, "integrity": self._integrity}[cell.kind](cell)
        except BaseException as exc:
            self._abandon(cell, work, exc)
            raise
        summary.cells_run.append(cell.label)
        with Timer(self.energy) as done_timer:
            self.reporter.cell_done(cell.label, reused=False, seconds=time.perf_counter() - t)
        self._overhead.append(done_timer)

    def _abandon(self, cell: CellSpec, work: Timer, exc: BaseException) -> None:
        """Bills the work of a cell that did not finish: one `abandoned:<kind>:<why>` ledger entry (its own
        transaction; the cell is not written, so the next run does it again). Nothing is written when the cell
        was committed before the exception, and a failure to write never hides the exception itself."""
        if work.reading is None:
            return
        why = "interrupted" if isinstance(exc, KeyboardInterrupt) else "error"
        entry = {**work.entry(f"{ABANDONED}{cell.kind}:{why}"), "candidate": cell.candidate or None,
                 "cell_key": cell.key}
        try:
            with interrupts_deferred(), Timer(self.energy) as timer:
                done = self.store.cell(cell.key)
                if done is None or done["run_id"] != self.run_id:
                    self.store.add_ledger(self.study.name, self.run_id, [entry])
            self._overhead.append(timer)
        except Exception:  # noqa: BLE001  (the store failing too: the original exception matters more)
            pass

    def _commit(self, **cell: Any) -> None:
        """Writes a finished cell (one transaction), counting the write as bookkeeping."""
        with Timer(self.energy) as timer:
            self.store.put_cell(study=self.study.name, run_id=self.run_id, **cell)
        self._overhead.append(timer)

    # ----------------------------------------------------------------- build
    def model(self, key: str) -> Any:
        """A built model, loaded from its artifact (kept in memory for this run)."""
        from leanbench.models.base import load_model

        if key not in self._models:
            path = self.store.artifact_dir(key)
            if not path.is_dir():
                raise ModelError(f"no built model at {path}")
            self._models[key] = load_model(path)
        return self._models[key]

    def _apply_steps(self, cand: Any, seed: int, progress: Any) -> tuple[Any, list[dict], list[dict]]:
        """Builds one candidate configuration: its starting model, then each step. Returns the model, the
        ledger entries (init and one per step) and the per-step build info."""
        from leanbench.compress.base import StepContext

        keys = self.plan.keys[seed]
        ctx = StepContext(data=self.data, seed=seed, cache_dir=self.store.cache_dir(),
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
                result = apply_step(step.name, step.config, model, ctx)
            model = result.model
            entries.append(timer.entry(f"build:{step.name}", result.flops))
            info.append({"step": step.name, "seconds": timer.wall, "flops": result.flops, "info": result.info})
        return model, entries, info

    def _build(self, cell: CellSpec) -> None:
        name, seed = cell.candidate, cell.seed
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
            artifact = self.store.artifact_dir(cell.key)
            tmp = artifact.with_name(f".tmp-{cell.key}-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            model.save(tmp)
            shutil.rmtree(artifact, ignore_errors=True)
            os.replace(tmp, artifact)
        entries.append(save_timer.entry("build:save"))
        self._models[cell.key] = model
        trained = sweep is not None or trains(cand)
        self._commit(
            key=cell.key, kind="build", candidate=name,
            seconds=sum(e["seconds"] for e in entries), cpu_seconds=sum(e["cpu_seconds"] for e in entries),
            flops=sum(e.get("flops") or 0.0 for e in entries), artifact=str(artifact), ledger_entries=entries,
            result={"steps": build_info, "describe": model.describe(), "seed": seed, "sweep": sweep,
                    # early stopping and selection look at the validation split, never the test split
                    "selected_on": self.data.validation.fingerprint if trained else None},
        )

    # ----------------------------------------------------------------- evaluate
    def _evaluate(self, cell: CellSpec) -> None:
        """Per-example predictions on the evaluation split, clean or under one perturbation."""
        split = self.data.split(self.study.evaluate.split)
        model = self.model(self.plan.keys[cell.seed][cell.candidate])
        with Timer(self.energy) as timer:
            if cell.perturbation is not None:
                split = Split(split.name, cell.perturbation.apply(split.X, split.ids, self.study.seed),
                              split.y, split.ids)
            try:
                kind = TASK_KINDS.get(self.study.task.kind).implementation()
                out = kind.evaluate(model, split, self.study, self.data)
            except ModelError as exc:
                raise ModelError(f"candidate '{cell.candidate}': {exc}") from None
        rows = prediction_rows(split.ids, split.y, out.scores, out.pred, out.extra)
        self._commit(
            key=cell.key, kind=cell.kind, candidate=cell.candidate,
            seconds=timer.wall, cpu_seconds=timer.cpu, flops=None,
            result={"split": split.name, "fingerprint": self.data.split(split.name).fingerprint, "n": len(split),
                    "batch_size": self.study.evaluate.batch_size, "seed": cell.seed,
                    "perturbation": cell.perturbation.label if cell.perturbation is not None else None,
                    **(out.info or {})},
            ledger_entries=[timer.entry("evaluate" if cell.perturbation is None else "evaluate:perturbed")],
            prediction_rows=rows,
        )

    def _integrity(self, cell: CellSpec) -> None:
        """Contamination between the training data and the evaluation split, duplicates inside it."""
        from leanbench.integrity.report import integrity_report

        evaluated = self.data.split(self.study.evaluate.split)
        cfg = self.study.integrity
        with Timer(self.energy) as timer:
            result = integrity_report(
                {"train": self.data.train, "validation": self.data.validation}, evaluated,
                ngram=cfg.ngram, ngram_max_df=cfg.ngram_max_df, ngram_min_coverage=cfg.ngram_min_coverage,
                near_dup_threshold=cfg.near_duplicate_threshold, seed=self.study.seed)
        self._commit(
            key=cell.key, kind="integrity", candidate="",
            seconds=timer.wall, cpu_seconds=timer.cpu, flops=None, result=result,
            ledger_entries=[timer.entry("integrity")],
        )

    # ----------------------------------------------------------------- measure
    def _measures_side_by_side(self) -> bool:
        """Whether every measure cell of the plan is in the store from one and the same run.

        Every candidate is timed together (interleaved rounds), and the measure keys name the whole group,
        so a new candidate re-keys them all. A run killed between the commits of one measurement leaves part
        of a group: then this run measures every candidate again. Decided once, at the first measure cell.
        """
        if self._measured_together is None:
            runs = set()
            for cell in self.plan.cells:
                if cell.kind == "measure":
                    done = self.store.cell(cell.key)
                    runs.add(done["run_id"] if done is not None else None)
            self._measured_together = len(runs) == 1 and None not in runs
        return self._measured_together

    def _measure(self, cell: CellSpec) -> None:
        """The first measure cell to run measures every candidate of the plan together; each cell then
        commits its candidate's share (the ledger splits the measurement's cost equally among them)."""
        if self._measurement is None:
            from leanbench.runner.measure_cell import measure_group

            cells = [c for c in self.plan.cells if c.kind == "measure"]
            keys = {c.candidate: self.plan.keys[c.seed][c.candidate] for c in cells}
            X = self.data.split(self.study.evaluate.split).X
            self.reporter.step_start(f"measure: {len(cells)} candidates together")
            progress = lambda done, total, info: self.reporter.step_progress(done, total, info)  # noqa: E731
            with Timer(self.energy) as timer:
                results = measure_group({n: self.model(k) for n, k in keys.items()},
                                        {n: self.store.artifact_dir(k) for n, k in keys.items()},
                                        X, self.study, self.energy, self.study.reference, progress=progress)
            share = {k: (v / len(cells) if isinstance(v, float) and k != "energy_uncertainty" else v)
                     for k, v in timer.entry("measure").items()}
            self._measurement = (results, share)
        results, share = self._measurement
        result = results[cell.candidate]
        # the machine's score on the fixed micro-benchmark when these latencies were taken
        result["reference_score"] = self.manifest.get("reference_score")
        self._commit(key=cell.key, kind="measure", candidate=cell.candidate, seconds=share["seconds"],
                     cpu_seconds=share["cpu_seconds"], flops=None, result=result, ledger_entries=[dict(share)])


def run_study(study: Study, store: Store, reporter: Reporter | None = None,
              source: str | None = None, data: Any | None = None) -> RunSummary:
    """Runs (or resumes) a study into the store."""
    return LocalRunner(study, store, reporter, source).run(data)
