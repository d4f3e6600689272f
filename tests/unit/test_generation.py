"""The `generation` task kind (evaluate/generation.py): extraction, metrics and normalisation checked against
lm-evaluation-harness's own functions; generation on the tiny Llama against transformers' `generate`; config
errors; a whole study through the runner, the store, the analysis and the report."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from tiny_lm import build_tiny_lm, sentences  # noqa: E402

from leanbench.errors import ConfigError  # noqa: E402
from leanbench.evaluate.generation import (  # noqa: E402
    GenerationSplit,
    Settings,
    cut_at_stops,
    exact_match,
    extract,
    extraction_warning,
    generate,
    make_generation_split,
    rescore,
    token_f1,
)
from leanbench.evaluate.metrics import get_metric  # noqa: E402

ANSWERS = ["The Cat.", "the cat", "a  cat!", "Dog 12", "", "an apple pie", "THE", "12,5", "x y z", "cat cat dog"]
TARGETS = [["cat"], ["The cat"], ["cat"], ["dog 12", "12"], ["x"], ["apple pie"], ["the"], ["12.5"], ["z y"],
           ["cat dog"]]


@pytest.mark.parametrize("options", [{}, {"ignore_case": True}, {"ignore_case": True, "ignore_punctuation": True},
                                     {"regexes_to_ignore": [",", r"\$"], "ignore_numbers": True}])
def test_exact_match_equals_lm_eval(options: dict) -> None:
    from lm_eval.api.metrics import exact_match_hf_evaluate

    for answer, targets in zip(ANSWERS, TARGETS, strict=True):
        theirs = max(exact_match_hf_evaluate([answer], [t], **options)["exact_match"] for t in targets)
        assert exact_match(answer, targets, **options) == theirs, (answer, targets, options)


def test_token_f1_equals_the_squad_script() -> None:
    from lm_eval.tasks.qasper.metrics import f1_abstractive  # the SQuAD v1.1 script's f1, as lm-eval ships it

    for answer, targets in zip(ANSWERS, TARGETS, strict=True):
        theirs = max(f1_abstractive([answer], [t]) for t in targets)
        assert token_f1(answer, targets) == pytest.approx(theirs), (answer, targets)
    assert token_f1("cat cat dog", ["cat dog"]) == pytest.approx(0.8)


@pytest.mark.parametrize("pattern,group", [(r"(\d+)", 0), (r"(\d+)", -1), (r"(\d+)|(cat)", 0), (r"#### (.*)", 0)])
def test_regex_extraction_equals_lm_eval_filters(pattern: str, group: int) -> None:
    from lm_eval.filters.extraction import RegexFilter
    from lm_eval.filters.transformation import LowercaseFilter

    texts = ["cat 12 and 7", "no number", " 42 ", "#### The End", "The cat 3"]
    theirs = LowercaseFilter().apply(RegexFilter(pattern, group, "[none]").apply([[t] for t in texts], None), None)
    filters = [{"function": "regex", "regex_pattern": pattern, "group_select": group, "fallback": "[none]"},
               {"function": "take_first"}, {"function": "lowercase"}]
    assert [extract(t, filters)[0] for t in texts] == [r[0] for r in theirs]
    assert extract("no number", filters[:1])[1] is (re.search(pattern, "no number") is not None)


def test_cut_at_stops_is_lm_eval_postprocessing() -> None:
    from lm_eval.models.utils import postprocess_generated_text

    for text in ["a b. c\n\nd", "x\n\ny. z", "none here", ".start"]:
        until = [".", "\n\n"]
        assert cut_at_stops(text, until) == postprocess_generated_text(text, until, None)


def test_metric_objects_read_the_stored_layout() -> None:
    scores = np.array([[1, 0.5, 1, 1], [0, 0.25, 0, 1], [1, 1.0, 1, 0]], dtype=float)
    y = np.zeros(3, dtype=np.int64)
    assert get_metric("exact_match")(y, scores) == pytest.approx(2 / 3)
    assert get_metric("token_f1")(y, scores) == pytest.approx(1.75 / 3)
    assert get_metric("regex_pass").correct(y, scores).tolist() == [True, False, True]
    assert get_metric("token_f1").correct is None  # continuous: no McNemar
    idx = np.array([[0, 0, 1], [2, 2, 2]])
    np.testing.assert_allclose(get_metric("token_f1").resampled(y, scores, idx), [1.25 / 3, 1.0])


def test_rescore_recomputes_the_stored_scores() -> None:
    s = Settings(until=("\n",), max_new_tokens=8, filters=({"function": "regex", "regex_pattern": r"(\d+)",
                                                            "group_select": 0, "fallback": "[invalid]"},),
                 exact_match={"ignore_case": True}, pass_regex=r"\d")
    extra = [{"generated": "it is 42", "targets": ["42"]}, {"generated": "no idea", "targets": ["7", "seven"]}]
    np.testing.assert_array_equal(rescore(extra, s.to_json()), [[1, 1, 1, 1], [0, 0, 0, 0]])
    assert extraction_warning(np.array([0.0, 0.0]), s) is not None
    assert extraction_warning(np.array([0.0, 1.0]), s) is None


def test_split_fingerprint_covers_targets_and_settings() -> None:
    a = make_generation_split("test", ["p1", "p2", "p3"], [["a"], ["b"], ["c"]], ["g0", "g1", "g2"], Settings(("\n",)))
    b = make_generation_split("test", ["p1", "p2", "p3"], [["a"], ["B"], ["c"]], ["g0", "g1", "g2"], Settings(("\n",)))
    c = make_generation_split("test", ["p1", "p2", "p3"], [["a"], ["b"], ["c"]], ["g0", "g1", "g2"], Settings((".",)))
    assert len({a.fingerprint, b.fingerprint, c.fingerprint}) == 3
    sub = a.subset(np.array([2, 0]))
    assert isinstance(sub, GenerationSplit) and sub.targets == (("c",), ("a",)) and list(sub.X) == ["p3", "p1"]


@pytest.mark.parametrize("task,message", [
    ({"data": "x.jsonl"}, "needs stop sequences (`until`) or `max_new_tokens`"),
    ({"data": "x.jsonl", "until": ["\n"], "filters": [{"regex": "(\\d+"}]}, "does not compile"),
    ({"data": "x.jsonl", "until": ["\n"], "pass_regex": "[a-"}, "does not compile"),
    ({"data": "x.jsonl", "until": ["\n"], "filters": ["lowercse"]}, "did you mean 'lowercase'"),
    ({"data": "x.jsonl", "until": ["\n"], "include_path": "tasks"}, "only for `data: lm_eval:<task>`"),
    ({"data": "lm_eval:", "until": ["\n"]}, "give the lm-evaluation-harness task"),
])
def test_bad_generation_configs_are_one_clear_error(task: dict, message: str) -> None:
    from leanbench.study_loader import parse_study

    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_study({"name": "g", "task": {"kind": "generation", **task}, "reference": "m",
                     "candidates": [{"name": "m", "model": {"hf": "x"}}]}, base_dir=Path("."))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    from leanbench.models.causal_lm import load_hf_causal_lm

    folder = build_tiny_lm(tmp_path_factory.mktemp("gen") / "lm")
    return folder, load_hf_causal_lm(str(folder))


def test_generate_equals_transformers_generate_in_any_batch(tiny) -> None:
    import torch

    _, lm = tiny
    prompts = [s[:-1] for s in sentences(7, seed=3)] + ["A"]
    until = (".", "\n")
    settings = Settings(until=until, max_new_tokens=10)
    expected = []
    for p in prompts:  # one prompt at a time, no padding: the plain reference
        ids = lm.tokenizer(p, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            out = lm.model.generate(ids, max_new_tokens=10, do_sample=False, pad_token_id=0)
        expected.append(cut_at_stops(lm.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True), until))
    assert generate(lm, prompts, settings, batch_size=1) == expected
    assert generate(lm, prompts, settings, batch_size=3) == expected  # sorted by length, order restored
    assert any(expected) and any(len(lm.encode([e])[0]) < 10 for e in expected if e)  # some stop early


def test_generation_needs_room_in_the_context(tiny) -> None:
    _, lm = tiny
    with pytest.raises(ConfigError, match="no room for a prompt"):
        generate(lm, ["a"], Settings(max_new_tokens=lm.max_length), batch_size=1)


def test_a_generation_study_stores_text_and_reports_it(tiny, tmp_path: Path) -> None:
    """Run -> store -> analysis -> report: the generated text of every example is stored and recomputes the
    scores; an extraction regex that never matches is a note; paired verdicts, a perturbation and slices apply;
    dataset text in the HTML is escaped."""
    from leanbench.analysis import analyse
    from leanbench.report import render
    from leanbench.runner.local import run_study
    from leanbench.store import Store
    from leanbench.study_loader import parse_study

    folder, _ = tiny
    payload = "<script>alert(1)</script>"
    rows = [{"id": f"g{i}", "q": f"Q: {s}\nA:", "a": [payload, "cat"] if i == 0 else ["cat"]}
            for i, s in enumerate(sentences(8, seed=9))]
    (tmp_path / "gen.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    study = parse_study({
        "name": "gen", "reference": "m",
        "task": {"kind": "generation", "data": "gen.jsonl", "prompt": "q", "target": "a", "until": ["."],
                 "max_new_tokens": 6, "filters": [{"regex": "(QQQ\\d+)"}, "strip"]},
        "candidates": [{"name": "m", "model": {"hf": str(folder)}},
                       {"name": "m-int8", "from": "m", "steps": [{"quantize": {"method": "weight-only-int8"}}]}],
        "evaluate": {"batch_size": 4, "bootstrap": 100, "perturbations": [{"lowercase": {}}]},
        "measure": {"enabled": False}, "integrity": {"contamination": False}}, base_dir=tmp_path)
    store = Store.open(tmp_path / "s.db")
    run_study(study, store)
    res = analyse(store, "gen")
    by = {c.name: c for c in res.candidates}
    assert set(by["m"].metrics) == {"exact_match", "token_f1", "regex_pass"}
    assert by["m-int8"].vs_reference.verdict is not None
    assert res.robustness is not None and res.slices is not None
    gen = res.generations
    assert gen["n"] == 8 and len(gen["examples"]) == 8 and gen["settings"]["until"] == ["."]
    assert all(set(e["outputs"]) == {"m", "m-int8"} for e in gen["examples"])
    assert any("matched none of the 8 generations" in n for n in res.notes)
    cells = next(c["cells"] for c in store.candidates("gen") if c["name"] == "m")
    stored = store.predictions(next(iter(cells["evaluate"].values())))
    assert [e["targets"] for e in stored["extra"]][:2] == [[payload, "cat"], ["cat"]]
    np.testing.assert_array_equal(rescore(stored["extra"], gen["settings"]), stored["scores"])
    html = render(res, "html")
    assert "Generations" in html and payload not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def _lm_eval_tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Two task YAMLs in tmp_path/tasks (local data without stop sequences or a token budget; a hub dataset)
    and a loader of a named task as a study would load it."""
    pytest.importorskip("lm_eval")
    from leanbench.evaluate.tasks import get_task_kind
    from leanbench.study_loader import parse_study

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    (tmp_path / "d.jsonl").write_text(json.dumps({"q": "1+1?", "a": "2"}) + "\n")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    common = 'test_split: test\noutput_type: generate_until\ndoc_to_text: "{{q}}"\ndoc_to_target: "{{a}}"\n'
    (tasks / "local.yaml").write_text(f"task: lb_local\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
                                      f"    test: {tmp_path / 'd.jsonl'}\n{common}generation_kwargs:\n  until: []\n"
                                      "  do_sample: false\n")  # lm-eval fills a missing `until` with \n\n
    (tasks / "hub.yaml").write_text(f"task: lb_hub\ndataset_path: some-org/not-local\n{common}")

    def load(kind: str, name: str) -> None:
        study = parse_study({"name": "g", "task": {"kind": kind, "data": f"lm_eval:{name}", "include_path": "tasks"},
                             "reference": "m", "candidates": [{"name": "m", "model": {"hf": "x"}}]}, base_dir=tmp_path)
        get_task_kind(kind).load(study.task, seed=0, base_dir=tmp_path)

    return load


def test_lm_eval_source_errors_are_one_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An lm-eval task of another output type than the kind, one without stop sequences or max tokens, a hub
    dataset offline."""
    from leanbench.errors import DataError

    load = _lm_eval_tasks(tmp_path, monkeypatch)
    with pytest.raises(ConfigError, match="is a generate_until task: use `kind: generation`"):
        load("multiple-choice", "lb_local")
    with pytest.raises(ConfigError, match="neither stop sequences"):
        load("generation", "lb_local")
    with pytest.raises(DataError, match="could not be loaded .* Offline, an lm-eval task works when its dataset is "
                                        "local files"):
        load("generation", "lb_hub")


@pytest.mark.slow  # builds lm-eval's index of ~15 k task names (10-20 s on 2 busy cores)
def test_unknown_lm_eval_task_says_did_you_mean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load = _lm_eval_tasks(tmp_path, monkeypatch)
    with pytest.raises(ConfigError, match="unknown lm-evaluation-harness task 'lb_locla' \\(did you mean 'lb_local'"):
        load("generation", "lb_locla")
