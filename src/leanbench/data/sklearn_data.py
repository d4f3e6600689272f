"""Datasets bundled with scikit-learn, no download: ``sklearn:digits``, ``breast_cancer``, ``wine``, ``iris``.

``digits`` are 8x8 images with pixel values 0..16, scaled to [0, 1] and shaped ``(N, 1, 8, 8)``.
The others are tabular, standardised with the mean and std of the training split only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn import datasets
from sklearn.utils import Bunch

from leanbench.data.base import Split, TaskData
from leanbench.data.split import standardize, stratified_split
from leanbench.errors import DataError
from leanbench.registry import did_you_mean
from leanbench.study import TaskConfig

LOADERS: dict[str, Callable[[], Bunch]] = {
    "digits": datasets.load_digits,
    "breast_cancer": datasets.load_breast_cancer,
    "wine": datasets.load_wine,
    "iris": datasets.load_iris,
}
IMAGE_DATASETS = ("digits",)
DIGITS_MAX = 16.0  # pixel values of load_digits are integers 0..16


def load_sklearn(name: str, task: TaskConfig, *, seed: int) -> TaskData:
    """Load ``sklearn:<name>`` and split it into train / validation / test by ``task.split`` and ``seed``."""
    if name not in LOADERS:
        raise DataError(
            f"unknown dataset 'sklearn:{name}'{did_you_mean(name, list(LOADERS))} (task.data); "
            f"known: {', '.join('sklearn:' + n for n in LOADERS)}"
        )
    if task.text is not None:
        raise DataError(f"task.text is set to '{task.text}', but sklearn:{name} has no text column")
    bunch = LOADERS[name]()
    y = np.asarray(bunch.target, dtype=np.int64)
    ids = np.array([f"sklearn:{name}:{i}" for i in range(len(y))], dtype=object)
    parts = stratified_split(y, task.split, seed)
    if name in IMAGE_DATASETS:
        X, stats = _digits_images(bunch, task), None
        arrays = [X[idx] for idx in parts]
    else:
        X = _tabular_features(bunch, name, task)
        arrays, stats = standardize(*(X[idx] for idx in parts))
    splits = [
        Split(split_name, x, y[idx], ids[idx])
        for split_name, x, idx in zip(("train", "validation", "test"), arrays, parts, strict=True)
    ]
    return TaskData(
        *splits,
        label_names=[str(n) for n in bunch.target_names],
        input_shape=tuple(X.shape[1:]),
        source=f"sklearn:{name}",
        meta={"standardize": stats, "files": {}, "split": {"seed": seed, **task.split.model_dump()}},
    )


def _digits_images(bunch: Bunch, task: TaskConfig) -> np.ndarray:
    """(N, 1, 8, 8) float32 in [0, 1]: pixel / 16."""
    if task.features is not None:
        raise DataError("task.features cannot select columns of sklearn:digits (it is an image dataset)")
    images = np.asarray(bunch.images, dtype=np.float32) / DIGITS_MAX  # (N, 8, 8)
    return images[:, None, :, :]


def _tabular_features(bunch: Bunch, name: str, task: TaskConfig) -> np.ndarray:
    """(N, F) float64 features, restricted to ``task.features`` (by sklearn feature name) when given."""
    X = np.asarray(bunch.data, dtype=np.float64)
    if task.features is None:
        return X
    names = [str(f) for f in bunch.feature_names]
    for f in task.features:
        if f not in names:
            raise DataError(
                f"task.features: no feature '{f}' in sklearn:{name}{did_you_mean(f, names)}; "
                f"available: {', '.join(names)}"
            )
    return X[:, [names.index(f) for f in task.features]]
