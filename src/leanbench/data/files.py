"""Classification data from local files: CSV, TSV, JSONL or Parquet, one file per split or one in all.

The format comes from ``DataFiles.format`` or the extension (.csv, .tsv/.tab, .jsonl/.ndjson,
.parquet/.pq). Text files must be UTF-8 (a leading BOM is dropped). TSV is read with quoting off
(``csv.QUOTE_NONE``) so that quote characters inside sentences (SST-2) stay verbatim; CSV uses normal
double-quote quoting. For text tasks no string is turned into NaN except an empty field.

Rows are numbered from 0, header excluded, in messages and in default example ids (``<file name>:<row>``).
Labels are mapped to 0..K-1 in sorted order of the values in the training file; every other split may
only use those values. Feature columns are numeric and standardised with training-split statistics.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leanbench.data.base import Split, TaskData
from leanbench.data.split import split_off, standardize, stratified_split
from leanbench.errors import DataError
from leanbench.registry import did_you_mean
from leanbench.study import TaskConfig

SPLITS = ("train", "validation", "test")
ID_COLUMN = "id"
FORMATS = ("csv", "tsv", "jsonl", "parquet")
EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass(frozen=True)
class _Raw:
    """One file's examples before labels are encoded: inputs, label values, ids."""

    path: Path | Any  # a file, or a dataset split (``HFSplit``): ``str()`` in messages, ``.name`` in ids
    X: np.ndarray
    labels: list
    ids: np.ndarray


# --------------------------------------------------------------------------- reading
def detect_format(path: Path, fmt: str | None = None) -> str:
    """The file format: ``fmt`` when given, else from the extension."""
    if fmt is not None:
        return fmt
    found = EXTENSIONS.get(path.suffix.lower())
    if found is None:
        raise DataError(
            f"cannot tell the format of {path} from its extension '{path.suffix}': use one of "
            f"{', '.join(EXTENSIONS)} or set task.data.format to one of {', '.join(FORMATS)}"
        )
    return found


def read_table(path: Path, fmt: str | None = None, *, text_column: str | None = None) -> pd.DataFrame:
    """Read one file into a DataFrame. With ``text_column``, that column is kept as strings verbatim."""
    fmt = detect_format(path, fmt)
    try:
        if fmt == "parquet":
            return pd.read_parquet(path)
        text = _decode_utf8(path)
        if not text.strip():
            raise DataError(f"empty file: {path}")
        if fmt == "jsonl":
            return pd.read_json(io.StringIO(text), lines=True, dtype=False)
        return _read_delimited(text, sep="\t" if fmt == "tsv" else ",", text_column=text_column)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {path} as {fmt}: {str(e).strip()}") from None


def _decode_utf8(path: Path) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path} is not UTF-8: byte 0x{raw[e.start]:02x} at byte offset {e.start} ({e.reason}); "
            "convert the file to UTF-8"
        ) from None
    return text.removeprefix("\ufeff")


def _read_delimited(text: str, *, sep: str, text_column: str | None) -> pd.DataFrame:
    """CSV (quoted) or TSV (``csv.QUOTE_NONE``). For text tasks only empty fields become missing."""
    options: dict = {"sep": sep, "dtype": {ID_COLUMN: str}}
    if sep == "\t":
        options["quoting"] = csv.QUOTE_NONE
    if text_column is not None:
        options.update(keep_default_na=False, na_values=[""])
        options["dtype"][text_column] = str
    return pd.read_csv(io.StringIO(text), **options)


# --------------------------------------------------------------------------- columns
def _require_columns(frame: pd.DataFrame, columns: list[str], path: Path, what: str) -> None:
    available = [str(c) for c in frame.columns]
    for col in columns:
        if col not in available:
            raise DataError(
                f"{what} column '{col}' not found in {path}{did_you_mean(col, available)}; "
                f"available columns: {', '.join(available) or '(none)'}"
            )


