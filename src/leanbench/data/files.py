"""Classification data from local files: CSV, TSV, JSONL or Parquet, one file per split or one in all.

The format comes from ``DataFiles.format`` or the extension (.csv, .tsv/.tab, .jsonl/.ndjson,
.parquet/.pq; Parquet needs pyarrow: ``leanbench[parquet]``). Text files must be UTF-8 (a leading BOM is
dropped). TSV is read with quoting off (``csv.QUOTE_NONE``) so that quote characters inside sentences (SST-2)
stay verbatim; CSV uses normal double-quote quoting; ``DataFiles.quoting`` (``csv`` | ``none``) overrides
either. A TSV file read verbatim whose fields look CSV-quoted (``"a ""quoted"" text"``) is an error that says
how to read it. For text tasks no string is turned into NaN except an empty field. A row with fewer fields
than the header is an error (it would shift a label into a feature column), as is a non-finite feature value
(NaN, inf, -inf, 1e999).

Rows are numbered from 0, header excluded, in messages and in default example ids (``<file name>:<row>``).
Labels are mapped to 0..K-1 in sorted order of the values in the training file; every other split may
only use those values. Feature columns are numeric and standardised with training-split statistics.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leanbench.data.base import Split, TaskData
from leanbench.data.split import can_stratify, split_off, standardize, stratified_split
from leanbench.errors import DataError, require
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


def read_table(path: Path, fmt: str | None = None, *, text_column: str | None = None,
               quoting: str | None = None) -> pd.DataFrame:
    """Read one file into a DataFrame. With ``text_column``, that column is kept as strings verbatim.
    ``quoting``: ``csv`` | ``none`` for CSV / TSV (default: csv for CSV, none for TSV)."""
    fmt = detect_format(path, fmt)
    try:
        if fmt == "parquet":
            require("pyarrow", "parquet", f"the Parquet file {path}")
            return pd.read_parquet(path, engine="pyarrow")
        text = _decode_utf8(path.read_bytes(), path)
        if not text.strip():
            raise DataError(f"empty file: {path}")
        if fmt == "jsonl":
            return _read_jsonl(text, path)
        return _read_delimited(text, sep="\t" if fmt == "tsv" else ",", text_column=text_column, path=path,
                               quoting=quoting)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {path} as {fmt}: {str(e).strip()}") from None


HEAD_ROWS = 100  # rows `leanbench validate` reads of each file
_HEAD_BYTES = 8 << 20


def read_head(path: Path, fmt: str | None = None, *, text_column: str | None = None, quoting: str | None = None,
              rows: int = HEAD_ROWS) -> pd.DataFrame:
    """The header and the first ``rows`` rows of a file, read as ``read_table`` reads the whole file (the
    same checks and messages) without reading the rest: what ``leanbench validate`` looks at."""
    fmt = detect_format(path, fmt)
    try:
        if fmt == "parquet":
            pf = require("pyarrow.parquet", "parquet", f"the Parquet file {path}").ParquetFile(path)
            batch = next(pf.iter_batches(batch_size=rows), None)
            return batch.to_pandas() if batch is not None else pf.schema_arrow.empty_table().to_pandas()
        lines, complete = _head_lines(path, rows + 1)
        text = _decode_utf8(b"".join(lines), path)
        if not text.strip():
            raise DataError(f"empty file: {path}")
        if fmt == "jsonl":
            return _read_jsonl(text, path)
        sep = "\t" if fmt == "tsv" else ","
        while True:  # a quoted field running over the cut: drop the last lines and read again
            try:
                return _read_delimited(text, sep=sep, text_column=text_column, path=path, quoting=quoting)
            except ValueError:
                if complete or len(lines) < 4:
                    raise
                lines = lines[: len(lines) * 3 // 4]
                text = _decode_utf8(b"".join(lines), path)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {path} as {fmt}: {str(e).strip()}") from None


def _head_lines(path: Path, n: int) -> tuple[list[bytes], bool]:
    """The first ``n`` non-blank lines (and the blank ones between them) as bytes, and whether that is the
    whole file."""
    lines: list[bytes] = []
    size = kept = 0
    with path.open("rb") as f:
        for line in f:
            lines.append(line)
            size += len(line)
            kept += bool(line.strip())
            if kept >= n or size > _HEAD_BYTES:
                return lines, not f.read(1)
    return lines, True


def _decode_utf8(raw: bytes, path: Path) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path} is not UTF-8: byte 0x{raw[e.start]:02x} at byte offset {e.start} ({e.reason}); "
            "convert the file to UTF-8"
        ) from None
    return text.removeprefix("\ufeff")


def _read_jsonl(text: str, path: Path) -> pd.DataFrame:
    """One JSON object per line; a malformed line is named by its line number."""
    try:
        return pd.read_json(io.StringIO(text), lines=True, dtype=False)
    except (ValueError, TypeError) as exc:  # TypeError: a line that is a list, not an object
        for i, line in enumerate(text.split("\n")):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"cannot read {path} as jsonl: line {i + 1} is not valid JSON ({e.msg}, "
                                f"column {e.colno}): {line.strip()[:80]!r}") from None
            if not isinstance(value, dict):
                raise DataError(f"cannot read {path} as jsonl: line {i + 1} is a JSON {type(value).__name__}, "
                                f"not an object ({{\"column\": value, ...}})") from None
        raise ValueError(str(exc)) from None


def _quote_mode(sep: str, quoting: str | None) -> int:
    if quoting is None:
        quoting = "none" if sep == "\t" else "csv"
    return csv.QUOTE_NONE if quoting == "none" else csv.QUOTE_MINIMAL


def _read_delimited(text: str, *, sep: str, text_column: str | None, path: Path | str = "the file",
                    quoting: str | None = None) -> pd.DataFrame:
    """CSV (quoted) or TSV (``csv.QUOTE_NONE``), unless ``quoting`` says otherwise. For text tasks only empty
    fields become missing. A row with fewer fields than the header is an error; so is a TSV file read
    verbatim (by default) whose fields look CSV-quoted."""
    mode = _quote_mode(sep, quoting)
    options: dict = {"sep": sep, "dtype": {ID_COLUMN: str}, "quoting": mode}
    if text_column is not None:
        options.update(keep_default_na=False, na_values=[""])
        options["dtype"][text_column] = str
    frame = pd.read_csv(io.StringIO(text), **options)
    if len(frame.columns) and len(frame) and frame.iloc[:, -1].isna().any():
        _check_field_counts(text, sep, mode, path)
    if sep == "\t" and quoting is None:
        _check_not_csv_quoted(frame, path)
    return frame


def _check_field_counts(text: str, sep: str, mode: int, path: Path | str) -> None:
    """A record with fewer fields than the header (pandas fills them with NaN, silently shifting values)."""
    reader = csv.reader(io.StringIO(text), delimiter=sep, quoting=mode)
    header = None
    row = -1
    for rec in reader:
        if not "".join(rec).strip():  # blank lines are skipped, as pandas skips them
            continue
        if header is None:
            header = rec
            continue
        row += 1
        if len(rec) < len(header):
            raise DataError(
                f"row {row} of {path} (line {reader.line_num}) has {len(rec)} field{'s' * (len(rec) != 1)}, "
                f"fewer than the header's {len(header)} ({', '.join(header)}): a field or a separator is "
                f"missing; the row reads {sep.join(rec)[:80]!r}"
            )


# a whole field in double quotes with its inner quotes doubled: CSV quoting read verbatim
_CSV_QUOTED = re.compile(r'^"(?:[^"]|"")*""(?:[^"]|"")*"$', re.DOTALL)
_ENCLOSED = re.compile(r'^".*"$', re.DOTALL)


def _check_not_csv_quoted(frame: pd.DataFrame, path: Path | str) -> None:
    """TSV is read verbatim; a file written with CSV quoting would keep its quote characters silently."""
    for col in frame.columns:
        if frame[col].dtype != object and not pd.api.types.is_string_dtype(frame[col]):
            continue
        values = [(row, v) for row, v in enumerate(frame[col].tolist()) if isinstance(v, str)]
        quoted = [(row, v) for row, v in values if _CSV_QUOTED.match(v)]
        enclosed = [(row, v) for row, v in values if len(v) >= 2 and _ENCLOSED.match(v)]
        if quoted or (len(enclosed) >= 2 and 2 * len(enclosed) >= len(values)):
            row, value = (quoted or enclosed)[0]
            what = "in double quotes with its inner quotes doubled" if quoted else (
                f"in double quotes, as {len(enclosed)} of the column's {len(values)} values are")
            raise DataError(
                f"{path}, column '{col}', row {row}: the field {value[:80]!r} looks CSV-quoted ({what}), but "
                "a TSV file is read verbatim and would keep the quote characters; to read CSV-style quoting "
                "give the files as task.data: {train: <file>, ..., quoting: csv}, or quoting: none to keep "
                "the quotes as they are"
            )


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
        bad = np.flatnonzero(~np.isfinite(out[:, j]))
        if len(bad):
            value = out[bad[0], j]
            what = "missing value (NaN)" if np.isnan(value) else f"non-finite value ({value:g})"
            raise DataError(f"{what} in {path}, column '{col}', row {bad[0]}; feature values must be finite numbers")
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
    task: TaskConfig, path: Path, fmt: str | None, split: str, columns: list[str] | None,
    quoting: str | None = None,
) -> tuple[_Raw, list[str]]:
    """Read and check one split's file: returns (_Raw, the input columns used)."""
    return frame_split(task, read_table(path, fmt, text_column=task.text, quoting=quoting), path, split, columns)


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


