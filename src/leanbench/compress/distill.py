"""The ``distill`` step: knowledge distillation (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge
in a Neural Network").

loss = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)

for student logits s, teacher logits t, temperature T and hard labels y (the T^2 keeps the soft-target
gradients on the same scale as T changes, sec. 2 of the paper). Teacher logits on the train and
validation splits are computed once and cached under ``ctx.cache_dir``, keyed by the teacher's cell key
and the data fingerprints.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from leanbench.compress._training import fit, forward_flops, split_tensors, step_seed, trainable
from leanbench.compress.augment import UNLABELLED
from leanbench.compress.base import STEPS, StepContext, StepResult
from leanbench.data.base import TaskData
from leanbench.errors import ModelError
from leanbench.models.base import ModelAdapter
from leanbench.study import DistillConfig

SPLITS = ("train", "validation")


def distillation_loss(student: torch.Tensor, y: torch.Tensor, teacher: torch.Tensor,
                      temperature: float, alpha: float) -> torch.Tensor:
    """Mean over the batch of alpha * T^2 * KL(p_t || p_s) + (1 - alpha) * CE(student, y), the
    cross-entropy over the examples that have a label (not UNLABELLED)."""
    t = temperature
    kl = F.kl_div(F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1),
                  reduction="batchmean", log_target=True)
    labelled = y != UNLABELLED  # transfer-set examples (compress.augment) have no hard label
    if alpha == 1.0 or not bool(labelled.any()):
        return alpha * t * t * kl
    return alpha * t * t * kl + (1.0 - alpha) * F.cross_entropy(student[labelled], y[labelled])


def data_fingerprint(data: TaskData) -> str:
    """sha256 (16 hex chars) of the train and validation split fingerprints."""
    text = ":".join(data.split(s).fingerprint for s in SPLITS)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_path(cache_dir: Path, teacher_key: str, data: TaskData) -> Path:
    return Path(cache_dir) / f"teacher-logits-{teacher_key}-{data_fingerprint(data)}.safetensors"


def _logits(teacher: ModelAdapter, X: np.ndarray, n_classes: int, batch_size: int = 256) -> torch.Tensor:
    """Teacher logits (N, n_classes) float32, in batches."""
    chunks = []
    for i in range(0, len(X), batch_size):
        out = teacher.forward(teacher.prepare(X[i:i + batch_size]))
        chunks.append(out.detach() if isinstance(out, torch.Tensor) else torch.as_tensor(np.asarray(out)))
    logits = torch.cat(chunks).float() if chunks else torch.zeros(0, n_classes)
    if logits.ndim != 2 or logits.shape[1] != n_classes:
        raise ModelError(f"distill: the teacher gives outputs of shape {tuple(logits.shape)}, "
                         f"the task has {n_classes} classes")
    return logits.contiguous()


def _read_cache(path: Path, data: TaskData) -> dict[str, torch.Tensor] | None:
    """The cached logits when the file is there and has the right shapes, else None."""
    if not path.is_file():
        return None
    try:
        cached = load_file(str(path))
    except (SafetensorError, OSError):
        return None
    want = {s: (len(data.split(s)), data.n_classes) for s in SPLITS}
    if {s: tuple(cached[s].shape) for s in SPLITS if s in cached} != want:
        return None
    return cached


def teacher_logits(teacher: ModelAdapter, teacher_key: str, data: TaskData,
                   cache_dir: Path) -> tuple[dict[str, torch.Tensor], bool]:
    """Teacher logits per split ("train", "validation") and whether they were computed now (else read
    from the cache). The cache is written to a temp file then renamed, so it is never half-written."""
    path = cache_path(cache_dir, teacher_key, data)
    cached = _read_cache(path, data)
    if cached is not None:
        return cached, False
    logits = {s: _logits(teacher, data.split(s).X, data.n_classes) for s in SPLITS}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    save_file(logits, str(tmp), metadata={"teacher": teacher_key, "data": data_fingerprint(data)})
    os.replace(tmp, path)
    return logits, True


@STEPS.register("distill")
def distill(cfg: DistillConfig, model: ModelAdapter | None, ctx: StepContext) -> StepResult:
    """Trains the student `model` on the distillation loss, early-stopping on the validation
    distillation loss. FLOPs: the training estimate of ``_training`` plus the teacher's forward passes
    over the train and validation splits when its logits were computed in this step."""
    if getattr(model, "adapter_name", None) == "causal-lm":  # token-level KL on a text corpus
        from leanbench.compress.lm_distill import distill_lm

        return distill_lm(cfg, model, ctx)
    if getattr(model, "adapter_name", None) in ("hf", "text-student"):  # text students
        from leanbench.compress.hf_distill import distill_text

        return distill_text(cfg, model, ctx)
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
