"""What a task kind's implementation returns, and its interface.

A task kind is declared by its descriptor (``leanbench.plugins.TaskKindPlugin``, beside its config class in
``leanbench.schema.tasks``); its implementation is an object with
- ``load(task, *, seed, base_dir) -> TaskData``;
- ``evaluate(model, split, study, data) -> EvalOutput``: per-example scores (N, K) float64 whose layout the
  kind's metrics read (classification: class probabilities), the predicted index per example, and optional
  JSON-able extras per example.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


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


def get_task_kind(name: str) -> TaskKind:
    """The implementation of task kind `name` (imported on first use)."""
    from leanbench.plugins import TASK_KINDS
    from leanbench.schema import tasks  # noqa: F401  (registers the built-in task kinds)

    return TASK_KINDS.get(name).implementation()
