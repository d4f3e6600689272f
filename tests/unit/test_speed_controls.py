"""Runtime controls found from the step descriptors' families, and speed-ups between candidates derived from
the per-round medians of their measure cells (over the parent, over the runtime control)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from leanbench.analysis.results import CandidateResult
from leanbench.analysis.speed import (
    derived_speedups,
    lowers_precision,
    missing_round_medians,
    runtime_controls,
    speedup_between,
)
from leanbench.analysis.stored import Cell, MeasureCell
from leanbench.study_loader import parse_study


def _study():
    return parse_study({
        "name": "hf", "task": {"data": "data/train.csv", "text": "text"}, "reference": "teacher",
        "candidates": [
            {"name": "teacher", "model": {"hf": "some/folder"}, "steps": [{"finetune": {"epochs": 1}}]},
            {"name": "teacher-ort", "from": "teacher", "steps": [{"quantize": {"method": "onnx-fp32"}}]},
            {"name": "teacher-int8-ort", "from": "teacher",
             "steps": [{"quantize": {"method": "onnxruntime-dynamic-int8"}}]},
            {"name": "teacher-ort-int8", "from": "teacher-ort",
             "steps": [{"quantize": {"method": "onnxruntime-static-int8"}}]},
            {"name": "teacher-int8", "from": "teacher", "steps": [{"quantize": {"method": "dynamic-int8"}}]},
            {"name": "teacher-heads", "from": "teacher", "steps": [{"prune": {"method": "heads", "sparsity": 0.5}}]},
            {"name": "teacher-heads-int8-ort", "from": "teacher-heads",
             "steps": [{"quantize": {"method": "onnxruntime-dynamic-int8"}}]},
        ]})


def test_runtime_controls_from_the_step_families():
    assert runtime_controls(_study()) == {
        "teacher-int8-ort": "teacher-ort",  # changes the runtime itself: the fp32 export of the same parent
        "teacher-ort-int8": "teacher-ort",  # built on the converted model: its parent is the control
    }
    # teacher-ort is a control itself; torch dynamic int8 (hf -> hf-dynamic-int8) has no fp32 twin on its
    # runtime; the head-pruned teacher has no ONNX fp32 export in the study


@pytest.mark.parametrize(("method", "lowers"), [("onnx-fp32", False), ("onnxruntime-dynamic-int8", True),
                                                ("weight-only-int4", True), ("dynamic-int8", True), (None, False)])
def test_lowers_precision(method, lowers):
    assert lowers_precision(SimpleNamespace(method=method)) is lowers


def _measure(medians, batch=1, run_id=1):
    return MeasureCell.of(Cell(key="k", kind="measure", run_id=run_id, seconds=0.0, cpu_seconds=0.0, flops=None,
                               result={"latency": {"edge": {"p50_ms": float(np.median(medians)), "batch": batch,
                                                            "round_medians": list(map(float, medians))}}}))


def _loaded(**overrides):
    rng = np.random.default_rng(0)
    drift = np.exp(rng.normal(0, 0.1, 20))  # the machine's speed per round, shared by every candidate
    base = {"teacher": 11.0, "teacher-ort": 7.2, "teacher-int8-ort": 2.5, "teacher-ort-int8": 3.1,
            "teacher-int8": 5.3, "teacher-heads": 9.9, "teacher-heads-int8-ort": 2.2}
    medians = {n: ms * drift * np.exp(rng.normal(0, 0.02, 20)) for n, ms in base.items()}
    measures = {n: _measure(m) for n, m in medians.items()}
    measures.update(overrides)
    study = _study()
    return SimpleNamespace(study=study, measures=measures, reference="teacher"), medians


def test_speedups_over_the_parent_and_the_control_pair_rounds():
    loaded, medians = _loaded()
    controls = runtime_controls(loaded.study)
    out = CandidateResult(name="teacher-int8-ort", from_="teacher", latency={"edge": None})
    derived_speedups(loaded, out, controls)
    assert out.runtime_control == "teacher-ort"
    d = np.log(medians["teacher-ort"]) - np.log(medians["teacher-int8-ort"])
    vs_control = out.speedup_vs_control["edge"]
    assert vs_control.value == pytest.approx(math.exp(np.median(d))) and vs_control.baseline == "teacher-ort"
    assert vs_control.faster and vs_control.ci_low <= vs_control.value <= vs_control.ci_high
    assert vs_control.min_effect == loaded.study.measure.min_speedup
    assert out.speedup_vs_parent["edge"].baseline == "teacher"
    # per round, the ratio of the two speed-ups over the reference
    ref = medians["teacher"]
    ratio = np.log(ref / medians["teacher-int8-ort"]) - np.log(ref / medians["teacher-ort"])
    assert vs_control.value == pytest.approx(math.exp(np.median(ratio)))


def test_batches_compare_per_example_and_other_runs_do_not_pair():
    loaded, medians = _loaded()
    loaded.measures["teacher-ort"] = _measure(medians["teacher-ort"] * 8, batch=8)  # same time per example
    s = speedup_between(loaded, "teacher-int8-ort", "teacher-ort", "edge")
    d = np.log(medians["teacher-ort"]) - np.log(medians["teacher-int8-ort"])
    assert s.value == pytest.approx(math.exp(np.median(d)))
    loaded.measures["teacher-ort"] = _measure(medians["teacher-ort"], run_id=2)  # measured in another run
    assert speedup_between(loaded, "teacher-int8-ort", "teacher-ort", "edge") is None
    assert speedup_between(loaded, "teacher-int8-ort", "teacher-ort", "server") is None  # no such profile


def test_measure_cells_without_round_medians_get_a_note():
    old = MeasureCell.of(Cell(key="k", kind="measure", run_id=1, seconds=0.0, cpu_seconds=0.0, flops=None,
                              result={"latency": {"edge": {"p50_ms": 7.0, "batch": 1}}}))
    loaded, _ = _loaded(**{"teacher-ort": old})
    controls = runtime_controls(loaded.study)
    out = CandidateResult(name="teacher-ort-int8", from_="teacher-ort", latency={"edge": None})
    derived_speedups(loaded, out, controls)
    assert out.speedup_vs_parent is None and out.speedup_vs_control is None and out.runtime_control == "teacher-ort"
    notes = missing_round_medians(loaded, [out], controls)
    assert len(notes) == 1 and "'teacher-ort-int8' over 'teacher-ort'" in notes[0]
