"""The five build steps on tiny real models: train, distill (with its teacher-logit cache), prune
(magnitude and structured), quantize and low-rank, and save/load round trips of what they build."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import log_softmax, softmax
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score

from leanbench.compress._training import cross_entropy, evaluate_loss, split_tensors
from leanbench.compress.base import StepContext, get_step
from leanbench.compress.kd import cache_path, distillation_loss
from leanbench.compress.lowrank import choose_rank
from leanbench.compress.masks import prunable_weights
from leanbench.data.base import Split, TaskData
from leanbench.errors import ModelError
from leanbench.models.base import dir_size_bytes, load_model
from leanbench.models.torch_models import TorchAdapter, build_model, seeded_module
from leanbench.study import (
    CNNSpec,
    DistillConfig,
    LowRankConfig,
    MLPSpec,
    PruneConfig,
    QuantizeConfig,
    TrainConfig,
)

torch.set_num_threads(1)
FAST = TrainConfig(epochs=15, batch_size=32, lr=5e-3, patience=0)


def _task(X: np.ndarray, y: np.ndarray, n_classes: int, source: str) -> TaskData:
    idx = np.random.default_rng(0).permutation(len(y))
    parts = np.split(idx, [int(0.6 * len(y)), int(0.8 * len(y))])
    ids = np.array([f"{source}-{i}" for i in range(len(y))])
    names = ("train", "validation", "test")
    splits = [Split(n, X[p], y[p], ids[p]) for n, p in zip(names, parts, strict=True)]
    return TaskData(*splits, label_names=[str(i) for i in range(n_classes)], input_shape=tuple(X.shape[1:]),
                    source=source)


@pytest.fixture(scope="module")
def blobs() -> TaskData:
    """200 examples, 3 Gaussian classes in 6 dimensions (means 2.5 apart): easy but not trivial."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200)
    centers = rng.normal(0, 2.5, (3, 6))
    X = (centers[y] + rng.normal(0, 1.0, (200, 6))).astype(np.float32)
    return _task(X, y.astype(np.int64), 3, "blobs")


@pytest.fixture(scope="module")
def digits() -> TaskData:
    d = load_digits()
    X = (d.images[:400, None] / 16.0).astype(np.float32)
    return _task(X, d.target[:400].astype(np.int64), 10, "digits")


def ctx_for(data: TaskData, tmp_path: Path, teachers: dict | None = None,
            log: list | None = None) -> StepContext:
    def teacher(name: str):
        return teachers[name]

    def progress(done: int, total: int, info: str) -> None:
        if log is not None:
            log.append((done, total, info))

    return StepContext(data=data, seed=0, cache_dir=tmp_path / "cache", teacher=teacher, progress=progress)


def accuracy(model, split: Split) -> float:
    return accuracy_score(split.y, model.predict_proba(split.X).argmax(1))


def run(step: str, cfg, model, ctx):
    return get_step(step)(cfg, model, ctx)


@pytest.fixture(scope="module")
def trained_blobs(blobs, tmp_path_factory):
    model = build_model(MLPSpec(hidden=[32, 16]), blobs, 0)
    return run("train", FAST, model, ctx_for(blobs, tmp_path_factory.mktemp("t"))).model


@pytest.fixture(scope="module")
def trained_digits_mlp(digits, tmp_path_factory):
    model = build_model(MLPSpec(hidden=[128, 64]), digits, 0)
    return run("train", FAST, model, ctx_for(digits, tmp_path_factory.mktemp("t"))).model


def assert_round_trip(model: TorchAdapter, X: np.ndarray, path: Path) -> TorchAdapter:
    model.save(path)
    assert sorted(p.name for p in path.iterdir()) == ["adapter.json", "model.safetensors"]
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    return loaded


