"""FLOPs per example of a model's forward call.

Float ops are counted by ``torch.utils.flop_counter.FlopCounterMode`` at the aten level, which counts
2 FLOPs per multiply-accumulate of matmul, convolution and attention ops (the convention of Kaplan et
al. 2020, "Scaling Laws", section 2.1) and nothing for elementwise ops (activations, norms, bias adds).
Quantized modules (``torch.ao.nn.quantized`` Linear and Conv, dynamic or static) run opaque kernels
that FlopCounterMode does not see; they are counted here from their shapes, by forward hooks, with the
same 2-per-MAC rule, so an int8 model reports the same count as its float original.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from leanbench.errors import DataError
from leanbench.models.base import ModelAdapter

FLOP_METHOD = (
    "torch FlopCounterMode on one example: 2 FLOPs per multiply-accumulate of matmul/conv/attention, "
    "elementwise ops not counted"
)
QUANTIZED_NOTE = "; quantized Linear/Conv counted from their shapes, int8 MACs as FLOPs of the same shape"


def _is_quantized(module: nn.Module) -> bool:
    return type(module).__module__.startswith("torch.ao.nn.quantized")


def quantized_layer_flops(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> int:
    """2 * MACs of one call of a quantized Linear or Conv; 0 for other quantized modules.

    Linear: 2 * in_features * out_features per input row (rows = input numel / in_features).
    Conv:   2 * (in_channels / groups) * prod(kernel_size) per output element.
    """
    if hasattr(module, "in_features") and hasattr(module, "out_features"):
        rows = inputs[0].numel() // module.in_features
        return 2 * rows * module.in_features * module.out_features
    if hasattr(module, "kernel_size") and hasattr(module, "in_channels"):
        per_output = (module.in_channels // module.groups) * math.prod(module.kernel_size)
        return 2 * output.numel() * per_output
    return 0


def _count(torch_module: nn.Module, forward: Any, inputs: Any) -> tuple[float, bool]:
    quantized_flops: list[int] = []

    def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        quantized_flops.append(quantized_layer_flops(module, args, output))

    handles = [m.register_forward_hook(hook) for m in torch_module.modules() if _is_quantized(m)]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            forward(inputs)
    finally:
        for h in handles:
            h.remove()
    return float(counter.get_total_flops() + sum(quantized_flops)), bool(handles)


def flops_per_example(model: ModelAdapter, X: np.ndarray) -> dict[str, Any]:
    """Forward FLOPs for one example (the first row of X, as ``model.prepare`` turns it into input).

    Returns ``{"flops": None, "method": "unavailable"}`` for a model with no torch module.
    """
    torch_module = model.torch_module()
    if torch_module is None:
        return {"flops": None, "method": "unavailable"}
    if len(X) == 0:
        raise DataError("flops_per_example: X has no rows; one example is needed to count FLOPs")
    flops, has_quantized = _count(torch_module, model.forward, model.prepare(X[:1]))
    return {"flops": flops, "method": FLOP_METHOD + (QUANTIZED_NOTE if has_quantized else "")}
