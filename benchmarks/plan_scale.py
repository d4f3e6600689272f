"""Planning at scale: a 1,000-cell sweep study (77 MLP configurations from a grid of widths, depths and learning
rates, x 3 seeds x (build, evaluate, the 2 tabular perturbations) + a measure cell each + integrity = 1,002
cells) is
validated, planned, recorded in a fresh store and every cell looked up as the driver does before it hands
one out (`Store.cell`, then `Store.acquire_lease`); no model is built.

    .venv/bin/python benchmarks/plan_scale.py                 # the record (target < 10 s in all)
    .venv/bin/python benchmarks/plan_scale.py --configs 20    # a quick check
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from leanbench.runner.local import load_data, run_process, task_summary
from leanbench.runner.manifest import build_manifest, cpu_model
from leanbench.runner.plan import dependencies, make_plan
from leanbench.store import Store
from leanbench.study_loader import parse_study


def sweep(configs: int) -> dict:
    grid = itertools.product([16, 32, 64, 128, 256], [1, 2], [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0, 10.0, 30.0])
    cands = [{"name": f"mlp-{w}x{d}-lr{lr:g}", "model": {"arch": "mlp", "hidden": [w] * d},
              "steps": [{"train": {"epochs": 5, "lr": lr}}]} for w, d, lr in itertools.islice(grid, configs)]
    return {"name": "sweep", "task": {"data": "sklearn:iris"}, "reference": cands[0]["name"], "candidates": cands,
            "evaluate": {"seeds": [0, 1, 2], "perturbations": "default"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=int, default=77)
    args = ap.parse_args()
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.platform()}, python {sys.version.split()[0]}")
    t0 = time.perf_counter()
    study = parse_study(sweep(args.configs))
    data = load_data(study)
    t_validate = time.perf_counter()
    manifest = build_manifest(study.seed)
    t_manifest = time.perf_counter()
    plan = make_plan(study, data, manifest)
    deps = dependencies(study, plan)
    t_plan = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "lb.db")
        config = study.model_dump(mode="json", by_alias=True)
        run_id = store.start_run(study.name, manifest, config, process=run_process())
        store.save_plan(study.name, config, None, task_summary(study, data), run_id, plan.rows, plan.study_cells)
        t_save = time.perf_counter()
        for cell in plan.cells:
            assert store.cell(cell.key) is None and store.acquire_lease(cell.key, "bench", 60.0)
        t_lookup = time.perf_counter()
    n = len(plan.cells)
    print(f"{n} cells ({sum(len(d) for d in deps.values())} dependencies), {len(study.candidates)} candidates")
    print(f"validate + load data: {t_validate - t0:6.2f} s")
    print(f"manifest (machine score): {t_manifest - t_validate:6.2f} s")
    print(f"plan + dependencies: {t_plan - t_manifest:6.2f} s")
    print(f"store: open, start run, save plan: {t_save - t_plan:6.2f} s")
    per = 1e3 * (t_lookup - t_save) / n
    print(f"store: look up and lease every cell: {t_lookup - t_save:6.2f} s ({per:.1f} ms/cell)")
    print(f"total: {t_lookup - t0:6.2f} s (target < 10 s for 1,000 cells)")


if __name__ == "__main__":
    main()
