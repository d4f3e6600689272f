"""Exports, piece by piece: the flat figures (card, MLflow and table share them), per-example metrics against
scikit-learn, the adapters' `export` (a causal LM becomes a Hugging Face folder that transformers loads), the
Parquet extra's message, MLflow params."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from leanbench.analysis.results import StudyResults
from leanbench.errors import LeanbenchError
from leanbench.export.bill import all_figures, bill_figures, key_part, metric_figures
from leanbench.export.mlflow_export import PARAM_CHARS, flatten
from leanbench.export.predictions import output_kind, per_example_metrics
from leanbench.export.table import markdown_table, verdict_rows

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))


@pytest.fixture(scope="module")
def digits() -> StudyResults:
    return StudyResults.from_dict(json.loads((FIXTURES / "results_digits_full.json").read_text()))


def test_figures_are_the_results_numbers_under_flat_names(digits):
    cand = digits.candidate("student-kd")
    raw = next(c for c in json.loads((FIXTURES / "results_digits_full.json").read_text())["candidates"]
               if c["name"] == "student-kd")
    figures = all_figures(cand)
    for metric, m in raw["metrics"].items():
        assert (figures[metric], figures[f"{metric}_ci_low"], figures[f"{metric}_ci_high"]) == (
            m["value"], m["ci_low"], m["ci_high"])
    vs = raw["vs_reference"]
    assert (figures["diff_vs_reference"], figures["diff_vs_reference_ci_low"], figures["margin"]) == (
        vs["diff"], vs["ci_low"], vs["margin"])
    assert figures["latency_edge_p50_ms"] == raw["latency"]["edge"]["p50_ms"]
    assert figures["latency_edge_p50_ms_ci_low"] == raw["latency"]["edge"]["p50_ci"][0]
    # the old normalised form (a dict of percentiles) is read too
    assert figures["latency_server_p50_normalised_ms"] == raw["latency"]["server"]["normalised_ms"]["p50_ms"]
    assert figures["size_bytes"] == raw["size_bytes"] and figures["build_seconds"] == raw["cost"]["build_seconds"]
    assert all(isinstance(v, (int, float)) and np.isfinite(v) for v in figures.values())


def test_missing_figures_are_left_out_not_zero(digits):
    cand = digits.candidate("teacher")
    cand_empty = type(cand)(name="x")
    assert bill_figures(cand_empty) == {} and metric_figures(cand_empty) == {}
    assert key_part("edge profile/1") == "edge_profile_1"


def test_verdict_table_has_one_row_per_candidate_with_the_same_columns(digits):
    rows = verdict_rows(digits)
    assert [r["candidate"] for r in rows] == [c.name for c in digits.candidates]
    assert len({tuple(r) for r in rows}) == 1
    assert rows[1]["verdict"] == "non-inferior" and rows[1]["decision_metric"] == "accuracy"
    md = markdown_table(digits, rows)
    assert md.count("\n") == len(rows) + 2
    assert "| student-kd | distill | non-inferior | 0.9778 [0.9611, 0.9917] | 0.0028 [-0.0056, 0.0111] |" in md


def test_per_example_metrics_average_to_scikit_learn():
    from sklearn.metrics import accuracy_score, log_loss

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=200)
    gold = rng.integers(0, 4, size=200)
    per = per_example_metrics(["accuracy", "nll", "ece"], gold, probs)
    assert per["accuracy"].mean() == pytest.approx(accuracy_score(gold, probs.argmax(1)))
    assert per["nll"].mean() == pytest.approx(log_loss(gold, probs, labels=range(4)))
    # ECE of one example: |correct - confidence|
    np.testing.assert_allclose(per["ece"], np.abs((probs.argmax(1) == gold) - probs.max(1)))


def test_per_example_metrics_of_other_task_kinds():
    # language modelling: a document's own perplexity, exp(its NLL sum / its tokens)
    scores = np.array([[10.0, 5.0, 20.0, 4.0], [3.0, 3.0, 9.0, 2.0]])
    per = per_example_metrics(["perplexity", "word_perplexity"], np.zeros(2, dtype=int), scores)
    np.testing.assert_allclose(per["perplexity"], np.exp([2.0, 1.0]))
    np.testing.assert_allclose(per["word_perplexity"], np.exp([2.5, 1.5]))
    # multiple choice: 1 when the highest log-likelihood choice (first half of the row) is the gold one
    mc = np.array([[-1.0, -2.0, 3.0, 1.0], [-3.0, -2.0, 1.0, 8.0]])
    assert list(per_example_metrics(["acc", "acc_norm"], np.array([0, 0]), mc)["acc"]) == [1.0, 0.0]


def test_output_kinds_and_the_parquet_extra(monkeypatch, tmp_path):
    assert output_kind(tmp_path / "a.CSV", (".csv", ".parquet"), "--predictions") == ".csv"
    with pytest.raises(LeanbenchError, match=r"--table .*\.txt.*\.csv or \.md"):
        output_kind(tmp_path / "t.txt", (".csv", ".md"), "--table")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a))
    with pytest.raises(LeanbenchError, match=r"pip install 'leanbench\[parquet\]'"):
        output_kind(tmp_path / "p.parquet", (".csv", ".parquet"), "--predictions")


def test_mlflow_params_are_flat_strings():
    config = {"name": "s", "model": {"arch": "mlp", "hidden": [64, 32]},
              "steps": [{"distill": {"teacher": "t", "temperature": 2.0}}], "note": "x" * 900}
    flat = flatten(config)
    assert flat["model.hidden.1"] == "32" and flat["steps.0.distill.temperature"] == "2.0"
    assert flat["steps.0.distill.teacher"] == "t" and len(flat["note"]) == PARAM_CHARS


def test_adapter_export_copies_the_saved_folder(tmp_path):
    from leanbench.models.base import export_model, load_model
    from leanbench.models.torch_models import TorchAdapter, normalize_arch, seeded_module

    arch = normalize_arch({"arch": "mlp", "in_features": 4, "hidden": [8], "n_classes": 3})
    model = TorchAdapter(seeded_module(arch, 0), arch, (4,))
    model.save(tmp_path / "saved")
    (tmp_path / "out").mkdir()
    files, form = export_model(tmp_path / "saved", tmp_path / "out")
    assert sorted(f.name for f in files) == sorted(f.name for f in (tmp_path / "saved").iterdir())
    assert "load_model" in form
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_array_equal(load_model(tmp_path / "out").predict_proba(x), model.predict_proba(x))


def test_causal_lm_exports_a_hugging_face_folder(tmp_path):
    import torch
    from tiny_lm import build_tiny_lm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from leanbench.models.base import export_model
    from leanbench.models.causal_lm import load_hf_causal_lm

    model = load_hf_causal_lm(str(build_tiny_lm(tmp_path / "lm")))
    model.save(tmp_path / "saved")
    (tmp_path / "out").mkdir()
    files, form = export_model(tmp_path / "saved", tmp_path / "out")
    assert (tmp_path / "out" / "config.json").is_file() and not (tmp_path / "out" / "adapter.json").exists()
    assert "AutoModelForCausalLM" in form and all(f.parent == tmp_path / "out" for f in files)
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    ids = AutoTokenizer.from_pretrained(tmp_path / "out")("The cat runs.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, model.model(ids).logits)


# ---------------------------------------------------------------------------------------------- several tasks


@pytest.fixture(scope="module")
def multitask(tmp_path_factory):
    """The tiny two-task study (tests/fixtures/tiny_multitask.py), run once: its store and export source."""
    from tiny_multitask import run_multitask

    from leanbench.export.source import open_study
    from leanbench.store import Store

    db = run_multitask(tmp_path_factory.mktemp("mt-export"))
    return open_study(Store.open(db, readonly=True), "mt")


def test_multi_task_figures_and_table_are_per_task(multitask):
    res = multitask.results
    cand = res.candidate("m-int8")
    figures = all_figures(cand)
    for task, entry in cand.tasks.items():
        for metric, m in entry.metrics.items():
            assert (figures[f"{task}.{metric}"], figures[f"{task}.{metric}_ci_low"],
                    figures[f"{task}.{metric}_ci_high"]) == (m.value, m.ci_low, m.ci_high)
        vs = entry.vs_reference
        assert (figures[f"{task}.diff_vs_reference"], figures[f"{task}.margin"]) == (vs.diff, vs.margin)
    assert set(cand.tasks) == {"mc", "gen"} and figures["gen.margin"] == 0.2 and figures["mc.margin"] == 0.1
    macro = cand.cross_task.macro_diff
    assert (figures["cross_task.macro_diff"], figures["cross_task.macro_diff_ci_low"]) == (macro.value, macro.ci_low)
    assert figures["cross_task.inferior_tasks"] == len(cand.cross_task.inferior_tasks)
    assert "acc" not in figures and "diff_vs_reference" not in figures  # no candidate-level figure
    rows = verdict_rows(res)
    assert len({tuple(r) for r in rows}) == 1 and "verdict" not in rows[0]
    by = {r["candidate"]: r for r in rows}
    assert by["m-int8"]["gen.verdict"] == cand.tasks["gen"].vs_reference.verdict
    assert by["m"]["gen.verdict"] == "reference" and by["m"]["gen.decision_metric"] == "exact_match"
    assert by["m-int8"]["worst_task"] == cand.cross_task.worst.task
    md = markdown_table(res, rows)
    assert "| mc (acc): verdict, diff vs reference | gen (exact_match): verdict, diff vs reference |" in md
    vs = cand.tasks["mc"].vs_reference
    assert f"| {vs.verdict}, {vs.diff:.4g} [" in md and md.count("\n") == len(rows) + 2


def test_multi_task_model_card_has_one_result_per_task_and_metric(multitask, tmp_path):
    from huggingface_hub import ModelCard

    from leanbench.export.model_card import render_card

    cand = multitask.results.candidate("m-int8")
    (tmp_path / "README.md").write_text(render_card(multitask, cand, "a folder", "key"))
    card = ModelCard.load(tmp_path / "README.md")
    evals = {(e.dataset_name, e.metric_type): e for e in card.data.eval_results}
    assert set(evals) == {(t, m) for t, entry in cand.tasks.items() for m in entry.metrics}
    for (task, metric), e in evals.items():
        m = cand.tasks[task].metrics[metric]
        assert e.metric_value == pytest.approx(m.value)
        assert (e.metric_args["ci_low"], e.metric_args["ci_high"]) == pytest.approx((m.ci_low, m.ci_high))
        assert e.task_type == ("multiple-choice" if task == "mc" else "text-generation")
    extra = card.data.leanbench
    assert "verdict" not in extra and extra["tasks"]["gen"]["verdict"] == cand.tasks["gen"].vs_reference.verdict
    assert extra["tasks"]["mc"]["metric"] == "acc" and extra["cross_task"]["worst_task"] == cand.cross_task.worst.task
    assert extra["cross_task"]["cross_task.macro_diff"] == pytest.approx(cand.cross_task.macro_diff.value)
    body = (tmp_path / "README.md").read_text()
    assert "## Results per task" in body and "| gen | exact_match |" in body and "Worst task:" in body


def test_multi_task_predictions_have_a_task_column(multitask):
    from leanbench.export.predictions import predictions_frame

    frame = predictions_frame(multitask)
    assert list(frame.columns[:3]) == ["study", "task", "candidate"]
    n = {t: len(multitask.store.predictions(multitask.evaluate_cells("m", t)["evaluate"]["0"])["gold"])
         for t in ("mc", "gen")}
    clean = frame[frame.perturbation.fillna("") == ""]
    assert clean.groupby(["task", "candidate"]).size().to_dict() == {
        (t, c): n[t] for t in ("mc", "gen") for c in ("m", "m-int8")}
    perturbed = frame[frame.perturbation.fillna("") != ""]  # both kinds have perturbations (issue 29)
    assert set(perturbed.task) == {"mc", "gen"} and len(perturbed) == 2 * (n["mc"] + n["gen"])
    for cand in multitask.results.candidates:
        for task, entry in cand.tasks.items():
            rows = clean[(clean.task == task) & (clean.candidate == cand.name)]
            for metric in ("acc", "acc_norm") if task == "mc" else ("exact_match", "token_f1"):
                assert rows[metric].mean() == pytest.approx(entry.metrics[metric].value)
    assert frame[frame.task == "mc"]["exact_match"].isna().all()  # a metric of the other task: empty
    assert 0 < clean[clean.task == "gen"]["exact_match"].mean() < 1


def test_multi_task_candidate_exports_its_build(multitask, tmp_path):
    from leanbench.export.model import export_candidate

    rows = multitask.task_views()[0].rows  # the study of several tasks has no rows of its own: its tasks' do
    key = multitask.build_key("m-int8")
    assert multitask.rows == {} and key == rows["m-int8"]["cells"]["build"]["0"]
    done = export_candidate(multitask, "m-int8", tmp_path / "out")
    folder = multitask.store.artifact_dir(key)
    saved = {str(f.relative_to(folder)) for f in folder.rglob("*") if f.is_file()}
    assert saved and saved | {"README.md"} == {str(f) for f in done.files}
    assert "## Results per task" in (done.folder / "README.md").read_text()


def test_multi_task_mlflow_runs(multitask, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from leanbench.export.mlflow_export import export_mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = f"file://{tmp_path / 'mlruns'}"
    out = export_mlflow(multitask, uri)
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(out.logged["m-int8"])
    cand = multitask.results.candidate("m-int8")
    assert run.data.tags["verdict.mc"] == cand.tasks["mc"].vs_reference.verdict and "verdict" not in run.data.tags
    assert run.data.tags["leanbench.tasks"] == "mc,gen"
    assert run.data.metrics["gen.exact_match"] == pytest.approx(cand.tasks["gen"].metrics["exact_match"].value)
    assert run.data.metrics["cross_task.macro_diff"] == pytest.approx(cand.cross_task.macro_diff.value)
