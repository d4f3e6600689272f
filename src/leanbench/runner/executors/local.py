"""The in-process executor: one cell at a time in the driver's process, sharing its loaded models (as a run
always did). An exception in a cell goes through to the driver, which bills the work and ends the run."""

from __future__ import annotations

from leanbench.runner.cells import CellOutcome, CellTask, CellWorker, Timer, WorkContext, abandoned_entry
from leanbench.runner.executors.base import Executor


class LocalExecutor(Executor):
    name = "local"
    isolates = False

    @property
    def slots(self) -> int:
        return 1

    def start(self, context: WorkContext, worker: CellWorker) -> None:
        self.worker = worker
        self._queue: list[CellTask] = []

    def submit(self, task: CellTask) -> None:
        self._queue.append(task)

    def wait(self, timeout_s: float) -> list[CellOutcome]:
        """Computes the submitted cell now. A failure comes back with its exception (`CellOutcome.exception`)
        and the work it spent, for the driver to bill and raise."""
        task = self._queue.pop(0)
        work = Timer(self.worker.energy)
        try:
            with work:
                return [self.worker.run(task)]
        except BaseException as exc:
            why = "interrupted" if isinstance(exc, KeyboardInterrupt) else "error"
            return [CellOutcome(task.key, task.label, error=str(exc), abandoned=abandoned_entry(task, work, why),
                                exception=exc)]

    def running(self) -> list[str]:
        return [t.key for t in self._queue]

    def describe(self) -> dict:
        return {"executor": self.name, "jobs": 1}
