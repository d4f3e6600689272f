"""Executors: wall time of 8 independent build cells (8 MLPs trained from scratch on digits, plus their 8
evaluations; no measure cells) run one at a time in the driver (`local`, --jobs 1), in a pool of two processes
(--jobs 2) and as Ray tasks on a local cluster (--executor ray --jobs 2); each into a fresh store.

    .venv/bin/python benchmarks/executors.py                     # the record: 8 cells of --epochs 60
    .venv/bin/python benchmarks/executors.py --epochs 3 --executors local,pool   # a quick check

Figures: the speed-up of the pool over local (target >= 1.8x on 2 cores) and the Ray overhead per cell
against the pool: (Ray wall - pool wall) / cells (16: builds and evaluations); the local cluster's start-up
is shown apart, not in it. Threads: local gives one cell every core (torch's intra-op threads), the pool and
Ray one core per cell (cores / jobs), as `leanbench run` does.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from leanbench.runner.executors import choose
from leanbench.runner.local import load_data, run_study
from leanbench.runner.manifest import cpu_model
from leanbench.store import Store
from leanbench.study_loader import parse_study

CELLS = 8


def study(epochs: int) -> dict:
    cands = [{"name": f"mlp{i}", "model": {"arch": "mlp", "hidden": [256, 256]},
              "steps": [{"train": {"epochs": epochs, "patience": epochs, "lr": 1e-3 * (1 + i / 8)}}]}
             for i in range(CELLS)]
    return {"name": "executors", "task": {"data": "sklearn:digits"}, "reference": "mlp0", "candidates": cands,
            "evaluate": {"bootstrap": 100, "perturbations": "none"}, "integrity": {"contamination": False},
            "measure": {"enabled": False}}


def timed_run(executor: str, epochs: int, root: Path) -> tuple[float, float]:
    """Wall seconds of the run (data loading included), and of the Ray cluster's start for `ray`."""
    s = parse_study(study(epochs))
    name, settings = choose(executor, 1 if executor == "local" else 2, None, None, None)
    store = Store.open(root / executor / "lb.db")
    started = 0.0
    if executor == "ray":
        import ray

        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        t = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=500_000_000, log_to_driver=False)
        started = time.perf_counter() - t
    t = time.perf_counter()
    summary = run_study(s, store, data=load_data(s), executor=name, settings=settings)
    wall = time.perf_counter() - t
    if executor == "ray":
        import ray

        ray.shutdown()
    assert len(summary.cells_run) == 2 * CELLS and not summary.cells_failed, summary
    return wall, started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--executors", default="local,pool,ray")
    args = ap.parse_args()
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.platform()}, python {sys.version.split()[0]}")
    print(f"load average before: {os.getloadavg()}")
    walls = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ex in args.executors.split(","):
            wall, start = timed_run(ex, args.epochs, Path(tmp))
            walls[ex] = wall
            extra = f" (+ {start:.1f} s starting the cluster)" if ex == "ray" else ""
            print(f"{ex:6s}: {wall:7.1f} s for {CELLS} builds + {CELLS} evaluations{extra}")
    if "local" in walls and "pool" in walls:
        print(f"pool --jobs 2 vs local --jobs 1: {walls['local'] / walls['pool']:.2f}x (target >= 1.8x on 2 cores)")
    if "pool" in walls and "ray" in walls:
        print(f"Ray overhead per cell vs pool processes: {(walls['ray'] - walls['pool']) / (2 * CELLS):+.2f} s")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
