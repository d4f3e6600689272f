"""The CLI on real runs: demo, run, report in three formats, ls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

CONTRACT_TOP = ("study", "reference", "manifest", "candidates")
CONTRACT_CANDIDATE = ("name", "params", "nonzero_params", "size_bytes", "flops_per_example", "metrics",
                      "vs_reference", "latency", "throughput_per_s", "peak_memory_bytes", "cost")


def leanbench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leanbench.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=1200)


def test_demo_writes_all_three_reports(tmp_path):
    res = leanbench("demo", "--store", str(tmp_path / "db" / "lb.db"), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "report" in res.stdout + res.stderr
    html = (tmp_path / "out" / "digits.html").read_text()
    results = json.loads((tmp_path / "out" / "digits.json").read_text())
    md = (tmp_path / "out" / "digits.md").read_text()
    names = ["teacher", "student-kd", "student-hard", "teacher-int8", "teacher-pruned90", "teacher-structured",
             "teacher-lowrank"]
    assert [c["name"] for c in results["candidates"]] == names
    for key in CONTRACT_TOP:
        assert key in results
    teacher = results["candidates"][0]
    assert 200_000 <= teacher["params"] <= 500_000
    by_name = {c["name"]: c for c in results["candidates"]}
    assert by_name["student-kd"]["params"] * 20 <= teacher["params"]
    assert by_name["teacher-structured"]["params"] < teacher["params"]
    assert by_name["teacher-int8"]["size_bytes"] < 0.4 * teacher["size_bytes"]
    assert by_name["teacher-pruned90"]["nonzero_params"] <= 0.11 * teacher["params"] + 1000
    for c in results["candidates"]:
        for key in CONTRACT_CANDIDATE:
            assert key in c, (c["name"], key)
        assert c["name"] in html and c["name"] in md
        assert c["vs_reference"]["verdict"] in {"reference", "superior", "non-inferior", "inconclusive", "inferior"}
        assert c["metrics"]["accuracy"]["value"] > 0.85
    assert results["power"]["n"] == 360


def test_run_report_formats_and_ls(tmp_path):
    study = {
        "name": "cli", "task": {"data": "sklearn:iris"}, "reference": "a",
        "candidates": [{"name": "a", "model": {"arch": "mlp", "hidden": [16]}, "steps": [{"train": {"epochs": 5}}]},
                       {"name": "a-int8", "from": "a", "steps": ["quantize"]}],
        "evaluate": {"bootstrap": 200},
        "measure": {"runs": 10, "warmup": 1, "throughput_runs": 3},
        "deploy": {"profiles": [{"name": "edge", "threads": 1, "batch": 1},
                                {"name": "server", "threads": 0, "batch": 16}]},
    }
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(study))
    store = str(tmp_path / "lb.db")
    res = leanbench("run", str(f), "--store", store, "-q", "-o", str(tmp_path / "r.html"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    # 2 candidates x (build, evaluate, 2 tabular perturbations, measure) + 1 integrity cell
    assert "11 cells run, 0 reused" in res.stderr and res.stdout == "", res.stderr  # status lines: stderr
    assert (tmp_path / "r.html").stat().st_size > 100_000
    md = leanbench("report", "--store", store, "--format", "md", cwd=tmp_path)
    assert md.returncode == 0 and "| a-int8 |" in md.stdout
    js = leanbench("report", "--store", store, "--study", "cli", "--format", "json", cwd=tmp_path)
    assert json.loads(js.stdout)["study"] == "cli"
    bad = leanbench("report", "--store", store, "--study", "clj", cwd=tmp_path)
    assert bad.returncode == 2 and "did you mean 'cli'" in bad.stderr
    fmt = leanbench("report", "--store", store, "--format", "htm", cwd=tmp_path)
    assert fmt.returncode == 2 and "html" in fmt.stderr
    ls = leanbench("ls", "--store", store, cwd=tmp_path)
    assert ls.returncode == 0 and "a-int8" in ls.stdout and "quantize" in ls.stdout
    again = leanbench("run", str(f), "--store", store, "-q", cwd=tmp_path)
    assert "0 cells run, 11 reused" in again.stderr
