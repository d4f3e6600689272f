"""PyTorch int4 with a real kernel (`quantize: {method: int4-packed}`, lm_layers.Int4PackedLinear): the same
round-to-nearest weights as the weight-only-int4 reference, multiplied by torch's CPU int4 kernel
(aten._weight_int4pack_mm_for_cpu, bfloat16 activations) -- checked against the reference layer and against a
float64 product computed here; saved and reloaded like the other compressed LM layers."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from tiny_lm import build_tiny_lm  # noqa: E402

from leanbench.compress.base import StepContext  # noqa: E402
from leanbench.models.base import load_model  # noqa: E402
from leanbench.models.causal_lm import load_hf_causal_lm  # noqa: E402
from leanbench.models.lm_layers import Int4PackedLinear, WeightOnlyLinear, state_tensors  # noqa: E402
from leanbench.plugins import apply_step  # noqa: E402
from leanbench.study import QuantizeConfig  # noqa: E402

# bfloat16 keeps 8 significant bits: activations and scales rounded to it move a product by < 2^-8 relative
# per term; the kernel's output is bfloat16 as well. Measured here: ~3e-3 relative (norm of the error / norm).
REL_TOL = 1e-2


def _linear(n_out: int, n_in: int, seed: int = 0, bias: bool = True) -> nn.Linear:
    torch.manual_seed(seed)
    layer = nn.Linear(n_in, n_out, bias=bias)
    with torch.no_grad():
        layer.weight.normal_(0, 0.5)
    return layer


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("group", [32, 64])
def test_kernel_layer_matches_the_rtn_reference_on_the_same_groups(group: int):
    layer = _linear(48, 128)
    ref = WeightOnlyLinear.from_linear(layer, 4, group)
    packed = Int4PackedLinear.from_linear(layer, 4, group)
    # the same integers and scales: one quantization, two ways to multiply
    assert torch.equal(packed.weight_int(), ref.weight_int()) and torch.equal(packed.scales, ref.scales)
    np.testing.assert_allclose(packed.dequantized().numpy(), ref.dequantized().numpy(), rtol=2 ** -8, atol=0)
    x = torch.randn(3, 5, 128)
    with torch.inference_mode():
        got, want = packed(x), ref(x)
    assert got.shape == want.shape == (3, 5, 48) and got.dtype == torch.float32
    assert _rel(got, want) < REL_TOL
    # independently: float64 product of the bfloat16-rounded activations and the kernel's weights (q * bf16 scale)
    xb = x.to(torch.bfloat16).double()
    exact = xb @ packed.dequantized().double().t() + layer.bias.detach().double()
    assert _rel(got.double(), exact) < 2 ** -7


def test_kernel_layer_pads_an_input_width_that_is_not_a_multiple_of_the_group():
    layer = _linear(32, 40, bias=False)
    packed, ref = Int4PackedLinear.from_linear(layer, 4, 32), WeightOnlyLinear.from_linear(layer, 4, 32)
    x = torch.randn(4, 40)
    with torch.inference_mode():
        assert _rel(packed(x), ref(x)) < REL_TOL


def test_kernel_refuses_what_it_cannot_take():
    with pytest.raises(Exception, match="not a multiple of 16"):
        Int4PackedLinear.from_linear(_linear(24, 64), 4, 32)
    with pytest.raises(Exception, match="group_size 16"):
        Int4PackedLinear.from_linear(_linear(32, 64), 4, 16)
    with pytest.raises(ValidationError, match="32, 64, 128 or 256"):
        QuantizeConfig(method="int4-packed", group_size=16)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    return load_hf_causal_lm(str(build_tiny_lm(tmp_path_factory.mktemp("lm"))))


def _step(lm, method: str, tmp: Path):
    ctx = StepContext(data=None, seed=0, cache_dir=tmp, teacher=lambda name: None)
    return apply_step("quantize", QuantizeConfig(method=method, group_size=32), lm, ctx)


REQUESTS = [("The cat sees", " the big dog"), ("The cat sees", " a fish"), ("A red car", " runs fast."),
            ("", "The sun")]


def test_step_replaces_every_linear_but_the_tied_head_and_scores_like_the_reference(tiny_lm, tmp_path: Path):
    result = _step(tiny_lm, "int4-packed", tmp_path)
    model = result.model
    kinds = {type(m) for m in model.model.modules() if isinstance(m, (nn.Linear, WeightOnlyLinear))}
    assert Int4PackedLinear in kinds and nn.Linear in kinds  # the tied lm_head stays fp32
    assert result.info["left_rtn"] == [] and result.info["quantized_layers"] == 14
    assert model.num_params() == tiny_lm.num_params()
    rtn = _step(tiny_lm, "weight-only-int4", tmp_path).model
    got, want = np.array(model.loglikelihood(REQUESTS))[:, 0], np.array(rtn.loglikelihood(REQUESTS))[:, 0]
    # per-request sums over 2-5 tokens; bfloat16 activations move each log-prob by ~1e-2 at most here
    np.testing.assert_allclose(got, want, atol=0.1, rtol=0.01)
    prompts = model.encode(["The cat sees", "A"])
    assert [len(o) for o in model.generate_greedy(prompts, 5)] == [5, 5]


def test_saved_int4_packed_model_reloads_identically_without_the_kernel_layout(tiny_lm, tmp_path: Path):
    model = _step(tiny_lm, "int4-packed", tmp_path).model
    saved = state_tensors(model.model)
    assert not [k for k in saved if k.endswith((".packed", ".scale_zeros"))]  # derived, rebuilt on load
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert any(isinstance(m, Int4PackedLinear) for m in loaded.model.modules())
    assert loaded.loglikelihood(REQUESTS) == model.loglikelihood(REQUESTS)
    assert (loaded.num_params(), loaded.nonzero_params()) == (model.num_params(), model.nonzero_params())
