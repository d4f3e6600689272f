"""The Ray executor: each cell a Ray task (`num_cpus` = the torch threads it uses, `memory` = the cap) in a Ray
worker process, which caps its own data memory (RLIMIT_DATA) and threads as a pool worker does (the run's
settings, the same for every cell, so Ray may reuse a worker for the next cell: a process per cell cost ~4 s
each here). A cell whose worker dies or that raises comes back failed. Artifacts go to the store's artifact
folder, which every node must see (a shared file system); the driver renames each saved model into place and
commits it, as with any executor.

With no address a local cluster is started for the run (`num_cpus` = jobs x threads, no dashboard, a 500 MB
object store) and stopped after it; with `--address` the run joins that cluster. Ray is the optional extra
`leanbench[ray]`.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from leanbench.errors import LeanbenchError
from leanbench.runner.cells import CellOutcome, CellTask, CellWorker, WorkContext, unmeasured_abandoned
from leanbench.runner.executors.base import Executor
from leanbench.runner.executors.worker import pack_context, run_cell

OBJECT_STORE_BYTES = 500_000_000


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise LeanbenchError("--executor ray needs Ray, which is not installed: pip install 'leanbench[ray]'") from None
    return ray


def check_address(address: str, timeout_s: float = 5.0) -> None:
    """A cluster address ("host:port" or "ray://host:port") that does not accept a connection is a user error,
    said at once (Ray itself retries for minutes). "auto" and "local" are Ray's to resolve."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise LeanbenchError(f"--address: expected host:port (or ray://host:port), got '{address}'")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise LeanbenchError(f"--executor ray: cannot connect to the Ray cluster at {address}: {exc}") from None


class RayExecutor(Executor):
    name = "ray"

    def start(self, context: WorkContext, worker: CellWorker) -> None:
        ray = self.ray = import_ray()
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        self._own_cluster = False
        if not ray.is_initialized():
            self._connect()
        threads, cap = self.settings.threads, self.settings.memory_bytes
        self._payload = ray.put(pack_context(context))
        self._remote = ray.remote(run_cell).options(
            num_cpus=threads, **({"memory": cap} if cap else {}))
        self._refs: dict[Any, tuple[CellTask, float]] = {}

    def _connect(self) -> None:
        address = self.settings.address
        try:
            if address:
                check_address(address)
                self.ray.init(address=address, log_to_driver=False, logging_level="ERROR")
            else:
                self.ray.init(num_cpus=self.settings.jobs * self.settings.threads, include_dashboard=False,
                              object_store_memory=OBJECT_STORE_BYTES, log_to_driver=False, logging_level="ERROR")
                self._own_cluster = True
        except LeanbenchError:
            raise
        except Exception as exc:  # noqa: BLE001  (ConnectionError, RuntimeError, ValueError: all one message)
            where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
            raise LeanbenchError(f"--executor ray: cannot connect to {where}: {type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}") from None

    def submit(self, task: CellTask) -> None:
        ref = self._remote.remote(self._payload, task, self.settings.threads, self.settings.memory_bytes)
        self._refs[ref] = (task, time.perf_counter())

    def running(self) -> list[str]:
        return [task.key for task, _ in self._refs.values()]

    def wait(self, timeout_s: float) -> list[CellOutcome]:
        if not self._refs:
            return []
        done, _ = self.ray.wait(list(self._refs), num_returns=1, timeout=timeout_s)
        outcomes = [self._result(ref) for ref in done]
        limit = self.settings.timeout_s
        for ref, (task, started) in list(self._refs.items()):
            elapsed = time.perf_counter() - started
            if limit is not None and elapsed > limit:
                self.ray.cancel(ref, force=True)
                del self._refs[ref]
                outcomes.append(CellOutcome(task.key, task.label,
                                            error=f"ran past the time limit of {limit:g} s (cancelled)",
                                            abandoned=unmeasured_abandoned(task, elapsed, 0.0, "timeout")))
        return outcomes

    def _result(self, ref: Any) -> CellOutcome:
        task, started = self._refs.pop(ref)
        try:
            return self.ray.get(ref)
        except Exception as exc:  # noqa: BLE001  (the worker died: WorkerCrashedError, OutOfMemoryError, ...)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return CellOutcome(task.key, task.label, error=f"the Ray task failed: {type(exc).__name__}: {first}",
                               abandoned=unmeasured_abandoned(task, time.perf_counter() - started, 0.0, "error"))

    def close(self) -> list[CellOutcome]:
        outcomes = []
        for ref, (task, started) in list(self._refs.items()):
            self.ray.cancel(ref, force=True)
            outcomes.append(CellOutcome(task.key, task.label, error="interrupted", abandoned=unmeasured_abandoned(
                task, time.perf_counter() - started, 0.0, "interrupted")))
        self._refs.clear()
        if getattr(self, "_own_cluster", False):
            self.ray.shutdown()
        return outcomes

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "address": self.settings.address or "local cluster"}
