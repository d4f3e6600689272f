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


@STEPS.register("quantize")
def quantize(cfg: QuantizeConfig, model: ModelAdapter | None, ctx: StepContext) -> StepResult:
    """A dynamically quantized copy of `model`. The step itself costs ~0 FLOPs (min/max of each weight)."""
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
