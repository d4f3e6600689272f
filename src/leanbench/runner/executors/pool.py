"""The process pool: each cell in a process of its own, `jobs` at a time, within a time limit and a memory cap.

Processes come from a fork server (`multiprocessing`'s "forkserver": a clean interpreter that imported
leanbench and torch once and never ran a torch operation, so no thread pool is forked). A worker caps its
data memory (RLIMIT_DATA) and uses `cores / jobs` torch threads. A cell whose process raises, crashes, is
killed, runs out of memory or past its time limit comes back as a failed outcome with the reason; the other
cells go on.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_for
from typing import Any

from leanbench.errors import ConfigError
from leanbench.runner.cells import CellOutcome, CellTask, CellWorker, WorkContext, unmeasured_abandoned
from leanbench.runner.executors.base import Executor
from leanbench.runner.executors.worker import child_main, pack_context, probe_memory

# imported once by the fork server, so a cell's process starts with them (~80 ms from fork to work here); a
# module missing is skipped. What the torch cells of a study import: torch pulls in sympy on first use.
PRELOAD = ["leanbench.runner.executors.worker", "leanbench.study", "torch", "sympy", "leanbench.models.torch_models",
           "leanbench.compress.train", "leanbench.compress.distill", "leanbench.compress.prune",
           "leanbench.compress.quantize", "leanbench.compress.lowrank", "leanbench.evaluate.classification",
           "leanbench.evaluate.metrics", "leanbench.evaluate.perturb", "leanbench.measure.energy"]
WORK_MARGIN = 256 * 2**20  # what the message asks for beyond a worker's memory at start


def mib(n: float | None) -> str:
    return "?" if n is None else f"{n / 2**20:,.0f} MiB"


_CHECKED: set[tuple[int, int]] = set()  # (cap, id of the data) a worker was seen to start under


def check_memory(cap: int, study: Any, data: Any) -> None:
    """A cap below what a worker holds before any cell (the study's data, torch) is a user error (exit code 2).
    Checked once per cap and data in a process (`preflight` checks before the store is opened)."""
    if (cap, id(data)) in _CHECKED:
        return
    mp = multiprocessing.get_context("forkserver")
    mp.set_forkserver_preload(PRELOAD)
    recv, send = mp.Pipe(duplex=False)
    proc = mp.Process(target=probe_memory, args=(pack_context(WorkContext(study, data, {}, "")), cap, send),
                      daemon=True)
    proc.start()
    send.close()
    try:
        base, ok, error = recv.recv() if recv.poll(120) else (None, False, "no answer in 120 s")
    except EOFError:
        base, ok, error = None, False, f"the probe process ended with code {proc.exitcode}"
    proc.join(10)
    if not ok:
        raise ConfigError([f"--max-memory / run.max_memory: {mib(cap)} is below what a cell needs: a worker "
                           f"holds {mib(base)} of data memory before any cell starts (the study's data, torch) "
                           f"and could not allocate 64 MiB more ({error}); give at least "
                           f"{mib((base or 0) + WORK_MARGIN)}"])
    _CHECKED.add((cap, id(data)))


@dataclass
class _Job:
    task: CellTask
    process: Any
    conn: Any
    started: float
    cpu_s: float = 0.0  # the process's CPU seconds at the last sample


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process (/proc), None when it is gone."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


class PoolExecutor(Executor):
    name = "pool"

    def start(self, context: WorkContext, worker: CellWorker) -> None:
        self._mp = multiprocessing.get_context("forkserver")
        self._mp.set_forkserver_preload(PRELOAD)
        self._payload = pack_context(context)
        self._jobs: dict[str, _Job] = {}
        if self.settings.memory_bytes:
            check_memory(self.settings.memory_bytes, context.study, context.data)

    def submit(self, task: CellTask) -> None:
        recv, send = self._mp.Pipe(duplex=False)
        proc = self._mp.Process(target=child_main, name=f"leanbench-cell-{task.key[:12]}", daemon=True,
                                args=(self._payload, task, self.settings.threads, self.settings.memory_bytes, send))
        proc.start()
        send.close()
        self._jobs[task.key] = _Job(task, proc, recv, time.perf_counter())

    def running(self) -> list[str]:
        return list(self._jobs)

    def wait(self, timeout_s: float) -> list[CellOutcome]:
        if not self._jobs:
            return []
        limit = self.settings.timeout_s
        if limit is not None:  # wake up in time for the first deadline
            first = min(j.started for j in self._jobs.values()) + limit
            timeout_s = max(0.0, min(timeout_s, first - time.perf_counter()))
        handles = [h for j in self._jobs.values() for h in (j.conn, j.process.sentinel)]
        wait_for(handles, timeout_s)
        outcomes = []
        for key, job in list(self._jobs.items()):
            outcome = self._check(job)
            if outcome is not None:
                del self._jobs[key]
                outcomes.append(outcome)
        return outcomes

    def _check(self, job: _Job) -> CellOutcome | None:
        """The job's outcome if it ended (reported, crashed, or killed at its time limit), else None."""
        if job.conn.poll():
            try:
                outcome = job.conn.recv()
            except (EOFError, OSError):
                outcome = None
            if outcome is not None:
                job.process.join(30)
                return self._with_cap(outcome)
        cpu = _cpu_seconds(job.process.pid)
        job.cpu_s = cpu if cpu is not None else job.cpu_s
        elapsed = time.perf_counter() - job.started
        if not job.process.is_alive():
            job.process.join()
            return self._failed(job, self._ended_why(job.process.exitcode), "error", elapsed)
        if self.settings.timeout_s is not None and elapsed > self.settings.timeout_s:
            self._kill(job)
            return self._failed(job, f"ran past the time limit of {self.settings.timeout_s:g} s (killed)",
                                "timeout", elapsed)
        return None

    def _ended_why(self, code: int | None) -> str:
        if code is not None and code < 0:
            why = f"the worker process was killed by {_signal_name(-code)}"
            if -code == signal.SIGKILL:
                why += " (killed by hand or by the out-of-memory killer)"
            return why
        return f"the worker process exited with code {code} before reporting"

    def _with_cap(self, outcome: CellOutcome) -> CellOutcome:
        cap = self.settings.memory_bytes
        if outcome.error and cap and any(s in outcome.error for s in ("MemoryError", "can't allocate memory",
                                                                      "not enough memory", "Cannot allocate")):
            outcome.error += f" (the memory cap is {mib(cap)}: --max-memory / run.max_memory)"
        return outcome

    def _failed(self, job: _Job, why: str, tag: str, elapsed: float) -> CellOutcome:
        return CellOutcome(job.task.key, job.task.label, error=why,
                           abandoned=unmeasured_abandoned(job.task, elapsed, job.cpu_s, tag))

    def _kill(self, job: _Job) -> None:
        job.process.kill()
        job.process.join(30)
        job.conn.close()

    def close(self) -> list[CellOutcome]:
        outcomes = []
        for job in self._jobs.values():
            cpu = _cpu_seconds(job.process.pid)
            job.cpu_s = cpu if cpu is not None else job.cpu_s
            self._kill(job)
            outcomes.append(self._failed(job, "interrupted", "interrupted", time.perf_counter() - job.started))
        self._jobs.clear()
        return outcomes