def input_columns(task: TaskConfig, train: pd.DataFrame) -> list[str]:
    """The text column, or the feature columns: ``task.features``, else all but the label and id columns."""
    if task.text is not None:
        return [task.text] + ([task.text_pair] if task.text_pair else [])
    if task.features is not None:
        return list(task.features)
    return [str(c) for c in train.columns if str(c) not in (task.label, ID_COLUMN)]


def _texts(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """Object array of str; a missing, empty or whitespace-only text is an error."""
    values = frame[column].to_numpy(dtype=object)
    out = np.empty(len(values), dtype=object)
    for row, v in enumerate(values):
        text = "" if _is_missing(v) else str(v)
        if not text.strip():
            raise DataError(f"empty text in {path}, column '{column}', row {row}")
        out[row] = text
    return out


def _features(frame: pd.DataFrame, columns: list[str], path: Path) -> np.ndarray:
    """(N, F) float64; every column numeric and without missing values."""
    out = np.empty((len(frame), len(columns)), dtype=np.float64)
    for j, col in enumerate(columns):
        series = frame[col]
        if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
            raise DataError(_non_numeric_message(series, col, path))
        out[:, j] = series.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.flatnonzero(np.isnan(out[:, j]))
        if len(missing):
            raise DataError(f"missing value (NaN) in {path}, column '{col}', row {missing[0]}")
    return out


def _non_numeric_message(series: pd.Series, col: str, path: Path) -> str:
    bad = series[pd.to_numeric(series, errors="coerce").isna() & series.notna()]
    example = f": row {bad.index[0]} has {bad.iloc[0]!r}" if len(bad) else ""
    return (
        f"feature column '{col}' in {path} is not numeric (dtype {series.dtype}){example}; "
        "set task.text for a text column or task.features to choose numeric columns"
    )


def _labels(frame: pd.DataFrame, column: str, path: Path) -> list:
    labels = frame[column].tolist()
    for row, v in enumerate(labels):
        if _is_missing(v):
            raise DataError(f"missing label in {path}, column '{column}', row {row}")
    return labels


def _ids(frame: pd.DataFrame, path: Path) -> np.ndarray:
    """The ``id`` column as str when present, else ``<file name>:<row>``; ids must be unique."""
    if ID_COLUMN not in frame.columns:
        return np.array([f"{path.name}:{i}" for i in range(len(frame))], dtype=object)
    ids = frame[ID_COLUMN].to_numpy(dtype=object, copy=True)
    seen: dict[str, int] = {}
    for row, v in enumerate(ids):
        if _is_missing(v):
            raise DataError(f"missing id in {path}, column '{ID_COLUMN}', row {row}")
        ids[row] = str(v)
        if ids[row] in seen:
            raise DataError(f"duplicate id '{ids[row]}' in {path}: rows {seen[ids[row]]} and {row}")
        seen[ids[row]] = row
    return ids


def _is_missing(v: object) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))


# --------------------------------------------------------------------------- one file, one split
def _read_split(
    task: TaskConfig, path: Path, fmt: str | None, split: str, columns: list[str] | None
) -> tuple[_Raw, list[str]]:
    """Read and check one split's file: returns (_Raw, the input columns used)."""
    return frame_split(task, read_table(path, fmt, text_column=task.text), path, split, columns)


def frame_split(
    task: TaskConfig, frame: pd.DataFrame, path: Path | Any, split: str, columns: list[str] | None
) -> tuple[_Raw, list[str]]:
    """Check one split's table (from a file or a dataset): returns (_Raw, the input columns used)."""
    if len(frame) == 0:
        raise DataError(f"no examples in {path} ({split} split): it has no data rows")
    _require_columns(frame, [task.label], path, "label")
    columns = columns if columns is not None else input_columns(task, frame)
    if not columns:
        raise DataError(f"no feature columns in {path}: it has only the label (and id) columns")
    _require_columns(frame, columns, path, "text" if task.text is not None else "feature")
    if task.text is not None:
        X = _texts(frame, columns[0], path)
        if len(columns) > 1:  # sentence pairs: an (N, 2) object array
            X = np.stack([X, _texts(frame, columns[1], path)], axis=1)
    else:
        X = _features(frame, columns, path)
    return _Raw(path, X, _labels(frame, task.label, path), _ids(frame, path)), columns