# --------------------------------------------------------------------------- train
def test_train_learns_reports_and_is_deterministic(blobs, tmp_path):
    log: list = []
    model = build_model(MLPSpec(hidden=[32, 16]), blobs, 0)
    before = accuracy(model, blobs.test)
    result = run("train", FAST, model, ctx_for(blobs, tmp_path, log=log))
    assert accuracy(result.model, blobs.test) >= 0.9 > before
    assert result.model is not model  # the input model is not changed
    assert accuracy(model, blobs.test) == before
    info = result.info
    assert [d for d, _, _ in log] == list(range(1, info["epochs_run"] + 1))
    assert all(t == FAST.epochs for _, t, _ in log) and "loss" in log[0][2]
    # the best weights are restored: their validation loss is the one reported
    val = split_tensors(result.model, blobs.validation)
    val_loss = evaluate_loss(result.model.module, val, cross_entropy)
    assert val_loss == pytest.approx(info["best_val_loss"], rel=1e-6)
    # FLOPs: 3 x forward per training example seen + validation forwards (before training and per epoch)
    fwd = 2 * (6 * 32 + 32 * 16 + 16 * 3)
    epochs = info["epochs_run"]
    assert result.flops == 3 * fwd * len(blobs.train) * epochs + fwd * len(blobs.validation) * (epochs + 1)
    again = run("train", FAST, build_model(MLPSpec(hidden=[32, 16]), blobs, 0), ctx_for(blobs, tmp_path))
    X = blobs.test.X
    np.testing.assert_array_equal(again.model.predict_proba(X), result.model.predict_proba(X))


def test_train_stops_early_on_validation_loss(blobs, tmp_path):
    cfg = TrainConfig(epochs=200, batch_size=16, lr=0.05, patience=2, seed=1)
    result = run("train", cfg, build_model(MLPSpec(hidden=[64, 64]), blobs, 0), ctx_for(blobs, tmp_path))
    info = result.info
    assert info["epochs_run"] < 200
    assert info["epochs_run"] == info["best_epoch"] + 2


def test_train_seed_from_config_overrides_context(blobs, tmp_path):
    def train(seed):
        cfg = TrainConfig(epochs=2, batch_size=16, patience=0, seed=seed)
        return run("train", cfg, build_model(MLPSpec(hidden=[8]), blobs, 0), ctx_for(blobs, tmp_path))

    p0, p1 = (train(s).model.predict_proba(blobs.test.X) for s in (0, 1))
    assert not np.array_equal(p0, p1)


def test_train_without_model_or_on_quantized_model_is_a_model_error(trained_blobs, blobs, tmp_path):
    ctx = ctx_for(blobs, tmp_path)
    with pytest.raises(ModelError, match="'train' needs a model"):
        run("train", FAST, None, ctx)
    q = run("quantize", QuantizeConfig(), trained_blobs, ctx).model
    with pytest.raises(ModelError, match="'train' cannot change a quantized model"):
        run("train", FAST, q, ctx)


def test_train_cnn_on_digits(digits, tmp_path):
    cnn = build_model(CNNSpec(channels=[4, 8], fc_hidden=16), digits, 0)
    cfg = TrainConfig(epochs=8, batch_size=32, lr=1e-2, patience=0)
    result = run("train", cfg, cnn, ctx_for(digits, tmp_path))
    assert accuracy(result.model, digits.test) > 0.6  # chance is 0.1


# --------------------------------------------------------------------------- distill
def test_distillation_loss_matches_formula():
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(5, 4)), rng.normal(size=(5, 4)) * 3
    y = rng.integers(0, 4, 5)
    T, alpha = 2.5, 0.3
    p_t, log_p_t, log_p_s = softmax(t / T, 1), log_softmax(t / T, 1), log_softmax(s / T, 1)
    kl = (p_t * (log_p_t - log_p_s)).sum(1).mean()
    ce = -log_softmax(s, 1)[np.arange(5), y].mean()
    expected = alpha * T * T * kl + (1 - alpha) * ce
    got = distillation_loss(torch.tensor(s), torch.tensor(y), torch.tensor(t), T, alpha)
    assert float(got) == pytest.approx(expected, rel=1e-10)


