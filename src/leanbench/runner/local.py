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

Where a cell's work runs is the executor's business (``runner.executors``: in this process, in a pool of
processes, on Ray); the cell's work itself is ``runner.cells``. This module is the driver: it decides what is
ready, takes leases, commits outcomes, and runs the measure cells with nothing else running.
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

from leanbench.plugins import TASK_KINDS, apply_step
from leanbench.runner.cells import (  # noqa: F401  (Timer, energy_config: importable from here as before)
    CellOutcome,
    CellTask,
    CellWorker,
    Timer,
    WorkContext,
    abandoned_entry,
    describe_error,
    energy_config,
)
from leanbench.runner.executors import ExecutorSettings, make_executor
from leanbench.runner.manifest import build_manifest
from leanbench.runner.plan import CellSpec, Plan, dependencies, make_plan
from leanbench.runner.progress import NullReporter, Reporter
from leanbench.store.db import Store, lease_holder
from leanbench.study import Study

MEASURED_ALONE = "alone: the driver ran each measure cell with no other cell of the run running"


@dataclass
class RunSummary:
    study: str
    run_id: int
    seconds: float
    cells_run: list[str] = field(default_factory=list)
    cells_reused: list[str] = field(default_factory=list)
    # {"cell": label, "error": why, "blocked_by": the failed cell it needed, or None}
    cells_failed: list[dict[str, Any]] = field(default_factory=list)


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
        "meta": {k: v for k, v in data.meta.items() if k in ("license", "citation", "sources", "files",
                                                                  "generation")},  # generation: its settings
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
    if is_text:  # each example's own text: a prompt's question, not its few-shot examples, template or choices
        from leanbench.evaluate.perturb import own_texts, split_spans

        texts = own_texts(split.X, split.ids, split_spans(data, split.name))
    if is_text and cfg.length_quantiles:
        found += length_slices(texts, cfg.length_quantiles)
    if is_text and cfg.keywords:
        found += keyword_slices(texts, cfg.keywords)
    if is_text and cfg.regex:
        found += regex_slices(texts, cfg.regex)
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


LEASE_TTL_S = 60.0  # a cell's lease; renewed every third of it while the run lives
POLL_S = 0.2  # how often the driver looks at running cells and at cells another run holds


def _apply_step(name: str, cfg: Any, model: Any, ctx: Any) -> Any:
    """The steps of in-process builds (looked up here at call time, so a test can stop one)."""
    return apply_step(name, cfg, model, ctx)


class _LeaseKeeper:
    """Renews this run's cell leases every third of their time to live, from a thread, while cells work."""

    def __init__(self, store: Store, holder: str, ttl_s: float = LEASE_TTL_S):
        self.store, self.holder, self.ttl_s = store, holder, ttl_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="leanbench-leases", daemon=True)

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(10)

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self.store.renew_leases(self.holder, self.ttl_s)
            except Exception:  # noqa: BLE001, S112  (a busy store: the next renewal comes well before expiry)
                continue


