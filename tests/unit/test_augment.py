"""Transfer-set augmentation for distillation (Tang et al. 2019) and the hard-label-free examples it adds."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _tiny_text import save_tiny_bert, save_tokenizer, toy_task

from leanbench.compress.augment import UNLABELLED, transfer_set, with_transfer_set
from leanbench.compress.base import StepContext, get_step
from leanbench.compress.kd import distillation_loss
from leanbench.errors import ModelError
from leanbench.models.base import build_model
from leanbench.study import (
    AugmentConfig,
    DistillConfig,
    FinetuneConfig,
    HFSpec,
    MLPSpec,
    TextStudentSpec,
    TrainConfig,
)

torch.set_num_threads(1)
TEXTS = np.array(["a b c d e f g h", "short one", "one two three four five six seven eight nine"], dtype=object)


def test_transfer_set_is_seeded_deduplicated_and_drawn_from_long_texts_only():
    cfg = AugmentConfig(copies=20, min_words=8, mask_prob=0.3, ngram_prob=0.5, max_ngram=3)
    a = transfer_set(TEXTS, cfg, "[MASK]", seed=0)
    assert a == transfer_set(TEXTS, cfg, "[MASK]", seed=0) != transfer_set(TEXTS, cfg, "[MASK]", seed=1)
    assert len(a) == len(set(a)) and not set(a) & set(TEXTS)  # no duplicate, no training text itself
    sources = [set(t.split()) for t in TEXTS if len(t.split()) >= 8]
    for v in a:
        words = [w for w in v.split() if w != "[MASK]"]
        assert any(set(words) <= s for s in sources)  # "short one" (2 words) is never a source
        assert len(v.split()) <= 3 or len(v.split()) in (8, 9)  # an n-gram cut, or the whole text masked


def test_transfer_set_mask_and_ngram_rules_at_their_extremes():
    masked = transfer_set(TEXTS[:1], AugmentConfig(copies=1, min_words=1, mask_prob=1.0, ngram_prob=0.0),
                          "<m>", seed=0)
    assert masked == [" ".join(["<m>"] * 8)]
    cut = transfer_set(TEXTS, AugmentConfig(copies=30, min_words=1, mask_prob=0.0, ngram_prob=1.0, max_ngram=2),
                       "<m>", seed=0)
    assert cut and all(1 <= len(v.split()) <= 2 for v in cut)
    words = [t.split() for t in TEXTS]  # every cut is a contiguous run of a source text
    assert all(any(" ".join(w[i:i + len(v.split())]) == v for w in words for i in range(len(w))) for v in cut)


def test_transfer_set_refuses_text_pairs():
    pairs = np.empty(1, dtype=object)
    pairs[0] = ("a b c d e f g h", "i j")
    with pytest.raises(ModelError, match="text pairs"):
        transfer_set(pairs, AugmentConfig(min_words=1), "[MASK]", seed=0)


def test_unlabelled_examples_get_only_the_distillation_term():
    torch.manual_seed(0)
    s, t = torch.randn(6, 3), torch.randn(6, 3)
    y = torch.tensor([0, 2, UNLABELLED, 1, UNLABELLED, UNLABELLED])
    kl = F.kl_div(F.log_softmax(s / 2, 1), F.log_softmax(t / 2, 1), reduction="batchmean", log_target=True)
    lab = y != UNLABELLED
    expected = 0.3 * 4 * kl + 0.7 * F.cross_entropy(s[lab], y[lab])
    torch.testing.assert_close(distillation_loss(s, y, t, 2.0, 0.3), expected)
    only = torch.full((6,), UNLABELLED)
    torch.testing.assert_close(distillation_loss(s, only, t, 2.0, 0.3), 0.3 * 4 * kl)  # not nan


def test_with_transfer_set_keeps_every_other_split():
    data = toy_task()
    aug = with_transfer_set(data, ["x y", "z"])
    assert len(aug.train) == len(data.train) + 2 and list(aug.train.y[-2:]) == [UNLABELLED] * 2
    assert list(aug.train.X[-2:]) == ["x y", "z"] and aug.validation is data.validation and aug.test is data.test


@pytest.fixture(scope="module")
def teacher_and_tok(tmp_path_factory):
    root = tmp_path_factory.mktemp("aug")
    save_tokenizer(root / "tok")
    data = toy_task(max_length=16)
    bert = save_tiny_bert(root / "bert")
    teacher = build_model(HFSpec(hf=str(bert)), data, seed=0)
    ctx = StepContext(data=data, seed=0, cache_dir=root / "cache", teacher=None)
    teacher = get_step("finetune")(FinetuneConfig(epochs=6, lr=3e-3, batch_size=16), teacher, ctx).model
    return teacher, root / "tok", data


def test_distill_with_a_transfer_set_labels_it_once_and_trains_on_it(teacher_and_tok, tmp_path):
    teacher, tok, data = teacher_and_tok
    ctx = StepContext(data=data, seed=0, cache_dir=tmp_path / "cache", teacher=lambda name: (teacher, "tkey"))
    student = build_model(TextStudentSpec(arch="bilstm", tokenizer=str(tok), embed_dim=16, hidden=8), data, seed=0)
    aug = AugmentConfig(copies=3, min_words=4)
    cfg = DistillConfig(teacher="t", epochs=2, lr=1e-2, batch_size=16, patience=0, temperature=2.0, augment=aug)
    first = get_step("distill")(cfg, student, ctx)
    n_aug = len(transfer_set(data.train.X, aug, "[MASK]", seed=0))
    info = first.info["transfer_set"]
    assert info["examples"] == n_aug > 0 and info["mask_token"] == "[MASK]" and info["teacher_logits"] == "computed"
    assert first.info["steps"] == 2 * -(-(len(data.train) + n_aug) // 16)  # epochs over train + transfer set
    again = get_step("distill")(cfg, student, ctx)
    assert again.info["transfer_set"]["teacher_logits"] == "cached"
    np.testing.assert_array_equal(again.model.predict_proba(data.test.X), first.model.predict_proba(data.test.X))
    plain = get_step("distill")(cfg.model_copy(update={"augment": None}), student, ctx)
    assert first.flops > plain.flops  # the teacher's pass over the transfer set is in the bill
    # another build seed draws (and labels) its own transfer set, unless augment.seed fixes the draw
    seed1 = StepContext(data=data, seed=1, cache_dir=ctx.cache_dir, teacher=ctx.teacher)
    assert get_step("distill")(cfg, student, seed1).info["transfer_set"]["teacher_logits"] == "computed"
    fixed = cfg.model_copy(update={"augment": aug.model_copy(update={"seed": 0})})
    shared = get_step("distill")(fixed, student, StepContext(data=data, seed=2, cache_dir=ctx.cache_dir,
                                                            teacher=ctx.teacher))
    assert shared.info["transfer_set"]["teacher_logits"] == "cached"  # seed 0's set, labelled above


def test_hard_label_ablation_gets_the_same_step_budget(teacher_and_tok, tmp_path):
    _, tok, data = teacher_and_tok
    student = build_model(TextStudentSpec(arch="bilstm", tokenizer=str(tok), embed_dim=16, hidden=8), data, seed=0)
    ctx = StepContext(data=data, seed=0, cache_dir=tmp_path / "cache", teacher=None)
    res = get_step("train")(TrainConfig(max_steps=17, batch_size=16, lr=1e-2, patience=0), student, ctx)
    assert res.info["steps"] == 17


def test_max_steps_and_augment_are_refused_where_they_do_not_apply(tmp_path):
    from sklearn.datasets import load_iris

    from leanbench.data.base import Split, TaskData

    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    ids = np.array([str(i) for i in range(len(y))], dtype=object)
    split = Split("train", X, y, ids)
    data = TaskData(split, Split("validation", X, y, ids), Split("test", X, y, ids), ["a", "b", "c"], (4,), "iris")
    mlp = build_model(MLPSpec(hidden=[8]), data, seed=0)
    ctx = StepContext(data=data, seed=0, cache_dir=tmp_path, teacher=lambda name: (mlp, "k"))
    with pytest.raises(ModelError, match="max_steps is for text models"):
        get_step("train")(TrainConfig(max_steps=3), mlp, ctx)
    with pytest.raises(ModelError, match="for text students"):
        get_step("distill")(DistillConfig(teacher="t", augment=AugmentConfig()), mlp, ctx)


def test_cell_keys_leave_out_an_unset_augment_seed():
    """augment.seed came after transfer sets existed: unset, it stays out of the build key (cells built
    before it are still found); set, it is part of it."""
    from leanbench.runner.keys import _steps_payload
    from leanbench.study import CandidateConfig

    def payload(augment: dict) -> dict:
        cand = CandidateConfig.model_validate({
            "name": "s", "model": {"arch": "bilstm", "tokenizer": "tok"},
            "steps": [{"distill": {"teacher": "t", "augment": augment}}]})
        return _steps_payload(cand, {"t": "teacher-key"})[0]["distill"]

    unset, fixed = payload({"copies": 4}), payload({"copies": 4, "seed": 0})
    assert "seed" not in unset["augment"] and fixed["augment"]["seed"] == 0
    assert unset["teacher"] == "teacher-key" and unset["augment"]["copies"] == 4
