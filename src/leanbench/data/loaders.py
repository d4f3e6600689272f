"""One entry point from a task config to its three splits: ``load_task``.

``task.data`` is one of
  - ``"sklearn:<name>"``: a dataset bundled with scikit-learn (``sklearn_data``);
  - ``"hf:<id>[:<config>]"``: a Hugging Face dataset, or ``DataFiles`` of ``hf:`` splits (``hf_datasets``);
  - a path to one file: split into train / validation / test by ``task.split`` and the seed;
  - ``DataFiles``: one file per split; a missing validation and/or test split is held out of train.
Relative paths are resolved against ``base_dir``, the folder of the study file.
"""

from __future__ import annotations

from pathlib import Path

from leanbench.data.base import TaskData
from leanbench.data.files import SPLITS, load_files, sample_test
from leanbench.data.hf_datasets import HF_PREFIX, load_hf_task
from leanbench.data.sklearn_data import load_sklearn
from leanbench.errors import DataError
from leanbench.study import DataFiles, TaskConfig

SKLEARN_PREFIX = "sklearn:"


def load_task(task: TaskConfig, *, seed: int, base_dir: Path) -> TaskData:
    """Load the task's data and split it; the same config and seed give the same splits anywhere.
    ``task.sample`` then cuts the test split to a seeded, stratified sample (train and validation as they are)."""
    data = _load_splits(task, seed=seed, base_dir=base_dir)
    if task.validation_holdout is not None:
        from leanbench.data.phrases import hold_out_whole_texts

        data = hold_out_whole_texts(data, task.validation_holdout.size, seed)
    if task.sample is not None:
        data = sample_test(data, task.sample, seed)
    return data


def _load_splits(task: TaskConfig, *, seed: int, base_dir: Path) -> TaskData:
    data = task.data
    if isinstance(data, DataFiles):
        given = {s: v for s in SPLITS if (v := getattr(data, s)) is not None}
        hf = [s for s, v in given.items() if v.startswith(HF_PREFIX)]
        if hf and len(hf) < len(given):
            raise DataError(f"task.data: {', '.join(hf)} {'is' if len(hf) == 1 else 'are'} hf: dataset splits "
                            f"and the rest are files; give all splits one way")
        if hf:
            return load_hf_task(task, given, seed=seed, base_dir=Path(base_dir), whole=False)
        return _load_data_files(task, data, seed=seed, base_dir=Path(base_dir))
    if data.startswith(HF_PREFIX):
        return load_hf_task(task, dict.fromkeys(SPLITS, data), seed=seed,
                            base_dir=Path(base_dir), whole=True)
    if data.startswith(SKLEARN_PREFIX):
        return load_sklearn(data[len(SKLEARN_PREFIX) :], task, seed=seed)
    path = resolve_path(data, Path(base_dir), where="task.data")
    return load_files(task, {"train": path}, fmt=None, seed=seed, source=str(path))


def _load_data_files(task: TaskConfig, data: DataFiles, *, seed: int, base_dir: Path) -> TaskData:
    paths: dict[str, Path] = {}
    for split in SPLITS:
        given = getattr(data, split)
        if given is not None:
            paths[split] = resolve_path(given, base_dir, where=f"task.data.{split}")
    source = ", ".join(f"{split}={path}" for split, path in paths.items())
    return load_files(task, paths, fmt=data.format, seed=seed, source=source, quoting=data.quoting)


def resolve_path(given: str, base_dir: Path, *, where: str) -> Path:
    """``given`` (``~`` expanded) if absolute, else relative to ``base_dir``; it must be an existing file."""
    path, problem = locate(given, base_dir)
    if problem:
        raise DataError(f"{problem} ({where})")
    return path


def locate(given: str, base_dir: Path) -> tuple[Path, str | None]:
    """The path ``given`` names (relative to ``base_dir``), and what is wrong with it (None: an existing file)."""
    path = Path(given).expanduser()
    if not path.is_absolute():
        path = Path(base_dir) / path
    if not path.exists():
        return path, f"data file not found: {path}"
    if not path.is_file():
        return path, f"data path is not a file: {path}"
    return path, None
