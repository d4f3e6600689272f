"""A candidate whose parent is not the reference (teacher -> teacher-pruned -> teacher-pruned-int8): its
speed-up over the parent, derived at analysis time, equals the per-round ratio of the two candidates'
speed-ups over the reference, computed here independently from the round medians the measure cells store."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from leanbench.analysis import analyse
from leanbench.report import render
from leanbench.runner.local import run_study
from leanbench.store import Store
from leanbench.study_loader import parse_study

STUDY = {
    "name": "lineage",
    "seed": 1,
    "task": {"data": "sklearn:digits"},
    "reference": "teacher",
    "candidates": [
        {"name": "teacher", "model": {"arch": "mlp", "hidden": [512, 512]}, "steps": [{"train": {"epochs": 2}}]},
        {"name": "teacher-pruned", "from": "teacher",
         "steps": [{"prune": {"method": "structured", "sparsity": 0.75}}]},
        {"name": "teacher-pruned-int8", "from": "teacher-pruned", "steps": [{"quantize": {"method": "dynamic-int8"}}]},
    ],
    "evaluate": {"bootstrap": 200, "perturbations": "none"},
    "measure": {"runs": 60, "warmup": 5, "rounds": 12, "throughput_runs": 6, "throughput_warmup": 1},
    "deploy": {"profiles": [{"name": "edge", "threads": 1, "batch": 1}]},
    "integrity": {"contamination": False},
}


def test_speedup_vs_parent_is_the_per_round_ratio_of_the_stored_medians(tmp_path):
    store = Store.open(tmp_path / "s.db")
    run_study(parse_study(STUDY), store)
    stored = {}  # straight from the measure cells: per-round medians per example
    for row in store.candidates("lineage"):
        lat = store.cell(row["cells"]["measure"])["result"]["latency"]["edge"]
        assert len(lat["round_medians"]) == 12
        stored[row["name"]] = np.asarray(lat["round_medians"]) / lat["batch"]
    results = analyse(store, "lineage").to_dict()
    by = {c["name"]: c for c in results["candidates"]}
    ref = stored["teacher"]
    for name in by:  # the stored medians are the ones the measured speed-ups came from
        assert by[name]["speedup"]["edge"]["value"] == pytest.approx(
            math.exp(np.median(np.log(ref / stored[name]))), rel=1e-12)

    # the ratio, per round, of the candidate's and the parent's speed-ups over the reference
    log_ratio = np.log(ref / stored["teacher-pruned-int8"]) - np.log(ref / stored["teacher-pruned"])
    vs_parent = by["teacher-pruned-int8"]["speedup_vs_parent"]["edge"]
    assert vs_parent["baseline"] == "teacher-pruned" and vs_parent["rounds"] == 12
    assert vs_parent["value"] == pytest.approx(math.exp(np.median(log_ratio)), rel=1e-9)
    ci = stats.quantile_test(log_ratio, q=np.median(log_ratio), p=0.5).confidence_interval(0.95)
    assert (vs_parent["ci_low"], vs_parent["ci_high"]) == pytest.approx((math.exp(ci.low), math.exp(ci.high)),
                                                                        rel=1e-9)
    assert vs_parent["min_effect"] == 0.05 and vs_parent["confidence"] == 0.95
    # over a parent that is the reference, the derived speed-up is the measured one
    pruned = by["teacher-pruned"]
    assert pruned["speedup_vs_parent"]["edge"]["value"] == pytest.approx(pruned["speedup"]["edge"]["value"],
                                                                          rel=1e-12)
    assert "speedup_vs_parent" not in by["teacher"] and "runtime_control" not in by["teacher-pruned-int8"]

    md = render(results, "md")
    table = md.split("### Where the speed-up comes from\n", 1)[1].split("\n#", 1)[0]
    row = next(line for line in table.splitlines() if line.startswith("| teacher-pruned-int8 |"))
    assert f"| teacher-pruned | {vs_parent['value']:.2f}× [" in row
    assert json.loads(render(results, "json"))["candidates"][2]["speedup_vs_parent"]["edge"] == vs_parent
