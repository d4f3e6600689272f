"""Executors: the same study run in this process (`local`), in a pool of processes (`--jobs 2`) and on Ray gives
identical per-example predictions, metrics and verdicts; with cells in processes of their own a cell that
raises, exits, runs past its memory cap or its time limit, or whose worker is killed with -9, is recorded as
failed, every cell that does not need it still finishes, the run exits non-zero, the report lists the failed
cells, and the next run retries them and completes with the figures of an undisturbed run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import psutil
import pytest
import yaml

from leanbench.analysis import analyse
from leanbench.compress.base import StepResult
from leanbench.errors import ConfigError
from leanbench.plugins import STEPS, Handler, StepPlugin
from leanbench.report import render
from leanbench.runner.executors import ExecutorSettings, choose
from leanbench.runner.local import run_study
from leanbench.schema.base import Strict
from leanbench.store import Store
from leanbench.study_loader import parse_study

ROOT = Path(__file__).resolve().parents[2]


def leanbench(*args: str, cwd: Path, timeout: float = 900, one_thread: bool = False) -> subprocess.CompletedProcess:
    """The CLI; `one_thread`: torch on one thread, as each of two workers on two cores (training on another
    number of threads can change the last bits of a float result, so figures compare at equal threads)."""
    env = {**os.environ, "COLUMNS": "200", "RAY_AUTH_MODE": "disabled"}
    if one_thread:
        env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, "-m", "leanbench.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=timeout)


def small_digits(tmp_path: Path) -> Path:
    """studies/digits.yaml, every candidate, one seed, short training and measurement: 50 cells."""
    study = yaml.safe_load((ROOT / "studies" / "digits.yaml").read_text())
    for cand in study["candidates"]:
        for step in cand.get("steps", []):
            cfg = next(iter(step.values()))
            if "epochs" in cfg:
                cfg["epochs"] = 6
            if "finetune" in cfg:
                cfg["finetune"]["epochs"] = 2
    study["evaluate"].update({"seeds": [0], "bootstrap": 200})
    study["measure"] = {"warmup": 1, "runs": 12, "rounds": 6, "throughput_runs": 3, "throughput_warmup": 1}
    study["deploy"]["profiles"] = [{"name": "edge", "threads": 1, "batch": 1}]
    path = tmp_path / "digits.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def figures(store_path: Path, study: str) -> dict[str, Any]:
    """Everything but timings: per-example predictions and scores of every evaluate cell, each candidate's
    metrics (value and CI) and verdict."""
    store = Store.open(store_path, readonly=True)
    preds = {}
    for cand in store.candidates(study):
        cells = cand["cells"]
        keys = {f"evaluate {s}": k for s, k in cells["evaluate"].items()}
        keys |= {f"{label} {s}": k for s, per in cells["perturbed"].items() for label, k in per.items()}
        for name, key in keys.items():
            p = store.predictions(key)
            assert len(p["pred"]), (cand["name"], name)
            preds[f"{cand['name']} {name}"] = (p["pred"].tolist(), p["scores"].tobytes())
    results = analyse(store, study).to_dict()
    per = {c["name"]: {"metrics": c["metrics"], "verdict": c["vs_reference"]["verdict"]} for c in results["candidates"]}
    return {"predictions": preds, "candidates": per}


@pytest.mark.slow  # two runs of 50 cells: ~90 s here
def test_local_and_a_pool_of_two_give_identical_digits_figures(tmp_path):
    study = small_digits(tmp_path)
    local = leanbench("run", str(study), "--store", str(tmp_path / "local" / "lb.db"), "-q", cwd=tmp_path,
                      one_thread=True)
    assert local.returncode == 0, local.stderr[-3000:]
    pool = leanbench("run", str(study), "--store", str(tmp_path / "pool" / "lb.db"), "-q", "--jobs", "2",
                     cwd=tmp_path)
    assert pool.returncode == 0, pool.stderr[-3000:]
    assert "50 cells run, 0 reused" in pool.stdout + pool.stderr
    assert figures(tmp_path / "pool" / "lb.db", "digits") == figures(tmp_path / "local" / "lb.db", "digits")
    manifest = Store.open(tmp_path / "pool" / "lb.db", readonly=True).study("digits")["run"]["manifest"]
    assert manifest["execution"]["executor"] == "pool" and manifest["execution"]["jobs"] == 2
    assert manifest["execution"]["threads_per_cell"] == max(1, len(os.sched_getaffinity(0)) // 2)
    assert manifest["execution"]["measure"].startswith("alone")
    md = leanbench("report", "--store", str(tmp_path / "pool" / "lb.db"), "-f", "md", cwd=tmp_path)
    assert "measure: alone" in md.stdout and "Failed cells" not in md.stdout


TINY = {
    "name": "tiny", "task": {"data": "sklearn:iris"}, "reference": "a",
    "candidates": [{"name": "a", "model": {"arch": "mlp", "hidden": [16]}, "steps": [{"train": {"epochs": 3}}]},
                   {"name": "a-int8", "from": "a", "steps": ["quantize"]}],
    "evaluate": {"bootstrap": 100, "perturbations": "none"},
    "integrity": {"contamination": False},
    "measure": {"runs": 12, "warmup": 1, "rounds": 6, "throughput_runs": 3, "throughput_warmup": 1},
    "deploy": {"profiles": [{"name": "edge", "threads": 1, "batch": 1}]},
}


def test_local_and_a_pool_give_identical_figures_on_a_small_study(tmp_path):
    study = parse_study(json.loads(json.dumps(TINY)))
    local, pool = Store.open(tmp_path / "local" / "lb.db"), Store.open(tmp_path / "pool" / "lb.db")
    run_study(study, local)  # this process: one torch thread (conftest), as each of two workers on two cores
    summary = run_study(study, pool, executor="pool", settings=ExecutorSettings(jobs=2))
    assert len(summary.cells_run) == 6 and not summary.cells_failed
    assert figures(pool.path, "tiny") == figures(local.path, "tiny")
    assert len(run_study(study, pool, executor="pool", settings=ExecutorSettings(jobs=2)).cells_reused) == 6


@pytest.mark.slow  # ~30 s here, most of it starting the cluster on a busy machine
def test_ray_smoke_a_local_cluster_gives_the_local_figures(tmp_path):
    pytest.importorskip("ray")
    f = tmp_path / "tiny.yaml"
    f.write_text(yaml.safe_dump(TINY))
    local = leanbench("run", str(f), "--store", str(tmp_path / "local" / "lb.db"), "-q", cwd=tmp_path,
                      one_thread=True)
    assert local.returncode == 0, local.stderr[-3000:]
    ray = leanbench("run", str(f), "--store", str(tmp_path / "ray" / "lb.db"), "-q", "--executor", "ray",
                    "--jobs", "2", cwd=tmp_path)
    assert ray.returncode == 0, ray.stderr[-3000:]
    assert "6 cells run, 0 reused" in ray.stdout + ray.stderr
    assert figures(tmp_path / "ray" / "lb.db", "tiny") == figures(tmp_path / "local" / "lb.db", "tiny")
    manifest = Store.open(tmp_path / "ray" / "lb.db", readonly=True).study("tiny")["run"]["manifest"]
    assert manifest["execution"]["executor"] == "ray" and manifest["execution"]["address"] == "local cluster"


@pytest.mark.slow
def test_ray_gives_the_digits_figures_of_a_local_run(tmp_path):
    pytest.importorskip("ray")
    study = small_digits(tmp_path)
    local = leanbench("run", str(study), "--store", str(tmp_path / "local" / "lb.db"), "-q", cwd=tmp_path,
                      one_thread=True)
    ray = leanbench("run", str(study), "--store", str(tmp_path / "ray" / "lb.db"), "-q", "--executor", "ray",
                    "--jobs", "2", cwd=tmp_path)
    assert local.returncode == 0 and ray.returncode == 0, ray.stderr[-3000:]
    assert figures(tmp_path / "ray" / "lb.db", "digits") == figures(tmp_path / "local" / "lb.db", "digits")


def test_bad_executor_options_are_one_message_each_and_exit_2(tmp_path):
    f = tmp_path / "tiny.yaml"
    f.write_text(yaml.safe_dump(TINY))
    db = tmp_path / "bad" / "lb.db"
    cases = [(["--jobs", "0"], "--jobs: expected at least 1"), (["--jobs", "-2"], "--jobs: expected at least 1"),
             (["--max-memory", "lots"], "--max-memory: expected a positive size"),
             (["--executor", "local", "--jobs", "2"], "--executor local runs cells one at a time"),
             (["--executor", "rya"], "did you mean 'ray'"),
             (["--address", "10.0.0.1:6379"], "--address: a Ray cluster's address goes with --executor ray"),
             (["--max-memory", "40M"], "40 MiB is below what a cell needs")]
    for opts, message in cases:
        res = leanbench("run", str(f), "--store", str(db), "-q", *opts, cwd=tmp_path)
        assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, (opts, res.stderr)
        assert not db.exists(), opts  # bad input leaves no trace
    with pytest.raises(ConfigError, match="run.jobs"):
        parse_study({**TINY, "run": {"jobs": 0}})


def test_an_unreachable_ray_address_is_one_message_and_exit_2(tmp_path):
    pytest.importorskip("ray")
    f = tmp_path / "tiny.yaml"
    f.write_text(yaml.safe_dump(TINY))
    res = leanbench("run", str(f), "--store", str(tmp_path / "lb.db"), "-q", "--executor", "ray", "--address",
                    "127.0.0.1:1", cwd=tmp_path, timeout=60)
    assert res.returncode == 2 and "cannot connect to the Ray cluster at 127.0.0.1:1" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "lb.db").exists()


# --------------------------------------------------------------------------- a toy step that fails on purpose
class CrashConfig(Strict):
    how: Literal["raise", "exit", "memory", "sleep"] = "raise"
    flag: str = ""  # fails only while this file exists


def crash(cfg: CrashConfig, model: Any, ctx: Any) -> StepResult:
    if not Path(cfg.flag).exists():
        return StepResult(model, flops=0.0, info={"crashed": False})
    if cfg.how == "raise":
        raise RuntimeError("the toy step broke")
    if cfg.how == "exit":
        os._exit(3)
    if cfg.how == "memory":
        hog = np.ones(2**28)  # 2 GiB of float64, past the cap
        return StepResult(model, flops=float(hog.sum()))
    time.sleep(600)
    return StepResult(model)


@pytest.fixture
def crash_step():
    STEPS.add("crash", StepPlugin("crash", CrashConfig, handlers={"torch": Handler(crash)}))
    yield
    STEPS.remove("crash")


def failing_study(flag: Path) -> dict[str, Any]:
    def crashing(name: str, how: str) -> dict[str, Any]:
        return {"name": name, "from": "ok", "steps": [{"crash": {"how": how, "flag": str(flag)}}]}

    return {**TINY, "name": "fails", "reference": "ok", "candidates": [
        {"name": "ok", "model": {"arch": "mlp", "hidden": [16]}, "steps": [{"train": {"epochs": 3}}]},
        {"name": "ok-int8", "from": "ok", "steps": ["quantize"]},
        crashing("raises", "raise"), crashing("exits", "exit"), crashing("hog", "memory"), crashing("sleepy", "sleep"),
        {"name": "raises-int8", "from": "raises", "steps": ["quantize"]}]}


def test_failed_cells_are_recorded_the_rest_finishes_and_a_rerun_retries_them(crash_step, tmp_path):
    flag = tmp_path / "crash-now"
    flag.touch()
    study = parse_study(failing_study(flag))
    store = Store.open(tmp_path / "s.db")
    settings = ExecutorSettings(jobs=2, timeout_s=6, memory_bytes=1024 * 2**20)
    summary = run_study(study, store, executor="pool", settings=settings)
    own = {f["cell"]: f["error"] for f in summary.cells_failed if f["blocked_by"] is None}
    assert set(own) == {"build raises", "build exits", "build hog", "build sleepy"}
    assert "RuntimeError: the toy step broke" in own["build raises"]
    assert "exited with code 3" in own["build exits"]
    assert "memory cap is 1,024 MiB" in own["build hog"]
    assert "time limit of 6 s" in own["build sleepy"]
    blocked = {f["cell"]: f["blocked_by"] for f in summary.cells_failed if f["blocked_by"] is not None}
    assert blocked["build raises-int8"] == "build raises" and blocked["evaluate raises-int8"] == "build raises"
    assert blocked["evaluate hog"] == "build hog"
    assert {k for k in blocked if k.startswith("measure")} == {f"measure {c.name}" for c in study.candidates}
    assert set(summary.cells_run) == {"build ok", "build ok-int8", "evaluate ok", "evaluate ok-int8"}
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("select status from runs").fetchall() == [("failed",)]
        assert conn.execute("select count(*) from leases").fetchone() == (0,)
    phases = {r["phase"] for r in store.ledger("fails")}
    assert {"abandoned:build:error", "abandoned:build:timeout"} <= phases
    results = analyse(store, "fails")
    assert {c.cell for c in results.failed_cells if c.blocked_by is None} == set(own)
    md = render(results, "md")
    assert "Failed cells" in md and "the toy step broke" in md and "not run: needs build raises" in md

    flag.unlink()  # the rerun retries every failed cell, and they now work
    again = run_study(study, store, executor="pool", settings=settings)
    assert not again.cells_failed and set(again.cells_reused) == set(summary.cells_run)
    assert {"build raises", "build hog", "measure ok"} <= set(again.cells_run)
    assert analyse(store, "fails").failed_cells is None


def test_a_cell_past_its_time_limit_fails_the_cli_run_with_exit_1(tmp_path):
    study = json.loads(json.dumps(TINY))
    study["candidates"][0]["steps"][0]["train"].update({"epochs": 100_000, "patience": 0})
    f = tmp_path / "slow.yaml"
    f.write_text(yaml.safe_dump(study))
    res = leanbench("run", str(f), "--store", str(tmp_path / "lb.db"), "-q", "--timeout", "4", cwd=tmp_path)
    assert res.returncode == 1, res.stderr[-3000:]
    assert "1 cell(s) failed; rerun to retry them:" in res.stderr
    assert "build a: ran past the time limit of 4 s (killed) (5 cell(s) that need it not run)" in res.stderr
    assert "Traceback" not in res.stderr


def _cell_processes(driver: psutil.Process) -> list[psutil.Process]:
    """The pool's cell processes: the children of the driver's fork server."""
    out = []
    for child in driver.children():
        try:
            if "forkserver" in " ".join(child.cmdline()):
                out += child.children()
        except psutil.NoSuchProcess:
            continue
    return out


@pytest.mark.slow  # three runs: ~40 s here
def test_a_worker_killed_mid_cell_is_recorded_failed_and_the_next_run_completes(tmp_path):
    study = json.loads(json.dumps(TINY))
    study["task"]["data"] = "sklearn:digits"
    study["candidates"][0]["steps"][0]["train"].update({"epochs": 25, "patience": 25})
    f = tmp_path / "kill.yaml"
    f.write_text(yaml.safe_dump(study))
    db = tmp_path / "killed" / "lb.db"
    proc = subprocess.Popen([sys.executable, "-m", "leanbench.cli", "run", str(f), "--store", str(db), "-q",
                             "--jobs", "2"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    driver, killed, seen = psutil.Process(proc.pid), None, {}
    deadline = time.time() + 120
    while killed is None and time.time() < deadline and proc.poll() is None:
        for worker in _cell_processes(driver):
            seen.setdefault(worker.pid, time.time())
            if time.time() - seen[worker.pid] > 1.0:  # the teacher's build, under way
                killed = worker.pid
                os.kill(killed, signal.SIGKILL)
                break
        time.sleep(0.05)
    out, err = proc.communicate(timeout=300)
    assert killed is not None, err
    assert proc.returncode == 1 and "build a: the worker process was killed by SIGKILL" in err, err[-3000:]
    again = leanbench("run", str(f), "--store", str(db), "-q", "--jobs", "2", cwd=tmp_path)
    assert again.returncode == 0 and "6 cells run, 0 reused" in again.stdout + again.stderr, again.stderr[-3000:]
    clean = leanbench("run", str(f), "--store", str(tmp_path / "clean" / "lb.db"), "-q", cwd=tmp_path,
                      one_thread=True)
    assert clean.returncode == 0, clean.stderr[-3000:]
    assert figures(db, "tiny") == figures(tmp_path / "clean" / "lb.db", "tiny")
    assert not any(p.name.startswith(".tmp-") for p in (db.parent / "artifacts").iterdir())


def test_choose_picks_the_pool_for_jobs_a_limit_or_a_cap_and_the_cli_wins_over_the_study():
    run = parse_study({**TINY, "run": {"jobs": 3, "timeout": 60, "max_memory": "2G"}}).run
    name, settings = choose(None, None, None, None, None, run)
    assert (name, settings.jobs, settings.timeout_s, settings.memory_bytes) == ("pool", 3, 60, 2 * 2**30)
    name, settings = choose(None, 1, 5, "512M", None, run)
    assert (name, settings.jobs, settings.timeout_s, settings.memory_bytes) == ("pool", 1, 5, 512 * 2**20)
    assert choose(None, None, None, None, None, None)[0] == "local"
    assert choose(None, None, None, 300, None, None)[1].memory_bytes == 300 * 2**20  # a number is MiB


def test_ctrl_c_with_a_pool_ends_the_workers_prints_one_line_and_bills_their_work(tmp_path):
    study = json.loads(json.dumps(TINY))
    study["candidates"][0]["steps"][0]["train"].update({"epochs": 100_000, "patience": 0})
    f = tmp_path / "slow.yaml"
    f.write_text(yaml.safe_dump(study))
    db = tmp_path / "lb.db"
    proc = subprocess.Popen([sys.executable, "-m", "leanbench.cli", "run", str(f), "--store", str(db), "-q",
                             "--jobs", "2"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group, as a terminal's foreground job
    driver, workers = psutil.Process(proc.pid), []
    deadline = time.time() + 120
    while not workers and time.time() < deadline and proc.poll() is None:
        workers = _cell_processes(driver)
        time.sleep(0.05)
    assert workers, proc.stderr.read() if proc.poll() is not None else "no worker started"
    time.sleep(1.5)  # the teacher's build, under way
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole group: the driver and its workers
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["interrupted; rerun to resume"] and "Traceback" not in err
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    with sqlite3.connect(db) as conn:
        assert conn.execute("select status from runs").fetchall() == [("interrupted",)]
        billed = conn.execute("select phase, seconds from ledger where phase like 'abandoned:%'").fetchall()
        assert conn.execute("select count(*) from leases").fetchone() == (0,)
    assert [p for p, _ in billed] == ["abandoned:build:interrupted"] and billed[0][1] > 1.0