def test_distill_creates_then_reuses_the_teacher_cache(trained_blobs, blobs, tmp_path):
    calls = []
    original = trained_blobs.forward

    class CountingTeacher(TorchAdapter):
        def forward(self, inputs):
            calls.append(len(inputs))
            return original(inputs)

    teacher = CountingTeacher(trained_blobs.module, trained_blobs.arch, trained_blobs.input_shape)
    ctx = ctx_for(blobs, tmp_path, teachers={"big": (teacher, "cellkey1")})
    cfg = DistillConfig(teacher="big", epochs=15, batch_size=32, lr=5e-3, patience=0, temperature=2.0)

    first = run("distill", cfg, build_model(MLPSpec(hidden=[8]), blobs, 0), ctx)
    path = cache_path(ctx.cache_dir, "cellkey1", blobs)
    assert path.is_file() and path.name.startswith("teacher-logits-cellkey1-")
    assert first.info["teacher_logits"] == "computed"
    assert sum(calls) == len(blobs.train) + len(blobs.validation)
    assert accuracy(first.model, blobs.test) >= 0.85

    mtime = path.stat().st_mtime_ns
    second = run("distill", cfg, build_model(MLPSpec(hidden=[8]), blobs, 0), ctx)
    assert second.info["teacher_logits"] == "cached"
    assert sum(calls) == len(blobs.train) + len(blobs.validation)  # no teacher forward the second time
    assert path.stat().st_mtime_ns == mtime
    # same result either way; the teacher's forwards are billed only when computed
    X = blobs.test.X
    np.testing.assert_array_equal(first.model.predict_proba(X), second.model.predict_proba(X))
    teacher_flops = 2 * (6 * 32 + 32 * 16 + 16 * 3) * (len(blobs.train) + len(blobs.validation))
    assert first.flops - second.flops == teacher_flops
    assert [p.name for p in ctx.cache_dir.iterdir()] == [path.name]  # no temp file left


def test_distill_with_alpha_zero_is_plain_training(trained_blobs, blobs, tmp_path):
    ctx = ctx_for(blobs, tmp_path, teachers={"big": (trained_blobs, "k")})
    kw = {"epochs": 3, "batch_size": 32, "patience": 0}
    student = MLPSpec(hidden=[8])
    d = run("distill", DistillConfig(teacher="big", alpha=0.0, **kw), build_model(student, blobs, 0), ctx)
    t = run("train", TrainConfig(**kw), build_model(student, blobs, 0), ctx)
    X = blobs.test.X
    np.testing.assert_allclose(d.model.predict_proba(X), t.model.predict_proba(X), atol=1e-6)


# --------------------------------------------------------------------------- prune
def test_magnitude_prune_reaches_sparsity_and_keeps_mask_through_finetune(trained_blobs, blobs, tmp_path):
    ctx = ctx_for(blobs, tmp_path)
    cfg = PruneConfig(method="magnitude", sparsity=0.7)
    result = run("prune", cfg, trained_blobs, ctx)
    weights = prunable_weights(result.model.module)
    n = sum(w.numel() for w in weights.values())
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    assert zeros == round(0.7 * n) and result.info["sparsity"] == pytest.approx(0.7, abs=0.5 / n)
    assert result.model.nonzero_params() == trained_blobs.nonzero_params() - zeros
    assert result.info["params_after"] == result.info["params_before"] == trained_blobs.num_params()
    # the zeroed weights are the smallest in magnitude, over all layers together
    orig = torch.cat([w.detach().abs().flatten() for w in prunable_weights(trained_blobs.module).values()])
    kept = torch.cat([w.detach().flatten() for w in weights.values()]) != 0
    assert orig[~kept].max() <= orig[kept].min()

    tuned = run("prune", cfg.model_copy(update={"finetune": FAST}), trained_blobs, ctx)
    for name, w in prunable_weights(tuned.model.module).items():
        assert torch.equal(w == 0, weights[name] == 0), name  # same mask after fine-tuning
    assert not torch.equal(tuned.model.module.linears[0].weight, result.model.module.linears[0].weight)
    assert tuned.info["finetune"]["epochs_run"] >= 1 and tuned.flops > 0
    assert accuracy(tuned.model, blobs.test) >= 0.85
    assert_round_trip(tuned.model, blobs.test.X, tmp_path / "saved")


