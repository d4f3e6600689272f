"""Step handlers: ``handler(config, model, ctx) -> StepResult``, registered by step name.

The config classes live in ``leanbench.study`` (they are part of the validated study schema).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leanbench.data.base import TaskData
from leanbench.models.base import ModelAdapter
from leanbench.registry import Registry


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
STEPS: Registry[StepHandler] = Registry("step")
# step name -> module that registers its handler (imported on first use: some pull in transformers)
STEP_MODULES: dict[str, str] = {
    "train": "leanbench.compress.train",
    "distill": "leanbench.compress.distill",
    "prune": "leanbench.compress.prune",
    "quantize": "leanbench.compress.quantize",
    "lowrank": "leanbench.compress.lowrank",
    "finetune": "leanbench.compress.finetune",
    "lora": "leanbench.compress.lora",
}


def get_step(name: str) -> StepHandler:
    """The handler for a step name (importing its module registers it)."""
    if name in STEP_MODULES and name not in STEPS:
        importlib.import_module(STEP_MODULES[name])
    return STEPS.get(name)
