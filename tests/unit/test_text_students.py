"""Tiny text students (textcnn, embedbag, bilstm) over a locally built tokenizer, and the TF-IDF + logistic
regression baseline checked against scikit-learn's own pipeline."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pytest
import torch
from _tiny_text import save_tiny_bert, save_tokenizer, toy_task

from leanbench.compress.base import StepContext, get_step
from leanbench.compress.kd import cache_path
from leanbench.models.base import build_model, load_model
from leanbench.study import DistillConfig, FinetuneConfig, HFSpec, TextStudentSpec, TfidfLogRegSpec, TrainConfig

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok")
    save_tokenizer(path)
    return path


@pytest.fixture(scope="module")
def data():
    return toy_task(max_length=16)


def ctx_for(data, tmp_path, teacher=None):
    return StepContext(data=data, seed=0, cache_dir=tmp_path / "cache", teacher=teacher)


def accuracy(model, split) -> float:
    return float(np.mean(model.predict_proba(split.X).argmax(1) == split.y))


@pytest.mark.parametrize("arch", ["textcnn", "embedbag", "bilstm"])
def test_student_trains_saves_and_reloads(tok_dir, data, tmp_path, arch):
    spec = TextStudentSpec(arch=arch, tokenizer=str(tok_dir), embed_dim=16, channels=8, kernel_sizes=[2, 3],
                           hidden=8)
    model = build_model(spec, data, seed=0)
    assert model.adapter_name == "text-student" and model.max_length == 16
    cfg = TrainConfig(epochs=20, lr=3e-2, batch_size=16, patience=0)
    res = get_step("train")(cfg, model, ctx_for(data, tmp_path))
    assert accuracy(res.model, data.test) >= 0.9
    res.model.save(tmp_path / arch)
    assert (tmp_path / arch / "model.safetensors").is_file() and (tmp_path / arch / "tokenizer.json").is_file()
    loaded = load_model(tmp_path / arch)
    np.testing.assert_array_equal(loaded.predict_proba(data.test.X), res.model.predict_proba(data.test.X))


def test_student_embeddings_start_from_the_teachers_principal_components(data, tmp_path):
    from transformers import BertModel

    bert = save_tiny_bert(tmp_path / "bert")
    table = BertModel.from_pretrained(str(bert)).get_input_embeddings().weight.detach().numpy().astype(np.float64)
    centred = table - table.mean(0)
    for dim in (8, 48):  # narrower than the table: the leading components; wider: all of them, then zeros
        spec = TextStudentSpec(tokenizer=str(bert), init_embeddings=str(bert), embed_dim=dim, channels=4)
        emb = build_model(spec, data, seed=0).torch_module().embedding.weight.detach().numpy().astype(np.float64)
        assert emb.shape == (table.shape[0], dim) and np.std(emb, ddof=1) == pytest.approx(1.0, rel=1e-4)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        k = min(dim, vt.shape[0])  # the table has min(vocabulary, hidden) components
        expected = centred @ vt[:k].T  # independent: numpy's SVD; components are defined up to sign
        np.testing.assert_allclose(np.abs(emb[:, :k] / np.std(emb)), np.abs(expected / np.std(
            np.pad(expected, ((0, 0), (0, dim - k))))), atol=1e-4)


def test_vocab_cut_keeps_the_training_tokens_and_reads_the_rest_as_unknown(data, tmp_path):
    import dataclasses

    from leanbench.models.hf import load_tokenizer

    bert = save_tiny_bert(tmp_path / "bert")
    tok = load_tokenizer(str(bert))
    keep = np.array([" superb" not in f" {x}" and " dull" not in f" {x}" for x in data.train.X])
    train = dataclasses.replace(data.train, X=data.train.X[keep], y=data.train.y[keep], ids=data.train.ids[keep])
    cut_data = dataclasses.replace(data, train=train)
    spec = dict(arch="bilstm", tokenizer=str(bert), init_embeddings=str(bert), embed_dim=8, hidden=8)
    full = build_model(TextStudentSpec(**spec), cut_data, seed=0)
    cut = build_model(TextStudentSpec(**spec, vocab="train"), cut_data, seed=0)
    assert cut.arch["vocab_size"] == len(tok) - 2 and cut.num_params() == full.num_params() - 2 * 8
    module = cut.torch_module()
    rows = module.rows(torch.arange(len(tok))).tolist()
    unk = rows[tok.unk_token_id]
    assert [i for i, r in enumerate(rows) if r == unk] == sorted([tok.unk_token_id,
                                                                  *tok.convert_tokens_to_ids(["superb", "dull"])])
    assert rows[tok.pad_token_id] == module.embedding.padding_idx
    with torch.no_grad():
        emb = module.embedding.weight
        assert emb.shape == (len(tok) - 2, 8) and float(emb.std()) == pytest.approx(1.0, rel=1e-4)
    unseen, unknown = (cut.predict_proba(np.array([f"the movie was {w}"], dtype=object)) for w in ("dull", "[UNK]"))
    np.testing.assert_array_equal(unseen, unknown)
    cfg = TrainConfig(epochs=20, lr=3e-2, batch_size=16, patience=0)
    res = get_step("train")(cfg, cut, ctx_for(cut_data, tmp_path))
    assert accuracy(res.model, data.test) >= 0.85  # test texts with the two unseen words included
    res.model.save(tmp_path / "cut")
    np.testing.assert_array_equal(load_model(tmp_path / "cut").predict_proba(data.test.X),
                                  res.model.predict_proba(data.test.X))


def test_init_embeddings_from_another_vocabulary_is_a_clear_error(tok_dir, data, tmp_path):
    from transformers import BertConfig, BertModel

    from leanbench.errors import ModelError

    BertModel(BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                         intermediate_size=64)).save_pretrained(str(tmp_path / "other"))
    spec = TextStudentSpec(tokenizer=str(tok_dir), init_embeddings=str(tmp_path / "other"), embed_dim=8)
    with pytest.raises(ModelError, match="has 99 token embeddings but the student's tokenizer has"):
        build_model(spec, data, seed=0)


@pytest.mark.parametrize("arch", ["textcnn", "bilstm"])
def test_student_predictions_do_not_depend_on_padding(tok_dir, data, arch):
    spec = TextStudentSpec(arch=arch, tokenizer=str(tok_dir), embed_dim=16, channels=8, kernel_sizes=[2, 5],
                           hidden=8)
    model = build_model(spec, data, seed=1)
    X = np.array(["good", "the movie was really quite a very dull story and plot"], dtype=object)
    alone = np.concatenate([model.predict_proba(X[i:i + 1]) for i in range(len(X))])
    np.testing.assert_allclose(model.predict_proba(X), alone, atol=1e-6)


def test_student_params_from_spec(tok_dir, data):
    spec = TextStudentSpec(tokenizer=str(tok_dir), embed_dim=16, channels=8, kernel_sizes=[2, 3])
    model = build_model(spec, data, seed=0)
    vocab = len(model.tokenizer)
    expected = vocab * 16 + (16 * 8 * 2 + 8) + (16 * 8 * 3 + 8) + (16 * 2 + 2)
    assert model.num_params() == expected


def test_bilstm_params_and_flops_from_its_shapes(tok_dir, data):
    from leanbench.measure.flops import flops_per_example

    e, h = 16, 8
    model = build_model(TextStudentSpec(arch="bilstm", tokenizer=str(tok_dir), embed_dim=e, hidden=h), data, seed=0)
    vocab = len(model.tokenizer)
    lstm = 2 * (4 * h * (e + h) + 2 * 4 * h)  # two directions: W_ih, W_hh and their two biases
    assert model.num_params() == vocab * e + lstm + (4 * h * h + h) + (h * 2 + 2)
    text = np.array(["the movie was good"], dtype=object)
    tokens = int(model.prepare(text)["attention_mask"].sum())
    got = flops_per_example(model, text)
    # per token and direction 2 * 4 gates * h * (e + h); the head once: 2 * (4h * h + h * 2)
    assert got["flops"] == tokens * 2 * (2 * 4 * h * (e + h)) + 2 * (4 * h * h + h * 2)
    assert "LSTM" in got["method"]


def test_kd_student_uses_cached_teacher_logits_and_same_budget(tok_dir, data, tmp_path):
    bert = save_tiny_bert(tmp_path / "bert")
    teacher = build_model(HFSpec(hf=str(bert)), data, seed=0)
    teacher = get_step("finetune")(FinetuneConfig(epochs=6, lr=3e-3, batch_size=16), teacher,
                                   ctx_for(data, tmp_path)).model
    ctx = ctx_for(data, tmp_path, lambda name: (teacher, "tkey"))
    spec = TextStudentSpec(tokenizer=str(tok_dir), embed_dim=16, channels=8, kernel_sizes=[2, 3])
    student = build_model(spec, data, seed=0)
    kd = get_step("distill")(DistillConfig(teacher="t", epochs=5, lr=1e-2, batch_size=16, patience=0,
                                           temperature=2.0), student, ctx)
    assert kd.info["teacher_logits"] == "computed" and cache_path(ctx.cache_dir, "tkey", data).is_file()
    hard = get_step("train")(TrainConfig(epochs=5, lr=1e-2, batch_size=16, patience=0), student, ctx)
    assert kd.info["steps"] == hard.info["steps"] == 5 * 6  # same budget: 96 examples / 16 per batch
    again = get_step("distill")(DistillConfig(teacher="t", epochs=1, lr=1e-2, batch_size=16), student, ctx)
    assert again.info["teacher_logits"] == "cached"
    cached = torch.from_numpy(teacher.logits(data.train.X))
    from safetensors.torch import load_file

    np.testing.assert_allclose(load_file(str(cache_path(ctx.cache_dir, "tkey", data)))["train"], cached, atol=1e-6)


# --------------------------------------------------------------------------- tf-idf + logistic regression
def test_tfidf_logreg_matches_sklearn_pipeline_and_round_trips(data, tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = build_model(TfidfLogRegSpec(ngram_max=2, C=[0.5, 4.0]), data, seed=0)
    res = get_step("train")(TrainConfig(), model, ctx_for(data, tmp_path))
    C = res.info["C"]
    assert set(res.info["validation_accuracy"]) == {0.5, 4.0}
    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(C=C, max_iter=1000, random_state=0))
    pipe.fit(list(data.train.X), data.train.y)
    ours = res.model.predict_proba(data.test.X)
    np.testing.assert_allclose(ours, pipe.predict_proba(list(data.test.X)), atol=1e-10)
    assert res.model.num_params() == pipe[-1].coef_.size + pipe[-1].intercept_.size
    res.model.save(tmp_path / "tfidf")
    assert not list((tmp_path / "tfidf").glob("*.pkl"))
    np.testing.assert_array_equal(load_model(tmp_path / "tfidf").predict_proba(data.test.X), ours)


def test_tfidf_multiclass_softmax_matches_sklearn(tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from leanbench.data.base import Split, TaskData

    rng = np.random.default_rng(0)
    words = [["red", "apple"], ["blue", "sky"], ["green", "grass"]]
    X = np.array([" ".join(rng.choice(words[k % 3] + ["the", "a", "is"], 4)) for k in range(90)], dtype=object)
    y = np.arange(90) % 3
    split = Split("train", X, y, np.arange(90).astype(str).astype(object))
    data = TaskData(split, Split("validation", X[:30], y[:30], split.ids[:30]),
                    Split("test", X[30:], y[30:], split.ids[30:]), ["a", "b", "c"], (), "toy")
    res = get_step("train")(TrainConfig(), build_model(TfidfLogRegSpec(C=2.0), data, 0), ctx_for(data, tmp_path))
    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(C=2.0, max_iter=1000))
    pipe.fit(list(X), y)
    np.testing.assert_allclose(res.model.predict_proba(X), pipe.predict_proba(list(X)), atol=1e-8)
