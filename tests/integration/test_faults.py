"""Faults, each a test: the driver killed with -9 mid-run (the next run completes with the figures of a run
that was never killed, the dead run marked stale and its leases dropped); the disk full while an artifact is
written (one message, no cell and no half-written folder left, the next run with space completes); an
artifact truncated or deleted after its cell was committed (a warning and a rebuild, billed once)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from leanbench.runner.local import process_ended
from leanbench.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_concurrent_runs import (  # noqa: E402
    build_flops,
    executions_per_cell,
    figures,
    plan_keys,
    same_predictions,
)

ROOT = Path(__file__).resolve().parents[2]
STUDY = {
    "name": "faults",
    "seed": 2,
    "task": {"data": "sklearn:wine"},
    "reference": "ref",
    "candidates": [
        {"name": "ref", "model": {"arch": "mlp", "hidden": [64]}, "steps": [{"train": {"epochs": 20}}]},
        {"name": "kd", "model": {"arch": "mlp", "hidden": [4]},
         "steps": [{"distill": {"teacher": "ref", "epochs": 300, "lr": 0.01, "patience": 0}}]},
        {"name": "ref-int8", "from": "ref", "steps": [{"quantize": {}}]},
    ],
    "evaluate": {"bootstrap": 200, "perturbations": "none"},
    "integrity": {"contamination": False},
    "measure": {"runs": 12, "warmup": 1, "rounds": 6, "throughput_runs": 3, "throughput_warmup": 1},
    "deploy": {"profiles": [{"name": "edge", "threads": 1, "batch": 1}]},
}


def write(tmp_path: Path, study: dict) -> Path:
    f = tmp_path / f"{study['name']}.yaml"
    f.write_text(yaml.safe_dump(study))
    return f


def leanbench(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leanbench.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=kwargs.get("timeout", 600))


def run_ok(study: Path, db: Path, *extra: str, timeout: float = 600) -> str:
    res = leanbench("run", str(study), "--store", str(db), "-q", *extra, cwd=study.parent, timeout=timeout)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    return res.stderr


def done_cells(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        try:
            return conn.execute("select count(*) from cells where status='done'").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


# ---------------------------------------------------------------------------------------------- kill -9


def test_the_driver_killed_mid_run_the_next_run_completes_with_the_same_figures(tmp_path):
    study = write(tmp_path, STUDY)
    run_ok(study, tmp_path / "whole" / "lb.db")
    reference = Store.open(tmp_path / "whole" / "lb.db", readonly=True)

    db = tmp_path / "killed" / "lb.db"
    proc = subprocess.Popen([sys.executable, "-m", "leanbench.cli", "run", str(study), "--store", str(db), "-q"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (db.exists() and done_cells(db) >= 1):
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read().decode()
    time.sleep(0.3)  # into the distillation, which holds its lease
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as conn:
        held = conn.execute("select count(*) from leases").fetchone()[0]
    assert held >= 1  # the killed run held the lease of the cell it was working on
    st = Store.open(db)  # what the next run does first: the dead run is marked stale and loses its leases,
    assert st.mark_stale_runs(process_ended) == [1]  # so that run takes those cells at once (TTL: 60 s)
    with st.engine.connect() as conn:
        assert conn.exec_driver_sql("select count(*) from leases").scalar() == 0
    st.engine.dispose()

    err = run_ok(study, db)
    assert "0 cells run" not in err
    st = Store.open(db, readonly=True)
    with st.engine.connect() as conn:
        assert conn.exec_driver_sql("select status from runs order by id").all() == [("stale",), ("finished",)]
        assert conn.exec_driver_sql("select count(*) from leases").scalar() == 0
    assert not any(p.name.startswith(".tmp-") for p in st.artifact_root.iterdir())
    same_predictions(reference, st, plan_keys(st, "faults")["evaluate"])
    assert figures(st, "faults") == figures(reference, "faults")
    # each cell's work billed by the one run that committed it (the killed run's unfinished work is lost with
    # it: SIGKILL leaves no chance to bill it; its cached teacher logits are reused, so FLOPs may be lower)
    assert all(len(runs) == 1 for runs in executions_per_cell(st, "faults").values())


# ---------------------------------------------------------------------------------------------- disk full


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (root, or CAP_SYS_ADMIN, is needed to mount one); `grow()` remounts it with 256 MiB."""
    disk = tmp_path / "disk"
    disk.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True,
                         text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here to fill a disk ({res.stderr.strip()})")

    def grow() -> None:
        subprocess.run(["mount", "-o", "remount,size=256m", str(disk)], check=True)

    try:
        yield disk, grow
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_while_an_artifact_is_written(tmp_path, small_disk):
    disk, grow = small_disk
    study = json.loads(json.dumps(STUDY))
    study["name"] = "full"
    study["task"] = {"data": "sklearn:digits"}
    study["candidates"] = [  # the reference's model fits the disk (~3 KB); the wide one (~4.4 MB) does not
        {"name": "ref", "model": {"arch": "mlp", "hidden": [8]}, "steps": [{"train": {"epochs": 2}}]},
        {"name": "wide", "model": {"arch": "mlp", "hidden": [1024, 1024]}, "steps": [{"train": {"epochs": 1}}]},
    ]
    f = write(tmp_path, study)
    db = tmp_path / "store" / "lb.db"
    res = leanbench("run", str(f), "--store", str(db), "--artifacts", str(disk / "artifacts"), "-q", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and "No space left on device" in res.stderr, res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("error: build wide: cannot save the model to")
    st = Store.open(db, readonly=True, artifacts=disk / "artifacts")
    builds = {c["name"]: c["cells"]["build"]["2"] for c in st.candidates("full")}
    assert st.cell(builds["ref"]) is not None and st.artifact_ok(builds["ref"])  # committed before the disk filled
    assert st.cell(builds["wide"]) is None  # no cell without its model
    assert sorted(p.name for p in (disk / "artifacts").iterdir()) == [builds["ref"]]  # nothing half-written
    with st.engine.connect() as conn:
        assert conn.exec_driver_sql("select status from runs").all() == [("failed",)]
        assert conn.exec_driver_sql("select count(*) from leases").scalar() == 0
    st.engine.dispose()

    grow()
    err = run_ok(f, db, "--artifacts", str(disk / "artifacts"))
    assert "1 reused" in err or "reused" in err
    st = Store.open(db, readonly=True, artifacts=disk / "artifacts")
    assert st.cell(builds["wide"]) is not None and st.artifact_ok(builds["wide"])
    assert figures(st, "full")["candidates"][1]["name"] == "wide"


# ---------------------------------------------------------------------------------------------- damaged artifacts


def test_a_truncated_artifact_is_rebuilt_with_a_warning_and_billed_once(tmp_path):
    study = write(tmp_path, STUDY)
    db = tmp_path / "s" / "lb.db"
    run_ok(study, db)
    st = Store.open(db, readonly=True)
    before = build_flops(st, "faults")
    ref = st.candidates("faults")[0]["cells"]["build"]["2"]
    weights = Path(st.cell(ref)["artifact"]) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert not st.artifact_ok(ref)
    err = run_ok(study, db)
    assert "warning: build ref: its model folder" in err and "building it again" in err
    assert "SafetensorError" not in err and "1 cells run" in err, err  # its dependants' cells are reused
    assert st.artifact_ok(ref)
    assert build_flops(st, "faults") == before  # the rebuild's rows replaced the first build's


def test_a_deleted_artifact_folder_is_rebuilt_and_its_build_billed_once(tmp_path):
    study = write(tmp_path, STUDY)
    db = tmp_path / "s" / "lb.db"
    run_ok(study, db)
    st = Store.open(db, readonly=True)
    before = build_flops(st, "faults")
    ref = st.candidates("faults")[0]["cells"]["build"]["2"]
    shutil.rmtree(st.cell(ref)["artifact"])
    run_ok(study, db)
    assert build_flops(st, "faults") == before and before["ref"] > 0


@pytest.mark.slow
def test_digits_with_the_teachers_folder_deleted_bills_the_teacher_once(tmp_path):
    """The defect as found: x1.31 of the teacher's build FLOPs after deleting its folder and rerunning."""
    db = tmp_path / "s" / "lb.db"
    study = ROOT / "studies" / "digits.yaml"
    run_ok(study, db, timeout=3600)
    st = Store.open(db, readonly=True)
    before = build_flops(st, "digits")
    teacher = next(c for c in st.candidates("digits") if c["name"] == "teacher")["cells"]["build"]["0"]
    shutil.rmtree(st.cell(teacher)["artifact"])
    err = run_ok(study, db, timeout=3600)
    assert "1 cells run" in err
    assert build_flops(st, "digits") == before
