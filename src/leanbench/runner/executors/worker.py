"""What runs in a worker process (a pool's or a Ray worker's): the process's limits (memory cap, torch
threads), the run's context, the driver's plugins, and one cell.

Plugins registered in the driver at run time (a plugin defined in a script or a test, not on import of an
installed module) are shipped with the context: each registry entry the worker does not have after importing
leanbench is added from the driver's (pickled by reference to its module, with cloudpickle when installed).
"""

from __future__ import annotations

import os
import pickle
import resource
import signal
from typing import Any

from leanbench.runner.cells import CellOutcome, CellTask, CellWorker, WorkContext, describe_error


def _registries() -> dict[str, Any]:
    import leanbench.study  # noqa: F401  (registers the built-in plugins)
    from leanbench.plugins import FAMILIES, MODEL_KINDS, STEPS, TASK_KINDS

    return {"families": FAMILIES, "model_kinds": MODEL_KINDS, "steps": STEPS, "task_kinds": TASK_KINDS}


def _pickler() -> Any:
    try:
        import cloudpickle

        return cloudpickle
    except ImportError:  # pragma: no cover  (cloudpickle comes with Ray, Optuna's and MLflow's dependencies)
        return pickle


def pack_context(context: WorkContext) -> bytes:
    """The run's context and the driver's plugins, as the bytes every worker starts from."""
    dumps = _pickler().dumps
    plugins: dict[str, dict[str, bytes]] = {}
    for kind, registry in _registries().items():
        for name in registry.in_order():
            try:
                plugins.setdefault(kind, {})[name] = dumps(registry.get(name))
            except Exception:  # noqa: BLE001, S112  (a built-in the worker has anyway; a missing one says so there)
                continue
    return pickle.dumps((plugins, dumps(context)))


def unpack_context(payload: bytes) -> WorkContext:
    """The context of `pack_context`, after adding the plugins this process lacks."""
    plugins, context = pickle.loads(payload)
    for kind, registry in _registries().items():
        for name, blob in plugins.get(kind, {}).items():
            if name not in registry:
                try:
                    registry.add(name, pickle.loads(blob))
                except Exception:  # noqa: BLE001, S112  (its module is not importable here: "unknown step" later)
                    continue
    return pickle.loads(context)


def limit_process(threads: int, memory_bytes: int | None) -> None:
    """Caps this process's data memory (RLIMIT_DATA: heap and private mappings, where every array lives) and
    sets torch's threads."""
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(threads)


def run_cell(payload: bytes, task: CellTask, threads: int, memory_bytes: int | None) -> CellOutcome:
    """One cell in this (worker) process, any failure turned into a failed outcome."""
    try:
        limit_process(threads, memory_bytes)
        return CellWorker(unpack_context(payload)).run_caught(task)
    except Exception as exc:  # noqa: BLE001  (before the cell started: its context or plugins)
        return CellOutcome(task.key, task.label, error=describe_error(exc))


def child_main(payload: bytes, task: CellTask, threads: int, memory_bytes: int | None, conn: Any) -> None:
    """A pool process: computes the cell and sends its outcome to the driver. Ctrl-C reaches the whole process
    group: the driver handles it (ends the workers, bills their work), so a worker ignores it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    outcome = run_cell(payload, task, threads, memory_bytes)
    conn.send(outcome)
    conn.close()


def _status_bytes(field: str) -> int | None:
    try:
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def probe_memory(payload: bytes, memory_bytes: int, conn: Any) -> None:
    """Whether a worker can work under the cap at all: it loads the context and torch without the cap, then
    caps itself and allocates 64 MiB. Sends (the data memory held before any cell, ok, error)."""
    try:
        unpack_context(payload)
        import torch

        base = _status_bytes("VmData")
        limit_process(1, memory_bytes)
        torch.ones(16 * 2**20)  # 64 MiB of float32
        conn.send((base, True, None))
    except Exception as exc:  # noqa: BLE001
        conn.send((_status_bytes("VmData"), False, describe_error(exc)))
    conn.close()
