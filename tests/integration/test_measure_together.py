"""Every candidate of a study is measured together in interleaved rounds, and every speed-up has a CI."""

from __future__ import annotations

import json

from leanbench.analysis import analyse
from leanbench.report import render
from leanbench.runner.local import run_study
from leanbench.store import Store
from leanbench.study_loader import parse_study

STUDY = {
    "name": "together",
    "seed": 1,
    "task": {"data": "sklearn:digits"},
    "reference": "wide",
    "candidates": [
        {"name": "wide", "model": {"arch": "mlp", "hidden": [1024, 1024]}, "steps": [{"train": {"epochs": 2}}]},
        {"name": "narrow", "model": {"arch": "mlp", "hidden": [16]}, "steps": [{"train": {"epochs": 2}}]},
        {"name": "wide-pruned", "from": "wide", "steps": [{"prune": {"sparsity": 0.9}}]},
    ],
    "evaluate": {"bootstrap": 200, "perturbations": "none"},
    "measure": {"runs": 60, "warmup": 5, "rounds": 12, "throughput_runs": 6, "throughput_warmup": 1},
    "deploy": {"profiles": [{"name": "edge", "threads": 1, "batch": 1}]},
    "integrity": {"contamination": False},
}


def test_candidates_are_measured_together_and_speedups_carry_a_ci(tmp_path):
    study = parse_study(STUDY)
    store = Store.open(tmp_path / "s.db")
    summary = run_study(study, store)
    measured = [label for label in summary.cells_run if label.startswith("measure ")]
    assert len(measured) == 3
    rows = store.candidates("together")
    cells = [store.cell(row["cells"]["measure"]) for row in rows]
    assert len({c["run_id"] for c in cells}) == 1
    for c in cells:  # one measurement of the whole group; each candidate's cell carries its share of the time
        assert c["result"]["measured_with"] == sorted(r["name"] for r in rows)
        assert abs(c["seconds"] - cells[0]["seconds"]) < 1e-9
    results = analyse(store, "together").to_dict()
    by = {c["name"]: c for c in results["candidates"]}
    for c in by.values():
        s = c["speedup"]["edge"]
        assert {"value", "ci_low", "ci_high", "rounds", "disturbed_rounds"} <= set(s) and s["rounds"] == 12
        assert s["ci_low"] <= s["value"] <= s["ci_high"]
        lat = c["latency"]["edge"]
        assert lat["protocol"] == "interleaved" and lat["rounds"] == 12 and lat["runs"] == 12 * 5
        assert c["throughput_ratio"]["edge"]["rounds"] == 6
    assert by["wide"]["speedup"]["edge"]["value"] == 1.0
    # energy per query is each candidate's own (its calls' CPU time, its weights + activations): the narrow
    # MLP, several times faster, costs several times less, though the wide one is loaded in the same process
    energy = {r["name"]: c["result"]["profiles"]["edge"] for r, c in zip(rows, cells, strict=True)}
    ratio = energy["wide"]["energy_j_per_query"] / energy["narrow"]["energy_j_per_query"]
    assert ratio > 3 and ratio > by["narrow"]["speedup"]["edge"]["value"] / 3, ratio
    assert energy["narrow"]["energy"]["memory_gb"] < energy["wide"]["energy"]["memory_gb"] / 100
    assert "the candidate's own cpu-seconds" in energy["narrow"]["energy_method"]
    # a 1024-1024 MLP against a 16-unit one at batch 1: the narrow one is faster beyond doubt
    assert by["narrow"]["speedup"]["edge"]["faster"] and by["narrow"]["speedup"]["edge"]["ci_low"] > 1
    md = render(analyse(store, "together"), "md")
    assert "speed-up (edge) (95% CI)" in md
    # the verdict table's row (the recommendation's table above it lists the candidates too)
    narrow_row = next(line for line in md.splitlines() if line.startswith("| narrow |") and "×" in line)
    assert f"{by['narrow']['speedup']['edge']['value']:.2f}× [" in narrow_row
    assert json.loads(render(analyse(store, "together"), "json"))["candidates"][1]["speedup"]["edge"]["faster"]
    # the dense pruned copy: the report claims a speed-up only when its interval excludes 1
    pruned = by["wide-pruned"]["speedup"]["edge"]
    pruned_row = next(line for line in md.splitlines() if line.startswith("| wide-pruned |") and "×" in line)
    # ("no difference" unless the whole interval is beyond ±min_speedup: [0.97, 0.996] is "no difference")
    assert ("no difference (" in pruned_row) == (not pruned["faster"] and not pruned["slower"])
    if pruned["ci_low"] <= 1 <= pruned["ci_high"]:
        assert "no difference (" in pruned_row
    assert not run_study(study, store).cells_run  # measured together once: all reused
