"""Data layer: sklearn datasets, local files (CSV / TSV / JSONL / Parquet), seeded stratified splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets
from sklearn.preprocessing import StandardScaler

from leanbench.data.base import Split, TaskData
from leanbench.data.loaders import load_task
from leanbench.data.split import split_off, stratified_split
from leanbench.errors import DataError
from leanbench.study import SplitFractions, TaskConfig

SKLEARN = {  # name: (examples, classes, input shape)
    "digits": (1797, 10, (1, 8, 8)),
    "breast_cancer": (569, 2, (30,)),
    "wine": (178, 3, (13,)),
    "iris": (150, 3, (4,)),
}
SENTENCES = [
    'a "great" film',
    "it's not bad",
    'he said "no',  # an unbalanced quote: must survive TSV verbatim
    "dull , flat",
    "NA",  # not a missing value in a text task
    '"quoted" start',
    "warm and funny",
    "123",
    "so-so",
    "the end'",
]


def _load(tmp_path: Path, data: object, seed: int = 0, **task: object) -> TaskData:
    return load_task(TaskConfig(data=data, **task), seed=seed, base_dir=tmp_path)


def _row_index(ids: np.ndarray) -> np.ndarray:
    """Row numbers from ids like 'sklearn:iris:17' or 'train.csv:17'."""
    return np.array([int(str(i).rsplit(":", 1)[1]) for i in ids])


# --------------------------------------------------------------------------- sklearn
@pytest.fixture(scope="module", params=sorted(SKLEARN))
def sk(request: pytest.FixtureRequest) -> tuple[str, TaskData]:
    name = request.param
    return name, load_task(TaskConfig(data=f"sklearn:{name}"), seed=0, base_dir=Path("."))


def test_sklearn_shapes_labels_and_cover(sk: tuple[str, TaskData]) -> None:
    name, data = sk
    n, k, shape = SKLEARN[name]
    assert data.n_classes == k and data.input_shape == shape and data.source == f"sklearn:{name}"
    splits = [data.train, data.validation, data.test]
    assert sum(len(s) for s in splits) == n
    for s in splits:
        assert s.X.dtype == np.float32 and s.X.shape == (len(s), *shape) and s.y.dtype == np.int64
        assert set(np.unique(s.y)) == set(range(k))  # stratified: every class in every split
    rows = np.concatenate([_row_index(s.ids) for s in splits])
    assert sorted(rows) == list(range(n))  # disjoint and covering
    assert len(data.test) == int(np.ceil(0.2 * n))


def test_sklearn_splits_are_stratified(sk: tuple[str, TaskData]) -> None:
    _, data = sk
    y_all = np.concatenate([data.train.y, data.validation.y, data.test.y])
    overall = np.bincount(y_all, minlength=data.n_classes) / len(y_all)
    for s in (data.train, data.validation, data.test):
        share = np.bincount(s.y, minlength=data.n_classes) / len(s)
        assert np.abs(share - overall).max() < 0.04, s.name


def test_sklearn_inputs_match_source(sk: tuple[str, TaskData]) -> None:
    name, data = sk
    bunch = getattr(datasets, f"load_{name}")()
    rows = _row_index(data.train.ids)
    np.testing.assert_array_equal(data.train.y, bunch.target[rows])
    assert data.label_names == [str(t) for t in bunch.target_names]
    if name == "digits":
        np.testing.assert_allclose(data.train.X[:, 0], bunch.images[rows] / 16.0, rtol=1e-6)
        assert data.meta["standardize"] is None
        return
    scaler = StandardScaler().fit(bunch.data[rows])  # independent: statistics of the train split only
    np.testing.assert_allclose(data.meta["standardize"]["mean"], scaler.mean_, rtol=1e-10)
    np.testing.assert_allclose(data.meta["standardize"]["std"], scaler.scale_, rtol=1e-10)
    test_rows = _row_index(data.test.ids)
    np.testing.assert_allclose(data.test.X, scaler.transform(bunch.data[test_rows]), atol=1e-5)


def test_sklearn_deterministic_by_seed(tmp_path: Path) -> None:
    a = _load(tmp_path, "sklearn:wine", seed=3).fingerprints
    assert _load(tmp_path, "sklearn:wine", seed=3).fingerprints == a
    b = _load(tmp_path, "sklearn:wine", seed=4).fingerprints
    assert all(a[s] != b[s] for s in a)


def test_fingerprint_changes_with_one_label() -> None:
    data = load_task(TaskConfig(data="sklearn:iris"), seed=0, base_dir=Path("."))
    y = data.test.y.copy()
    y[5] = (y[5] + 1) % data.n_classes
    changed = Split("test", data.test.X, y, data.test.ids)
    assert changed.fingerprint != data.test.fingerprint
    assert Split("test", data.test.X, data.test.y.copy(), data.test.ids).fingerprint == data.test.fingerprint


def test_sklearn_feature_selection_and_errors(tmp_path: Path) -> None:
    data = _load(tmp_path, "sklearn:iris", features=["petal length (cm)", "sepal width (cm)"])
    assert data.input_shape == (2,)
    with pytest.raises(DataError, match=r"no feature 'petal length' .*did you mean 'petal length \(cm\)'"):
        _load(tmp_path, "sklearn:iris", features=["petal length"])
    with pytest.raises(DataError, match="no text column"):
        _load(tmp_path, "sklearn:digits", text="sentence")


# --------------------------------------------------------------------------- split.py
def test_stratified_split_pinned_indices() -> None:
    """Same seed, same indices on any machine (RandomState stream): pinned values."""
    y = np.array([0, 1] * 10)
    train, val, test = stratified_split(y, SplitFractions(validation=0.2, test=0.2), seed=0)
    assert (train.tolist(), val.tolist(), test.tolist()) == PINNED
    assert np.bincount(y[test]).tolist() == [2, 2] and np.bincount(y[val]).tolist() == [2, 2]


PINNED = ([1, 2, 3, 4, 6, 7, 8, 11, 16, 17, 18, 19], [5, 12, 13, 14], [0, 9, 10, 15])


def test_split_with_tiny_class_does_not_fail() -> None:
    y = np.array([0] * 20 + [1] * 2)  # class 1 too small to stratify
    parts = stratified_split(y, SplitFractions(), seed=1)
    assert sorted(np.concatenate(parts).tolist()) == list(range(22))
    assert all(len(p) > 0 for p in parts)


def test_split_that_would_be_empty_is_an_error() -> None:
    with pytest.raises(
        DataError, match="cannot split 2 examples into train / validation / test .* train split"
    ):
        stratified_split(np.array([0, 1]), SplitFractions(), seed=0)
    with pytest.raises(DataError, match="would be empty"):
        split_off(np.array([0]), 0.5, seed=0, what="test")


# --------------------------------------------------------------------------- files
def _write(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` in the format of the extension; TSV by hand, with no quoting at all."""
    fmt = path.suffix
    if fmt == ".csv":
        frame.to_csv(path, index=False)
    elif fmt == ".tsv":
        lines = ["\t".join(frame.columns)] + ["\t".join(map(str, r)) for r in frame.itertuples(index=False)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif fmt == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")), encoding="utf-8")
    else:
        frame.to_parquet(path, index=False)
    return path


def _features_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"x1": rng.normal(size=n).round(3), "x2": rng.integers(0, 5, size=n), "label": np.arange(n) % 3}
    )


