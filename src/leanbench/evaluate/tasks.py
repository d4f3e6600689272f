"""Task kinds: how a kind of task loads its data and turns a model's outputs into per-example scores.

A task kind is an object with
- ``name``: the `task.kind` it serves;
- ``load(task, *, seed, base_dir) -> TaskData``;
- ``evaluate(model, split, study, data) -> EvalOutput``: per-example scores (N, K) float64 whose layout the
  kind's metrics read (classification: class probabilities), the predicted index per example, and optional
  JSON-able extras per example.
Kinds are imported on first use (their modules may pull in transformers).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from leanbench.registry import Registry


@dataclass
class EvalOutput:
    scores: np.ndarray
    pred: np.ndarray | None = None
    extra: list[dict | None] | None = None
    info: dict | None = None


class TaskKind(Protocol):
    name: str

    def load(self, task: Any, *, seed: int, base_dir: Any) -> Any: ...

    def evaluate(self, model: Any, split: Any, study: Any, data: Any) -> EvalOutput: ...


TASK_KINDS: Registry[TaskKind] = Registry("task kind")
TASK_MODULES: dict[str, str] = {
    "classification": "leanbench.evaluate.classification",
    "multiple-choice": "leanbench.evaluate.multiple_choice",
    "language-modeling": "leanbench.evaluate.language_modeling",
}


def get_task_kind(name: str) -> TaskKind:
    if name in TASK_MODULES and name not in TASK_KINDS:
        importlib.import_module(TASK_MODULES[name])
    return TASK_KINDS.get(name)
