"""End to end on a small study: run, report contract, reuse of every cell, and resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import yaml

from leanbench.analysis import analyse
from leanbench.runner.local import run_study
from leanbench.store import Store
from leanbench.study_loader import parse_study

SMALL = {
    "name": "small",
    "seed": 3,
    "task": {"data": "sklearn:wine"},
    "reference": "ref",
    "candidates": [
        {"name": "ref", "model": {"arch": "mlp", "hidden": [64]}, "steps": [{"train": {"epochs": 30}}]},
        {"name": "kd", "model": {"arch": "mlp", "hidden": [4]},
         "steps": [{"distill": {"teacher": "ref", "epochs": 30, "lr": 0.01}}]},
        {"name": "ref-int8", "from": "ref", "steps": [{"quantize": {}}]},
        {"name": "ref-pruned", "from": "ref", "steps": [{"prune": {"sparsity": 0.5}}]},
    ],
    "evaluate": {"bootstrap": 200},
    "measure": {"runs": 20, "warmup": 2, "throughput_runs": 3},
    "deploy": {"profiles": [{"name": "edge", "threads": 1, "batch": 1}, {"name": "server", "threads": 0, "batch": 32}]},
}
CONTRACT = ("name", "params", "nonzero_params", "size_bytes", "flops_per_example", "metrics", "vs_reference",
            "latency", "throughput_per_s", "peak_memory_bytes", "cost")


def stable(results: dict) -> dict:
    """The results without the fields that name the run or the moment."""
    out = json.loads(json.dumps(results))
    out.pop("generated_at")
    out.pop("manifest")
    out.pop("cost")
    return out


def test_run_report_and_reuse(tmp_path):
    study = parse_study(SMALL)
    store = Store.open(tmp_path / "s.db")
    first = run_study(study, store)
    # 4 candidates x (build, evaluate, 2 tabular perturbations, measure) + 1 integrity cell
    assert len(first.cells_run) == 21 and not first.cells_reused
    results = analyse(store, "small").to_dict()
    assert [c["name"] for c in results["candidates"]] == ["ref", "kd", "ref-int8", "ref-pruned"]
    for c in results["candidates"]:
        for key in CONTRACT:
            assert key in c, key
        acc = c["metrics"]["accuracy"]
        assert acc["ci_low"] <= acc["value"] <= acc["ci_high"]
        assert c["vs_reference"]["verdict"] in {"reference", "superior", "non-inferior", "inconclusive", "inferior"}
        assert c["latency"]["edge"]["runs"] >= 20 and c["latency"]["edge"]["threads"] == 1
    ref = results["candidates"][0]
    assert ref["vs_reference"]["verdict"] == "reference"
    pruned = results["candidates"][3]
    assert pruned["nonzero_params"] < 0.6 * pruned["params"]
    kd = results["candidates"][1]
    assert kd["cost"]["build_seconds"] > kd["cost"]["build_seconds_own"]  # includes the teacher
    n_test = results["task"]["splits"]["test"]["n"]
    assert results["candidates"][1]["n_evaluated"] == n_test

    second = run_study(study, store)
    assert not second.cells_run and len(second.cells_reused) == 21
    assert stable(analyse(store, "small").to_dict()) == stable(results)


def test_renaming_a_candidate_reuses_its_cells(tmp_path):
    store = Store.open(tmp_path / "s.db")
    run_study(parse_study(SMALL), store)
    renamed = json.loads(json.dumps(SMALL))
    renamed["candidates"][2]["name"] = "ref-q8"
    again = run_study(parse_study(renamed), store)
    assert not again.cells_run


def test_a_new_candidate_measures_every_candidate_again_side_by_side(tmp_path):
    store = Store.open(tmp_path / "s.db")
    first = run_study(parse_study(SMALL), store)
    grown = json.loads(json.dumps(SMALL))
    grown["candidates"].append({"name": "ref-pruned-70", "from": "ref", "steps": [{"prune": {"sparsity": 0.7}}]})
    study = parse_study(grown)
    second = run_study(study, store)
    measured = sorted(label for label in second.cells_run if label.startswith("measure "))
    assert measured == sorted(f"measure {c.name}" for c in study.candidates)  # the old four again, with it
    assert not any(label.startswith(("build ", "evaluate ")) for label in second.cells_run
                   if "ref-pruned-70" not in label)  # builds and evaluations are still reused
    runs = {store.cell(row["cells"]["measure"])["run_id"] for row in store.candidates("small")}
    assert runs == {second.run_id} and second.run_id != first.run_id
    third = run_study(study, store)  # now all from one run: reused
    assert not third.cells_run


def test_another_study_sharing_the_reference_measures_its_own_group(tmp_path):
    """Measure keys name every build measured together: a study that shares the reference but has other
    candidates measures its own group and leaves this study's measurements (taken side by side) alone."""
    store = Store.open(tmp_path / "s.db")
    run_study(parse_study(SMALL), store)
    before = {row["name"]: row["cells"]["measure"] for row in store.candidates("small")}
    other = json.loads(json.dumps(SMALL))  # another study sharing the reference's cells, with a new candidate
    other["name"] = "other"
    other["candidates"] = [other["candidates"][0],
                           {"name": "ref-pruned-70", "from": "ref", "steps": [{"prune": {"sparsity": 0.7}}]}]
    second = run_study(parse_study(other), store)
    assert sorted(label for label in second.cells_run if label.startswith("measure ")) == [
        "measure ref", "measure ref-pruned-70"]
    assert {row["name"]: row["cells"]["measure"] for row in store.candidates("small")} == before
    assert {store.cell(k)["run_id"] for k in before.values()} == {1}
    for study in ("small", "other"):
        assert not any("side by side" in n for n in analyse(store, study).to_dict()["notes"])
    assert not run_study(parse_study(SMALL), store).cells_run  # this study's cells all reused


