"""Compressed layer representations of causal LMs (applied by ``leanbench.compress.lm_compress``, whose
docstring gives the methods and their literature), and what saving and loading a compressed
``CausalLMAdapter`` needs.

- ``WeightOnlyLinear``: int8 weights with one symmetric scale per output channel, or int4 weights with one
  scale per group of `group_size` consecutive input weights, two values packed per byte (low nibble: even
  column); dequantized in ``forward``, the matmul runs in the input's dtype.
- ``Int4PackedLinear``: the same int4 weights (a ``WeightOnlyLinear`` of 4 bits: same grouping, same round-to-
  nearest values, same saved tensors) multiplied by torch's CPU int4 kernel
  (``aten._weight_int4pack_mm_for_cpu``) instead of being dequantized: the weights are repacked once into the
  kernel's layout (``aten._convert_weight_to_int4pack_for_cpu``) with one (scale, 0) pair per group, and the
  activations go through the kernel in bfloat16 (its vectorised path; float32 activations take a scalar path
  ~25x slower than a float32 matmul here), the result cast back to the input's dtype.
- torch dynamic int8 Linear layers (``torch.ao.nn.quantized.dynamic.Linear``, qint8 per tensor).
- ``count_params``: parameters and nonzero parameters, quantized weights once each, tied tensors once.
- ``state_tensors`` / ``restore``: the tensors of a compressed model as plain safetensors-able tensors, and
  the rebuild of the same modules in a freshly configured model from the saved compression records.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from leanbench.errors import ModelError
from leanbench.models.torch_common import quantized_linear_type

INT4_GROUP = 32


# --------------------------------------------------------------------------- helpers
def set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Replaces the submodule called `name` by `new`."""
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


