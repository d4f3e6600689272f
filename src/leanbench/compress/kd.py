"""Knowledge-distillation pieces shared by the torch ``distill`` step (``leanbench.compress.distill``) and the
text-student one (``leanbench.compress.hf_distill``): the loss and the on-disk cache of teacher logits.

The loss (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network"):

loss = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)

for student logits s, teacher logits t, temperature T and hard labels y (the T^2 keeps the soft-target
gradients on the same scale as T changes, sec. 2 of the paper).

The cache: teacher logits on the train and validation splits are computed once and stored under the
step's ``cache_dir`` in one safetensors file keyed by the teacher's cell key and the data fingerprints
(``cache_path``), so every student of the same teacher reuses them; a transfer set's logits
(``distill.augment``) go to a file beside it. Files are written atomically and read back only when their
shapes fit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from leanbench.atomic import atomic_path
from leanbench.compress.augment import UNLABELLED
from leanbench.data.base import TaskData
from leanbench.errors import ModelError
from leanbench.models.base import ModelAdapter

SPLITS = ("train", "validation")
TRANSFER_CHUNK = 4096  # texts per progress report while the teacher labels the transfer set


# --------------------------------------------------------------------------- the loss
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


# --------------------------------------------------------------------------- teacher outputs
def teacher_outputs(teacher: ModelAdapter, X: np.ndarray, n_classes: int, batch_size: int = 256) -> torch.Tensor:
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


def text_teacher_outputs(teacher: ModelAdapter, X: np.ndarray, n_classes: int) -> torch.Tensor:
    """Teacher logits (N, n_classes) float32 as plain tensors (usable in autograd); a text adapter's
    ``logits`` runs batches sorted by length."""
    if hasattr(teacher, "logits"):
        out = torch.from_numpy(np.asarray(teacher.logits(X, 256), dtype=np.float32))
        if out.shape != (len(X), n_classes):
            raise ModelError(f"distill: the teacher gives logits of shape {tuple(out.shape)}, the task has "
                             f"{n_classes} classes")
        return out
    return teacher_outputs(teacher, X, n_classes).clone()


# --------------------------------------------------------------------------- the cache
def data_fingerprint(data: TaskData) -> str:
    """sha256 (16 hex chars) of the train and validation split fingerprints."""
    text = ":".join(data.split(s).fingerprint for s in SPLITS)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_path(cache_dir: Path, teacher_key: str, data: TaskData) -> Path:
    return Path(cache_dir) / f"teacher-logits-{teacher_key}-{data_fingerprint(data)}.safetensors"


def transfer_cache_path(cache_dir: Path, teacher_key: str, data: TaskData, augment_key: str) -> Path:
    """The file of the teacher's logits on a transfer set, beside the split logits of ``cache_path``."""
    return cache_path(cache_dir, teacher_key, data).with_suffix(f".augment-{augment_key}.safetensors")


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


def _write_cache(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Writes a cache file atomically (temp file then rename), so it is never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def teacher_logits(teacher: ModelAdapter, teacher_key: str, data: TaskData, cache_dir: Path,
                   outputs: Callable[[ModelAdapter, np.ndarray, int], torch.Tensor] = teacher_outputs,
                   ) -> tuple[dict[str, torch.Tensor], bool]:
    """Teacher logits per split ("train", "validation") and whether they were computed now (with
    `outputs`) or read from the cache. The cache is written to a temp file then renamed, so it is never
    half-written."""
    path = cache_path(cache_dir, teacher_key, data)
    cached = _read_cache(path, data)
    if cached is not None:
        return cached, False
    logits = {s: outputs(teacher, data.split(s).X, data.n_classes).contiguous() for s in SPLITS}
    _write_cache(path, logits, metadata={"teacher": teacher_key, "data": data_fingerprint(data)})
    return logits, True


def text_teacher_logits(teacher: ModelAdapter, teacher_key: str, data: TaskData,
                        cache_dir: Path) -> tuple[dict[str, torch.Tensor], bool]:
    """Teacher logits on train and validation (plain tensors, usable in autograd) and whether they were
    computed now. Same cache file as ``teacher_logits``, written atomically."""
    return teacher_logits(teacher, teacher_key, data, cache_dir, outputs=text_teacher_outputs)


def transfer_logits(teacher: ModelAdapter, path: Path, texts: list[str], n_classes: int,
                    progress: Any) -> tuple[torch.Tensor, bool]:
    """The teacher's logits on the transfer set (read from `path` when it holds them for this many texts)
    and whether they were computed now; written atomically, like the split logits."""
    if path.is_file():
        try:
            cached = load_file(str(path)).get("augment")
        except (SafetensorError, OSError):
            cached = None
        if cached is not None and tuple(cached.shape) == (len(texts), n_classes):
            return cached, False
    X = np.array(texts, dtype=object)
    parts = []
    for i in range(0, len(X), TRANSFER_CHUNK):
        parts.append(text_teacher_outputs(teacher, X[i:i + TRANSFER_CHUNK], n_classes))
        progress(min(i + TRANSFER_CHUNK, len(X)), len(X), "teacher logits on the transfer set")
    logits = torch.cat(parts).contiguous() if parts else torch.zeros(0, n_classes)
    _write_cache(path, {"augment": logits})
    return logits, True
