"""Typed results and the stored study config: the results records read back every results JSON exactly,
tolerate missing and malformed parts, and write the analysis's layout; a stored config carries its version,
old ones (and old stores) are upgraded, and every one validates into a `Study` without the filesystem."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import pytest

from leanbench.analysis.results import (
    BreakEven,
    BreakEvenGroup,
    BuildLedger,
    CandidateCost,
    CandidateResult,
    Comparison,
    Interval,
    Latency,
    Serving,
    StudyResults,
)
from leanbench.errors import StoreError
from leanbench.store.db import CONFIG_VERSION, SCHEMA_VERSION, Store, migrate_config, study_from_config

FIXTURES = Path(__file__).parent / "fixtures"


# ---------------------------------------------------------------------------------------------- records


@pytest.mark.parametrize("name", ["results_digits", "results_digits_full", "results_iris_bill"])
def test_results_json_reads_back_exactly(name):
    raw = json.loads((FIXTURES / f"{name}.json").read_text())
    typed = StudyResults.from_dict(raw)
    assert json.dumps(typed.to_dict()) == json.dumps(raw)  # values, keys and key order
    assert typed.candidates[0].name == raw["reference"] and typed.reference_candidate is typed.candidates[0]
    assert typed.candidates[1].vs_reference.diff == raw["candidates"][1]["vs_reference"]["diff"]


def test_typed_fields_and_unknown_keys():
    raw = json.loads((FIXTURES / "results_digits_full.json").read_text())
    raw["candidates"][1]["something_new"] = {"x": 1}
    typed = StudyResults.from_dict(raw)
    kd = typed.candidates[1]
    assert isinstance(kd.latency["edge"], Latency) and kd.latency["edge"].p50_ci == raw["candidates"][1][
        "latency"]["edge"]["p50_ci"]
    assert isinstance(kd.cost.serving.tco_usd, Interval) and kd.cost.ledger.energy_method.startswith("estimated")
    assert kd.cost.break_even.break_even.status == raw["candidates"][1]["cost"]["break_even"]["status"]
    assert kd.extra == {"something_new": {"x": 1}}
    assert kd.to_dict()["something_new"] == {"x": 1}
    assert typed.decision.has("correction") and not StudyResults.from_dict({"decision": {}}).decision.has(
        "correction")


def test_missing_and_malformed_parts_read_as_none():
    rng = random.Random(0)
    raw = json.loads((FIXTURES / "results_digits_full.json").read_text())
    broken = StudyResults.from_dict({**raw, "robustness": "not a mapping", "power": [1, 2], "candidates": [
        None, {"name": "x", "vs_reference": 3, "metrics": {"accuracy": None}, "latency": {"edge": "?"}},
        *raw["candidates"][:1]]})
    assert broken.robustness is None and broken.power is None
    assert [c.name for c in broken.candidates] == ["x", "teacher"]
    x = broken.candidates[0]
    assert x.vs_reference is None and x.metric("accuracy").value is None and x.latency == {"edge": None}
    for _ in range(20):  # random keys dropped: nothing raises
        cand = {k: v for k, v in raw["candidates"][2].items() if rng.random() > 0.3}
        CandidateResult.from_dict(cand).to_dict()


def test_layouts_written_by_the_analysis():
    ref = Comparison.for_reference("accuracy", 0.01)
    assert list(ref.to_dict()) == ["metric", "diff", "ci_low", "ci_high", "p_value", "margin", "verdict"]
    row = Comparison(metric="accuracy", diff=0.01, p_noninferiority=0.01, p_superiority=0.2, p_inferiority=0.9)
    assert "mcnemar_b" not in row.to_dict() and "equivalence" not in row.to_dict()
    assert row.to_dict()["p_value"] is None  # always given for a compared candidate, even without McNemar
    cost = CandidateCost(build_seconds=1.0, build_seconds_own=0.5, build_flops=None)
    assert list(cost.to_dict()) == ["build_seconds", "build_seconds_own", "build_flops"]
    cost.ledger = BuildLedger(build_kwh=0.1, energy_method=None, seeds_built=1)
    cost.serving = Serving(tco_usd=Interval(value=1.0, low=0.5, high=2.0), keeps_up=True)
    cost.break_even = BreakEvenGroup(break_even=BreakEven(status="never"), break_even_queries=None)
    d = cost.to_dict()
    assert d["energy_method"] is None and d["break_even_queries"] is None  # a group's keys, null included
    assert list(d).index("build_flops") < list(d).index("build_kwh") < list(d).index("tco_usd") < list(
        d).index("break_even")
    assert CandidateCost.from_dict(d).to_dict() == d


def test_render_accepts_typed_results_and_the_dict():
    from leanbench.report import render

    raw = json.loads((FIXTURES / "results_digits_full.json").read_text())
    typed = StudyResults.from_dict(raw)
    assert render(typed, "md") == render(raw, "md")
    assert json.loads(render(typed, "json")) == raw
    assert typed.study == "digits" and typed.candidates[0].name == "teacher"


# ---------------------------------------------------------------------------------------------- stored configs


def _study_dump(**extra) -> dict:
    from leanbench.study_loader import parse_study

    study = parse_study({"name": "s", "task": {"data": "data/train.csv", "text": "text"}, "reference": "a",
                         "candidates": [{"name": "a", "model": {"arch": "mlp"}, "steps": [{"train": {"epochs": 2}}]},
                                        {"name": "b", "model": {"arch": "mlp", "hidden": [8]},
                                         "steps": [{"distill": {"teacher": "a", "epochs": 3}}]},
                                        {"name": "a-q", "from": "a", "steps": ["quantize"]}], **extra})
    return study.model_dump(mode="json", by_alias=True)


def _old_step_form(step: dict) -> dict:
    """A step as leanbench dumped it before config versions: every step name a key, None but one."""
    names = ("train", "finetune", "lora", "distill", "prune", "quantize", "lowrank")
    (name, cfg), = ((k, v) for k, v in step.items() if v is not None)
    return {n: (cfg if n == name else None) for n in names}


def test_an_unversioned_config_is_upgraded_and_validates():
    dump = _study_dump()
    old = {**dump, "candidates": [{**c, "steps": [_old_step_form(s) for s in c["steps"]]}
                                  for c in dump["candidates"]]}
    current = migrate_config(old, None)
    assert current["candidates"][1]["steps"] == [{"distill": dump["candidates"][1]["steps"][0]["distill"]}]
    assert migrate_config(dump, CONFIG_VERSION) == dump
    study = study_from_config(old, None, source="studies/s.yaml")
    assert [c.name for c in study.candidates] == ["a", "b", "a-q"]
    assert study.dependencies("b") == ["a"] and study.dependencies("a-q") == ["a"]
    assert study.base_dir == "studies"  # from the stored path, nothing resolved on disk
    assert study.task.data == "data/train.csv"  # the file is not there: validation does not look
    with pytest.raises(StoreError, match="config version 99"):
        migrate_config(dump, 99)
    with pytest.raises(StoreError, match="does not validate"):
        study_from_config({**dump, "reference": 3}, CONFIG_VERSION)


def test_no_environment_interpolation_of_a_stored_config(monkeypatch):
    monkeypatch.setenv("LB_DESC", "from the environment")
    study = study_from_config({**_study_dump(), "description": "${LB_DESC}"}, CONFIG_VERSION)
    assert study.description == "${LB_DESC}"


def _plan(store: Store, config: dict) -> None:
    run_id = store.start_run("s", {"leanbench": "test"}, config)
    task = {"source": "x", "splits": {"test": {"name": "test", "n": 3, "fingerprint": "f"}}}
    store.save_plan("s", config, "studies/s.yaml", task, run_id, [], {})


def test_the_store_records_the_config_version(tmp_path):
    store = Store.open(tmp_path / "lb.db")
    _plan(store, _study_dump())
    row = store.study("s")
    assert row["config_version"] == CONFIG_VERSION and row["run"]["config_version"] == CONFIG_VERSION
    assert all(len(s) == 1 for c in row["config"]["candidates"] for s in c["steps"])  # one-key steps
    assert store.study_config("s").reference == "a" and store.study_config("nope") is None


def test_an_old_store_is_upgraded_in_place_and_its_config_read(tmp_path):
    db = tmp_path / "lb.db"
    store = Store.open(db)
    dump = _study_dump()
    _plan(store, dump)
    store.engine.dispose()
    old = {**dump, "candidates": [{**c, "steps": [_old_step_form(s) for s in c["steps"]]}
                                  for c in dump["candidates"]]}
    with sqlite3.connect(db) as conn:  # the store as schema 4 left it: no config_version, old step dumps
        for table in ("studies", "runs"):
            conn.execute(f"ALTER TABLE {table} DROP COLUMN config_version")
            conn.execute(f"UPDATE {table} SET config = ?", (json.dumps(old),))
        conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    store = Store.open(db, create=False)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(
            SCHEMA_VERSION)
        assert conn.execute("SELECT config_version FROM studies").fetchall() == [(None,)]
    row = store.study("s")
    assert row["config_version"] is None and row["config"] == old  # read as written, version 0
    study = store.study_config("s")
    assert [c.name for c in study.candidates] == ["a", "b", "a-q"] and study.candidate("b").teachers == ["a"]
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 3"):
        Store.open(db)