# --------------------------------------------------------------------------- labels
def label_values(train_labels: list) -> list:
    """Distinct label values in sorted order (numbers before strings when a file mixes them)."""
    return sorted(set(train_labels), key=lambda v: (isinstance(v, str), v))


def _encode(raw: _Raw, index: dict, split: str) -> np.ndarray:
    y = np.empty(len(raw.labels), dtype=np.int64)
    for row, v in enumerate(raw.labels):
        if v not in index:
            raise DataError(
                f"label {str(v)!r} in {split} ({raw.path}, row {row}) does not occur in the training split"
            )
        y[row] = index[v]
    return y


# --------------------------------------------------------------------------- the task
def load_files(
    task: TaskConfig, paths: dict[str, Path], *, fmt: str | None, seed: int, source: str
) -> TaskData:
    """Build a TaskData from ``paths`` (``train`` required; ``validation`` / ``test`` optional).

    Missing validation and/or test splits are held out of the training file, stratified and seeded:
    both missing → ``stratified_split`` by ``task.split``; one missing → that fraction of the train file.
    """
    raws: dict[str, _Raw] = {}
    columns = None
    for split in SPLITS:
        if paths.get(split) is not None:
            raws[split], columns = _read_split(task, paths[split], fmt, split, columns)
    return task_from_raws(task, raws, columns, seed=seed, source=source)


def task_from_raws(
    task: TaskConfig, raws: dict[str, _Raw], columns: list[str], *, seed: int, source: str,
    names: list[str] | None = None,
) -> TaskData:
    """Encode the labels (sorted training values) and hold missing splits out of train. ``names``: the
    label names by integer label value (a dataset's ``ClassLabel``), else the values themselves."""
    values = label_values(raws["train"].labels)
    index = {v: i for i, v in enumerate(values)}
    encoded = {split: _encode(raw, index, split) for split, raw in raws.items()}
    splits = _assemble(raws, encoded, task, seed)
    stats = None
    if task.text is None:
        (x_train, x_val, x_test), stats = standardize(*(s.X for s in splits))
        splits = [Split(s.name, x, s.y, s.ids) for s, x in zip(splits, (x_train, x_val, x_test), strict=True)]
    return TaskData(
        *splits,
        label_names=[str(names[v] if names is not None else v) for v in values],
        input_shape=() if task.text is not None else (len(columns),),
        source=source,
        meta={
            "standardize": stats,
            "files": {split: str(raw.path) for split, raw in raws.items()},
            "held_out_from_train": [s for s in SPLITS if s not in raws],
            "split": {"seed": seed, **task.split.model_dump()},
            "max_length": task.max_length,
        },
    )


def _assemble(
    raws: dict[str, _Raw], encoded: dict[str, np.ndarray], task: TaskConfig, seed: int
) -> list[Split]:
    """The three splits, holding missing ones out of the training file."""
    train = Split("train", raws["train"].X, encoded["train"], raws["train"].ids)
    given = {n: Split(n, raw.X, encoded[n], raw.ids) for n, raw in raws.items() if n != "train"}
    missing = [s for s in ("validation", "test") if s not in given]
    if len(missing) == 2:
        tr, va, te = stratified_split(train.y, task.split, seed)
        return [train.subset(tr), train.subset(va, "validation"), train.subset(te, "test")]
    if len(missing) == 1:
        kept, held = split_off(train.y, getattr(task.split, missing[0]), seed, what=missing[0])
        given[missing[0]] = train.subset(held, missing[0])
        train = train.subset(kept)
    return [train, given["validation"], given["test"]]
