"""Work that does not finish is billed: a cell ended by Ctrl-C or an error leaves an `abandoned:*` ledger
entry with the time it spent (and no cell: the next run redoes it); the run is marked `interrupted` or
`failed`; a run whose process died while `running` is marked `stale` by the next run; `leanbench run`
interrupted prints one line and exits with 130."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml

from leanbench.analysis import analyse
from leanbench.report import render
from leanbench.runner import local
from leanbench.runner.local import process_ended, run_process, run_study
from leanbench.store import Store
from leanbench.study_loader import parse_study

STUDY = {
    "name": "stop",
    "seed": 0,
    "task": {"data": "sklearn:iris"},
    "reference": "ref",
    "candidates": [
        {"name": "ref", "model": {"arch": "mlp", "hidden": [16]}, "steps": [{"train": {"epochs": 2}}]},
        {"name": "kd", "model": {"arch": "mlp", "hidden": [4]},
         "steps": [{"distill": {"teacher": "ref", "epochs": 2}}]},
    ],
    "evaluate": {"bootstrap": 100, "perturbations": "none"},
    "integrity": {"contamination": False},
    "measure": {"runs": 12, "warmup": 1, "rounds": 6, "throughput_runs": 3, "throughput_warmup": 1},
    "deploy": {"profiles": [{"name": "edge", "threads": 1, "batch": 1}]},
}
PAUSE = 0.3


def stopping_step(exc: BaseException, at: str = "distill"):
    """apply_step that spends PAUSE seconds in the `at` step and then raises `exc`."""
    real = local.apply_step

    def apply(name, config, model, ctx):
        if name == at:
            time.sleep(PAUSE)
            raise exc
        return real(name, config, model, ctx)

    return apply


def runs(store: Store) -> list[tuple[int, str]]:
    with sqlite3.connect(store.path) as conn:
        return conn.execute("select id, status from runs order by id").fetchall()


@pytest.mark.parametrize(("exc", "why", "status"), [(KeyboardInterrupt(), "interrupted", "interrupted"),
                                                    (RuntimeError("out of memory"), "error", "failed")])
def test_an_unfinished_cell_is_billed_as_abandoned_and_the_rerun_completes(monkeypatch, tmp_path, exc, why, status):
    study = parse_study(json.loads(json.dumps(STUDY)))
    store = Store.open(tmp_path / "s.db")
    real = local.apply_step
    monkeypatch.setattr(local, "apply_step", stopping_step(exc))
    with pytest.raises(type(exc)):
        run_study(study, store)
    kd_build = store.candidates("stop")[1]["cells"]["build"]["0"]
    abandoned = [r for r in store.ledger("stop") if r["phase"].startswith("abandoned:")]
    assert [(r["phase"], r["candidate"], r["cell_key"]) for r in abandoned] == [(f"abandoned:build:{why}", "kd",
                                                                                 kd_build)]
    assert PAUSE <= abandoned[0]["seconds"] < PAUSE + 5 and abandoned[0]["joules"] > 0
    assert store.cell(kd_build) is None  # a ledger row is not a cell: the next run builds it again
    assert runs(store) == [(1, status)]
    # the interrupted run's ledger still accounts for its wall time, the lost work included (the last store
    # write, of the run's bookkeeping itself, is in neither: tens of ms)
    rows = [r for r in store.ledger("stop") if r["run_id"] == 1]
    seconds = store.study("stop")["run"]["seconds"]
    assert abs(sum(r["seconds"] for r in rows) - seconds) <= max(0.05 * seconds, 0.15)

    monkeypatch.setattr(local, "apply_step", real)
    resumed = run_study(study, store)
    assert resumed.cells_reused == ["build ref"] and store.cell(kd_build) is not None
    assert runs(store) == [(1, status), (2, "finished")]
    results = analyse(store, "stop")
    phases = results.to_dict()["cost"]["by_phase"]
    assert phases[f"abandoned:build:{why}"]["seconds"] == pytest.approx(abandoned[0]["seconds"])
    assert f"abandoned:build:{why}" in render(results, "md")  # in "Where the time went"
    # the lost work is the study's, not the candidate's build cost
    kd = next(c for c in results.to_dict()["candidates"] if c["name"] == "kd")
    assert "abandoned" not in json.dumps(kd["cost"])


def test_an_interrupted_measurement_is_billed_too(monkeypatch, tmp_path):
    from leanbench.runner import measure_cell

    def interrupted(*args, **kwargs):
        time.sleep(PAUSE)
        raise KeyboardInterrupt

    study = parse_study(json.loads(json.dumps(STUDY)))
    store = Store.open(tmp_path / "s.db")
    real = measure_cell.measure_group
    monkeypatch.setattr(measure_cell, "measure_group", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_study(study, store)
    abandoned = [r for r in store.ledger("stop") if r["phase"].startswith("abandoned:")]
    assert [(r["phase"], r["candidate"]) for r in abandoned] == [("abandoned:measure:interrupted", "ref")]
    assert abandoned[0]["seconds"] >= PAUSE
    monkeypatch.setattr(measure_cell, "measure_group", real)
    assert len([c for c in run_study(study, store).cells_run if c.startswith("measure")]) == 2


def test_a_run_left_running_by_a_dead_process_is_marked_stale(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    here = run_process()
    store = Store.open(tmp_path / "s.db")
    ids = {name: store.start_run("stop", {}, {}, process=process) for name, process in (
        ("dead", {**here, "pid": int(dead.stdout)}), ("alive", here), ("elsewhere", {**here, "host": "other"}),
        ("rebooted", {**here, "boot": "an earlier boot"}), ("unrecorded", None))}
    assert process_ended({**here, "pid": int(dead.stdout)}, here) and not process_ended(here, here)
    assert sorted(store.mark_stale_runs(lambda p: process_ended(p, here))) == sorted([ids["dead"], ids["rebooted"]])
    assert {store.run_status(i) for i in (ids["alive"], ids["elsewhere"], ids["unrecorded"])} == {"running"}
    run_study(parse_study(json.loads(json.dumps(STUDY))), store)  # the next run marks them on start
    assert store.run_status(ids["dead"]) == "stale" and store.run_status(ids["alive"]) == "running"
    # the process is bookkeeping of a run in progress, kept out of the manifest (which the report shows)
    with sqlite3.connect(store.path) as conn:
        kept = {k for (k,) in conn.execute("select key from meta where key like 'run-process:%'")}
        manifests = [json.loads(m) for (m,) in conn.execute("select manifest from runs")]
    assert kept == {f"run-process:{ids[n]}" for n in ("alive", "elsewhere")}  # finished and stale runs: dropped
    assert not any("process" in m for m in manifests)


def test_ctrl_c_prints_one_line_exits_130_and_records_the_run_as_interrupted(tmp_path):
    study = json.loads(json.dumps(STUDY))
    study["candidates"][1]["steps"][0]["distill"].update({"epochs": 100_000, "patience": 0})
    f = tmp_path / "study.yaml"
    f.write_text(yaml.safe_dump(study))
    db = tmp_path / "ctrl-c" / "leanbench.db"
    proc = subprocess.Popen([sys.executable, "-m", "leanbench.cli", "run", str(f), "--store", str(db), "-q"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:  # until the teacher is built: the student trains
        if db.exists():
            with sqlite3.connect(db) as conn:
                try:
                    if conn.execute("select count(*) from cells where status='done'").fetchone()[0] >= 1:
                        break
                except sqlite3.OperationalError:
                    pass
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted: " + proc.stderr.read()
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["interrupted; rerun to resume"] and "Traceback" not in err
    store = Store.open(db)
    assert runs(store) == [(1, "interrupted")]
    abandoned = [r for r in store.ledger("stop") if r["phase"] == "abandoned:build:interrupted"]
    assert len(abandoned) == 1 and abandoned[0]["candidate"] == "kd" and abandoned[0]["seconds"] > 0.3
