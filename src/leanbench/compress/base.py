"""What a step handler gets and returns: ``handler(config, model, ctx) -> StepResult``.

Steps are declared in ``leanbench.schema.steps`` (config class and descriptor: one handler per model family);
``leanbench.plugins.apply_step`` picks the handler for the input model.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leanbench.data.base import TaskData
from leanbench.models.base import ModelAdapter


@dataclass
class StepContext:
    """What a step may use besides its config and input model.

    ``teacher(name)`` returns a built candidate's model and its cell key (for caching teacher outputs).
    ``cache_dir`` is a folder for content-keyed caches (teacher logits); ``progress(done, total, info)``
    reports progress to the CLI.
    """

    data: TaskData
    seed: int
    cache_dir: Path
    teacher: Callable[[str], tuple[ModelAdapter, str]]
    progress: Callable[[int, int, str], None] = lambda done, total, info: None


@dataclass
class StepResult:
    """The built model, an estimate of the FLOPs the step spent (training forward + backward ~ 3x the
    forward FLOPs per example seen; Kaplan et al. 2020, sec. 2.1), and anything worth reporting
    (epochs run, best validation loss, ranks kept, sparsity reached)."""

    model: ModelAdapter
    flops: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


StepHandler = Callable[[Any, "ModelAdapter | None", StepContext], StepResult]


def get_step(name: str) -> StepHandler:
    """Step `name` as one callable ``(config, model, ctx) -> StepResult``: it runs the handler registered for
    the model's family (``leanbench.plugins.apply_step``)."""
    from leanbench.plugins import apply_step
    from leanbench.schema import steps  # noqa: F401  (registers the built-in steps)

    return functools.partial(apply_step, name)
