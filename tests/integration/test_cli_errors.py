"""Bad input through the CLI: one clear message naming the problem and where, exit code 2, no traceback,
nothing written to the store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

STUDY = {
    "name": "bad",
    "task": {"data": "sklearn:iris"},
    "reference": "m",
    "candidates": [{"name": "m", "model": {"arch": "mlp", "hidden": [8]}, "steps": [{"train": {"epochs": 1}}]}],
    "measure": {"enabled": False},
}


def leanbench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leanbench.cli", *args], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "200"}, timeout=120)


def write_study(tmp_path: Path, study: dict) -> Path:
    f = tmp_path / "study.yaml"
    f.write_text(yaml.safe_dump(study))
    return f


def expect_error(tmp_path: Path, study_file: Path, *needles: str, store: Path | None = None) -> str:
    store = store or tmp_path / "st" / "leanbench.db"
    res = leanbench("run", str(study_file), "--store", str(store), "-q", cwd=tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    for needle in needles:
        assert needle in res.stderr, res.stderr
    assert not store.exists(), "a failed run must not touch the store"
    return res.stderr


def changed(**task) -> dict:
    return {**STUDY, "task": {**STUDY["task"], **task}}


def test_malformed_yaml(tmp_path):
    f = tmp_path / "study.yaml"
    f.write_text("name: bad\ncandidates: [\n")
    expect_error(tmp_path, f, "malformed YAML", "line")


def test_unknown_key(tmp_path):
    expect_error(tmp_path, write_study(tmp_path, {**STUDY, "evalute": {}}),
                 "evalute: unknown key 'evalute' (did you mean 'evaluate'?)")


def test_out_of_range_value(tmp_path):
    study = {**STUDY, "decision": {"margin": -0.1}}
    expect_error(tmp_path, write_study(tmp_path, study), "decision.margin", "-0.1")


def test_wrong_type(tmp_path):
    study = {**STUDY, "seed": "zero"}
    expect_error(tmp_path, write_study(tmp_path, study), "seed:", "'zero'")


def test_unknown_dataset(tmp_path):
    expect_error(tmp_path, write_study(tmp_path, changed(data="sklearn:irsi")), "unknown dataset 'sklearn:irsi'")


def test_unknown_step(tmp_path):
    study = {**STUDY, "candidates": [{**STUDY["candidates"][0], "steps": [{"trian": {}}]}]}
    expect_error(tmp_path, write_study(tmp_path, study), "unknown step 'trian' (did you mean 'train'?)")


def test_missing_candidate_reference_and_cycle(tmp_path):
    study = {**STUDY, "candidates": [*STUDY["candidates"],
                                     {"name": "a", "from": "b", "steps": [{"quantize": {}}]},
                                     {"name": "b", "from": "a", "steps": [{"quantize": {}}]},
                                     {"name": "c", "from": "zz", "steps": [{"quantize": {}}]}]}
    expect_error(tmp_path, write_study(tmp_path, study), "cycle", "candidates[3].from: no candidate named 'zz'")


def test_missing_data_file(tmp_path):
    expect_error(tmp_path, write_study(tmp_path, changed(data="nope.csv")), "nope.csv", "not found")


def test_missing_label_column(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(60)))
    expect_error(tmp_path, write_study(tmp_path, changed(data="d.csv", label="label")), "label", "d.csv")


def test_missing_text_column(tmp_path):
    (tmp_path / "d.csv").write_text("sentence,label\n" + "".join(f"s{i},{i % 2}\n" for i in range(60)))
    expect_error(tmp_path, write_study(tmp_path, changed(data="d.csv", text="text")), "text", "d.csv")


def test_empty_split(tmp_path):
    (tmp_path / "train.csv").write_text("a,label\n" + "".join(f"{i},{i % 2}\n" for i in range(60)))
    (tmp_path / "test.csv").write_text("a,label\n")
    study = changed(data={"train": "train.csv", "test": "test.csv"})
    expect_error(tmp_path, write_study(tmp_path, study), "test.csv", "empty")


def test_label_in_test_unseen_in_train(tmp_path):
    (tmp_path / "train.csv").write_text("a,label\n" + "".join(f"{i},{i % 2}\n" for i in range(60)))
    (tmp_path / "test.csv").write_text("a,label\n1,0\n2,7\n")
    study = changed(data={"train": "train.csv", "test": "test.csv"})
    expect_error(tmp_path, write_study(tmp_path, study), "'7'", "test")


def test_hf_dataset_without_the_named_split(tmp_path):
    pytest.importorskip("datasets")
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "train.jsonl").write_text("".join(f'{{"a": {i}, "label": {i % 2}}}\n' for i in range(60)))
    study = changed(data={"train": "hf:ds", "test": "hf:ds@dev"})
    expect_error(tmp_path, write_study(tmp_path, study), "hf:ds@dev", "no split 'dev'", "its splits: train")


def test_unwritable_store(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    res = leanbench("run", str(write_study(tmp_path, STUDY)), "--store", str(blocker / "x" / "db.sqlite"), "-q",
                    cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "cannot open the result store" in res.stderr and "Traceback" not in res.stderr


def test_report_on_empty_store_is_a_clear_error(tmp_path):
    res = leanbench("report", "--store", str(tmp_path / "none.db"), cwd=tmp_path)
    assert res.returncode == 2 and "no result store" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["report", "--help"]])
def test_help(tmp_path, args):
    res = leanbench(*args, cwd=tmp_path)
    assert res.returncode == 0 and "Usage" in res.stdout


def test_lean_import():
    code = ("import sys, leanbench, leanbench.cli, leanbench.study; "
            "heavy = [m for m in ('torch', 'transformers', 'ray', 'plotly', 'sqlalchemy') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_only_with_an_unknown_candidate(tmp_path):
    f = write_study(tmp_path, STUDY)
    store = tmp_path / "st" / "leanbench.db"
    res = leanbench("run", str(f), "--store", str(store), "-q", "--only", "nope", cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "--only: no candidate named 'nope'" in res.stderr, res.stderr
    assert not store.exists()


def test_validate_opens_the_data_and_lists_every_problem_at_once(tmp_path):
    (tmp_path / "train.csv").write_text("headline,topic\n" + "".join(f"story {i},c{i % 4}\n" for i in range(40)))
    study = {**STUDY, "seed": "zero",
             "task": {"data": {"train": "train.csv", "test": "test.csv"}, "text": "title", "label": "topic"}}
    res = leanbench("validate", str(write_study(tmp_path, study)), cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "3 problems in" in res.stderr, res.stderr
    assert "seed:" in res.stderr
    assert f"task.data.test: data file not found: {tmp_path / 'test.csv'}" in res.stderr
    assert "task.text: text column 'title' not found in" in res.stderr and "available columns: headline, topic" \
        in res.stderr
    study = {**STUDY, "task": {"data": "train.csv", "text": "headline", "label": "topic"}}
    res = leanbench("validate", str(write_study(tmp_path, study)), cwd=tmp_path)
    assert res.returncode == 0 and ": ok" in res.stdout, res.stderr


@pytest.mark.parametrize("rows, needles", [
    (["f1,label", *(f"{'1e999' if i == 5 else i},{i % 2}" for i in range(40))],
     ["non-finite value (inf)", "column 'f1', row 5"]),
    (["f1,f2,label", *(f"{i},{i},c{i % 2}" if i != 9 else f"{i},c1" for i in range(40))],
     ["row 9 of", "has 2 fields, fewer than the header's 3"]),
])
def test_bad_values_are_one_message_from_validate_and_run(tmp_path, rows, needles):
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    f = write_study(tmp_path, changed(data="d.csv"))
    expect_error(tmp_path, f, *needles)
    res = leanbench("validate", str(f), cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr and all(n in res.stderr for n in needles)


def test_report_to_an_existing_folder_is_a_clear_error_and_leaves_nothing(tmp_path):
    store = tmp_path / "st" / "leanbench.db"
    assert leanbench("run", str(write_study(tmp_path, STUDY)), "--store", str(store), "-q",
                     cwd=tmp_path).returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    res = leanbench("report", "--store", str(store), "-o", str(out), cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert f"cannot write the report to {out}: it is a folder" in res.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == before and not list(out.iterdir())
    res = leanbench("report", "--store", str(store), "-o", str(out / "r.html"), cwd=tmp_path)
    assert res.returncode == 0 and [p.name for p in out.iterdir()] == ["r.html"]