def _text_frame(labels: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"id": [f"s{i}" for i in range(len(SENTENCES))], "sentence": SENTENCES, "label": labels}
    )


EXTS = (".csv", ".tsv", ".jsonl", ".parquet")


def test_feature_files_load_identically_in_every_format(tmp_path: Path) -> None:
    loaded = []
    for ext in EXTS:
        files = {
            s: str(_write(_features_frame(12, i), tmp_path / f"{s}{ext}"))
            for i, s in enumerate(("train", "validation", "test"))
        }
        loaded.append(_load(tmp_path, files))
    first = loaded[0]
    assert first.input_shape == (2,) and first.label_names == ["0", "1", "2"]
    assert first.train.ids[3] == "train.csv:3"
    assert first.meta["held_out_from_train"] == []
    raw = _features_frame(12, 0)[["x1", "x2"]].to_numpy(dtype=float)
    np.testing.assert_allclose(first.train.X, StandardScaler().fit_transform(raw), atol=1e-5)
    for other in loaded[1:]:
        for name in ("train", "validation", "test"):
            np.testing.assert_array_equal(other.split(name).X, first.split(name).X)
            np.testing.assert_array_equal(other.split(name).y, first.split(name).y)
        assert other.label_names == first.label_names


def test_text_files_load_verbatim_in_every_format(tmp_path: Path) -> None:
    labels = ["pos", "neg"] * 5
    for ext in EXTS:
        train = _write(_text_frame(labels), tmp_path / f"train{ext}")
        test = _write(_text_frame(labels[::-1]), tmp_path / f"test{ext}")
        files = {"train": train.name, "validation": test.name, "test": test.name}
        data = _load(tmp_path, files, text="sentence")
        assert data.train.X.dtype == object and data.input_shape == ()
        assert data.train.X.tolist() == SENTENCES, ext
        assert data.train.ids.tolist() == [f"s{i}" for i in range(10)]
        assert data.label_names == ["neg", "pos"]  # sorted label values
        assert data.train.y.tolist() == [1, 0] * 5 and data.test.y.tolist() == [0, 1] * 5
        assert data.meta["standardize"] is None


