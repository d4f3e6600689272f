"""lm-evaluation-harness tasks as a source (`data: lm_eval:<task>` + `include_path:`), checked against lm-eval
0.4.13's own `simple_evaluate` on the same local task YAMLs and the same tiny model (issue 29).

Three YAMLs written here over tiny local JSON files: a multiple_choice task with one seeded few-shot example
and a ": " target delimiter, a loglikelihood_rolling task, and a generate_until task with stop sequences, a
regex filter and case-insensitive exact_match. lm-eval runs in-process (model "hf" on the tiny Llama's folder,
`log_samples=True`); leanbench loads the same YAMLs through lm-eval's TaskManager and scores them with its own
task kinds. Per example: log-likelihoods within 1e-4, identical acc / acc_norm, identical generated strings,
extracted answers and exact_match. Half the generation targets are the answers transformers' own
`generate(do_sample=False)` gives (an implementation independent of both), so exact_match is 1 on some
examples and 0 on others.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from tiny_lm import build_tiny_lm, sentences, write_mc_jsonl  # noqa: E402

lm_eval = pytest.importorskip("lm_eval")
pytest.importorskip("transformers")

BATCH = 4
MC_YAML = """task: lb_tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {path}
test_split: test
fewshot_split: test
num_fewshot: 1
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: gold
target_delimiter: ": "
metric_list:
  - metric: acc
  - metric: acc_norm
"""

LM_YAML = """task: lb_tiny_lm
dataset_path: json
dataset_kwargs:
  data_files:
    test: {path}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: word_perplexity
"""

GEN_YAML = """task: lb_tiny_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {path}
test_split: test
output_type: generate_until
doc_to_text: "Q: {{{{question}}}}\\nA:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: [".", "\\n\\n"]
  max_gen_toks: 12
  do_sample: false
filter_list:
  - name: first-word
    filter:
      - function: regex
        regex_pattern: "([A-Za-z]+)"
      - function: take_first
metric_list:
  - metric: exact_match
    ignore_case: true
"""


def _hf_answers(model_dir: Path, prompts: list[str]) -> list[str]:
    """The first word of transformers' greedy continuation of each prompt, one prompt at a time."""
    import re

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    out = []
    for p in prompts:
        ids = tok(p, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            gen = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
        text = tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True).split(".")[0].split("\n\n")[0]
        words = re.findall(r"([A-Za-z]+)", text)
        out.append(words[0] if words else "")
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("lm_eval_tasks")
    model_dir = build_tiny_lm(root / "model")
    mc = write_mc_jsonl(root / "mc.jsonl", n=12)
    lm = root / "lm.jsonl"
    lm.write_text("".join(json.dumps({"text": " ".join(sentences(20 + 10 * i, seed=20 + i))}) + "\n"
                          for i in range(2)))
    questions = [s.rstrip(".") + "?" for s in sentences(14, seed=5)]
    answers = _hf_answers(model_dir, [f"Q: {q}\nA:" for q in questions])
    gen = root / "gen.jsonl"
    gen.write_text("".join(json.dumps({"question": q, "answer": a.upper() if i % 2 == 0 else "zzz"}) + "\n"
                           for i, (q, a) in enumerate(zip(questions, answers, strict=True))))
    tasks = root / "tasks"
    tasks.mkdir()
    (tasks / "mc.yaml").write_text(MC_YAML.format(path=mc))
    (tasks / "lm.yaml").write_text(LM_YAML.format(path=lm))
    (tasks / "gen.yaml").write_text(GEN_YAML.format(path=gen))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ["HF_DATASETS_CACHE"] = str(root / "hf-datasets")
    return {"root": root, "model": model_dir, "tasks": tasks}


@pytest.fixture(scope="module")
def reference(setup: dict) -> dict:
    import torch
    from lm_eval.tasks import TaskManager

    torch.set_num_threads(1)
    out = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={setup['model']},dtype=float32", device="cpu", batch_size=BATCH,
        tasks=["lb_tiny_mc", "lb_tiny_lm", "lb_tiny_gen"], log_samples=True, bootstrap_iters=0,
        task_manager=TaskManager(include_path=str(setup["tasks"]), include_defaults=False))
    return {name: sorted(samples, key=lambda s: s["doc_id"]) for name, samples in out["samples"].items()}


def _run(setup: dict, task: dict):
    from leanbench.evaluate.tasks import get_task_kind
    from leanbench.models.base import build_model
    from leanbench.study_loader import parse_study

    study = parse_study({"name": "parity", "task": {**task, "include_path": str(setup["tasks"])}, "reference": "m",
                         "candidates": [{"name": "m", "model": {"hf": str(setup["model"])}}],
                         "evaluate": {"batch_size": BATCH}}, base_dir=setup["root"])
    kind = get_task_kind(study.task.kind)
    data = kind.load(study.task, seed=0, base_dir=setup["root"])
    model = build_model(study.candidates[0].model, data, 0)
    return data, kind.evaluate(model, data.test, study, data)


def test_multiple_choice_task_matches_lm_eval(setup: dict, reference: dict) -> None:
    from leanbench.evaluate.metrics import get_metric
    from leanbench.evaluate.multiple_choice import split_scores

    data, out = _run(setup, {"kind": "multiple-choice", "data": "lm_eval:lb_tiny_mc"})
    samples = reference["lb_tiny_mc"]
    assert len(samples) == len(data.test) == 12
    assert data.meta["target_delimiter"] == ": " and data.meta["num_fewshot"] == 1
    ll, _ = split_scores(out.scores)
    for i, s in enumerate(samples):
        assert data.test.X[i][0] == s["arguments"][0][0]  # the same few-shot context
        theirs = np.array([r[0] for r in s["filtered_resps"]])
        np.testing.assert_allclose(ll[i, :len(theirs)], theirs, atol=1e-4, rtol=0)
    for name in ("acc", "acc_norm"):
        assert get_metric(name).correct(data.test.y, out.scores).astype(float).tolist() == [s[name] for s in samples]


def test_rolling_task_matches_lm_eval(setup: dict, reference: dict) -> None:
    data, out = _run(setup, {"kind": "language-modeling", "data": "lm_eval:lb_tiny_lm"})
    theirs = np.array([s["filtered_resps"][0] for s in reference["lb_tiny_lm"]], dtype=float).ravel()
    np.testing.assert_allclose(-out.scores[:, 0], theirs, atol=1e-4, rtol=0)
    assert out.scores[:, 1].max() > 128  # longer than the context: several rolling windows


def test_generate_until_task_matches_lm_eval(setup: dict, reference: dict) -> None:
    from leanbench.evaluate.generation import rescore

    data, out = _run(setup, {"kind": "generation", "data": "lm_eval:lb_tiny_gen"})
    samples = reference["lb_tiny_gen"]
    assert len(samples) == len(data.test) == 14
    settings = data.meta["generation"]
    assert settings["until"] == [".", "\n\n"] and settings["max_new_tokens"] == 12
    assert settings["exact_match"] == {"ignore_case": True}
    for i, s in enumerate(samples):
        assert data.test.X[i] == s["arguments"][0][0]
        assert out.extra[i]["generated"] == s["resps"][0][0], i
        assert out.extra[i]["answer"] == s["filtered_resps"][0], i
        assert out.scores[i, 0] == s["exact_match"], i
    em = out.scores[:, 0]
    assert 0 < em.sum() < len(em)  # both outcomes occur: the comparison is not vacuous
    np.testing.assert_array_equal(rescore(out.extra, out.info["generation"]), out.scores)
