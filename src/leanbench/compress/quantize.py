"""The ``quantize`` step on leanbench torch models: dynamic int8 quantization of every nn.Linear (torch.ao
quantize_dynamic).

Weights become int8 (per-tensor scale and zero point); activations are quantized on the fly at inference
(Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
Inference"). Conv layers are not handled by dynamic quantization and stay fp32.
"""

from __future__ import annotations

from torch import nn

from leanbench.compress.base import StepContext, StepResult
from leanbench.errors import ModelError
from leanbench.models.base import ModelAdapter
from leanbench.models.torch_common import quantized_linears
from leanbench.models.torch_models import TorchAdapter, quantize_module
from leanbench.study import QuantizeConfig


def quantize(cfg: QuantizeConfig, model: ModelAdapter | None, ctx: StepContext) -> StepResult:
    """A dynamically quantized copy of a leanbench torch model (Hugging Face and ONNX Runtime methods:
    ``hf_quantize``; causal LMs: ``lm_compress``). The step itself costs ~0 FLOPs (min/max of each weight)."""
    adapter = _quantizable(model)
    module = quantize_module(adapter.module)
    layers = [name for name, _ in quantized_linears(module)]
    fp32 = [name for name, m in module.named_modules() if isinstance(m, nn.Conv2d)]
    info = {"method": cfg.method, "quantized_layers": layers, "fp32_layers": fp32}
    if fp32:
        info["note"] = "dynamic int8 quantizes Linear layers only; conv layers stay fp32"
    quantized = TorchAdapter(module, adapter.arch, adapter.input_shape, quantized=cfg.method)
    return StepResult(quantized, flops=0.0, info=info)


def _quantizable(model: TorchAdapter) -> TorchAdapter:
    if model.quantized:
        raise ModelError(f"step 'quantize': the model is already quantized ({model.quantized})")
    return model
