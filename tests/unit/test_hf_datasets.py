"""Classification data through Hugging Face `datasets` (`hf:` sources), offline: a local folder of JSONL
files that `datasets` itself reads, and an in-memory DatasetDict with a ClassLabel column."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np
import pytest

from leanbench.data.base import TaskData
from leanbench.data.loaders import load_task
from leanbench.errors import DataError
from leanbench.study import TaskConfig

datasets = pytest.importorskip("datasets")

TEXTS = ['a "great" film', "it's not bad", "dull , flat", "NA", "warm and funny", "so-so", "the end'",
         "flat and grey", "a joy", "tedious", "sharp", "limp"]


def _rows(n: int, offset: int = 0, hidden: bool = False) -> list[dict]:
    return [{"sentence": TEXTS[(i + offset) % len(TEXTS)], "label": -1 if hidden else (i + offset) % 2}
            for i in range(n)]


def _folder(root: Path, splits: dict[str, list[dict]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return root


def _load(tmp_path: Path, data: object, **task: object) -> TaskData:
    return load_task(TaskConfig(data=data, text="sentence", **task), seed=0, base_dir=tmp_path)


def test_a_local_dataset_folder_loads_like_the_same_files(tmp_path):
    _folder(tmp_path / "ds", {"train": _rows(12), "validation": _rows(6, 1), "test": _rows(8, 2)})
    data = _load(tmp_path, "hf:ds")  # relative to the study file's folder
    files = _load(tmp_path, {s: f"ds/{s}.jsonl" for s in ("train", "validation", "test")})
    for split in ("train", "validation", "test"):
        assert data.split(split).X.tolist() == files.split(split).X.tolist()
        np.testing.assert_array_equal(data.split(split).y, files.split(split).y)
    assert data.train.X[0] == 'a "great" film' and data.train.ids[3] == "train:3"
    assert data.label_names == ["0", "1"] and data.meta["held_out_from_train"] == []
    assert data.source == "train=hf:ds@train, validation=hf:ds@validation, test=hf:ds@test"


def test_hidden_test_labels_count_as_absent_and_test_is_held_out_of_train(tmp_path):
    _folder(tmp_path / "glue", {"train": _rows(40), "validation": _rows(6, 1), "test": _rows(8, hidden=True)})
    data = _load(tmp_path, "hf:glue")
    assert data.meta["hidden_labels"] == ["test"] and data.meta["held_out_from_train"] == ["test"]
    assert len(data.train) + len(data.test) == 40 and len(data.validation) == 6
    assert set(data.test.y.tolist()) <= {0, 1} and not set(data.train.ids) & set(data.test.ids)


def test_a_named_split_after_at_and_the_missing_one_held_out(tmp_path):
    _folder(tmp_path / "glue", {"train": _rows(40), "validation": _rows(6, 1), "test": _rows(8, hidden=True)})
    data = _load(tmp_path, {"train": "hf:glue", "test": "hf:glue@validation"})
    assert data.test.X.tolist() == [r["sentence"] for r in _rows(6, 1)]
    assert data.test.ids[0] == "validation:0"
    assert data.meta["held_out_from_train"] == ["validation"] and len(data.train) + len(data.validation) == 40


def test_class_label_names_become_the_label_names(monkeypatch, tmp_path):
    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "positive"])})
    built = datasets.DatasetDict({s: datasets.Dataset.from_list(_rows(n), features=features)
                                  for s, n in (("train", 12), ("validation", 4), ("test", 6))})
    asked = []
    monkeypatch.setattr(datasets, "load_dataset", lambda path, config=None: asked.append((path, config)) or built)
    data = _load(tmp_path, "hf:some/sentiment:default")
    assert asked == [("some/sentiment", "default")]  # loaded once for the three splits
    assert data.label_names == ["negative", "positive"] and data.train.y.tolist() == [0, 1] * 6


def test_bad_hf_sources_get_one_clear_message(tmp_path):
    _folder(tmp_path / "ds", {"train": _rows(12), "test": _rows(6)})
    with pytest.raises(DataError, match=r"hf:ds@dev: the dataset has no split 'dev' .*its splits: train, test"):
        _load(tmp_path, {"train": "hf:ds", "test": "hf:ds@dev"})
    (tmp_path / "t.jsonl").write_text(json.dumps(_rows(1)[0]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="test is hf: dataset splits and the rest are files"):
        _load(tmp_path, {"train": "t.jsonl", "test": "hf:ds"})
    with pytest.raises(DataError, match="hf:no-such-dataset-here: cannot load the dataset"):
        _load(tmp_path, "hf:no-such-dataset-here")
    with pytest.raises(DataError, match="label column 'labels' not found in hf:"):
        _load(tmp_path, "hf:ds", label="labels")