def _dense_equivalent(model: TorchAdapter, sparsity: float) -> TorchAdapter:
    """The dense model with the units that structured pruning removes zeroed (their ReLU output is then 0,
    so it computes what the pruned model computes). Units are ranked here with numpy, independently."""
    dense = model.copy()
    layers = [*getattr(dense.module, "convs", []), dense.module.linears[0]] if dense.arch["arch"] == "cnn" \
        else list(dense.module.linears)[:-1]
    with torch.no_grad():
        for layer in layers:
            w = layer.weight.detach().numpy().reshape(layer.weight.shape[0], -1).astype(np.float64)
            score = np.sqrt((w ** 2).sum(1) + layer.bias.detach().numpy().astype(np.float64) ** 2)
            k = max(1, math.floor((1 - sparsity) * len(score) + 0.5))
            drop = np.argsort(-score, kind="stable")[k:]
            layer.weight[drop] = 0.0
            layer.bias[drop] = 0.0
    return dense


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_structured_prune_shrinks_model_and_file(kind, digits, trained_digits_mlp, tmp_path):
    ctx = ctx_for(digits, tmp_path)
    if kind == "mlp":
        model = trained_digits_mlp
    else:
        cnn = build_model(CNNSpec(channels=[8, 16], fc_hidden=32), digits, 0)
        model = run("train", TrainConfig(epochs=3, batch_size=32, lr=1e-2, patience=0), cnn, ctx).model
    result = run("prune", PruneConfig(method="structured", sparsity=0.5), model, ctx)
    pruned = result.model
    if kind == "mlp":
        assert pruned.arch["hidden"] == [64, 32]
    else:
        assert pruned.arch["channels"] == [4, 8] and pruned.arch["fc_hidden"] == 16
    assert pruned.num_params() < 0.5 * model.num_params()
    assert result.info["params_after"] == pruned.num_params()
    assert result.info["sparsity"] == pytest.approx(1 - pruned.num_params() / model.num_params())
    # it computes exactly what the dense model computes with the removed units silenced
    X = digits.test.X
    np.testing.assert_allclose(pruned.predict_proba(X), _dense_equivalent(model, 0.5).predict_proba(X),
                               rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "before")
    assert_round_trip(pruned, X, tmp_path / "after")
    assert dir_size_bytes(tmp_path / "after") < 0.55 * dir_size_bytes(tmp_path / "before")


def test_structured_prune_with_zero_sparsity_changes_nothing(trained_blobs, blobs, tmp_path):
    cfg = PruneConfig(method="structured", sparsity=0.0)
    result = run("prune", cfg, trained_blobs, ctx_for(blobs, tmp_path))
    assert result.model.arch == trained_blobs.arch
    X = blobs.test.X
    np.testing.assert_array_equal(result.model.predict_proba(X), trained_blobs.predict_proba(X))


def test_structured_prune_with_finetune_recovers(trained_digits_mlp, digits, tmp_path):
    cfg = PruneConfig(method="structured", sparsity=0.8, finetune=TrainConfig(epochs=5, lr=5e-3, patience=0))
    result = run("prune", cfg, trained_digits_mlp, ctx_for(digits, tmp_path))
    assert result.model.arch["hidden"] == [26, 13]
    assert accuracy(result.model, digits.test) >= accuracy(trained_digits_mlp, digits.test) - 0.1


def test_prune_quantized_model_is_a_model_error(trained_blobs, blobs, tmp_path):
    ctx = ctx_for(blobs, tmp_path)
    q = run("quantize", QuantizeConfig(), trained_blobs, ctx).model
    with pytest.raises(ModelError, match="'prune' cannot change a quantized model"):
        run("prune", PruneConfig(), q, ctx)


# --------------------------------------------------------------------------- quantize
def test_quantize_shrinks_file_keeps_accuracy_and_round_trips(trained_digits_mlp, digits, tmp_path):
    result = run("quantize", QuantizeConfig(), trained_digits_mlp, ctx_for(digits, tmp_path))
    q = result.model
    assert q.quantized == "dynamic-int8" and result.flops == 0.0
    assert result.info["quantized_layers"] == ["linears.0", "linears.1", "linears.2"]
    assert q.num_params() == trained_digits_mlp.num_params()
    assert abs(accuracy(q, digits.test) - accuracy(trained_digits_mlp, digits.test)) <= 0.03
    trained_digits_mlp.save(tmp_path / "fp32")
    assert_round_trip(q, digits.test.X, tmp_path / "int8")
    assert dir_size_bytes(tmp_path / "int8") < 0.4 * dir_size_bytes(tmp_path / "fp32")


