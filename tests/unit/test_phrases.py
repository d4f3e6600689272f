"""A validation split of whole texts held out of training with their phrases (task.validation_holdout)."""

from __future__ import annotations

import numpy as np
import pytest

from leanbench.data.base import Split, TaskData
from leanbench.data.loaders import load_task
from leanbench.data.phrases import hold_out_whole_texts
from leanbench.errors import ConfigError, DataError
from leanbench.integrity.contamination import exact_matches, normalize_text
from leanbench.study import TaskConfig
from leanbench.study_loader import parse_study

SENTENCES = ["a gem of a movie .", "the plot is thin and the jokes are flat .", "warm , funny and wise .",
             "never boring .", "dull , tired retread ."]


def _split(name: str, texts: list[str]) -> Split:
    return Split(name, np.array(texts, dtype=object), np.arange(len(texts)) % 2,
                 np.array([f"{name}:{i}" for i in range(len(texts))], dtype=object))


def _phrases(sentence: str) -> list[str]:
    tokens = sentence.split()
    return [" ".join(tokens[:k]) for k in range(1, len(tokens))] + [" ".join(tokens[1:]), sentence]


def _task() -> TaskData:
    rows = [p for s in SENTENCES for p in _phrases(s)]
    half = len(rows) // 2
    test = _split("test", ["an unseen sentence ."])
    return TaskData(_split("train", rows[:half]), _split("validation", rows[half:]), test, ["neg", "pos"], (),
                    "toy")


def test_validation_is_whole_texts_and_train_keeps_none_of_their_phrases():
    data = hold_out_whole_texts(_task(), 2, seed=0)
    held = data.validation.X.tolist()
    assert len(held) == 2 and set(held) <= set(SENTENCES)  # whole sentences only, no phrase
    for sentence in held:
        inside = [t for t in data.train.X if f" {t} " in f" {sentence} "]
        assert not inside  # neither the sentence nor any of its phrases is left in train
    others = [s for s in SENTENCES if s not in held]
    assert set(data.train.X) == {p for s in others for p in _phrases(s)}  # the rest is all kept
    assert data.test.X.tolist() == ["an unseen sentence ."]
    assert data.meta["validation_holdout"]["removed"] == sum(len(_phrases(s)) for s in held)
    again = hold_out_whole_texts(_task(), 2, seed=0)
    assert again.fingerprints == data.fingerprints  # seeded
    assert any(hold_out_whole_texts(_task(), 2, seed=s).validation.X.tolist() != held for s in range(1, 6))


def test_asking_for_more_whole_texts_than_there_are_is_a_clear_error():
    with pytest.raises(DataError, match="6 whole texts asked for, but train and validation together hold only 5"):
        hold_out_whole_texts(_task(), 6, seed=0)


def test_validation_holdout_needs_one_text_column():
    raw = {"name": "t", "reference": "a", "candidates": [{"name": "a", "model": {"arch": "mlp"}}],
           "task": {"data": "x.csv", "validation_holdout": {"size": 10}}}
    with pytest.raises(ConfigError, match="'validation_holdout' needs one text column"):
        parse_study(raw)


def test_sst2_holdout_sentences_are_not_in_train_unlike_the_shipped_validation_split(shared_data):
    sst2 = shared_data / "sst2"
    files = {s: str(sst2 / f"{s}.tsv") for s in ("train", "validation", "test")}
    shipped = load_task(TaskConfig(data=files, text="sentence"), seed=0, base_dir=sst2)
    data = load_task(TaskConfig(data=files, text="sentence", validation_holdout={"size": 872}), seed=0,
                     base_dir=sst2)
    assert len(data.validation) == 872 and len(data.train) + data.meta["validation_holdout"]["removed"] == 67349
    norm = [normalize_text(t) for t in data.train.X]
    # the integrity check's exact matcher (independent code): none of the held-out sentences is in train
    assert len(exact_matches(norm, [normalize_text(t) for t in data.validation.X]).eval_indices) == 0
    assert len(exact_matches([normalize_text(t) for t in shipped.train.X],
                             [normalize_text(t) for t in shipped.validation.X]).eval_indices) > 0
    lengths = [len(t.split()) for t in data.validation.X]
    assert np.mean(lengths) > 15  # whole sentences (the test split averages 19.5 tokens), not phrases
    assert data.test.fingerprint == shipped.test.fingerprint
