"""The ``distill`` step: knowledge distillation (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge
in a Neural Network").

loss = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)

for student logits s, teacher logits t, temperature T and hard labels y (the T^2 keeps the soft-target
gradients on the same scale as T changes, sec. 2 of the paper). Teacher logits on the train and
validation splits are computed once and cached under ``ctx.cache_dir``, keyed by the teacher's cell key
and the data fingerprints. The loss and the cache are in ``leanbench.compress.kd`` (shared with the
text-student step).
"""

from __future__ import annotations

import torch

from leanbench.compress._training import fit, forward_flops, split_tensors, step_seed, trainable
from leanbench.compress.base import StepContext, StepResult
from leanbench.compress.kd import distillation_loss, teacher_logits
from leanbench.errors import ModelError
from leanbench.models.base import ModelAdapter
from leanbench.study import DistillConfig


def distill(cfg: DistillConfig, model: ModelAdapter | None, ctx: StepContext) -> StepResult:
    """Trains the student `model` on the distillation loss, early-stopping on the validation
    distillation loss. FLOPs: the training estimate of ``_training`` plus the teacher's forward passes
    over the train and validation splits when its logits were computed in this step."""
    if cfg.augment is not None:
        raise ModelError("distill.augment draws a transfer set of texts: it is for text students")
    student = trainable(model, "distill")
    teacher, teacher_key = ctx.teacher(cfg.teacher)
    logits, computed = teacher_logits(teacher, teacher_key, ctx.data, ctx.cache_dir)
    train = (*split_tensors(student, ctx.data.train), logits["train"])
    val = (*split_tensors(student, ctx.data.validation), logits["validation"])

    def loss_fn(s: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return distillation_loss(s, y, t, cfg.temperature, cfg.alpha)

    result = fit(student.module, train, val, cfg, step_seed(cfg, ctx), loss_fn, ctx.progress)
    flops = result.flops(student.flops_per_example())
    if computed:
        n = len(ctx.data.train) + len(ctx.data.validation)
        flops += forward_flops(teacher, ctx.data.train.X) * n
    info = {**result.info(), "teacher": cfg.teacher, "teacher_logits": "computed" if computed else "cached",
            "temperature": cfg.temperature, "alpha": cfg.alpha}
    return StepResult(student, flops=float(flops), info=info)