def _label_key(v: object) -> tuple:
    """A label value compared across files: a number and its text (``2`` and ``"2"``: a column that mixes
    numbers with one word is read as text) are the same label."""
    if isinstance(v, (bool, np.bool_)):
        return ("b", bool(v))
    if isinstance(v, (int, float, np.integer, np.floating)):
        return ("n", float(v))
    text = str(v).strip()
    try:
        return ("n", float(text))
    except ValueError:
        return ("s", text)


def _encode(raw: _Raw, index: dict, split: str) -> np.ndarray:
    """Label values -> indices. A value not among the training values may still be the same label written
    as a number in one file and as text in the other (``_label_key``)."""
    by_key: dict[tuple, list[int]] = {}
    for value, i in index.items():
        by_key.setdefault(_label_key(value), []).append(i)
    y = np.empty(len(raw.labels), dtype=np.int64)
    for row, v in enumerate(raw.labels):
        if v in index:
            y[row] = index[v]
            continue
        found = by_key.get(_label_key(v), [])
        if len(found) != 1:
            known = list(index)
            shown = ", ".join(repr(str(k)) for k in known[:20]) + (f", ... ({len(known)} in all)"
                                                                 if len(known) > 20 else "")
            raise DataError(
                f"label {str(v)!r} in {split} ({raw.path}, row {row}) does not occur in the training split; "
                f"training labels: {shown}"
            )
        y[row] = found[0]
    return y


