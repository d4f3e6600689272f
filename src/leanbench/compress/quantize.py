"""The ``quantize`` step: dynamic int8 quantization of every nn.Linear (torch.ao quantize_dynamic).

Weights become int8 (per-tensor scale and zero point); activations are quantized on the fly at inference
(Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
Inference"). Conv layers are not handled by dynamic quantization and stay fp32.
"""

from __future__ import annotations

from torch import nn

from leanbench.compress.base import STEPS, StepContext, StepResult
from leanbench.errors import ModelError
from leanbench.models.base import ModelAdapter
from leanbench.models.torch_models import TorchAdapter, quantize_module, quantized_linears
from leanbench.study import QuantizeConfig

# Hugging Face classifiers and ONNX Runtime methods go to leanbench.compress.hf_quantize
HF_ONNX_METHODS = ("onnx-fp32", "onnxruntime-dynamic-int8", "onnxruntime-static-int8")
HF_ADAPTERS = ("hf", "hf-dynamic-int8", "onnx")


@STEPS.register("quantize")
def quantize(cfg: QuantizeConfig, model: ModelAdapter | None, ctx: StepContext) -> StepResult:
    """A dynamically quantized copy of `model`. The step itself costs ~0 FLOPs (min/max of each weight)."""
    if getattr(model, "adapter_name", None) == "causal-lm":  # causal LMs: dynamic / weight-only int
        from leanbench.compress.lm_compress import quantize_lm

        return quantize_lm(cfg, model, ctx)
    if cfg.method.startswith("weight-only"):
        raise ModelError(f"quantize method '{cfg.method}' is for causal LMs (multiple-choice or "
                         f"language-modeling tasks), got a model of adapter '{getattr(model, 'adapter_name', None)}'")
    if cfg.method in HF_ONNX_METHODS or getattr(model, "adapter_name", None) in HF_ADAPTERS:
        from leanbench.compress.hf_quantize import quantize_hf  # transformers, onnxruntime: loaded on use

        return quantize_hf(cfg, model, ctx)
    adapter = _quantizable(model)
    module = quantize_module(adapter.module)
    layers = [name for name, _ in quantized_linears(module)]
    fp32 = [name for name, m in module.named_modules() if isinstance(m, nn.Conv2d)]
    info = {"method": cfg.method, "quantized_layers": layers, "fp32_layers": fp32}
    if fp32:
        info["note"] = "dynamic int8 quantizes Linear layers only; conv layers stay fp32"
    quantized = TorchAdapter(module, adapter.arch, adapter.input_shape, quantized=cfg.method)
    return StepResult(quantized, flops=0.0, info=info)


def _quantizable(model: ModelAdapter | None) -> TorchAdapter:
    if model is None:
        raise ModelError("step 'quantize' needs a model to start from, got none")
    if not isinstance(model, TorchAdapter):
        raise ModelError(f"quantize method 'dynamic-int8' works on leanbench torch models (mlp, cnn), "
                         f"got a model of adapter '{model.adapter_name}'")
    if model.quantized:
        raise ModelError(f"step 'quantize': the model is already quantized ({model.quantized})")
    return model
