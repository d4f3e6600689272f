"""The classification task kind: class probabilities per example."""

from __future__ import annotations

from typing import Any

from leanbench.errors import ModelError
from leanbench.evaluate.tasks import EvalOutput


class Classification:
    name = "classification"

    def load(self, task: Any, *, seed: int, base_dir: Any) -> Any:
        from leanbench.data.loaders import load_task

        return load_task(task, seed=seed, base_dir=base_dir)

    def evaluate(self, model: Any, split: Any, study: Any, data: Any) -> EvalOutput:
        probs = model.predict_proba(split.X, batch_size=study.evaluate.batch_size)
        if probs.shape != (len(split), data.n_classes):
            raise ModelError(f"the model returned probabilities of shape {probs.shape}, "
                             f"expected {(len(split), data.n_classes)}")
        return EvalOutput(scores=probs)


KIND = Classification()
