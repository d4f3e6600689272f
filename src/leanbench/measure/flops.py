"""FLOPs per example of a model's forward call.

Float ops are counted by ``torch.utils.flop_counter.FlopCounterMode`` at the aten level, which counts
2 FLOPs per multiply-accumulate of matmul, convolution and attention ops (the convention of Kaplan et
al. 2020, "Scaling Laws", section 2.1) and nothing for elementwise ops (activations, norms, bias adds).
Quantized modules (``torch.ao.nn.quantized`` Linear and Conv, dynamic or static) run opaque kernels
that FlopCounterMode does not see; they are counted here from their shapes, by forward hooks, with the
same 2-per-MAC rule, so an int8 model reports the same count as its float original. Recurrent layers
(``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``) run fused kernels it does not see either; they are counted by hooks
too: per token that the layer reads (a packed sequence's real tokens), per layer and direction,
2 * gates * hidden * (input + hidden) with 4 gates for an LSTM, 3 for a GRU, 1 for a plain RNN.
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
RECURRENT_NOTE = "; LSTM/GRU/RNN layers counted from their shapes per token read"


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


RNN_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def recurrent_layer_flops(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> int:
    """2 * MACs of one call of an nn.LSTM / GRU / RNN (input-to-hidden and hidden-to-hidden products of
    every layer and direction, for every token read; a PackedSequence's padding is not read)."""
    x = inputs[0]
    if isinstance(x, nn.utils.rnn.PackedSequence):
        tokens = int(x.data.shape[0])
    else:
        tokens = int(x.numel() // x.shape[-1])
    gates, h = RNN_GATES[type(module).__name__], module.hidden_size
    dirs = 2 if module.bidirectional else 1
    per_token = sum(2 * gates * h * ((module.input_size if layer == 0 else h * dirs) + h) * dirs
                    for layer in range(module.num_layers))
    return tokens * per_token


def _hooked_flops(module: nn.Module) -> Any:
    """The FLOP function for a module whose kernel FlopCounterMode does not see, else None."""
    if _is_quantized(module):
        return quantized_layer_flops
    if type(module).__name__ in RNN_GATES and isinstance(module, nn.RNNBase):
        return recurrent_layer_flops
    return None


def _count(torch_module: nn.Module, forward: Any, inputs: Any) -> tuple[float, str]:
    """(FLOPs of forward(inputs), the notes to add to FLOP_METHOD for the layers counted by hooks).
    A hooked layer whose call FlopCounterMode did see (an LSTM under inference mode runs as addmm ops) is
    not counted twice: its shape-based count is added only when the counter's total did not move."""
    counter = FlopCounterMode(display=False)
    hooked_flops: list[int] = []
    seen_before: list[int] = []

    def before(module: nn.Module, args: tuple[Any, ...]) -> None:
        seen_before.append(counter.get_total_flops())

    def after_with(fn: Any) -> Any:
        def after(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if counter.get_total_flops() == seen_before.pop():
                hooked_flops.append(fn(module, args, output))
        return after

    handles = []
    for m in torch_module.modules():
        if (fn := _hooked_flops(m)) is not None:
            handles += [m.register_forward_pre_hook(before), m.register_forward_hook(after_with(fn))]
    try:
        with torch.no_grad(), counter:
            forward(inputs)
    finally:
        for h in handles:
            h.remove()
    kinds = {_hooked_flops(m) for m in torch_module.modules()}
    notes = (QUANTIZED_NOTE if quantized_layer_flops in kinds else "") + (
        RECURRENT_NOTE if recurrent_layer_flops in kinds else "")
    return float(counter.get_total_flops() + sum(hooked_flops)), notes


def flops_per_example(model: ModelAdapter, X: np.ndarray) -> dict[str, Any]:
    """Forward FLOPs for one example (the first row of X, as ``model.prepare`` turns it into input).

    Returns ``{"flops": None, "method": "unavailable"}`` for a model with no torch module.
    """
    torch_module = model.torch_module()
    if torch_module is None:
        return {"flops": None, "method": "unavailable"}
    if len(X) == 0:
        raise DataError("flops_per_example: X has no rows; one example is needed to count FLOPs")
    flops, notes = _count(torch_module, model.forward, model.prepare(X[:1]))
    return {"flops": flops, "method": FLOP_METHOD + notes}
