"""`leanbench compare` on results JSON reports: one table, normalised latencies, and every difference that
makes figures not comparable stated (and none invented for identical runs)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from leanbench.compare import compare, load_sources, markdown, plain_text, write
from leanbench.errors import LeanbenchError

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def digits() -> dict:
    return json.loads((FIXTURES / "results_digits_full.json").read_text())


def _write(tmp_path: Path, name: str, data: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_identical_runs_are_comparable_and_labels_stay_apart(tmp_path, digits):
    a, b = _write(tmp_path, "a.json", digits), _write(tmp_path, "b.json", digits)
    cmp = compare(load_sources([a, b]))
    assert cmp.not_comparable == []
    assert [s.label for s in cmp.sources] == ["digits", "digits#2"]
    assert len(cmp.rows) == 2 * len(digits["candidates"])
    assert "none found" in plain_text(cmp)


def test_every_difference_is_stated(tmp_path, digits):
    other = copy.deepcopy(digits)
    other["task"]["splits"]["test"] = {"n": 300, "fingerprint": "0000aaaa"}
    other["decision"]["margin"] = 0.02
    other["manifest"].update(torch="2.12.0+cpu", cpu="Intel Xeon", onnxruntime="1.20")
    other["manifest"]["reference_score"] = {"score": 80.0, "method": "another benchmark"}
    other["candidates"][0]["latency"]["edge"]["batch"] = 8
    del other["metrics_info"]["ece"]
    cmp = compare(load_sources([_write(tmp_path, "a.json", digits), _write(tmp_path, "b.json", other)]))
    issues = {i.what: i.detail for i in cmp.not_comparable}
    assert set(issues) == {"test split", "decision rule", "metrics", "versions", "machine", "machine score",
                           "profile"}
    assert "e91d4a70b3c2f815, n=360" in issues["test split"] and "0000aaaa, n=300" in issues["test split"]
    assert "margin 0.01" in issues["decision rule"] and "margin 0.02" in issues["decision rule"]
    assert "torch 2.13.0+cpu vs 2.12.0+cpu" in issues["versions"] and "onnxruntime — vs 1.20" in issues["versions"]
    assert "only in 'digits': ece" in issues["metrics"]
    assert "'edge' measured at threads 1, batch 1 vs threads 1, batch 8" in issues["profile"]
    md = markdown(cmp)
    assert md.count("\n- ") >= len(cmp.not_comparable) + 2  # sources and issues listed


def test_latencies_are_normalised_by_the_machine_score(tmp_path, digits):
    raw = copy.deepcopy(digits)
    for c in raw["candidates"]:
        for lat in (c.get("latency") or {}).values():
            lat.pop("normalised_ms", None)
    raw["manifest"]["reference_score"] = {"score": 50.0, "unit": "GFLOP/s"}
    fast = copy.deepcopy(raw)
    fast["manifest"]["reference_score"] = {"score": 200.0, "unit": "GFLOP/s"}
    cmp = compare(load_sources([_write(tmp_path, "slow.json", raw), _write(tmp_path, "fast.json", fast)]))
    by = {(r["source"], r["candidate"]): r for r in cmp.rows}
    p50 = digits["candidates"][1]["latency"]["edge"]["p50_ms"]
    # reference-machine ms = latency x machine score / 100 GFLOP/s (analysis.core.REFERENCE_GFLOPS)
    assert by[("digits", "student-kd")]["p50_normalised_ms:edge"] == pytest.approx(p50 * 50.0 / 100.0)
    assert by[("digits#2", "student-kd")]["p50_normalised_ms:edge"] == pytest.approx(p50 * 200.0 / 100.0)
    # a figure the analysis normalised is taken as it is
    stored = compare(load_sources([_write(tmp_path, "d.json", digits)])).rows[1]
    assert stored["p50_normalised_ms:edge"] == digits["candidates"][1]["latency"]["edge"]["normalised_ms"]["p50_ms"]


def test_outputs_and_bad_sources(tmp_path, digits):
    cmp = compare(load_sources([_write(tmp_path, "a.json", digits)]))
    write(cmp, tmp_path / "out" / "c.json")
    data = json.loads((tmp_path / "out" / "c.json").read_text())
    assert set(data) == {"sources", "candidates", "not_comparable"} and data["sources"][0]["machine_score"] == 41.7
    with pytest.raises(LeanbenchError, match=r"\.md or \.json"):
        write(cmp, tmp_path / "c.txt")
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(LeanbenchError, match="not a leanbench results JSON"):
        load_sources([str(tmp_path / "x.json")])
    with pytest.raises(LeanbenchError, match="no such file"):
        load_sources([str(tmp_path / "missing.json")])
    with pytest.raises(LeanbenchError, match="no result store"):
        load_sources(["digits"], store=tmp_path / "none.db")


# ---------------------------------------------------------------------------------------------- several tasks


@pytest.fixture(scope="module")
def multitask(tmp_path_factory) -> dict:
    """The results JSON of the tiny two-task study (tests/fixtures/tiny_multitask.py)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
    from tiny_multitask import run_multitask

    from leanbench.analysis import analyse
    from leanbench.report import render
    from leanbench.store import Store

    db = run_multitask(tmp_path_factory.mktemp("mt-compare"))
    return json.loads(render(analyse(Store.open(db, readonly=True), "mt"), "json"))


