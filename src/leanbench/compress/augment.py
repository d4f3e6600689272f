"""Transfer sets for distillation (Tang et al. 2019, "Distilling Task-Specific Knowledge from BERT into
Simple Neural Networks", sec. 3.3).

A small student distilled on the training split alone sees only the teacher's outputs on texts it also
has labels for. Tang et al. let the teacher label *new* texts made from the training ones: every word
masked with probability p_mask, and with probability p_ng the variant cut to a random n-gram of itself
(n in 1..5); a number of variants per text, duplicates dropped. (Their third rule, swapping a word for
another of the same part of speech, needs a tagger and is left out.) The variants carry no hard label:
the student learns them through the distillation term only.

Everything here is a pure function of (texts, config, seed): the same transfer set is drawn again for the
same inputs, so the teacher's logits on it can be cached by content.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import replace
from typing import Any

import numpy as np

from leanbench.data.base import Split, TaskData
from leanbench.errors import ModelError
from leanbench.study import AugmentConfig

UNLABELLED = -100  # the label of a transfer-set example: ignored by cross-entropy (torch's ignore_index)


def variant(words: list[str], cfg: AugmentConfig, mask: str, rng: random.Random) -> str:
    """One augmented copy of a text given as words."""
    out = [mask if rng.random() < cfg.mask_prob else w for w in words]
    if rng.random() < cfg.ngram_prob:
        n = rng.randint(1, min(cfg.max_ngram, len(out)))
        start = rng.randint(0, len(out) - n)
        out = out[start:start + n]
    return " ".join(out)


def transfer_set(texts: np.ndarray, cfg: AugmentConfig, mask: str, seed: int) -> list[str]:
    """The variants of the texts of at least cfg.min_words words (cfg.copies draws each), in order of
    drawing, without duplicates and without any text of the training split itself."""
    if np.asarray(texts, dtype=object).ndim != 1 or (len(texts) and isinstance(texts[0], (tuple, list))):
        raise ModelError("distill.augment: the transfer set is drawn from single texts; this task has text pairs")
    rng = random.Random(seed)
    seen = {str(t) for t in texts}
    out: list[str] = []
    for text in texts:
        words = str(text).split()
        if len(words) < cfg.min_words:
            continue
        for _ in range(cfg.copies):
            v = variant(words, cfg, mask, rng)
            if v not in seen:
                seen.add(v)
                out.append(v)
    return out


def mask_token(cfg: AugmentConfig, teacher: Any, student: Any) -> str:
    """cfg.mask_token, else the teacher's tokenizer's mask token, else the student's, else the student's
    unknown token."""
    if cfg.mask_token:
        return cfg.mask_token
    for model, attr in ((teacher, "mask_token"), (student, "mask_token"), (student, "unk_token")):
        token = getattr(getattr(model, "tokenizer", None), attr, None)
        if token:
            return str(token)
    raise ModelError("distill.augment: neither tokenizer has a mask or unknown token; give augment.mask_token")


def augment_key(cfg: AugmentConfig, mask: str, seed: int) -> str:
    """16 hex chars naming a transfer set (its config, mask token and seed) in cache file names."""
    # the seed enters as drawn (augment.seed or the build's), so a fixed augment.seed names the same set
    blob = json.dumps({"augment": cfg.model_dump(mode="json", exclude={"seed"}), "mask": mask, "seed": seed},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def with_transfer_set(data: TaskData, texts: list[str]) -> TaskData:
    """The task with its training split extended by the transfer set (label UNLABELLED, ids "augment-i").
    Only for the distillation loop: every other split and field is the original's."""
    X = np.empty(len(data.train) + len(texts), dtype=object)
    X[:len(data.train)] = data.train.X
    X[len(data.train):] = texts
    y = np.concatenate([np.asarray(data.train.y, dtype=np.int64), np.full(len(texts), UNLABELLED, dtype=np.int64)])
    ids = np.concatenate([np.asarray(data.train.ids, dtype=object),
                          np.array([f"augment-{i}" for i in range(len(texts))], dtype=object)])
    return replace(data, train=Split("train", X, y, ids))
