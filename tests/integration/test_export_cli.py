"""`leanbench export` and `leanbench compare` on a real run (a small iris study, two seeds): the model folder
and its card read back by huggingface_hub, predictions checked against scikit-learn, the verdict table,
MLflow runs in a local file store, and every bad input one message with exit code 2 and nothing written."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import leanbench
from leanbench.cli import app

STUDY = {
    "name": "iris-export", "task": {"data": "sklearn:iris"}, "reference": "wide",
    "candidates": [
        {"name": "wide", "model": {"arch": "mlp", "hidden": [32]}, "steps": [{"train": {"epochs": 30}}]},
        {"name": "wide-int8", "from": "wide", "steps": [{"quantize": {"method": "dynamic-int8"}}]},
    ],
    "evaluate": {"bootstrap": 200, "seeds": [0, 1]},
    "measure": {"runs": 10, "warmup": 1, "throughput_runs": 3, "rounds": 6},
    "deploy": {"profiles": [{"name": "edge", "threads": 1, "batch": 1}]},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    (root / "study.yaml").write_text(yaml.safe_dump(STUDY))
    db = root / "lb.db"
    leanbench.run(leanbench.load_study(root / "study.yaml"), store=db)
    return db


def lb(*args: str) -> object:
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_export_model_and_card(store, tmp_path):
    from huggingface_hub import ModelCard

    from leanbench.models.base import load_model

    res = lb("export", "iris-export", "wide-int8", "--to", tmp_path / "out", "--store", store)
    assert res.exit_code == 0, res.output
    out = tmp_path / "out"
    assert {f.name for f in out.iterdir()} == {"README.md", "adapter.json", "model.safetensors"}
    assert not list(tmp_path.glob(".out.*"))  # no temporary folder left
    results = leanbench.results("iris-export", store=store)
    cand = results.candidate("wide-int8")
    card = ModelCard.load(out / "README.md")
    evals = {e.metric_type: e for e in card.data.eval_results}
    assert set(evals) == set(cand.metrics)
    for name, m in cand.metrics.items():
        e = evals[name]
        assert e.metric_value == pytest.approx(m.value)
        assert (e.metric_args["ci_low"], e.metric_args["ci_high"]) == pytest.approx((m.ci_low, m.ci_high))
        assert e.task_type == "tabular-classification" and e.dataset_split == "test" and e.verified is False
    extra = card.data.leanbench
    assert extra["verdict"] == cand.verdict and extra["reference"] == "wide"
    assert extra["bill"]["size_bytes"] == cand.size_bytes
    assert extra["bill"]["latency_edge_p50_ms"] == pytest.approx(cand.latency["edge"].p50_ms)
    assert extra["config"]["steps"][0]["quantize"]["method"] == "dynamic-int8"
    # the exported model is the built one: same predictions as the model in the store's artifacts
    x = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
    built = Path(store).parent / "artifacts" / extra["build_cell"]
    np.testing.assert_array_equal(load_model(out).predict_proba(x), load_model(built).predict_proba(x))


def test_export_refuses_bad_input_with_one_message(store, tmp_path):
    def fails(*args: str, match: str) -> None:
        res = lb(*args, "--store", store)
        assert res.exit_code == 2, res.output
        assert match in res.stderr and "Traceback" not in res.output, res.stderr

    fails("export", "iris-exprt", "wide", "--to", tmp_path / "a", match="did you mean 'iris-export'")
    fails("export", "iris-export", "wdie", "--to", tmp_path / "a", match="did you mean 'wide'")
    fails("export", "iris-export", "wide", match="give --to DIR")
    fails("export", "iris-export", match="nothing to export")
    fails("export", "iris-export", "--table", tmp_path / "t.txt", match="--table")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    fails("export", "iris-export", "wide", "--to", tmp_path / "full", match="not empty")
    assert [f.name for f in (tmp_path / "full").iterdir()] == ["keep.txt"]
    (tmp_path / "file").write_text("x")
    fails("export", "iris-export", "wide", "--to", tmp_path / "file" / "sub", match="cannot write")
    fails("export", "iris-export", "--predictions", tmp_path / "file" / "p.csv", match="cannot write")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing half-written
    res = lb("export", "iris-export", "wide", "--to", tmp_path / "full", "--force", "--store", store)
    assert res.exit_code == 0 and (tmp_path / "full" / "README.md").is_file()
    assert not (tmp_path / "full" / "keep.txt").exists()


def test_export_refuses_a_candidate_never_built(store, tmp_path):
    copy = tmp_path / "copy" / "lb.db"
    copy.parent.mkdir()
    with sqlite3.connect(store) as a, sqlite3.connect(copy) as b:
        a.backup(b)  # the store without its artifacts folder: nothing was built there
    res = lb("export", "iris-export", "wide", "--to", tmp_path / "out", "--store", copy)
    assert res.exit_code == 2 and "has not been built yet" in res.stderr and not (tmp_path / "out").exists()


def test_predictions_and_table(store, tmp_path):
    import pandas as pd
    from sklearn.metrics import accuracy_score

    res = lb("export", "iris-export", "--predictions", tmp_path / "p.csv", "--table", tmp_path / "t.csv",
             "--store", store)
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(tmp_path / "p.csv")
    results = leanbench.results("iris-export", store=store)
    n = results.candidate("wide").n_evaluated
    perturbations = frame["perturbation"].fillna("").unique()
    assert len(perturbations) > 1  # the clean split and the tabular perturbations
    assert len(frame) == 2 * 2 * n * len(perturbations)  # candidates x seeds x examples x (clean + perturbed)
    for _, group in frame.groupby(["candidate", "seed", frame["perturbation"].fillna("")]):
        assert len(group) == n
        assert group["accuracy"].mean() == pytest.approx(accuracy_score(group["target"], group["prediction"]))
    clean = frame[frame["perturbation"].isna()]
    assert set(clean["target_label"]) <= {"setosa", "versicolor", "virginica"}
    assert (clean["nll"] >= 0).all() and set(clean.groupby("example_id").size()) == {4}  # 2 candidates x 2 seeds
    table = pd.read_csv(tmp_path / "t.csv")
    assert list(table["candidate"]) == ["wide", "wide-int8"]
    assert table.loc[1, "verdict"] == results.candidate("wide-int8").verdict
    assert table.loc[1, "accuracy_ci_low"] == pytest.approx(results.candidate("wide-int8").metrics["accuracy"].ci_low)
    res = lb("export", "iris-export", "--predictions", tmp_path / "p.parquet", "--table", tmp_path / "t.md",
             "--store", store)
    assert res.exit_code == 0, res.output
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "p.parquet").fillna({"perturbation": ""}),
                                  frame.fillna({"perturbation": ""}), check_dtype=False)
    assert "| wide-int8 | quantize |" in (tmp_path / "t.md").read_text()


def test_mlflow_runs_in_a_local_file_store(store, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow >= 3.x refuses file stores without it

    uri = f"file://{tmp_path / 'mlruns'}"
    res = lb("export", "iris-export", "--mlflow", uri, "--store", store)
    assert res.exit_code == 0, res.output
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("iris-export")
    runs = {r.data.tags["mlflow.runName"]: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"wide", "wide-int8"}
    results = leanbench.results("iris-export", store=store)
    for name, run in runs.items():
        cand = results.candidate(name)
        assert run.info.status == "FINISHED" and run.data.tags["verdict"] == cand.verdict
        m = cand.metrics["accuracy"]
        got = run.data.metrics
        assert (got["accuracy"], got["accuracy_ci_low"], got["accuracy_ci_high"]) == pytest.approx(
            (m.value, m.ci_low, m.ci_high))
        assert got["size_bytes"] == cand.size_bytes
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
        assert artifacts == ["iris-export.html"]
    assert runs["wide-int8"].data.params["steps.0.quantize.method"] == "dynamic-int8"
    assert runs["wide"].data.params["model.arch"] == "mlp"
    again = lb("export", "iris-export", "--mlflow", uri, "--store", store)
    assert again.exit_code == 0 and "0 run(s) logged" in again.stderr and "2 already there" in again.stderr
    assert len(client.search_runs([exp.experiment_id])) == 2
    bad = lb("export", "iris-export", "--mlflow", "bogus://nowhere", "--store", store)
    assert bad.exit_code == 2 and bad.stderr.startswith("error: --mlflow bogus://nowhere: ")
    assert len(bad.stderr.splitlines()) == 1


def test_compare_a_store_and_a_json_report(store, tmp_path):
    res = lb("report", "--study", "iris-export", "-f", "json", "-o", tmp_path / "r.json", "--store", store)
    assert res.exit_code == 0, res.output
    res = lb("compare", f"{store}::iris-export", tmp_path / "r.json", "-o", tmp_path / "c.json")
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "c.json").read_text())
    assert [r["candidate"] for r in data["candidates"]] == ["wide", "wide-int8"] * 2
    assert data["not_comparable"] == []  # the same run, read two ways
    assert data["candidates"][1]["p50_normalised_ms:edge"] == data["candidates"][3]["p50_normalised_ms:edge"]
    plain = lb("compare", "iris-export", tmp_path / "r.json", "--store", store)  # not a terminal: plain text
    assert plain.exit_code == 0 and "Not comparable:" in plain.stdout and "\x1b[" not in plain.stdout
    bad = lb("compare", "iris-exprt", "--store", store)
    assert bad.exit_code == 2 and "did you mean 'iris-export'" in bad.stderr
