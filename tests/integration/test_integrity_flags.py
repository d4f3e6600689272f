"""A text study whose test split holds planted copies of training texts: the integrity cell flags them by id,
the results JSON carries them, and `leanbench report --flags` writes them as CSV and JSON."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

BOILER = "Copyright 2004 The Associated Press. All rights reserved. This material may not be published."


def leanbench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leanbench.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=600)


def _write(path: Path, rows: list[tuple[str, str, int]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        w.writerow(["id", "sentence", "label"])
        w.writerows(rows)


def _texts(rng: np.random.Generator, n: int, prefix: str) -> list[tuple[str, str, int]]:
    good, bad = ["good", "great", "superb"], ["bad", "awful", "dull"]
    rows = []
    for i in range(n):
        label = int(rng.integers(2))
        words = [f"{prefix}{int(w)}" for w in rng.integers(0, 4000, int(rng.integers(14, 30)))]
        words.insert(int(rng.integers(len(words))), str(rng.choice(good if label else bad)))
        text = " ".join(words) + (f" {BOILER}" if rng.random() < 0.5 else "")  # boilerplate in half the texts
        rows.append((f"{prefix}-{i:03d}", text, label))
    return rows


def test_report_flags_export(tmp_path):
    rng = np.random.default_rng(0)
    train, val, test = _texts(rng, 240, "tr"), _texts(rng, 40, "va"), _texts(rng, 60, "te")
    leaked = [3, 17, 41]  # test texts copied into the training file, one with its case changed
    for k, i in enumerate(leaked):
        text = test[i][1].upper() if k == 2 else test[i][1]
        train.append((f"tr-leak{k}", text, test[i][2]))
    for name, rows in (("train", train), ("validation", val), ("test", test)):
        _write(tmp_path / f"{name}.tsv", rows)
    study = {"name": "flags", "task": {"data": {s: f"{s}.tsv" for s in ("train", "validation", "test")},
                                        "text": "sentence", "label": "label"},
             "reference": "tfidf", "candidates": [{"name": "tfidf", "model": {"arch": "tfidf-logreg", "C": [1.0]},
                                                   "steps": [{"train": {}}]}],
             "evaluate": {"bootstrap": 200, "perturbations": "none"}, "measure": {"enabled": False},
             "integrity": {"ngram_min_coverage": 0.25}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(study))
    store = str(tmp_path / "lb.db")
    res = leanbench("run", "s.yaml", "--store", store, "-q", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    expected = [f"te-{i:03d}" for i in leaked]
    js = json.loads(leanbench("report", "--store", store, "--format", "json", cwd=tmp_path).stdout)
    against = js["integrity"]["against"]["train"]
    assert against["flagged"]["exact"] == expected and against["flagged"]["any"] == expected
    assert against["flagged_train"]["exact"] == ["tr-leak0", "tr-leak1", "tr-leak2"]
    assert js["integrity"]["contaminated_ids"] == expected and js["integrity"]["contaminated_rows"] == leaked
    ngram = against["methods"]["ngram"]["params"]
    assert ngram["shared_any"] > 20 and ngram["ignored_ngrams"] > 0  # the boilerplate, ignored
    assert (ngram["max_df"], ngram["min_coverage"]) == (20, 0.25)  # the study's settings reach the check
    md = leanbench("report", "--store", store, "--format", "md", cwd=tmp_path).stdout
    assert "more than 20 texts (training and evaluated together) ignored" in md and "at least 25%" in md
    assert "leanbench report --flags" in md
    for name in ("flags.csv", "out/flags.json"):
        out = leanbench("report", "--store", store, "--study", "flags", "--flags", name, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert "row(s)" in out.stderr and not (tmp_path / "reports").exists()  # the flags, not the report
    with (tmp_path / "flags.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["eval_id"] for r in rows} == set(expected)
    assert {(r["method"], r["eval_id"], r["train_id"]) for r in rows if r["method"] == "exact"} == {
        ("exact", e, f"tr-leak{k}") for k, e in enumerate(expected)}
    doc = json.loads((tmp_path / "out" / "flags.json").read_text())
    assert doc["contaminated_ids"] == expected
    assert [(r["against"], r["method"], r["eval_id"]) for r in doc["flags"]] == [
        (r["against"], r["method"], r["eval_id"]) for r in rows]
    bad = leanbench("report", "--store", store, "--flags", "flags.txt", cwd=tmp_path)
    assert bad.returncode == 2 and "write a .csv or .json file" in bad.stderr