def test_quantize_cnn_keeps_convs_fp32_and_refuses_twice(digits, tmp_path):
    ctx = ctx_for(digits, tmp_path)
    cnn = build_model(CNNSpec(channels=[4], fc_hidden=8), digits, 0)
    result = run("quantize", QuantizeConfig(), cnn, ctx)
    assert result.info["fp32_layers"] == ["convs.0"] and "conv layers stay fp32" in result.info["note"]
    assert_round_trip(result.model, digits.test.X, tmp_path / "q")
    with pytest.raises(ModelError, match="already quantized"):
        run("quantize", QuantizeConfig(), result.model, ctx)


# --------------------------------------------------------------------------- lowrank
def test_choose_rank_matches_numpy_energy():
    s = np.linalg.svd(np.random.default_rng(0).normal(size=(30, 20)), compute_uv=False)
    energy = np.cumsum(s ** 2) / (s ** 2).sum()
    for e in (0.5, 0.9, 0.99):
        assert choose_rank(torch.tensor(s), None, e) == int(np.argmax(energy >= e)) + 1
    assert choose_rank(torch.tensor(s), None, 1.0) == 20
    assert choose_rank(torch.tensor(s), 50, None) == 20


def test_lowrank_full_energy_reproduces_a_low_rank_layer(blobs, tmp_path):
    arch = {"arch": "mlp", "in_features": 6, "hidden": [64, 64], "n_classes": 3}
    model = TorchAdapter(seeded_module(arch, 0), arch, (6,))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # the middle layer has rank exactly 4
        low = torch.randn(64, 4, generator=g) @ torch.randn(4, 64, generator=g) / 8
        model.module.linears[1].weight.copy_(low)
    result = run("lowrank", LowRankConfig(energy=1.0), model, ctx_for(blobs, tmp_path))
    assert result.info["ranks"] == [None, 4, None]  # full-rank layers would not save parameters
    assert result.info["params_after"] == model.num_params() - 64 * 64 + 4 * 128
    np.testing.assert_allclose(result.model.predict_proba(blobs.test.X), model.predict_proba(blobs.test.X),
                               atol=1e-5)


def test_lowrank_small_rank_reduces_params_and_round_trips(trained_digits_mlp, digits, tmp_path):
    ctx = ctx_for(digits, tmp_path)
    result = run("lowrank", LowRankConfig(rank=8), trained_digits_mlp, ctx)
    assert result.model.arch["ranks"] == [8, 8, 8]  # 64x10 at rank 8: 8 * 74 < 640
    assert result.info["params_after"] == result.model.num_params() < 0.5 * trained_digits_mlp.num_params()
    assert result.info["layers"][0]["energy_kept"] < 1.0
    assert accuracy(result.model, digits.test) > 0.5
    assert_round_trip(result.model, digits.test.X, tmp_path / "lr")
    # already factorised layers are left alone; then the factorised model can be pruned and quantized
    again = run("lowrank", LowRankConfig(rank=4), result.model, ctx)
    assert again.model.arch["ranks"] == [8, 8, 8]
    assert "already factorised" in again.info["layers"][0]["status"]
    pruned = run("prune", PruneConfig(method="structured", sparsity=0.5), result.model, ctx).model
    assert pruned.arch["hidden"] == [64, 32] and pruned.arch["ranks"] == [8, 8, 8]
    q = run("quantize", QuantizeConfig(), pruned, ctx).model
    assert_round_trip(q, digits.test.X, tmp_path / "lr-pruned-int8")


def test_lowrank_with_finetune(trained_digits_mlp, digits, tmp_path):
    cfg = LowRankConfig(rank=4, finetune=TrainConfig(epochs=3, lr=5e-3, patience=0))
    result = run("lowrank", cfg, trained_digits_mlp, ctx_for(digits, tmp_path))
    assert result.info["finetune"]["epochs_run"] == 3 and result.flops > 0


def test_lowrank_on_quantized_model_is_a_model_error(trained_blobs, blobs, tmp_path):
    ctx = ctx_for(blobs, tmp_path)
    q = run("quantize", QuantizeConfig(), trained_blobs, ctx).model
    with pytest.raises(ModelError, match="'lowrank' cannot change a quantized model"):
        run("lowrank", LowRankConfig(rank=2), q, ctx)
