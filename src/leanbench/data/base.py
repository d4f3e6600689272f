"""Splits and task data shared by every loader."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class Split:
    """One split: inputs X (float32 features / images, or an object array of strings for text),
    integer labels y in [0, n_classes), and stable string example ids."""

    name: str
    X: np.ndarray
    y: np.ndarray
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    @property
    def fingerprint(self) -> str:
        """Content hash of the split (ids, inputs, labels), order included: sha256 hex, 16 chars."""
        h = hashlib.sha256()
        h.update("\x1f".join(map(str, self.ids)).encode())
        if self.X.dtype == object:
            h.update("\x1e".join(map(str, self.X.ravel())).encode())
        else:
            h.update(np.ascontiguousarray(self.X).tobytes())
            h.update(str(self.X.shape).encode())
        h.update(np.ascontiguousarray(self.y.astype(np.int64)).tobytes())
        return h.hexdigest()[:16]

    def subset(self, index: np.ndarray, name: str | None = None) -> Split:
        return Split(name or self.name, self.X[index], self.y[index], self.ids[index])


@dataclass(frozen=True, eq=False)
class TaskData:
    """The three splits of a classification task, and what models need to know about its inputs.

    ``input_shape`` is the shape of one example: ``(n_features,)`` for tabular data,
    ``(channels, height, width)`` for images, ``()`` for text.
    """

    train: Split
    validation: Split
    test: Split
    label_names: list[str]
    input_shape: tuple[int, ...]
    source: str
    meta: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    def split(self, name: str) -> Split:
        return {"train": self.train, "validation": self.validation, "test": self.test}[name]

    @property
    def fingerprints(self) -> dict[str, str]:
        return {s.name: s.fingerprint for s in (self.train, self.validation, self.test)}
