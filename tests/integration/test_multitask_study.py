"""A study of three tiny multiple-choice tasks on the tiny causal LM, run with `leanbench run`: each task's
results equal those of the same one-task study run on its own (same cells, identical per-example predictions and
metrics), builds are made once for all tasks, the verdicts are corrected across tasks, the cross-task macro
average matches scipy's bootstrap, and the report carries the JSON shape and the heatmap (checked in Chromium
when it is installed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from leanbench.analysis import analyse
from leanbench.report import render
from leanbench.runner.local import run_study
from leanbench.store import Store
from leanbench.study_loader import parse_study

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from tiny_lm import build_tiny_lm, write_mc_jsonl  # noqa: E402

TASKS = [{"name": "a", "kind": "multiple-choice", "data": "a.jsonl"},
         {"name": "b", "kind": "multiple-choice", "data": "b.jsonl", "decision": {"margin": 0.05}},
         {"name": "c", "kind": "multiple-choice", "data": "c.jsonl", "metrics": ["acc_norm"]}]


def _study(folder: Path, **over) -> dict:
    raw = {"name": "mt", "reference": "m",
           "candidates": [{"name": "m", "model": {"hf": str(folder)}},
                          {"name": "m-int8", "from": "m", "steps": [{"quantize": {"method": "weight-only-int8"}}]},
                          {"name": "m-pruned", "from": "m", "steps": [{"prune": {"method": "2:4"}}]}],
           "tasks": TASKS, "decision": {"margin": 0.1},
           "evaluate": {"batch_size": 4, "bootstrap": 300},
           "measure": {"enabled": False}, "integrity": {"contamination": False}}
    raw.update(over)
    return raw


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("multitask")
    folder = build_tiny_lm(tmp / "lm")
    for (name, n), seed in zip((("a", 24), ("b", 18), ("c", 16)), (1, 2, 3), strict=True):
        write_mc_jsonl(tmp / f"{name}.jsonl", n=n, seed=seed)
    (tmp / "mt.yaml").write_text(yaml.safe_dump(_study(folder)))
    from typer.testing import CliRunner

    from leanbench.cli import app

    db = tmp / "lb.db"
    validate = CliRunner().invoke(app, ["validate", str(tmp / "mt.yaml")])
    assert validate.exit_code == 0, validate.output
    done = CliRunner().invoke(app, ["run", str(tmp / "mt.yaml"), "--store", str(db), "--quiet"])
    assert done.exit_code == 0, done.output
    store = Store.open(db, create=False)
    return {"tmp": tmp, "folder": folder, "store": store, "results": analyse(store, "mt"), "output": done.output}


def test_each_task_equals_its_one_task_study_run_alone(run):
    """The one-task study of task b, run on its own in another store: the same cells, the same predictions."""
    tmp, store = run["tmp"], run["store"]
    alone = parse_study({k: v for k, v in _study(run["folder"]).items() if k != "tasks"} | {
        "name": "b-alone", "task": {"kind": "multiple-choice", "data": "b.jsonl"}, "decision": {"margin": 0.05}},
        base_dir=tmp)
    other = Store.open(tmp / "alone.db")
    run_study(alone, other)
    ours = {c["name"]: c["cells"] for c in store.candidates("mt.b")}
    theirs = {c["name"]: c["cells"] for c in other.candidates("b-alone")}
    assert ours == theirs  # the same cell keys
    for cells in ours.values():
        for key in cells["evaluate"].values():
            a, b = store.predictions(key), other.predictions(key)
            assert list(a["ids"]) == list(b["ids"])
            np.testing.assert_array_equal(a["pred"], b["pred"])
            # log-likelihoods to float32 summation order (the two runs' thread pools): predictions are identical
            np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-5)
    single = analyse(other, "b-alone")
    entries = {c.name: c for c in run["results"].candidates}
    for cand in single.candidates:
        assert entries[cand.name].tasks["b"].metrics == cand.metrics
        vs = cand.vs_reference
        assert entries[cand.name].tasks["b"].vs_reference.diff == (vs.diff if vs is not None else None)
    assert "tasks" not in single.to_dict() and all("cross_task" not in c for c in single.to_dict()["candidates"])


def test_builds_are_made_once_for_every_task(run):
    build = {t: {c["name"]: c["cells"]["build"]["0"] for c in run["store"].candidates(f"mt.{t}")} for t in "abc"}
    assert build["a"] == build["b"] == build["c"]
    assert "mt" in run["store"].study_names()
    # 3 builds + 9 evaluations + 63 perturbed (the 7 default text perturbations, issue 29); b and c reuse the builds
    assert "study 'mt': 75 cells run, 6 reused" in run["output"]


def test_json_shape_holm_across_tasks_and_cross_task_summary(run):
    from scipy.stats import bootstrap

    from leanbench.evaluate.metrics import get_metric

    res = run["results"]
    data = json.loads(render(res, "json"))
    assert [t["name"] for t in data["tasks"]] == ["a", "b", "c"]
    assert data["decision"]["families"]["primary"]["comparisons"] == 6  # 3 tasks x 2 candidates
    cand = next(c for c in data["candidates"] if c["name"] == "m-int8")
    assert cand["metrics"] is None and cand["vs_reference"] is None
    assert set(cand["tasks"]) == {"a", "b", "c"}
    entry = cand["tasks"]["c"]
    assert set(entry["metrics"]) == {"acc_norm"} and set(entry["metrics"]["acc_norm"]) == {"value", "ci_low", "ci_high"}
    assert entry["vs_reference"]["metric"] == "acc_norm" and entry["vs_reference"]["family_size"] == 6
    assert cand["tasks"]["b"]["vs_reference"]["margin"] == 0.05
    cross = cand["cross_task"]
    assert cross["tasks"] == ["a", "b", "c"] and cross["skipped_tasks"] == []
    assert cross["worst"]["task"] == min(cross["tasks"], key=lambda t: cand["tasks"][t]["vs_reference"]["diff"])
    assert cross["inferior_tasks"] == [t for t in "abc" if cand["tasks"][t]["vs_reference"]["verdict"] == "inferior"]
    # the macro average's CI against scipy's independent-samples bootstrap of the per-example paired differences
    store = run["store"]
    diffs = []
    for t, metric in (("a", "acc"), ("b", "acc"), ("c", "acc_norm")):
        cells = {c["name"]: c["cells"]["evaluate"]["0"] for c in store.candidates(f"mt.{t}")}
        p, r = store.predictions(cells["m-int8"]), store.predictions(cells["m"])
        correct = get_metric(metric).correct
        diffs.append(correct(p["gold"], p["scores"]).astype(float) - correct(r["gold"], r["scores"]).astype(float))
    assert cross["macro_diff"]["value"] == pytest.approx(np.mean([d.mean() for d in diffs]))
    ref = bootstrap(tuple(diffs), lambda *xs, axis=-1: np.mean([x.mean(axis=axis) for x in xs], axis=0),
                    paired=False, method="percentile", n_resamples=4000, random_state=0, vectorized=True)
    assert cross["macro_diff"]["ci_low"] == pytest.approx(ref.confidence_interval.low, abs=0.03)
    assert cross["macro_diff"]["ci_high"] == pytest.approx(ref.confidence_interval.high, abs=0.03)
    checks = res.recommendation.check("m-int8").tasks
    assert [t.task for t in checks] == ["a", "b", "c"]


def test_report_has_the_heatmap_and_renders_in_chromium(run, tmp_path):
    res = run["results"]
    html = render(res, "html")
    assert 'id="lb-task-heatmap"' in html and "Across tasks" in html and "Task c: multiple-choice" in html
    md = render(res, "md")
    assert "## Across tasks" in md and "| m-pruned |" in md
    assert render(json.loads(render(res, "json")), "html").count("lb-task-heatmap") == html.count("lb-task-heatmap")
    sys.path.insert(0, str(Path(__file__).parent))
    from test_browser_report import CHROMIUM, SHOTS, Chromium, load

    if CHROMIUM is None:
        pytest.skip("no chromium on PATH: the heatmap is not checked in a browser")
    page = tmp_path / "multitask.html"
    page.write_text(html, encoding="utf-8")
    browser = Chromium(CHROMIUM)
    try:
        state, errors = load(browser, page, SHOTS / "multitask.png")
    finally:
        browser.close()
    assert errors == [] and "pwned" not in state["title"]
    plots = dict(state["plots"])
    assert plots.get("lb-task-heatmap", 0) > 0 and all(n > 0 for n in plots.values()), plots
    assert "macro average" in state["text"]
