"""The executor interface: the driver (`runner.local.LocalRunner`) hands ready cells (their dependencies done)
to an executor as `CellTask`s and records the `CellOutcome`s it hands back; only the driver writes to the
store. An executor decides where a cell's work runs: in the driver's process (`local`), in a process of its
own (`pool`), as a Ray task (`ray`).

    executor.start(context, worker)      # once per run: what every cell shares
    executor.submit(task)                # at most `slots` cells at a time
    executor.wait(timeout_s) -> [outcomes of the cells that ended]
    executor.close()                     # ends whatever still runs

An executor that isolates cells (`isolates`) turns every failure of a cell (an exception, a crash, a kill,
the memory cap, the time limit) into a failed outcome; the in-process one lets the exception through, as a
run always did.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from leanbench.sizes import parse_memory  # noqa: F401  (the executors' settings parse sizes with it)

if TYPE_CHECKING:
    from leanbench.runner.cells import CellOutcome, CellTask, CellWorker, WorkContext

def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover  (not Linux)
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ExecutorSettings:
    """How cells run: `jobs` at a time, each within `timeout_s` and `memory_bytes` (isolating executors only);
    `address`: a Ray cluster (None: start a local one)."""

    jobs: int = 1
    timeout_s: float | None = None
    memory_bytes: int | None = None
    address: str | None = None

    @property
    def threads(self) -> int:
        """Torch threads per worker: the machine's cores shared among the jobs (no oversubscription)."""
        return max(1, available_cores() // max(1, self.jobs))

    def describe(self) -> dict[str, Any]:
        return {"jobs": self.jobs, "threads_per_cell": self.threads, "timeout_s": self.timeout_s,
                "max_memory_bytes": self.memory_bytes, **({"address": self.address} if self.address else {})}


class Executor(ABC):
    """Runs cells for the driver; see the module docstring."""

    name: ClassVar[str]
    isolates: ClassVar[bool] = True  # a failure of a cell becomes a failed outcome (else: the exception)

    def __init__(self, settings: ExecutorSettings):
        self.settings = settings

    @property
    def slots(self) -> int:
        """How many cells may run at once."""
        return self.settings.jobs

    @abstractmethod
    def start(self, context: WorkContext, worker: CellWorker) -> None:
        """Before the first cell: `context` is what every cell shares; `worker` the driver's own."""

    @abstractmethod
    def submit(self, task: CellTask) -> None:
        """Starts a cell (the driver submits at most `slots` at a time)."""

    @abstractmethod
    def wait(self, timeout_s: float) -> list[CellOutcome]:
        """The outcomes of the cells that ended, waiting up to `timeout_s` for one (empty: none yet)."""

    @abstractmethod
    def running(self) -> list[str]:
        """The keys of the cells in progress."""

    def close(self) -> list[CellOutcome]:
        """Ends the cells still running (an interrupt, an error of the driver); their outcomes say so."""
        return []

    def describe(self) -> dict[str, Any]:
        """The executor's setting, for the run manifest."""
        return {"executor": self.name, **self.settings.describe()}
