"""Classification data through Hugging Face ``datasets`` (installed with the ``lm`` extra): ``hf:<id>[:<config>]``.

``data: "hf:glue:sst2"`` takes the dataset's train / validation / test splits. A split whose labels are all
-1 (hidden, as in GLUE's test splits) counts as absent, and absent splits are held out of train, stratified
and seeded, as for local files. Per split, ``data: {train: "hf:glue:sst2", test: "hf:glue:sst2@validation"}``
names the dataset's split after ``@`` (default: the key's own name). ``<id>`` may be a local folder of data
files (relative to the study file), which ``datasets`` reads offline. A ``ClassLabel`` label column keeps
its integer values; the dataset's class names become the label names. Example ids are ``<split>:<row>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leanbench.data.base import TaskData
from leanbench.data.files import SPLITS, frame_split, task_from_raws
from leanbench.errors import DataError
from leanbench.study import TaskConfig

HF_PREFIX = "hf:"
HIDDEN_LABEL = -1  # GLUE and SuperGLUE test splits


@dataclass(frozen=True)
class HFSplit:
    """One split of a dataset, named in messages and example ids like a file."""

    dataset: str
    config: str | None
    split: str

    @property
    def name(self) -> str:
        return self.split

    def __str__(self) -> str:
        return f"{dataset_spec(self.dataset, self.config)}@{self.split}"


def dataset_spec(dataset: str, config: str | None) -> str:
    """``hf:<id>[:<config>]``, as a study writes it."""
    return f"{HF_PREFIX}{dataset}{':' + config if config else ''}"


def parse_hf(spec: str, default_split: str) -> HFSplit:
    """``hf:<id>[:<config>][@<split>]`` -> HFSplit (the split defaults to ``default_split``)."""
    body, _, split = spec.removeprefix(HF_PREFIX).partition("@")
    dataset, _, config = body.partition(":")
    if not dataset:
        raise DataError(f"'{spec}': give a dataset id or folder after 'hf:', e.g. hf:glue:sst2")
    return HFSplit(dataset, config or None, split or default_split)


def load_hf_task(task: TaskConfig, specs: dict[str, str], *, seed: int, base_dir: Path,
                 whole: bool) -> TaskData:
    """The task from ``specs`` (split -> ``hf:`` spec). ``whole``: one spec for the whole dataset, whose
    missing or label-less validation / test splits are held out of train; else every named split must exist."""
    loaded: dict[tuple[str, str | None], Any] = {}
    raws, columns, names, held = {}, None, None, []
    for split in SPLITS:
        if split not in specs:
            continue
        where = parse_hf(specs[split], split)
        key = (where.dataset, where.config)
        if key not in loaded:
            loaded[key] = open_dataset(where.dataset, where.config, base_dir)
        ds = loaded[key]
        if where.split not in ds:
            if whole and split != "train":
                continue
            raise DataError(f"{where}: the dataset has no split '{where.split}' (task.data.{split}); "
                            f"its splits: {', '.join(ds)}")
        frame = ds[where.split].to_pandas()
        if whole and split != "train" and task.label in frame and (frame[task.label] == HIDDEN_LABEL).all():
            held.append(split)  # hidden labels: held out of train instead
            continue
        raws[split], columns = frame_split(task, frame, where, split, columns)
        names = names or _class_names(ds[where.split], task.label)
    data = task_from_raws(task, raws, columns, seed=seed, names=names,
                          source=", ".join(f"{s}={raw.path}" for s, raw in raws.items()))
    data.meta["hidden_labels"] = held
    return data


def open_dataset(dataset: str, config: str | None, base_dir: Path | None = None) -> Any:
    """The DatasetDict of ``datasets.load_dataset``; with ``base_dir``, a local folder is resolved against it
    (the study file's folder). Every failure is one DataError."""
    from leanbench.errors import require

    datasets = require("datasets", "lm", "hf: data")
    local = (base_dir / dataset).expanduser() if base_dir is not None else None
    path = str(local) if local is not None and local.is_dir() else dataset
    try:
        return datasets.load_dataset(path, config)
    except Exception as exc:  # no network, unknown id or config: one message
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise DataError(f"{dataset_spec(dataset, config)}: cannot load the dataset ({type(exc).__name__}: "
                        f"{first}); offline, give local files or a local folder") from None


def _class_names(dataset: Any, label: str) -> list[str] | None:
    """The ``ClassLabel`` names of the label column, if it is one."""
    feature = dataset.features.get(label)
    return list(feature.names) if hasattr(feature, "names") else None