# --------------------------------------------------------------------------- weight-only
class WeightOnlyLinear(nn.Module):
    """Linear with int8 (per channel) or packed int4 (per group) symmetric weights, dequantized in forward."""

    def __init__(self, in_features: int, out_features: int, bits: int, group_size: int, bias: bool):
        super().__init__()
        self.in_features, self.out_features, self.bits = in_features, out_features, bits
        self.group_size = in_features if bits == 8 else group_size
        padded = math.ceil(in_features / self.group_size) * self.group_size
        cols = padded if bits == 8 else padded // 2
        self.register_buffer("qweight", torch.zeros(out_features, cols, dtype=torch.int8 if bits == 8 else torch.uint8))
        self.register_buffer("scales", torch.zeros(out_features, padded // self.group_size))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)

    @classmethod
    def from_linear(cls, layer: nn.Linear, bits: int, group_size: int) -> WeightOnlyLinear:
        new = cls(layer.in_features, layer.out_features, bits, group_size, layer.bias is not None)
        q, scales = quantize_weight(layer.weight.detach().float(), bits, new.group_size)
        new.qweight.copy_(pack_int4(q) if bits == 4 else q)
        new.scales.copy_(scales)
        if layer.bias is not None:
            new.bias.copy_(layer.bias.detach())
        return new

    def weight_int(self) -> torch.Tensor:
        """Integer weights (out, padded in), int8."""
        return unpack_int4(self.qweight) if self.bits == 4 else self.qweight

    def dequantized(self) -> torch.Tensor:
        q = self.weight_int().float().view(self.out_features, -1, self.group_size)
        return (q * self.scales[:, :, None]).view(self.out_features, -1)[:, :self.in_features]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.dequantized().to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, bits={self.bits}, group={self.group_size}"


INT4_KERNEL_GROUPS = (32, 64, 128, 256)  # the group sizes aten._weight_int4pack_mm_for_cpu takes
INT4_KERNEL_N = 16  # output features must be a multiple of this (the kernel's packing)


def int4_kernel_problem(layer: nn.Module, group_size: int) -> str | None:
    """Why torch's CPU int4 kernel cannot take this Linear's weight, or None."""
    if group_size not in INT4_KERNEL_GROUPS:
        return f"group_size {group_size} (the kernel takes {', '.join(map(str, INT4_KERNEL_GROUPS))})"
    if layer.out_features % INT4_KERNEL_N:
        return f"{layer.out_features} output features (not a multiple of {INT4_KERNEL_N})"
    return None


class Int4PackedLinear(WeightOnlyLinear):
    """A 4-bit ``WeightOnlyLinear`` run by torch's CPU int4 kernel (module docstring). The kernel's packed
    weight and (scale, zero) table are derived buffers (``derived_buffers``): not saved, rebuilt by
    ``repack()`` from ``qweight`` and ``scales`` (on creation and after ``restore``), and counted by memory."""

    derived_buffers = ("packed", "scale_zeros")
    cpu_only = True  # torch has this kernel for the CPU only (models/device.py refuses a move to CUDA)

    def __init__(self, in_features: int, out_features: int, group_size: int, bias: bool):
        super().__init__(in_features, out_features, 4, group_size, bias)
        padded = self.qweight.shape[1] * 2
        self.register_buffer("packed", torch.zeros(out_features, padded // 2, dtype=torch.uint8), persistent=False)
        self.register_buffer("scale_zeros", torch.zeros(padded // group_size, out_features, 2, dtype=torch.bfloat16),
                             persistent=False)

    @classmethod
    def from_linear(cls, layer: nn.Linear, bits: int = 4, group_size: int = INT4_GROUP) -> Int4PackedLinear:
        problem = int4_kernel_problem(layer, group_size)
        if problem is not None:
            raise ModelError(f"int4-packed: torch's CPU int4 kernel cannot take a layer with {problem}")
        new = cls(layer.in_features, layer.out_features, group_size, layer.bias is not None)
        ref = WeightOnlyLinear.from_linear(layer, 4, group_size)  # the round-to-nearest reference's values
        new.qweight.copy_(ref.qweight)
        new.scales.copy_(ref.scales)
        if layer.bias is not None:
            new.bias.copy_(ref.bias)
        return new.repack()

    def repack(self) -> Int4PackedLinear:
        """The kernel's tensors from qweight and scales: unsigned nibbles q + 8 (the kernel computes
        (u - 8) * scale + zero, here zero = 0: exactly the symmetric q * scale), scales as bfloat16."""
        unsigned = (self.weight_int().to(torch.int32) + 8).contiguous()
        with torch.no_grad():
            self.packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(unsigned, 1)
            table = torch.stack([self.scales.t(), torch.zeros_like(self.scales.t())], dim=2)
            self.scale_zeros = table.to(torch.bfloat16).contiguous()
        return self

    def dequantized(self) -> torch.Tensor:
        """The weights the kernel multiplies by: q * bfloat16(scale)."""
        q = self.weight_int().float().view(self.out_features, -1, self.group_size)
        s = self.scale_zeros[:, :, 0].t().float()
        return (q * s[:, :, None]).view(self.out_features, -1)[:, :self.in_features]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        padded = self.qweight.shape[1] * 2
        if padded != self.in_features:
            flat = F.pad(flat, (0, padded - self.in_features))
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(flat.to(torch.bfloat16).contiguous(), self.packed,
                                                       self.group_size, self.scale_zeros)
        y = y.to(x.dtype).view(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias.to(x.dtype)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", kernel=aten._weight_int4pack_mm_for_cpu (bfloat16 activations)"


def quantize_weight(w: torch.Tensor, bits: int, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric round-to-nearest: (int8 q (out, padded in), scales (out, groups)); W ~ q * s per group."""
    out, n = w.shape
    padded = math.ceil(n / group_size) * group_size
    w = F.pad(w, (0, padded - n)).view(out, -1, group_size)
    qmax = 127 if bits == 8 else 7
    scales = w.abs().amax(dim=2) / qmax
    scales = torch.where(scales > 0, scales, torch.ones_like(scales))
    q = torch.clamp(torch.round(w / scales[:, :, None]), -qmax - (bits == 4), qmax).to(torch.int8)
    return q.view(out, padded), scales


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """int8 values in [-8, 7], even width -> uint8 (low nibble: even column, high nibble: odd column)."""
    u = (q.to(torch.int16) & 0xF).to(torch.uint8)
    return u[:, 0::2] | (u[:, 1::2] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    lo = (packed & 0xF).to(torch.int8)
    hi = (packed >> 4).to(torch.int8)
    both = torch.stack([lo, hi], dim=2).view(packed.shape[0], -1)
    return torch.where(both > 7, both - 16, both)


# --------------------------------------------------------------------------- dynamic int8
def quantize_dynamic_linears(model: nn.Module, names: list[str]) -> None:
    """In place: torch dynamic int8 (qint8) of the Linear layers `names`."""
    qconfig = torch.ao.quantization.default_dynamic_qconfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.ao.quantization.quantize_dynamic(model, {n: qconfig for n in names}, dtype=torch.qint8,
                                               inplace=True)


# --------------------------------------------------------------------------- counting, saving
def count_params(model: nn.Module) -> tuple[int, int]:
    """(parameters, nonzero parameters); quantized weights count once each, tied tensors once."""
    seen: set[int] = set()
    total = nonzero = 0
    for m in model.modules():
        tensors: list[torch.Tensor] = []
        if isinstance(m, quantized_linear_type()):
            w, b = m._weight_bias()
            tensors = [w.int_repr() - w.q_zero_point(), *([b] if b is not None else [])]
        elif isinstance(m, WeightOnlyLinear):
            tensors = [m.weight_int()[:, :m.in_features], *([m.bias] if m.bias is not None else [])]
        else:
            tensors = [p for p in m.parameters(recurse=False)]
        for t in tensors:
            if isinstance(t, nn.Parameter):  # tied parameters share storage: count once
                if t.data_ptr() in seen:
                    continue
                seen.add(t.data_ptr())
            total += t.numel()
            nonzero += int((t != 0).sum())
    return total, nonzero


def state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor needed to rebuild a compressed model (see `restore`): plain parameters and buffers
    (a tensor shared by several names is stored once), and int8 weight, scale, zero point and bias of
    dynamically quantized layers."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, m in model.named_modules():
        derived = set(getattr(m, "derived_buffers", ()))  # rebuilt on load (Int4PackedLinear.repack), not saved
        if isinstance(m, quantized_linear_type()):
            w, b = m._weight_bias()
            out[f"{name}.qweight"] = w.int_repr().contiguous()
            out[f"{name}.qscale"] = torch.tensor([w.q_scale()], dtype=torch.float64)
            out[f"{name}.qzero"] = torch.tensor([w.q_zero_point()], dtype=torch.int64)
            if b is not None:
                out[f"{name}.bias"] = b.detach().contiguous()
            continue
        for key, t in [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)]:
            if t is None or t.data_ptr() in seen or key in derived:
                continue
            seen.add(t.data_ptr())
            out[f"{name}.{key}" if name else key] = t.detach().contiguous()
    return out


def restore(model: nn.Module, compression: list[dict], tensors: dict[str, torch.Tensor]) -> None:
    """Rebuilds the compressed modules of a freshly configured model, then loads `tensors` into it."""
    for rec in compression:
        method = rec["method"]
        if method.startswith("weight-only-int"):
            bits = int(method.removeprefix("weight-only-int"))
            for name in rec["layers"]:
                lin = model.get_submodule(name)
                set_module(model, name, WeightOnlyLinear(lin.in_features, lin.out_features, bits,
                                                         rec.get("group_size") or INT4_GROUP, lin.bias is not None))
        elif method == "int4-packed":  # the layers the kernel cannot take are the RTN reference's (left_rtn)
            group = rec.get("group_size") or INT4_GROUP
            for name in [*rec["layers"], *rec.get("left_rtn", [])]:
                lin = model.get_submodule(name)
                new = (Int4PackedLinear(lin.in_features, lin.out_features, group, lin.bias is not None)
                       if name in rec["layers"] else
                       WeightOnlyLinear(lin.in_features, lin.out_features, 4, group, lin.bias is not None))
                set_module(model, name, new)
        elif method == "dynamic-int8":
            quantize_dynamic_linears(model, rec["layers"])
            for name in rec["layers"]:
                _load_dynamic(model.get_submodule(name), name, tensors)
    model.tie_weights()
    dq = {n for n, m in model.named_modules() if isinstance(m, quantized_linear_type())}
    loaded: set[int] = set()
    for key, value in tensors.items():
        owner, _, attr = key.rpartition(".")
        if owner in dq:
            continue
        target = getattr(_owner(model, key), attr, None)
        if not isinstance(target, torch.Tensor) or target.shape != value.shape:
            raise ModelError(f"saved compressed model does not match its config at '{key}'")
        with torch.no_grad():
            target.copy_(value)
        loaded.add(target.data_ptr())
    derived = {f"{n}.{b}" for n, m in model.named_modules() for b in getattr(m, "derived_buffers", ())}
    missing = [n for n, t in [*model.named_parameters(), *model.named_buffers()]
               if t.data_ptr() not in loaded and n.rpartition(".")[0] not in dq and n not in derived]
    if missing:
        raise ModelError(f"saved compressed model lacks tensors {missing[:5]}")
    for m in model.modules():
        if isinstance(m, Int4PackedLinear):
            m.repack()


def _owner(model: nn.Module, key: str) -> Any:
    try:
        return model.get_submodule(key.rpartition(".")[0])
    except AttributeError:
        return None


def _load_dynamic(layer: nn.Module, name: str, tensors: dict[str, torch.Tensor]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch._make_per_tensor_quantized_tensor(tensors[f"{name}.qweight"], float(tensors[f"{name}.qscale"]),
                                                    int(tensors[f"{name}.qzero"]))
    layer.set_weight_bias(q, tensors.get(f"{name}.bias"))
