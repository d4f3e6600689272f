"""A validation split of whole texts, held out of training with every phrase they contain.

Phrase-level corpora train on the phrases of their sentences: SST-2's training split holds each training
sentence and its sub-phrases (60,614 + 6,735 phrases from about 6,900 sentences). A validation split drawn
from such rows is inside the training data (leanbench's integrity check finds all 6,735 validation rows
of the shipped split in train), so it rewards fitting training phrases and cannot select models for unseen
sentences. ``task.validation_holdout: {size: N}`` draws N *whole* texts from train and validation pooled:
texts that no other pooled text contains (on word boundaries, compared as the integrity check compares
texts: NFKC, lower case, punctuation dropped). They become
the validation split, and every pooled text they contain (their phrases, and copies of themselves) is
dropped; the remaining pooled texts are the training split. The draw is seeded by the study seed.
"""

from __future__ import annotations

import numpy as np

from leanbench.data.base import Split, TaskData
from leanbench.errors import DataError
from leanbench.integrity.contamination import normalize_text


def _contained(sentence: str) -> set[str]:
    """Every contiguous run of tokens of ``sentence``, itself included."""
    tokens = sentence.split()
    return {" ".join(tokens[i:j]) for i in range(len(tokens)) for j in range(i + 1, len(tokens) + 1)}


def hold_out_whole_texts(data: TaskData, size: int, seed: int) -> TaskData:
    """``data`` with a validation split of ``size`` whole texts and their phrases removed from training."""
    if data.train.X.dtype != object or data.train.X.ndim != 1:
        raise DataError("task.validation_holdout needs a single text column (task.text, no text_pair)")
    pool = Split("train", np.concatenate([data.train.X, data.validation.X]),
                 np.concatenate([data.train.y, data.validation.y]),
                 np.concatenate([data.train.ids, data.validation.ids]))
    texts = [normalize_text(str(t)) for t in pool.X]
    lengths = np.array([t.count(" ") + 1 for t in texts])
    by_length = np.argsort(-lengths, kind="stable")  # longest first: a text can only be inside a longer one
    haystack = "".join(f"\n {texts[i]} " for i in by_length)
    starts = np.cumsum([0] + [len(texts[i]) + 3 for i in by_length])  # where each text's line starts
    longer = {n: int(starts[np.searchsorted(-lengths[by_length], -n, side="left")]) for n in set(lengths.tolist())}
    chosen: list[str] = []
    seen: set[str] = set()
    for i in np.random.default_rng([seed, 0x5E1EC7]).permutation(len(texts)):
        text = texts[i]
        if text in seen or haystack.find(f" {text} ", 0, longer[int(lengths[i])]) != -1:
            continue  # a copy already drawn, or a phrase of a longer text
        chosen.append(text)
        seen.add(text)
        if len(chosen) == size:
            break
    if len(chosen) < size:
        raise DataError(f"task.validation_holdout.size: {size} whole texts asked for, but train and validation "
                        f"together hold only {len(chosen)}")
    fullest: dict[str, int] = {}  # of the rows that read the same, the one with the most characters
    for i, t in enumerate(texts):
        if t in seen and (t not in fullest or len(str(pool.X[i])) > len(str(pool.X[fullest[t]]))):
            fullest[t] = i
    held = np.array(sorted(fullest[t] for t in chosen))
    phrases = set().union(*map(_contained, chosen))
    keep = np.array([i for i, t in enumerate(texts) if t not in phrases], dtype=np.int64)
    if len(np.unique(pool.y[keep])) < data.n_classes:
        raise DataError("task.validation_holdout: a class has no training example left")
    meta = {**data.meta, "validation_holdout": {
        "size": size, "pooled": len(texts), "train": int(len(keep)),
        "removed": int(len(texts) - len(keep)), "seed": seed}}
    return TaskData(pool.subset(keep, "train"), pool.subset(held, "validation"), data.test, data.label_names,
                    data.input_shape, data.source, meta)
