"""The ``train`` step on leanbench torch models: supervised training with cross-entropy from the model's current
weights (text models: ``finetune.train_text_step``; TF-IDF: ``models.sklearn_models.train_sklearn``)."""

from __future__ import annotations

from leanbench.compress._training import fit_cross_entropy, step_seed, trainable
from leanbench.compress.base import StepContext, StepResult
from leanbench.models.base import ModelAdapter
from leanbench.study import TrainConfig


def train(cfg: TrainConfig, model: ModelAdapter | None, ctx: StepContext) -> StepResult:
    """Adam on cross-entropy, seeded mini-batches, early stopping on validation loss (best weights kept).

    FLOPs: 3 x forward FLOPs per training example seen + validation forwards (see ``_training``).
    """
    adapter = trainable(model, "train")
    result, flops = fit_cross_entropy(adapter, ctx.data, cfg, step_seed(cfg, ctx), ctx.progress)
    return StepResult(adapter, flops=flops, info=result.info())
