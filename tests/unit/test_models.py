"""The built-in torch models and their adapter: shapes, determinism, FLOPs, parameter counts, and
save/load round trips (safetensors only, bit-identical predictions) for every kind of model."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from safetensors import safe_open
from sklearn.datasets import load_digits, load_iris

from leanbench.data.base import Split, TaskData
from leanbench.errors import ModelError
from leanbench.models.base import dir_size_bytes, load_model
from leanbench.models.torch_models import (
    WEIGHTS_FILE,
    LowRankLinear,
    TorchAdapter,
    build_model,
    module_from_arch,
    normalize_arch,
    quantize_module,
    seeded_module,
)
from leanbench.plugins import adapter_class
from leanbench.study import CNNSpec, MLPSpec

torch.set_num_threads(1)


def _task(X: np.ndarray, y: np.ndarray, labels: list[str], source: str) -> TaskData:
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))
    parts = np.split(idx, [int(0.6 * len(y)), int(0.8 * len(y))])
    ids = np.array([f"{source}-{i}" for i in range(len(y))])
    splits = [Split(name, X[p], y[p], ids[p]) for name, p in zip(("train", "validation", "test"), parts,
                                                                  strict=True)]
    return TaskData(*splits, label_names=labels, input_shape=tuple(X.shape[1:]), source=source)


@pytest.fixture(scope="module")
def iris() -> TaskData:
    d = load_iris()
    X = ((d.data - d.data.mean(0)) / d.data.std(0)).astype(np.float32)
    return _task(X, d.target.astype(np.int64), list(d.target_names), "iris")


@pytest.fixture(scope="module")
def digits() -> TaskData:
    d = load_digits()
    X = (d.images[:300, None] / 16.0).astype(np.float32)  # (N, 1, 8, 8)
    return _task(X, d.target[:300].astype(np.int64), [str(i) for i in range(10)], "digits")


def _assert_round_trip(model: TorchAdapter, X: np.ndarray, tmp_path, monkeypatch) -> TorchAdapter:
    """Saves, loads with pickle and torch.load forbidden, and checks predictions are bit-identical."""
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["adapter.json", WEIGHTS_FILE]

    def forbidden(*args, **kwargs):
        raise AssertionError("loading a model must not unpickle")

    with monkeypatch.context() as m:
        m.setattr(torch, "load", forbidden)
        m.setattr(pickle, "load", forbidden)
        m.setattr(pickle, "loads", forbidden)
        loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, TorchAdapter)
    assert loaded.arch == model.arch and loaded.quantized == model.quantized
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.num_params() == model.num_params()
    assert loaded.nonzero_params() == model.nonzero_params()
    return loaded


# --------------------------------------------------------------------------- building
def test_registered_as_torch_adapter():
    assert adapter_class("torch") is TorchAdapter


def test_build_is_deterministic_in_seed(iris):
    a, b = build_model(MLPSpec(hidden=[8]), iris, 3), build_model(MLPSpec(hidden=[8]), iris, 3)
    c = build_model(MLPSpec(hidden=[8]), iris, 4)
    wa, wb, wc = (m.module.linears[0].weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_build_leaves_global_rng_alone(iris):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_model(MLPSpec(hidden=[8]), iris, 0)
    assert torch.equal(torch.rand(3), expected)


def test_mlp_flattens_images_and_cnn_shape(digits):
    mlp = build_model(MLPSpec(hidden=[32, 16]), digits, 0)
    assert mlp.arch == {"arch": "mlp", "in_features": 64, "hidden": [32, 16], "n_classes": 10,
                        "dropout": 0.0, "ranks": [None, None, None]}
    cnn = build_model(CNNSpec(channels=[4, 8], fc_hidden=16), digits, 0)
    # 8x8 -> pool 4x4 -> pool 2x2: fc in = 8 * 2 * 2
    assert cnn.module.linears[0].in_features == 32
    for model in (mlp, cnn):
        p = model.predict_proba(digits.test.X)
        assert p.shape == (len(digits.test), 10) and p.dtype == np.float64
        np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-12)


def test_cnn_pools_only_while_spatial_size_allows():
    arch = normalize_arch({"arch": "cnn", "in_shape": [1, 4, 4], "channels": [2, 2, 2, 2], "fc_hidden": 4,
                           "n_classes": 3})
    module = module_from_arch(arch)
    assert module.pools == (True, True, False, False)
    assert module(torch.zeros(5, 1, 4, 4)).shape == (5, 3)


def test_predictions_do_not_depend_on_batch_size(digits):
    cnn = build_model(CNNSpec(channels=[4], fc_hidden=8), digits, 0)
    # float32 kernels may block a batch of 7 and one of 1,000 differently (seen: 4e-9 apart under load), so
    # the check is at float32 resolution; a real batch dependence (batch norm in train mode, padding) is >1e-3
    np.testing.assert_allclose(cnn.predict_proba(digits.test.X, batch_size=7),
                               cnn.predict_proba(digits.test.X, batch_size=1000), rtol=0, atol=1e-6)


def test_cnn_on_tabular_data_is_a_model_error(iris):
    with pytest.raises(ModelError, match="cnn.*needs image inputs"):
        build_model(CNNSpec(), iris, 0)


def test_text_data_is_a_model_error():
    X = np.array(["a b", "c d", "e f"], dtype=object)
    s = Split("train", X, np.array([0, 1, 0]), np.array(["0", "1", "2"]))
    data = TaskData(s, s, s, ["x", "y"], (), "text")
    with pytest.raises(ModelError, match="numeric features or images"):
        build_model(MLPSpec(), data, 0)


def test_bad_arch_dicts_are_model_errors():
    with pytest.raises(ModelError, match="3 Linear layers but 2 ranks"):
        normalize_arch({"arch": "mlp", "in_features": 4, "hidden": [3, 3], "n_classes": 2,
                        "ranks": [None, 2]})
    with pytest.raises(ModelError, match="unknown torch model arch 'rnn'"):
        normalize_arch({"arch": "rnn"})
    with pytest.raises(ModelError, match="lacks hidden"):
        normalize_arch({"arch": "mlp", "in_features": 4, "n_classes": 2})


def test_prepare_rejects_wrong_shapes(iris):
    model = build_model(MLPSpec(hidden=[8]), iris, 0)
    with pytest.raises(ModelError, match=r"expects examples of shape \(4,\)"):
        model.prepare(np.zeros((2, 5), dtype=np.float32))


# --------------------------------------------------------------------------- counting
def test_param_counts_and_flops_match_formulas(digits):
    mlp = build_model(MLPSpec(hidden=[32, 16]), digits, 0)
    assert mlp.num_params() == 64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10
    assert mlp.flops_per_example() == 2 * (64 * 32 + 32 * 16 + 16 * 10)
    cnn = build_model(CNNSpec(channels=[4, 8], fc_hidden=16), digits, 0)
    conv = 2 * (4 * 1 * 9 * 8 * 8 + 8 * 4 * 9 * 4 * 4)  # 2 per multiply-add, at 8x8 then 4x4
    assert cnn.flops_per_example() == conv + 2 * (32 * 16 + 16 * 10)


def test_low_rank_layers_count_and_compute_as_factorised():
    arch = {"arch": "mlp", "in_features": 20, "hidden": [30], "n_classes": 3, "ranks": [4, None]}
    module = seeded_module(arch, 0)
    assert isinstance(module.linears[0], LowRankLinear)
    model = TorchAdapter(module, arch, (20,))
    assert model.num_params() == 20 * 4 + 4 * 30 + 30 + 30 * 3 + 3
    assert model.flops_per_example() == 2 * (20 * 4 + 4 * 30 + 30 * 3)


def test_nonzero_params_counts_zeros(iris):
    model = build_model(MLPSpec(hidden=[8]), iris, 0)
    with torch.no_grad():
        model.module.linears[0].weight[:2].zero_()
    assert model.nonzero_params() == model.num_params() - 2 * 4


def test_quantized_model_counts_like_fp32(digits):
    model = build_model(MLPSpec(hidden=[32]), digits, 0)
    q = TorchAdapter(quantize_module(model.module), model.arch, model.input_shape, "dynamic-int8")
    assert q.num_params() == model.num_params()
    assert q.flops_per_example() == model.flops_per_example()
    # quantized weights that round to the zero point count as zeros; biases stay fp32
    zeros = 0
    for layer in q.module.linears:
        w = layer.weight()
        zeros += int((w.int_repr().int() == w.q_zero_point()).sum())
    assert q.nonzero_params() == q.num_params() - zeros


# --------------------------------------------------------------------------- save / load
def test_round_trip_mlp(iris, tmp_path, monkeypatch):
    model = build_model(MLPSpec(hidden=[16, 8], dropout=0.2), iris, 0)
    loaded = _assert_round_trip(model, iris.test.X, tmp_path, monkeypatch)
    assert loaded.describe()["arch"]["dropout"] == 0.2
    info = json.loads((tmp_path / "m" / "adapter.json").read_text())
    assert info["adapter"] == "torch" and info["input_shape"] == [4] and info["quantized"] is None


def test_round_trip_cnn(digits, tmp_path, monkeypatch):
    model = build_model(CNNSpec(channels=[4, 8], fc_hidden=16), digits, 0)
    _assert_round_trip(model, digits.test.X, tmp_path, monkeypatch)


def test_round_trip_low_rank_and_sparse(digits, tmp_path, monkeypatch):
    arch = {"arch": "mlp", "in_features": 64, "hidden": [24, 12], "n_classes": 10, "ranks": [5, None, 3]}
    model = TorchAdapter(seeded_module(arch, 1), arch, (1, 8, 8))
    with torch.no_grad():
        model.module.linears[1].weight[model.module.linears[1].weight.abs() < 0.1] = 0.0
    _assert_round_trip(model, digits.test.X, tmp_path, monkeypatch)


@pytest.mark.parametrize("arch", [
    {"arch": "mlp", "in_features": 64, "hidden": [24, 12], "n_classes": 10, "ranks": [5, None, None]},
    {"arch": "cnn", "in_shape": [1, 8, 8], "channels": [3], "fc_hidden": 10, "n_classes": 10},
])
def test_round_trip_quantized(arch, digits, tmp_path, monkeypatch):
    fp32 = TorchAdapter(seeded_module(arch, 2), arch, (1, 8, 8))
    q = TorchAdapter(quantize_module(fp32.module), arch, (1, 8, 8), quantized="dynamic-int8")
    assert not np.array_equal(q.predict_proba(digits.test.X), fp32.predict_proba(digits.test.X))
    _assert_round_trip(q, digits.test.X, tmp_path, monkeypatch)
    with safe_open(str(tmp_path / "m" / WEIGHTS_FILE), "pt") as f:
        dtypes = {k: f.get_tensor(k).dtype for k in f.keys()}
    assert dtypes["linears.1.weight_int8"] == torch.int8
    assert dtypes["linears.1.bias"] == torch.float32


def test_load_rejects_weights_that_do_not_fit_the_arch(iris, tmp_path):
    build_model(MLPSpec(hidden=[8]), iris, 0).save(tmp_path / "m")
    info = json.loads((tmp_path / "m" / "adapter.json").read_text())
    info["arch"]["hidden"] = [9]
    (tmp_path / "m" / "adapter.json").write_text(json.dumps(info))
    with pytest.raises(ModelError, match="has shape"):
        load_model(tmp_path / "m")


def test_load_without_weights_is_a_model_error(iris, tmp_path):
    build_model(MLPSpec(hidden=[8]), iris, 0).save(tmp_path / "m")
    (tmp_path / "m" / WEIGHTS_FILE).unlink()
    with pytest.raises(ModelError, match="no model.safetensors"):
        load_model(tmp_path / "m")


def test_quantized_file_is_small(digits, tmp_path):
    arch = {"arch": "mlp", "in_features": 64, "hidden": [256, 256], "n_classes": 10}
    fp32 = TorchAdapter(seeded_module(arch, 0), arch, (1, 8, 8))
    q = TorchAdapter(quantize_module(fp32.module), arch, (1, 8, 8), quantized="dynamic-int8")
    fp32.save(tmp_path / "fp32")
    q.save(tmp_path / "int8")
    assert dir_size_bytes(tmp_path / "int8") < 0.3 * dir_size_bytes(tmp_path / "fp32")
