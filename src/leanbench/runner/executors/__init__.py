"""Executors, registered by name (`EXECUTORS`): where the driver's cells run. See `base.py` for the interface.

| name  | cells run                                  | failures of a cell                       |
|-------|--------------------------------------------|------------------------------------------|
| local | one at a time in the driver's process      | end the run (as they always did)         |
| pool  | each in a process of its own, `jobs` at once, with a time limit and a memory cap | recorded, the run goes on |
| ray   | each as a Ray task (local cluster or `--address`) | recorded, the run goes on          |

Measure cells are not handed to an executor: the driver runs them itself, with nothing else running.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leanbench.errors import ConfigError
from leanbench.registry import Registry, did_you_mean, resolve
from leanbench.runner.executors.base import Executor, ExecutorSettings, parse_memory


@dataclass(frozen=True)
class ExecutorPlugin:
    name: str
    target: Any  # "module:Class" (resolved on first use) or the Executor subclass
    description: str = ""

    def make(self, settings: ExecutorSettings) -> Executor:
        return resolve(self.target)(settings)


EXECUTORS: Registry[ExecutorPlugin] = Registry("executor")
EXECUTORS.add("local", ExecutorPlugin("local", "leanbench.runner.executors.local:LocalExecutor",
                                      "in the driver's process, one cell at a time"))
EXECUTORS.add("pool", ExecutorPlugin("pool", "leanbench.runner.executors.pool:PoolExecutor",
                                     "each cell in a process of its own, --jobs at a time"))
EXECUTORS.add("ray", ExecutorPlugin("ray", "leanbench.runner.executors.ray_executor:RayExecutor",
                                    "each cell a Ray task (pip install 'leanbench[ray]')"))


def choose(executor: str | None, jobs: int | None, timeout_s: float | None, max_memory: Any,
           address: str | None, run: Any = None) -> tuple[str, ExecutorSettings]:
    """The executor and its settings from the CLI's options and the study's `run:` section (the CLI wins).
    No executor named: `pool` when more than one job, a time limit or a memory cap is asked for (they need
    cells in processes of their own), else `local`. Every problem is one ConfigError (exit code 2)."""
    jobs = jobs if jobs is not None else (run.jobs if run is not None else None)
    timeout_s = timeout_s if timeout_s is not None else (run.timeout if run is not None else None)
    max_memory = max_memory if max_memory is not None else (run.max_memory if run is not None else None)
    problems = []
    if jobs is not None and jobs < 1:
        problems.append(f"--jobs: expected at least 1 cell at a time, got {jobs}")
    if timeout_s is not None and timeout_s <= 0:
        problems.append(f"--timeout: expected a positive number of seconds, got {timeout_s:g}")
    if executor is not None and executor not in EXECUTORS:
        problems.append(f"--executor: unknown executor '{executor}'{did_you_mean(executor, EXECUTORS.names())}; "
                        f"known: {', '.join(EXECUTORS.in_order())}")
    try:
        memory = parse_memory(max_memory, "--max-memory")
    except ConfigError as exc:
        problems += exc.problems
        memory = None
    if address and executor != "ray":
        problems.append("--address: a Ray cluster's address goes with --executor ray")
    if executor == "local" and ((jobs or 1) > 1 or timeout_s is not None or memory is not None):
        problems.append("--executor local runs cells one at a time in this process, without a time limit or a "
                        "memory cap; use --executor pool (or leave --executor out) for --jobs, --timeout and "
                        "--max-memory")
    if problems:
        raise ConfigError(problems)
    if executor is None:
        executor = "pool" if (jobs or 1) > 1 or timeout_s is not None or memory is not None else "local"
    if jobs is None:
        from leanbench.runner.executors.base import available_cores

        jobs = available_cores() if executor == "ray" else 1
    return executor, ExecutorSettings(jobs=jobs, timeout_s=timeout_s, memory_bytes=memory, address=address)


def make_executor(name: str, settings: ExecutorSettings) -> Executor:
    return EXECUTORS.get(name).make(settings)


def preflight(name: str, settings: ExecutorSettings, study: Any, data: Any) -> None:
    """The checks an executor can make before the store is opened, so that bad input leaves no trace: Ray
    importable and its address accepting connections; a memory cap a worker can start under (the pool and Ray
    workers hold the study's data)."""
    if name == "ray":
        from leanbench.runner.executors.ray_executor import check_address, import_ray

        import_ray()
        if settings.address:
            check_address(settings.address)
    if name in ("pool", "ray") and settings.memory_bytes:
        from leanbench.runner.executors.pool import check_memory

        check_memory(settings.memory_bytes, study, data)


__all__ = ["EXECUTORS", "Executor", "ExecutorPlugin", "ExecutorSettings", "choose", "make_executor", "parse_memory",
           "preflight"]
