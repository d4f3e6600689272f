"""The ``train`` step: supervised training with cross-entropy from the model's current weights."""

from __future__ import annotations

from leanbench.compress._training import fit_cross_entropy, step_seed, trainable
from leanbench.compress.base import STEPS, StepContext, StepResult
from leanbench.models.base import ModelAdapter
from leanbench.study import TrainConfig


@STEPS.register("train")
def train(cfg: TrainConfig, model: ModelAdapter | None, ctx: StepContext) -> StepResult:
    """Adam on cross-entropy, seeded mini-batches, early stopping on validation loss (best weights kept).

    FLOPs: 3 x forward FLOPs per training example seen + validation forwards (see ``_training``).
    """
    if getattr(model, "adapter_name", None) in ("hf", "text-student", "sklearn"):  # text models
        from leanbench.compress.finetune import train_text_step

        return train_text_step(cfg, model, ctx)
    adapter = trainable(model, "train")
    result, flops = fit_cross_entropy(adapter, ctx.data, cfg, step_seed(cfg, ctx), ctx.progress)
    return StepResult(adapter, flops=flops, info=result.info())