def test_killed_run_resumes(tmp_path):
    study = json.loads(json.dumps(SMALL))
    study["task"] = {"data": "sklearn:digits"}
    study["candidates"][0]["steps"] = [{"train": {"epochs": 3}}]
    study["candidates"][1]["steps"][0]["distill"]["epochs"] = 400
    study["candidates"][1]["steps"][0]["distill"]["patience"] = 0
    f = tmp_path / "study.yaml"
    f.write_text(yaml.safe_dump(study))
    db = tmp_path / "kill" / "leanbench.db"
    proc = subprocess.Popen([sys.executable, "-m", "leanbench.cli", "run", str(f), "--store", str(db), "-q"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            with sqlite3.connect(db) as conn:
                try:
                    done = conn.execute("select count(*) from cells where status='done'").fetchone()[0]
                except sqlite3.OperationalError:
                    done = 0
            if done >= 1:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed: " + proc.stderr.read().decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = Store.open(db)
    resumed = run_study(parse_study(study, base_dir=tmp_path), store)
    assert len(resumed.cells_reused) >= 1  # the teacher built before the kill is not rebuilt
    # 4 candidates x (build, evaluate, 4 image perturbations, measure) + 1 integrity cell
    assert len(resumed.cells_run) + len(resumed.cells_reused) == 29
    results = analyse(store, "small").to_dict()
    assert all(c["metrics"] for c in results["candidates"])
    assert not any(p.name.startswith(".tmp-") for p in (db.parent / "artifacts").iterdir())
    # the killed run could not record how it ended: the next run found its process gone and marked it stale
    with sqlite3.connect(db) as conn:
        assert conn.execute("select status from runs order by id").fetchall() == [("stale",), ("finished",)]


def test_a_half_written_artifact_of_a_dead_run_is_removed_and_a_live_ones_kept(tmp_path):
    from leanbench.runner.local import remove_stale_temporaries

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    artifacts = tmp_path / "artifacts"
    stale = artifacts / f".tmp-abc-{int(dead.stdout)}"
    live = artifacts / f".tmp-def-{os.getpid()}"
    done = artifacts / "abc"
    for d in (stale, live, done):
        d.mkdir(parents=True)
        (d / "model.safetensors").write_bytes(b"x")
    assert remove_stale_temporaries(artifacts) == [stale]
    assert not stale.exists() and live.is_dir() and done.is_dir()
