"""What the adapters over one ``torch.nn.Module`` share: parameter counting that treats torch dynamic int8
Linear layers like the fp32 layers they replaced, and ``TorchModuleMixin`` (``num_params``,
``nonzero_params`` and ``torch_module`` of the ``ModelAdapter`` interface, from the adapter's ``module``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn


# --------------------------------------------------------------------------- dynamic int8 layers
def quantized_linear_type() -> type:
    """``torch.ao.nn.quantized.dynamic.Linear`` (imported on use)."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    return DynamicQuantizedLinear


def quantized_linears(module: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(name, module) of every dynamically quantized Linear layer."""
    qtype = quantized_linear_type()
    return ((n, m) for n, m in module.named_modules() if isinstance(m, qtype))


# --------------------------------------------------------------------------- counting
def nonzero(t: torch.Tensor) -> int:
    return int(torch.count_nonzero(t))


def count_params(module: nn.Module, count: Callable[[torch.Tensor], int] = torch.numel) -> int:
    """Sum of ``count(tensor)`` over every weight and bias, each parameter once (a parameter shared by
    several modules counts once, as in ``module.parameters()``); a quantized Linear's int8 weight counts
    like the fp32 weight it replaced (out x in) and its bias (out), so int8 and fp32 models agree."""
    total = 0
    qnames = set()
    for name, layer in quantized_linears(module):
        w = layer.weight()
        total += w.numel() if count is torch.numel else count(w.int_repr().int() - w.q_zero_point())
        if layer.bias() is not None:
            total += count(layer.bias())
        qnames.add(name)
    seen: set[int] = set()
    for name, m in module.named_modules():
        if name in qnames:
            continue
        for p in m.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                total += count(p)
    return int(total)


# --------------------------------------------------------------------------- the mixin
class TorchModuleMixin:
    """``num_params`` / ``nonzero_params`` / ``torch_module`` of an adapter over one nn.Module.

    Contract: the adapter has a ``module`` attribute or property, its ``nn.Module``. List the mixin before
    ``ModelAdapter`` among the bases so that these methods implement the abstract ones."""

    module: nn.Module

    def num_params(self) -> int:
        """Weights and biases (see ``count_params``)."""
        return count_params(self.module)

    def nonzero_params(self) -> int:
        return count_params(self.module, nonzero)

    def torch_module(self) -> nn.Module:
        return self.module

    @property
    def device(self) -> str:
        """"cuda" or "cpu": where the module's weights are."""
        for t in self.module.parameters():
            return t.device.type
        for t in self.module.buffers():
            return t.device.type
        return "cpu"

    def to_device(self, device: str) -> None:
        """Moves the module (``models.device``); refused for layers with CPU-only kernels."""
        from leanbench.models.device import to_device_of

        to_device_of(self.module, device, f"this {getattr(self, 'adapter_name', 'torch')} model")

    def on_model_device(self, inputs: Any) -> Any:
        """Prepared inputs (a tensor, or a mapping of them) on the module's device."""
        from leanbench.models.device import move

        return inputs if self.device == "cpu" else move(inputs, self.device)
