"""Two `leanbench run` on one store at the same time: both finish, no cell is executed twice (each takes a
cell's lease before working on it), the bill counts every build once, the figures are those of a single run,
and the next run reuses everything. Likewise two studies that share cells. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import yaml

from leanbench.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from _store_backends import BACKENDS, fresh_store_url  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SMALL = {
    "name": "together",
    "seed": 1,
    "task": {"data": "sklearn:wine"},
    "reference": "ref",
    "candidates": [
        {"name": "ref", "model": {"arch": "mlp", "hidden": [64]}, "steps": [{"train": {"epochs": 40}}]},
        {"name": "kd", "model": {"arch": "mlp", "hidden": [4]},
         "steps": [{"distill": {"teacher": "ref", "epochs": 40, "lr": 0.01}}]},
        {"name": "hard", "model": {"arch": "mlp", "hidden": [4]}, "steps": [{"train": {"epochs": 40}}]},
        {"name": "ref-int8", "from": "ref", "steps": [{"quantize": {}}]},
        {"name": "ref-pruned", "from": "ref", "steps": [{"prune": {"sparsity": 0.5}}]},
    ],
    "evaluate": {"bootstrap": 200, "seeds": [0, 1]},
    "measure": {"runs": 12, "warmup": 1, "rounds": 6, "throughput_runs": 3, "throughput_warmup": 1},
    "deploy": {"profiles": [{"name": "edge", "threads": 1, "batch": 1}]},
}
SUMMARY = re.compile(r"study '(?P<study>[^']+)': (?P<run>\d+) cells run, (?P<reused>\d+) reused")
TIMING = {"latency", "throughput_per_s", "throughput", "speedup_vs_reference", "speedup", "throughput_ratio",
          "speedup_vs_parent", "speedup_vs_control", "peak_memory_bytes", "memory", "cost", "profiles",
          "build_info", "describe"}


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    yield from fresh_store_url(request.param, tmp_path)


def write(tmp_path: Path, study: dict, name: str | None = None) -> Path:
    f = tmp_path / f"{name or study['name']}.yaml"
    f.write_text(yaml.safe_dump(study))
    return f


def start(study: Path, store: str, artifacts: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "leanbench.cli", "run", str(study), "--store", store,
                             "--artifacts", str(artifacts), "-q"], cwd=study.parent, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def finish(proc: subprocess.Popen, timeout: float) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    m = SUMMARY.search(err)
    assert m, err
    return {"run": int(m["run"]), "reused": int(m["reused"])}


def run_at_once(studies: list[Path], store: str, artifacts: Path, delay: float = 0.3,
                timeout: float = 600) -> list[dict]:
    procs = []
    for study in studies:
        procs.append(start(study, store, artifacts))
        time.sleep(delay)
    return [finish(p, timeout) for p in procs]


def executions_per_cell(st: Store, study: str) -> dict[str, set]:
    """Which runs billed work for each cell (abandoned work aside): one run per cell when none ran twice."""
    runs = defaultdict(set)
    for row in st.ledger(study):
        if row["cell_key"] and not row["phase"].startswith("abandoned:"):
            runs[row["cell_key"]].add(row["run_id"])
    return runs


def build_flops(st: Store, study: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for row in st.ledger(study):
        if row["phase"].startswith("build:") and row["candidate"]:
            out[row["candidate"]] += row["flops"] or 0.0
    return dict(out)


def plan_keys(st: Store, study: str) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = defaultdict(list)
    for c in st.candidates(study):
        cells = c["cells"]
        keys["build"] += cells["build"].values()
        keys["evaluate"] += cells["evaluate"].values()
        keys["evaluate"] += [k for per_seed in cells.get("perturbed", {}).values() for k in per_seed.values()]
        keys["measure"] += [cells["measure"]] if cells.get("measure") else []
    return keys


def figures(st: Store, study: str) -> dict:
    """The results without what depends on timing or on the run."""
    from leanbench.analysis import analyse

    res = analyse(st, study).to_dict()
    return untimed({"candidates": [{k: v for k, v in c.items() if k not in TIMING} for c in res["candidates"]],
                    "integrity": res.get("integrity"), "power": res.get("power")})


def untimed(value):
    """`value` without the durations it holds (keys named `seconds`)."""
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def same_predictions(a: Store, b: Store, keys: list[str]) -> None:
    for key in keys:
        pa, pb = a.predictions(key), b.predictions(key)
        assert len(pa["ids"]) > 0 and list(pa["ids"]) == list(pb["ids"]), key
        assert np.array_equal(pa["pred"], pb["pred"]) and np.array_equal(pa["scores"], pb["scores"]), key


def single_run(tmp_path: Path, study: Path, name: str) -> Store:
    single = tmp_path / f"single-{name}"
    finish(start(study, str(single / "lb.db"), single / "artifacts"), 600)
    return Store.open(single / "lb.db", readonly=True)


def check_two_runs(tmp_path: Path, store_url: str, study_file: Path, name: str, timeout: float = 600) -> None:
    reference = single_run(tmp_path, study_file, name)
    total = sum(len(v) for v in plan_keys(reference, name).values()) + len(reference.study(name)["cells"])
    artifacts = tmp_path / "artifacts"
    a, b = run_at_once([study_file, study_file], store_url, artifacts, timeout=timeout)
    assert a["run"] + a["reused"] == total and b["run"] + b["reused"] == total
    assert a["run"] + b["run"] == total, (a, b)  # every cell executed once, by one of the two runs
    st = Store.open(store_url, readonly=True, artifacts=artifacts)
    assert all(len(runs) == 1 for runs in executions_per_cell(st, name).values())
    assert build_flops(st, name) == build_flops(reference, name)  # no build billed twice
    keys = plan_keys(st, name)
    assert {st.cell(k)["run_id"] for k in keys["measure"]} in ({1}, {2})  # one measurement of the group
    same_predictions(reference, st, keys["evaluate"])
    assert figures(st, name) == figures(reference, name)
    again = finish(start(study_file, store_url, artifacts), timeout)
    assert again == {"run": 0, "reused": total}
    with st.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM leases").scalar() == 0  # every lease given back
    st.engine.dispose()


def test_two_runs_of_one_study_at_once(tmp_path, store_url):
    check_two_runs(tmp_path, store_url, write(tmp_path, SMALL), "together")


@pytest.mark.slow
def test_two_studies_sharing_cells_at_once(tmp_path, store_url):
    """Two studies with the same reference (and so the same build and evaluate cells for it) run together:
    the shared cells are executed once, each study's own cells once, the figures those of separate runs."""
    one = json.loads(json.dumps(SMALL))
    one["name"], one["candidates"] = "one", SMALL["candidates"][:3]
    two = json.loads(json.dumps(SMALL))
    two["name"], two["candidates"] = "two", [SMALL["candidates"][0], *SMALL["candidates"][3:]]
    files = [write(tmp_path, one), write(tmp_path, two)]
    refs = {s: single_run(tmp_path, f, s) for s, f in zip(("one", "two"), files, strict=True)}
    artifacts = tmp_path / "artifacts"
    a, b = run_at_once(files, store_url, artifacts)
    st = Store.open(store_url, readonly=True, artifacts=artifacts)
    distinct = set()
    for s in ("one", "two"):
        distinct |= {k for v in plan_keys(st, s).values() for k in v} | set(st.study(s)["cells"].values())
    assert a["run"] + b["run"] == len(distinct)  # the reference's build and evaluations once, not twice
    for s in ("one", "two"):
        same_predictions(refs[s], st, plan_keys(st, s)["evaluate"])
        shared, alone = figures(st, s), figures(refs[s], s)
        assert shared["integrity"].pop("holdout")["studies"] == ["one", "two"]  # the store-wide use of the split
        alone["integrity"].pop("holdout")
        assert shared == alone
    st.engine.dispose()


@pytest.mark.slow
def test_two_runs_of_digits_at_once(tmp_path):
    """The defect as found: digits twice on one fresh SQLite store, 0.3 s apart (191 executions for 134 cells
    and build FLOPs x2 before leases)."""
    check_two_runs(tmp_path, str(tmp_path / "store" / "lb.db"), ROOT / "studies" / "digits.yaml", "digits",
                   timeout=3600)
