"""Seeded, stratified train / validation / test splits, and train-only standardisation.

Splits use ``sklearn.model_selection.train_test_split`` with ``random_state=seed``: it draws from
``numpy.random.RandomState`` (the legacy Mersenne Twister, whose stream numpy keeps stable across
versions and platforms), so the same seed gives the same indices on any machine. Sizes follow
scikit-learn: a held-out fraction ``f`` of ``n`` examples takes ``ceil(f * n)`` of them.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from sklearn.model_selection import train_test_split

from leanbench.errors import DataError
from leanbench.study import SplitFractions

log = logging.getLogger(__name__)

MIN_PER_CLASS = 3  # fewer examples than this in any class: split without stratification


def can_stratify(y: np.ndarray, n_held: int) -> bool:
    """Whether a stratified split of ``y`` holding out ``n_held`` examples is possible and sensible:
    every class has at least ``MIN_PER_CLASS`` members and both parts can hold one of each class."""
    _, counts = np.unique(y, return_counts=True)
    n_classes = len(counts)
    return bool(counts.min() >= MIN_PER_CLASS and n_held >= n_classes and len(y) - n_held >= n_classes)


def split_off(
    y: np.ndarray, fraction: float, seed: int, *, what: str = "held-out"
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``ceil(fraction * len(y))`` examples, stratified by ``y`` where possible.

    Returns ``(kept_idx, held_idx)``, each sorted ascending (examples keep their original order).
    Raises DataError when either part would be empty.
    """
    y = np.asarray(y)
    n = len(y)
    n_held = math.ceil(fraction * n)
    if n == 0 or n_held < 1 or n - n_held < 1:
        raise DataError(
            f"cannot split {n} example{'s' if n != 1 else ''} to hold out a fraction {fraction:g} "
            f"for {what}: one of the parts would be empty; give more data or a separate {what} file"
        )
    stratify = y if can_stratify(y, n_held) else None
    if stratify is None:
        log.info("splitting %d examples for %s without stratification (a class is too small)", n, what)
    kept, held = train_test_split(np.arange(n), test_size=n_held, random_state=seed, stratify=stratify)
    return np.sort(kept), np.sort(held)


def stratified_split(
    y: np.ndarray, fractions: SplitFractions, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split indices ``0..len(y)-1`` into ``(train_idx, val_idx, test_idx)``, sorted, disjoint, covering all.

    Two stages: first ``fractions.test`` of all examples go to test; then validation takes
    ``fractions.validation / (1 - fractions.test)`` of the rest, so that it is ``fractions.validation``
    of the whole. Each stage is stratified by ``y`` unless a class has fewer than 3 examples.
    """
    y = np.asarray(y)
    val_fraction = fractions.validation / (1.0 - fractions.test)
    n = len(y)
    n_test = math.ceil(fractions.test * n)
    n_val = math.ceil(val_fraction * (n - n_test))
    if n - n_test - n_val < 1:
        raise DataError(
            f"cannot split {n} example{'s' if n != 1 else ''} into train / validation / test with fractions "
            f"validation={fractions.validation:g}, test={fractions.test:g}: the train split would be empty"
        )
    rest, test = split_off(y, fractions.test, seed, what="test")
    train, val = split_off(y[rest], val_fraction, seed, what="validation")
    return rest[train], rest[val], test


def standardize(train: np.ndarray, *others: np.ndarray) -> tuple[list[np.ndarray], dict]:
    """Scale features to zero mean and unit variance with statistics of ``train`` only.

    ``z = (x - mean_train) / std_train`` with the population std (ddof=0); a (near-)zero std, below
    ``10 * eps``, is replaced by 1, as ``sklearn.preprocessing.StandardScaler`` does. Returns the float32
    arrays (train first) and ``{"mean": [...], "std": [...]}`` for ``TaskData.meta["standardize"]``.
    """
    mean = train.astype(np.float64).mean(axis=0)
    std = train.astype(np.float64).std(axis=0)
    std = np.where(std < 10 * np.finfo(np.float64).eps, 1.0, std)
    scaled = [((x.astype(np.float64) - mean) / std).astype(np.float32) for x in (train, *others)]
    return scaled, {"mean": mean.tolist(), "std": std.tolist()}