# --------------------------------------------------------------------------- the task
def load_files(
    task: TaskConfig, paths: dict[str, Path], *, fmt: str | None, seed: int, source: str,
    quoting: str | None = None,
) -> TaskData:
    """Build a TaskData from ``paths`` (``train`` required; ``validation`` / ``test`` optional).

    Missing validation and/or test splits are held out of the training file, stratified and seeded:
    both missing → ``stratified_split`` by ``task.split``; one missing → that fraction of the train file.
    """
    raws: dict[str, _Raw] = {}
    columns = None
    for split in SPLITS:
        if paths.get(split) is not None:
            raws[split], columns = _read_split(task, paths[split], fmt, split, columns, quoting)
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
        _check_standardisable(splits, columns)
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


def _check_standardisable(splits: list[Split], columns: list[str]) -> None:
    """Finite values whose mean or spread overflows float64 (1e308) would standardise to NaN."""
    train = splits[0].X.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        ok = np.isfinite(train.mean(axis=0)) & np.isfinite(train.std(axis=0))
    if not ok.all():
        j = int(np.flatnonzero(~ok)[0])
        raise DataError(f"feature column '{columns[j]}' of the training split has values too large to standardise "
                        f"(largest magnitude {np.abs(train[:, j]).max():g}); rescale the column")


def sample_test(data: TaskData, n: int, seed: int) -> TaskData:
    """``task.sample``: the test split cut to ``n`` examples drawn by ``seed``, stratified by label where every
    class allows it (as the held-out splits are), kept in file order; train and validation are untouched, so
    build cells are reused. Recorded in the test split's fingerprint (its ids and rows) and in
    ``meta["test_sample"]``."""
    test = data.test
    if n >= len(test):
        return data
    from sklearn.model_selection import train_test_split

    index = np.arange(len(test))
    stratified = can_stratify(test.y, n)
    _, held = train_test_split(index, test_size=n, random_state=seed, stratify=test.y if stratified else None)
    meta = {**data.meta, "test_sample": {"n": n, "of": len(test), "seed": seed, "stratified": stratified}}
    return replace(data, test=test.subset(np.sort(held)), meta=meta)


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
