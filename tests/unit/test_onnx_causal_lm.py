"""Causal LMs on ONNX Runtime (family onnx-causal-lm): the tiny Llama exported with its KV cache scores and
generates as PyTorch does; the int8 and int4 (MatMulNBits) files are smaller and still close; a broken file is one
clear message. The TorchScript exporter runs here (fast); the dynamo one in a test marked slow."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from tiny_lm import build_tiny_lm, sentences  # noqa: E402

from leanbench.compress.base import StepContext  # noqa: E402
from leanbench.errors import ModelError  # noqa: E402
from leanbench.models.base import load_model  # noqa: E402
from leanbench.models.causal_lm import load_hf_causal_lm  # noqa: E402
from leanbench.models.onnx_causal_lm import ONNX_FILE, OnnxCausalLMAdapter, onnx_from_causal_lm  # noqa: E402
from leanbench.plugins import apply_step  # noqa: E402
from leanbench.study import QuantizeConfig  # noqa: E402

REQUESTS = [("The cat sees", " the big dog"), ("The cat sees", " a fish"), ("The cat sees", " it"),
            ("A red car ", "runs fast."), ("", "The sun and the moon"), ("Why", " x")]
TEXTS = [" ".join(sentences(40, seed=3)), "The cat.", "A small dog sees the old tree near the river."]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    lm = load_hf_causal_lm(str(build_tiny_lm(tmp_path_factory.mktemp("lm"))))
    return lm, onnx_from_causal_lm(lm, exporter="torchscript")


def _ctx(tmp: Path) -> StepContext:
    return StepContext(data=None, seed=0, cache_dir=tmp, teacher=lambda name: None)


def test_export_is_checked_and_leaves_the_model_in_eval_mode(models):
    lm, ort = models
    assert not lm.model.training
    assert ort.info["exporter"] == "torchscript" and ort.info["max_abs_logit_diff"] < 1e-4
    names = [i.name for i in ort.session.get_inputs()]
    assert names[:4] == ["input_ids", "attention_mask", "position_ids", "logits_to_keep"]
    assert "past_key_values.1.value" in names and "present.1.value" in [o.name for o in ort.session.get_outputs()]


def test_log_likelihoods_equal_pytorch(models):
    lm, ort = models
    want, got = lm.loglikelihood(REQUESTS), ort.loglikelihood(REQUESTS)
    np.testing.assert_allclose([g[0] for g in got], [w[0] for w in want], atol=1e-4, rtol=0)
    assert [g[1] for g in got] == [w[1] for w in want]
    # one question per run, unpacked requests (one row each, empty cache): the same numbers
    for kw in ({"batch_size": 1}, {"pack": False}):
        np.testing.assert_allclose([g[0] for g in ort.loglikelihood(REQUESTS, **kw)], [w[0] for w in want],
                                   atol=1e-4, rtol=0)


def test_rolling_log_likelihoods_equal_pytorch(models):
    lm, ort = models
    want = lm.loglikelihood_rolling(TEXTS, max_length=40)  # the long text needs several windows
    got = ort.loglikelihood_rolling(TEXTS, max_length=40)
    assert [n for _, n in got] == [n for _, n in want]
    np.testing.assert_allclose([g for g, _ in got], [w for w, _ in want], atol=1e-4, rtol=0)


def test_greedy_generation_equals_pytorch_token_for_token(models):
    lm, ort = models
    prompts = lm.encode(["The cat sees", "A", "Why does the big red car run"])  # left padding in one batch
    want = lm.generate_greedy(prompts, 12)
    steps = []
    assert ort.generate_greedy(prompts, 12, on_step=steps.append) == want and steps == list(range(12))
    stop = {want[0][3]}
    assert ort.generate_greedy(prompts, 12, stop_ids=stop) == lm.generate_greedy(prompts, 12, stop_ids=stop)
    with pytest.raises(ModelError, match="max_new_tokens"):
        ort.generate_greedy(prompts, 0)


def test_threads_latency_forward_and_save_load(models, tmp_path: Path):
    lm, ort = models
    ids = ort.prepare(np.array(["The cat sees the dog.", "A"], dtype=object))
    assert ids.shape == (2, 64)
    want = lm.forward(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(ort.forward(ids), want, atol=1e-4)
    assert ort.set_threads(2) == 2
    np.testing.assert_allclose(ort.forward(ids), want, atol=1e-4)
    ort.set_threads(1)
    ort.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, OnnxCausalLMAdapter) and loaded.max_length == lm.max_length
    assert loaded.loglikelihood(REQUESTS) == ort.loglikelihood(REQUESTS)
    assert loaded.describe()["onnx_bytes"] == (tmp_path / "m" / ONNX_FILE).stat().st_size
    # the tied embedding is stored twice by the exporter (the Gather table and the head's transposed copy)
    assert loaded.num_params() >= lm.num_params()


@pytest.mark.parametrize(("method", "max_ratio", "tol"), [
    # file size vs the fp32 ONNX file (measured 0.75 and 0.63: the tiny model is mostly its fp32 embedding table);
    # mean |Δ log p| per token vs fp32 on the tiny random Llama (weights N(0, 0.3); measured: int8 0.03 nats, int4
    # 0.34 nats, int8 activations included: MatMulNBits accuracy_level 4)
    ("onnxruntime-dynamic-int8", 0.80, 0.1),
    ("onnxruntime-int4", 0.70, 0.6),
])
def test_quantized_files_are_smaller_and_close(models, tmp_path: Path, method: str, max_ratio: float, tol: float):
    lm, ort = models
    result = apply_step("quantize", QuantizeConfig(method=method), ort, _ctx(tmp_path))
    q = result.model
    assert q.adapter_name == "onnx-causal-lm" and q.info["quantization"] == method
    assert q.path.stat().st_size < max_ratio * ort.path.stat().st_size
    assert q.num_params() == ort.num_params()
    fp, got = ort.loglikelihood(REQUESTS), q.loglikelihood(REQUESTS)
    tokens = [len(c) for _, c in ort.encode_requests(REQUESTS)]
    per_token = np.abs(np.array([g[0] for g in got]) - np.array([f[0] for f in fp])) / tokens
    assert per_token.mean() < tol
    if method == "onnxruntime-int4":
        import onnx

        nodes = [n for n in onnx.load(str(q.path)).graph.node if n.op_type == "MatMulNBits"]
        assert len(nodes) == result.info["quantized_matmuls"] == 15  # 7 per layer + the head
        assert {a.i for n in nodes for a in n.attribute if a.name == "block_size"} == {32}
    with pytest.raises(ModelError, match="already quantized"):
        apply_step("quantize", QuantizeConfig(method=method), q, _ctx(tmp_path))
    assert len(q.generate_greedy(lm.encode(["The cat"]), 4)[0]) == 4


def test_step_from_the_pytorch_model_exports_then_quantizes(models, tmp_path: Path):
    lm, ort = models
    result = apply_step("quantize", QuantizeConfig(method="onnxruntime-int4", exporter="torchscript"), lm,
                        _ctx(tmp_path))
    assert result.model.adapter_name == "onnx-causal-lm" and result.info["bytes_after"] < result.info["bytes_before"]
    quantized = apply_step("quantize", QuantizeConfig(method="weight-only-int8"), lm, _ctx(tmp_path)).model
    with pytest.raises(ModelError, match="needs float weights"):
        onnx_from_causal_lm(quantized, exporter="torchscript")


def test_a_truncated_file_is_one_clear_message(models, tmp_path: Path):
    _, ort = models
    ort.save(tmp_path / "m")
    f = tmp_path / "m" / ONNX_FILE
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(ModelError, match="truncated or not ONNX"):
        load_model(tmp_path / "m")


def test_a_graph_without_the_cache_layout_is_one_clear_message(models, tmp_path: Path):
    import onnx
    from onnx import TensorProto, helper

    _, ort = models
    x = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])
    y = helper.make_tensor_value_info("logits", TensorProto.INT64, ["b", "s"])
    graph = helper.make_graph([helper.make_node("Identity", ["input_ids"], ["logits"])], "g", [x], [y])
    f = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), f)
    with pytest.raises(ModelError, match="not a causal LM with a KV cache") as err:
        OnnxCausalLMAdapter(f, ort.tokenizer)
    assert "input_ids" in str(err.value)


def test_validate_walks_the_new_family_and_names_what_it_supports():
    from leanbench.plugins import STEPS

    plugin = STEPS.get("quantize")
    assert plugin.output_family(QuantizeConfig(method="onnx-fp32"), "causal-lm") == "onnx-causal-lm"
    assert plugin.output_family(QuantizeConfig(method="onnxruntime-int4"), "onnx-causal-lm") == "onnx-causal-lm"
    problem = plugin.problem(QuantizeConfig(method="onnxruntime-static-int8"), "onnx-causal-lm")
    assert "onnx-causal-lm (onnxruntime-dynamic-int8, onnxruntime-int4)" in problem


@pytest.mark.slow
def test_dynamo_export_equals_pytorch(models):
    lm, _ = models
    ort = onnx_from_causal_lm(lm, exporter="dynamo")
    assert ort.info["exporter"] == "dynamo"
    prompts = lm.encode(["The cat sees", "A"])
    assert ort.generate_greedy(prompts, 8) == lm.generate_greedy(prompts, 8)
    np.testing.assert_allclose([g[0] for g in ort.loglikelihood(REQUESTS)],
                               [w[0] for w in lm.loglikelihood(REQUESTS)], atol=1e-4, rtol=0)