def test_train_only_files_are_split_in_three(tmp_path: Path) -> None:
    _write(_features_frame(60, 0), tmp_path / "all.csv")
    for data in (_load(tmp_path, {"train": "all.csv"}), _load(tmp_path, "all.csv")):
        sizes = [len(data.split(s)) for s in ("train", "validation", "test")]
        assert sizes == [39, 9, 12]
        ids = np.concatenate([data.train.ids, data.validation.ids, data.test.ids])
        assert len(set(ids)) == 60
        assert set(np.unique(data.test.y)) == {0, 1, 2}
        assert data.meta["held_out_from_train"] == ["validation", "test"]
    again = _load(tmp_path, "all.csv")
    assert again.fingerprints == data.fingerprints and again.source == str(tmp_path / "all.csv")


def test_missing_validation_is_held_out_of_train(tmp_path: Path) -> None:
    _write(_features_frame(40, 0), tmp_path / "train.csv")
    _write(_features_frame(9, 1), tmp_path / "test.csv")
    data = _load(tmp_path, {"train": "train.csv", "test": "test.csv"})
    assert (len(data.train), len(data.validation), len(data.test)) == (34, 6, 9)
    assert data.meta["held_out_from_train"] == ["validation"]
    assert not set(data.train.ids) & set(data.validation.ids)


# --------------------------------------------------------------------------- bad input
def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"data file not found: {tmp_path / 'nope.csv'} \\(task.data\\)"):
        _load(tmp_path, "nope.csv")
    _write(_features_frame(30, 0), tmp_path / "train.csv")
    with pytest.raises(DataError, match=r"not found: .*gone\.csv \(task\.data\.test\)"):
        _load(tmp_path, {"train": "train.csv", "test": "gone.csv"})


def test_missing_label_column_suggests(tmp_path: Path) -> None:
    _write(_features_frame(30, 0).rename(columns={"label": "labels"}), tmp_path / "t.csv")
    expected = (
        r"label column 'label' not found in .*t\.csv \(did you mean 'labels'\?\); available columns: x1, x2"
    )
    with pytest.raises(DataError, match=expected):
        _load(tmp_path, "t.csv")


def test_non_numeric_feature_column(tmp_path: Path) -> None:
    frame = _features_frame(30, 0).assign(color=["red"] * 30)
    _write(frame, tmp_path / "t.csv")
    with pytest.raises(
        DataError, match=r"feature column 'color' in .*t\.csv is not numeric.* row 0 has 'red'"
    ):
        _load(tmp_path, "t.csv")


def test_nan_feature(tmp_path: Path) -> None:
    frame = _features_frame(30, 0)
    frame.loc[7, "x1"] = np.nan
    _write(frame, tmp_path / "t.csv")
    with pytest.raises(DataError, match=r"missing value \(NaN\) in .*t\.csv, column 'x1', row 7"):
        _load(tmp_path, "t.csv")


def test_header_only_test_file_is_an_empty_split(tmp_path: Path) -> None:
    _write(_features_frame(30, 0), tmp_path / "train.csv")
    (tmp_path / "test.csv").write_text("x1,x2,label\n")
    with pytest.raises(DataError, match=r"no examples in .*test\.csv \(test split\)"):
        _load(tmp_path, {"train": "train.csv", "test": "test.csv"})
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty file"):
        _load(tmp_path, "empty.csv")


def test_label_unseen_in_train(tmp_path: Path) -> None:
    _write(_features_frame(30, 0), tmp_path / "train.csv")
    _write(_features_frame(8, 1).assign(label=[0, 1, 2, 7, 0, 1, 2, 0]), tmp_path / "test.csv")
    with pytest.raises(
        DataError, match=r"label '7' in test \(.*test\.csv, row 3\) does not occur in the train"
    ):
        _load(tmp_path, {"train": "train.csv", "test": "test.csv"})


def test_empty_text(tmp_path: Path) -> None:
    labels = ["pos", "neg"] * 5
    frame = _text_frame(labels)
    frame.loc[4, "sentence"] = "   "
    _write(frame, tmp_path / "t.tsv")
    with pytest.raises(DataError, match=r"empty text in .*t\.tsv, column 'sentence', row 4"):
        _load(tmp_path, "t.tsv", text="sentence")
    frame.loc[4, "sentence"] = ""
    _write(frame, tmp_path / "t.csv")
    with pytest.raises(DataError, match=r"empty text in .*t\.csv, column 'sentence', row 4"):
        _load(tmp_path, "t.csv", text="sentence")


def test_non_utf8_file(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_bytes("x1,label\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"t\.csv is not UTF-8: byte 0xe9 at byte offset 14"):
        _load(tmp_path, "t.csv")


def test_unknown_extension(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("x1,label\n1,0\n")
    with pytest.raises(DataError, match=r"cannot tell the format of .*t\.txt"):
        _load(tmp_path, "t.txt")
    data_frame = _features_frame(30, 0)
    _write(data_frame, tmp_path / "real.csv")
    (tmp_path / "real.txt").write_bytes((tmp_path / "real.csv").read_bytes())
    assert len(_load(tmp_path, {"train": "real.txt", "format": "csv"}).train) > 0