class LocalRunner:
    """The driver: plans the study, hands ready cells to an executor (`runner.executors`), runs measure cells
    itself with nothing else running, and is the only writer to the store.

    A cell is ready when the cells it needs are done: a build needs its parent's and teachers' builds, an
    evaluation its build, a measure cell every build of its group. Before a cell is handed out the driver
    takes its lease in the store (another run holding it: other cells first, then this one again, reused when
    that run finished it, taken when its lease expired). With an executor that isolates cells a failed cell is
    recorded (`Store.record_failed_cell`), the cells that need it are not run, and the run goes on."""

    def __init__(self, study: Study, store: Store, reporter: Reporter | None = None, source: str | None = None,
                 executor: str = "local", settings: ExecutorSettings | None = None):
        self.study = study
        self.store = store
        self.reporter = reporter or NullReporter()
        self.source = source
        self.executor_name = executor
        self.settings = settings or ExecutorSettings()
        self.run_id: int | None = None
        self.plan: Plan | None = None
        self.energy = energy_config(study)
        self._overhead: list[Timer] = []  # bookkeeping windows, written as one ledger entry per run
        self._measured_together: bool | None = None  # see _measures_side_by_side
        self._measurement: tuple[dict, dict] | None = None  # every candidate's, measured together
        self._measure_error: str | None = None  # the group's measurement failed (isolating executors)
        self._measure_leases = False  # this run holds the lease of every measure cell
        self._done: set[str] = set()  # keys done in this run (run or reused)
        self._failed: dict[str, str] = {}  # key -> label of the failed cell (itself, or what it needed)
        self._running: dict[str, tuple[CellSpec, float]] = {}  # key -> (cell, started)
        self._retry: dict[str, float] = {}  # key -> when to try again for a cell another run holds

    # ----------------------------------------------------------------- entry point
    def run(self, data: Any | None = None) -> RunSummary:
        """Runs the study; `data` is what `load_data` returned when the caller loaded it already.

        The run's wall time starts when its data started loading; every part of it is in the ledger: data,
        plan, each cell's work, and the bookkeeping between (store reads and writes, progress display).
        An executor that cannot start (Ray missing or unreachable, a memory cap below what a worker needs)
        stops the run before anything is written.
        """
        data = data if data is not None else load_data(self.study)
        t0 = data.meta.get("load_started", time.perf_counter())
        self.data = data
        with Timer(self.energy) as plan_timer:
            self.manifest = manifest = build_manifest(self.study.seed, Path(self.study.base_dir))
            config = self.study.model_dump(mode="json", by_alias=True)
            self.plan = plan = make_plan(self.study, data, manifest)
            summary_task = task_summary(self.study, data)
        with Timer(self.energy) as executor_timer:
            self.worker = CellWorker(WorkContext(self.study, data, plan.keys, str(self.store.cache_dir())),
                                     self.reporter, apply_step=_apply_step)
            self.executor = make_executor(self.executor_name, self.settings)
            try:
                self.executor.start(self.worker.context, self.worker)
            except BaseException:
                self.executor.close()
                raise
            manifest["execution"] = {k: v for k, v in self.executor.describe().items() if v is not None}
            manifest["execution"]["measure"] = MEASURED_ALONE
        self._overhead.append(executor_timer)
        with Timer(self.energy) as start_timer:
            here = run_process()
            self.store.mark_stale_runs(lambda process: process_ended(process, here))
            self.run_id = self.store.start_run(self.study.name, manifest, config, process=here)
            self.holder = lease_holder(self.run_id, f"{here['host']}:{here['pid']}")
            remove_stale_temporaries(self.store.artifact_root)
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
            with _LeaseKeeper(self.store, self.holder):
                self._execute(summary)
            status = "failed" if summary.cells_failed else "finished"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            with interrupts_deferred():
                self._close_executor(summary)
                with Timer(self.energy) as end_timer:
                    self.store.release_leases(self.holder)  # the measure cells' too, when a run ends early
                    self.reporter.finish()
                self._overhead.append(end_timer)
                self.store.add_ledger(self.study.name, self.run_id, [overhead_entry(self._overhead)])
                summary.seconds = time.perf_counter() - t0
                self.store.finish_run(self.run_id, status, summary.seconds)
        return summary

    def _close_executor(self, summary: RunSummary) -> None:
        """Ends what still runs (an interrupt, an error of the driver): their work is billed, leases given up."""
        for outcome in self.executor.close():
            self._running.pop(outcome.key, None)
            if outcome.abandoned is not None:
                self.store.add_ledger(self.study.name, self.run_id, [outcome.abandoned])
            self.store.release_lease(outcome.key, self.holder)
        for key in list(self._running):
            self.store.release_lease(key, self.holder)

    # ----------------------------------------------------------------- the dispatch loop
    def _execute(self, summary: RunSummary) -> None:
        pending = list(self.plan.cells)
        self._deps = dependencies(self.study, self.plan)
        while pending or self._running:
            with Timer(self.energy) as timer:
                measure = self._dispatch(summary, pending)
            self._overhead.append(timer)
            if measure is not None:  # its own work window, outside the bookkeeping one
                self._run_measure(summary, measure)
                continue
            if self._running:
                for outcome in self.executor.wait(POLL_S):
                    self._record(summary, outcome)
            elif pending:
                time.sleep(POLL_S)  # every cell left is held by another run, or needs one that is

    def _dispatch(self, summary: RunSummary, pending: list[CellSpec]) -> CellSpec | None:
        """Hands out the ready cells, in plan order, while the executor has room; returns a ready measure cell
        claimed once nothing else runs (the caller runs it, alone; nothing more is handed out until then)."""
        for cell in list(pending):
            deps = self._deps[cell.key]
            broken = next((d for d in deps if d in self._failed), None)
            if broken is not None:
                pending.remove(cell)
                self._fail(summary, cell, f"not run: it needs {self._failed[broken]}, which failed",
                           blocked_by=self._failed[broken])
                continue
            if not all(d in self._done for d in deps) or self._retry.get(cell.key, 0.0) > time.perf_counter():
                continue
            if cell.kind == "measure":
                if self._running:
                    return None  # drain: a measure cell runs alone
                state = self._claim_measure(summary, cell)
            else:
                if len(self._running) >= self.executor.slots:
                    return None
                state = self._claim(summary, cell)
            if state == "busy":
                self._retry[cell.key] = time.perf_counter() + POLL_S
                continue
            pending.remove(cell)
            if state == "claimed" and cell.kind == "measure":
                return cell
            if state == "claimed":
                self._submit(cell)
        return None

    def _reusable(self, cell: CellSpec, done: dict | None, warn: bool = True) -> bool:
        if done is None:
            return False
        if cell.kind == "build" and not self.store.artifact_ok(cell.key):  # folder gone, truncated or changed
            if warn:
                self.reporter.warn(f"{cell.label}: its model folder {done['artifact']} is missing or does not "
                                   "match the checksum recorded when it was built; building it again")
            return False
        return True

    def _reuse(self, summary: RunSummary, cell: CellSpec) -> None:
        self._done.add(cell.key)
        summary.cells_reused.append(cell.label)
        self.reporter.cell_done(cell.label, reused=True, seconds=0.0)

    def _claim(self, summary: RunSummary, cell: CellSpec) -> str:
        """"reused" (done already), "busy" (another run holds its lease) or "claimed" (this run does it)."""
        if self._reusable(cell, self.store.cell(cell.key)):
            self._reuse(summary, cell)
            return "reused"
        if not self.store.acquire_lease(cell.key, self.holder, LEASE_TTL_S):
            return "busy"
        if self._reusable(cell, self.store.cell(cell.key), warn=False):  # another run finished it meanwhile
            self.store.release_lease(cell.key, self.holder)
            self._reuse(summary, cell)
            return "reused"
        self.reporter.cell_start(cell.label)
        return "claimed"

    def _submit(self, cell: CellSpec) -> None:
        task = CellTask.of(cell, self.store.artifact_dir, self.plan.keys, self.study)
        self._running[cell.key] = (cell, time.perf_counter())
        self.executor.submit(task)

    def _record(self, summary: RunSummary, outcome: CellOutcome) -> None:
        """Commits a finished cell (its saved model renamed into place first), or records its failure."""
        cell, started = self._running.pop(outcome.key)
        if outcome.exception is not None:  # the in-process executor: the run ends, as it always did
            with interrupts_deferred():
                if outcome.abandoned is not None:
                    self.store.add_ledger(self.study.name, self.run_id, [outcome.abandoned])
                self.store.release_lease(cell.key, self.holder)
            raise outcome.exception
        if not outcome.ok:
            self._fail(summary, cell, outcome.error or "failed", abandoned=outcome.abandoned)
            return
        with Timer(self.energy) as timer:
            if outcome.staged is not None:
                artifact = Path(outcome.cell["artifact"])
                shutil.rmtree(artifact, ignore_errors=True)
                os.replace(outcome.staged, artifact)
            self.store.put_cell(study=self.study.name, run_id=self.run_id, **outcome.cell)
            self._done.add(cell.key)
            summary.cells_run.append(cell.label)
            self.reporter.cell_done(cell.label, reused=False, seconds=time.perf_counter() - started)
        self._overhead.append(timer)

    def _fail(self, summary: RunSummary, cell: CellSpec, error: str, abandoned: dict | None = None,
              blocked_by: str | None = None) -> None:
        """Records a cell that failed (or was not run because a cell it needs failed); the run goes on."""
        with Timer(self.energy) as timer:
            self._failed[cell.key] = cell.label if blocked_by is None else blocked_by
            if abandoned is not None:
                self.store.add_ledger(self.study.name, self.run_id, [abandoned])
            if blocked_by is None:
                self.store.release_lease(cell.key, self.holder)
            self.store.record_failed_cell(run_id=self.run_id, study=self.study.name, key=cell.key, kind=cell.kind,
                                          candidate=cell.candidate, label=cell.label, error=error,
                                          blocked_by=blocked_by)
            summary.cells_failed.append({"cell": cell.label, "error": error, "blocked_by": blocked_by})
            if blocked_by is None:
                self.reporter.warn(f"{cell.label} failed: {error}")
        self._overhead.append(timer)

    # ----------------------------------------------------------------- measure cells, in the driver
    def _claim_measure(self, summary: RunSummary, cell: CellSpec) -> str:
        """As `_claim`, for the measurement of the whole group: this run takes the lease of every measure cell
        of the plan (all or none) before it decides whether the stored measurements can be reused."""
        done = self.store.cell(cell.key)
        if done is not None and self._measures_side_by_side():
            self._reuse(summary, cell)
            return "reused"
        if not self._measure_leases:
            keys = [c.key for c in self.plan.cells if c.kind == "measure"]
            taken = []
            for key in keys:
                if not self.store.acquire_lease(key, self.holder, LEASE_TTL_S):
                    for k in taken:
                        self.store.release_lease(k, self.holder)
                    return "busy"
                taken.append(key)
            self._measure_leases = True
            self._measured_together = None  # decide again: another run may have measured them meanwhile
            if self.store.cell(cell.key) is not None and self._measures_side_by_side():
                for key in keys:
                    if self.store.cell(key) is not None:
                        self.store.release_lease(key, self.holder)
                self._reuse(summary, cell)
                return "reused"
        self.reporter.cell_start(cell.label)
        return "claimed"

    def _run_measure(self, summary: RunSummary, cell: CellSpec) -> None:
        """A measure cell, in this process with no other cell running (the first one measures the group)."""
        if self._measure_error is not None:
            self._fail(summary, cell, f"the measurement of every candidate together failed: {self._measure_error}")
            return
        t = time.perf_counter()
        work = Timer(self.energy)
        try:
            with work:
                self._measure(cell)
        except BaseException as exc:
            self._abandon(cell, work, exc)
            if not self.executor.isolates or not isinstance(exc, Exception):
                raise
            self._measure_error = describe_error(exc)
            self._fail(summary, cell, self._measure_error)
            return
        self._done.add(cell.key)
        summary.cells_run.append(cell.label)
        with Timer(self.energy) as done_timer:
            self.reporter.cell_done(cell.label, reused=False, seconds=time.perf_counter() - t)
        self._overhead.append(done_timer)

    def _abandon(self, cell: CellSpec, work: Timer, exc: BaseException) -> None:
        """Bills the work of a measure cell that did not finish: one `abandoned:<kind>:<why>` ledger entry (its
        own transaction; the cell is not written, so the next run does it again). Nothing is written when the
        cell was committed before the exception, and a failure to write never hides the exception itself."""
        entry = abandoned_entry(cell, work, "interrupted" if isinstance(exc, KeyboardInterrupt) else "error")
        if entry is None:
            return
        try:
            with interrupts_deferred(), Timer(self.energy) as timer:
                done = self.store.cell(cell.key)
                if done is None or done["run_id"] != self.run_id:
                    self.store.add_ledger(self.study.name, self.run_id, [entry])
                self.store.release_lease(cell.key, self.holder)
            self._overhead.append(timer)
        except Exception:  # noqa: BLE001  (the store failing too: the original exception matters more)
            pass

    def _commit(self, **cell: Any) -> None:
        """Writes a finished measure cell (one transaction), counting the write as bookkeeping."""
        with Timer(self.energy) as timer:
            self.store.put_cell(study=self.study.name, run_id=self.run_id, **cell)
        self._overhead.append(timer)

    def model(self, key: str) -> Any:
        """A built model, loaded from its artifact (kept in memory for this run)."""
        return self.worker.model(key, self.store.artifact_dir(key))

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



def run_study(study: Study, store: Store, reporter: Reporter | None = None, source: str | None = None,
              data: Any | None = None, executor: str = "local", settings: ExecutorSettings | None = None) -> RunSummary:
    """Runs (or resumes) a study into the store; `executor` and `settings` say where its cells run."""
    return LocalRunner(study, store, reporter, source, executor, settings).run(data)
