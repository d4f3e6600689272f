"""Parity with lm-evaluation-harness 0.4.13 on the same tiny model and data (the acceptance test of issue 4).

A 2-layer Llama with random weights and a BPE tokenizer trained here; a 20-question multiple-choice
JSONL (2-4 choices, some contexts ending in a space) and a few documents longer than the model's 128
positions (so rolling windows are exercised). lm-eval runs in-process (`simple_evaluate`, model "hf",
local task YAMLs, `log_samples=True`); leanbench runs its task kinds through the study config.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from tiny_lm import build_tiny_lm, sentences, write_mc_jsonl  # noqa: E402

lm_eval = pytest.importorskip("lm_eval")
pytest.importorskip("transformers")

MC_YAML = """task: leanbench_tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {path}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: gold
metric_list:
  - metric: acc
  - metric: acc_norm
"""

LM_YAML = """task: leanbench_tiny_lm
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
  - metric: bits_per_byte
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("parity")
    model_dir = build_tiny_lm(root / "model")
    mc = write_mc_jsonl(root / "mc.jsonl", n=20)
    texts = [" ".join(sentences(30 + 10 * i, seed=10 + i)) for i in range(3)] + ["A short one."]
    lm = root / "lm.jsonl"
    lm.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    tasks = root / "tasks"
    tasks.mkdir()
    (tasks / "mc.yaml").write_text(MC_YAML.format(path=mc))
    (tasks / "lm.yaml").write_text(LM_YAML.format(path=lm))
    return {"root": root, "model": model_dir, "mc": mc, "lm": lm, "tasks": tasks}


@pytest.fixture(scope="module")
def reference(setup: dict) -> dict:
    import os

    import torch
    from lm_eval.tasks import TaskManager

    torch.set_num_threads(1)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ["HF_DATASETS_CACHE"] = str(setup["root"] / "hf-datasets")
    return lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={setup['model']},dtype=float32", device="cpu", batch_size=4,
        tasks=["leanbench_tiny_mc", "leanbench_tiny_lm"], log_samples=True, bootstrap_iters=0,
        task_manager=TaskManager(include_path=str(setup["tasks"]), include_defaults=False))


def _study(setup: dict, task: dict):
    from leanbench.study_loader import parse_study

    return parse_study({"name": "parity", "task": task, "reference": "m",
                        "candidates": [{"name": "m", "model": {"hf": str(setup["model"])}}],
                        "evaluate": {"batch_size": 5}}, base_dir=setup["root"])


def _run(study):
    from leanbench.evaluate.tasks import get_task_kind
    from leanbench.models.base import build_model

    kind = get_task_kind(study.task.kind)
    data = kind.load(study.task, seed=0, base_dir=Path(study.base_dir))
    model = build_model(study.candidates[0].model, data, 0)
    return data, kind.evaluate(model, data.test, study, data)


def test_multiple_choice_matches_lm_eval(setup: dict, reference: dict) -> None:
    from leanbench.evaluate.metrics import get_metric
    from leanbench.evaluate.multiple_choice import split_scores

    study = _study(setup, {"kind": "multiple-choice", "data": str(setup["mc"])})
    data, out = _run(study)
    samples = sorted(reference["samples"]["leanbench_tiny_mc"], key=lambda s: s["doc_id"])
    ll, _ = split_scores(out.scores)
    assert len(samples) == len(data.test) == 20
    for i, s in enumerate(samples):
        theirs = np.array([r[0] for r in s["filtered_resps"]])
        k = len(theirs)
        np.testing.assert_allclose(ll[i, :k], theirs, atol=1e-4, rtol=0)
        assert np.all(np.isneginf(ll[i, k:]))
        assert [bool(r[1]) for r in s["filtered_resps"]] == out.extra[i]["greedy"]
    y, res = data.test.y, reference["results"]["leanbench_tiny_mc"]
    for name in ("acc", "acc_norm"):
        mine = get_metric(name).correct(y, out.scores).astype(float)
        assert mine.tolist() == [s[name] for s in samples], name
        assert get_metric(name)(y, out.scores) == pytest.approx(res[f"{name},none"])
    # the two metrics must differ somewhere, or acc_norm's length division would be untested
    assert get_metric("acc").correct(y, out.scores).tolist() != get_metric("acc_norm").correct(y, out.scores).tolist()


def test_language_modeling_matches_lm_eval(setup: dict, reference: dict) -> None:
    from leanbench.evaluate.metrics import get_metric

    study = _study(setup, {"kind": "language-modeling", "data": str(setup["lm"])})
    data, out = _run(study)
    samples = sorted(reference["samples"]["leanbench_tiny_lm"], key=lambda s: s["doc_id"])
    theirs = np.array([s["filtered_resps"][0] for s in samples], dtype=float).ravel()
    np.testing.assert_allclose(-out.scores[:, 0], theirs, atol=1e-4 * max(1, len(theirs)), rtol=1e-6)
    assert out.scores[:, 1].max() > 128  # longer than the context: several rolling windows
    y, res = data.test.y, reference["results"]["leanbench_tiny_lm"]
    assert get_metric("bits_per_byte")(y, out.scores) == pytest.approx(res["bits_per_byte,none"], rel=1e-6)
    assert get_metric("word_perplexity")(y, out.scores) == pytest.approx(res["word_perplexity,none"], rel=1e-6)
    ppl = get_metric("perplexity")(y, out.scores)
    assert ppl == pytest.approx(math.exp(out.scores[:, 0].sum() / out.scores[:, 1].sum()))