def test_multi_task_sources_give_a_row_per_task_and_one_across_tasks(tmp_path, multitask, digits):
    cmp = compare(load_sources([_write(tmp_path, "a.json", multitask), _write(tmp_path, "b.json", multitask)]))
    assert cmp.not_comparable == []
    rows = [r for r in cmp.rows if r["source"] == "mt"]
    assert [(r["candidate"], r["task"]) for r in rows] == [("m", "mc"), ("m", "gen"), ("m-int8", "mc"),
                                                          ("m-int8", "gen"), ("m-int8", "across tasks")]
    cand = next(c for c in multitask["candidates"] if c["name"] == "m-int8")
    by = {r["task"]: r for r in rows if r["candidate"] == "m-int8"}
    for task, metric in (("mc", "acc"), ("gen", "exact_match")):
        entry, row = cand["tasks"][task], by[task]
        assert (row["metric"], row["value"], row["ci_low"]) == (metric, entry["metrics"][metric]["value"],
                                                               entry["metrics"][metric]["ci_low"])
        vs = entry["vs_reference"]
        assert (row["verdict"], row["diff"], row["diff_ci_high"], row["margin"]) == (
            vs["verdict"], vs["diff"], vs["ci_high"], vs["margin"])
    macro = cand["cross_task"]["macro_diff"]
    assert (by["across tasks"]["diff"], by["across tasks"]["diff_ci_low"]) == (macro["value"], macro["ci_low"])
    assert "| source | task | candidate | verdict |" in markdown(cmp)
    assert "task" not in compare(load_sources([_write(tmp_path, "d.json", digits)])).rows[0]  # one task: as before


def test_multi_task_differences_are_stated_per_task(tmp_path, multitask, digits):
    other = copy.deepcopy(multitask)
    other["task_results"]["gen"]["decision"]["margin"] = 0.3
    other["task_results"]["mc"]["task"]["splits"]["test"]["fingerprint"] = "0000aaaa"
    cmp = compare(load_sources([_write(tmp_path, "a.json", multitask), _write(tmp_path, "b.json", other)]))
    issues = {i.what: i.detail for i in cmp.not_comparable}
    assert set(issues) == {"test split", "decision rule"}
    assert "task 'mc'" in issues["test split"] and "0000aaaa" in issues["test split"]
    assert "task 'gen'" in issues["decision rule"] and "margin 0.2, alpha 0.05 vs" in issues["decision rule"]
    assert "task 'mc'" not in issues["decision rule"]
    mixed = compare(load_sources([_write(tmp_path, "d.json", digits), _write(tmp_path, "m.json", multitask)]))
    tasks = next(i.detail for i in mixed.not_comparable if i.what == "tasks")
    assert "one task (sklearn:digits" in tasks and "vs tasks mc, gen" in tasks
    assert {r.get("task") for r in mixed.rows if r["source"] == "digits"} == {None}
