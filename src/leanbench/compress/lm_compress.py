"""Compression of causal LMs: dynamic int8, weight-only int8/int4, unstructured and 2:4 magnitude pruning.

- ``dynamic-int8``: ``torch.ao.quantization.quantize_dynamic`` of the Linear layers (qint8, per-tensor
  weights, activations quantized per batch at run time; Jacob et al. 2018). A tied ``lm_head`` (its weight
  *is* the input embedding matrix) stays fp32: quantizing it would give the head its own int8 copy and
  break the sharing (the embeddings would no longer equal the head, and the file would hold both).
- ``weight-only-int8``: symmetric per-output-channel int8, s_o = max_i |W[o, i]| / 127,
  q = clamp(round(W / s_o), -127, 127); weight-only-int4: symmetric per group of `group_size` consecutive
  input weights, s = max |W_group| / 7, q = clamp(round(W / s), -8, 7), two values packed per byte
  (GPTQ/AWQ-style grouping, Frantar et al. 2023; here plain round-to-nearest, no calibration). Weights are
  dequantized in ``forward`` (W = q * s) and the matmul runs in fp32: the model is smaller on disk and in
  memory, but not faster on CPU without a fused kernel (torchao's int4 kernels need torch.compile; torchao
  is not a dependency). The tied head and embeddings stay fp32, as above.
- ``magnitude`` pruning: per Linear layer, the round(sparsity * n) weights of smallest |w| are zeroed
  (uniform layer-wise sparsity, as in Wanda/SparseGPT comparisons); embeddings and a tied head are kept.
- ``2:4`` pruning: in every group of 4 consecutive input weights of a row, the 2 largest |w| are kept
  (NVIDIA's 2:4 semi-structured sparsity, Mishra et al. 2021); layers whose input width is not a
  multiple of 4 are left dense and listed.
Quality is then measured by the task (perplexity on a language-modeling task, acc on multiple choice).
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from leanbench.errors import ModelError

INT4_GROUP = 32


# --------------------------------------------------------------------------- helpers
def tied_head(model: nn.Module) -> str | None:
    """Name of the output-embedding module when its weight is the input embedding's tensor."""
    out, inp = model.get_output_embeddings(), model.get_input_embeddings()
    if out is None or inp is None or getattr(out, "weight", None) is None:
        return None
    if out.weight.data_ptr() != inp.weight.data_ptr():
        return None
    return next(n for n, m in model.named_modules() if m is out)


def linear_names(model: nn.Module) -> list[str]:
    """Every nn.Linear except a tied head (see the module docstring)."""
    skip = tied_head(model)
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n != skip]


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def _dq_type() -> type:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    return DynamicQuantizedLinear


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


def weight_only(model: nn.Module, bits: int, group_size: int | None) -> tuple[nn.Module, dict]:
    """A copy of `model` with every Linear but a tied head replaced by WeightOnlyLinear."""
    group = group_size or INT4_GROUP
    model = copy.deepcopy(model)
    names = linear_names(model)
    for name in names:
        _set_module(model, name, WeightOnlyLinear.from_linear(model.get_submodule(name), bits, group))
    return model, {"method": f"weight-only-int{bits}", "group_size": None if bits == 8 else group,
                   "layers": names, "kept_fp32": [n for n in [tied_head(model)] if n]}


# --------------------------------------------------------------------------- dynamic int8
def dynamic_int8(model: nn.Module) -> tuple[nn.Module, dict]:
    """A copy with every Linear but a tied head dynamically quantized to int8 (the sharing survives)."""
    model = copy.deepcopy(model).eval()
    names = linear_names(model)
    _quantize_dynamic(model, names)
    return model, {"method": "dynamic-int8", "layers": names, "kept_fp32": [n for n in [tied_head(model)] if n]}


def _quantize_dynamic(model: nn.Module, names: list[str]) -> None:
    qconfig = torch.ao.quantization.default_dynamic_qconfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.ao.quantization.quantize_dynamic(model, {n: qconfig for n in names}, dtype=torch.qint8,
                                               inplace=True)


# --------------------------------------------------------------------------- pruning
def _prunable(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    names = set(linear_names(model))
    return [(n, m) for n, m in model.named_modules() if n in names]


def magnitude_prune(model: nn.Module, sparsity: float) -> dict:
    """In place: per Linear layer, zero the round(sparsity * n) smallest |w| (ties: lowest index first)."""
    layers = _prunable(model)
    with torch.no_grad():
        for _, m in layers:
            k = int(round(sparsity * m.weight.numel()))
            if k:
                idx = torch.argsort(m.weight.abs().flatten(), stable=True)[:k]
                m.weight.view(-1)[idx] = 0.0
    return {"method": "magnitude", "layers": [n for n, _ in layers], "scope": "per layer"}


def prune_2_4(model: nn.Module) -> dict:
    """In place: keep the 2 largest |w| of every 4 consecutive input weights of each row."""
    done, dense = [], []
    with torch.no_grad():
        for name, m in _prunable(model):
            out, n = m.weight.shape
            if n % 4:
                dense.append(name)
                continue
            groups = m.weight.view(out, n // 4, 4)
            keep = groups.abs().topk(2, dim=2).indices
            mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(2, keep, True)
            groups.masked_fill_(~mask, 0.0)
            done.append(name)
    return {"method": "2:4", "layers": done, "left_dense": dense}


def linear_sparsity(model: nn.Module) -> float:
    """Fraction of zero weights over the prunable Linear layers."""
    layers = _prunable(model)
    total = sum(m.weight.numel() for _, m in layers)
    return sum(int((m.weight == 0).sum()) for _, m in layers) / total if total else 0.0


# --------------------------------------------------------------------------- counting, saving
def count_params(model: nn.Module) -> tuple[int, int]:
    """(parameters, nonzero parameters); quantized weights count once each, tied tensors once."""
    seen: set[int] = set()
    total = nonzero = 0
    for m in model.modules():
        tensors: list[torch.Tensor] = []
        if isinstance(m, _dq_type()):
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
        if isinstance(m, _dq_type()):
            w, b = m._weight_bias()
            out[f"{name}.qweight"] = w.int_repr().contiguous()
            out[f"{name}.qscale"] = torch.tensor([w.q_scale()], dtype=torch.float64)
            out[f"{name}.qzero"] = torch.tensor([w.q_zero_point()], dtype=torch.int64)
            if b is not None:
                out[f"{name}.bias"] = b.detach().contiguous()
            continue
        for key, t in [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)]:
            if t is None or t.data_ptr() in seen:
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
                _set_module(model, name, WeightOnlyLinear(lin.in_features, lin.out_features, bits,
                                                          rec.get("group_size") or INT4_GROUP, lin.bias is not None))
        elif method == "dynamic-int8":
            _quantize_dynamic(model, rec["layers"])
            for name in rec["layers"]:
                _load_dynamic(model.get_submodule(name), name, tensors)
    model.tie_weights()
    dq = {n for n, m in model.named_modules() if isinstance(m, _dq_type())}
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
    missing = [n for n, t in [*model.named_parameters(), *model.named_buffers()]
               if t.data_ptr() not in loaded and n.rpartition(".")[0] not in dq]
    if missing:
        raise ModelError(f"saved compressed model lacks tensors {missing[:5]}")


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


# --------------------------------------------------------------------------- step handlers
def _check(model: Any, step: str) -> Any:
    from leanbench.models.causal_lm import CausalLMAdapter

    if not isinstance(model, CausalLMAdapter):
        raise ModelError(f"step '{step}': expected a causal LM, got adapter '{getattr(model, 'adapter_name', None)}'")
    return model


def quantize_lm(cfg: Any, model: Any, ctx: Any) -> Any:
    """The `quantize` step for causal LMs (dynamic-int8, weight-only-int8, weight-only-int4)."""
    from leanbench.compress.base import StepResult
    from leanbench.models.causal_lm import CausalLMAdapter

    adapter = _check(model, "quantize")
    done = [c["method"] for c in adapter.compression if c["method"] != "magnitude" and c["method"] != "2:4"]
    if done:
        raise ModelError(f"step 'quantize': the model is already quantized ({done[0]})")
    if cfg.method == "dynamic-int8":
        module, rec = dynamic_int8(adapter.model)
    else:
        module, rec = weight_only(adapter.model, 8 if cfg.method.endswith("int8") else 4, cfg.group_size)
    new = CausalLMAdapter(module, adapter.tokenizer, adapter.info, [*adapter.compression, rec])
    info = {"method": cfg.method, "quantized_layers": len(rec["layers"]), "kept_fp32": rec["kept_fp32"],
            "group_size": rec.get("group_size")}
    if rec["kept_fp32"]:
        info["note"] = "the tied lm_head / input embeddings stay fp32 so that the weight sharing survives"
    return StepResult(new, flops=0.0, info=info)


def prune_lm(cfg: Any, model: Any, ctx: Any) -> Any:
    """The `prune` step for causal LMs: `magnitude` (per layer) or `2:4`, on a copy."""
    from leanbench.compress.base import StepResult
    from leanbench.models.causal_lm import CausalLMAdapter

    adapter = _check(model, "prune")
    if cfg.method == "structured":
        raise ModelError("prune method 'structured' is not available for causal LMs; use 'magnitude' or '2:4'")
    if cfg.finetune is not None:
        raise ModelError("prune.finetune is not available for causal LMs (use a distill step after pruning)")
    if any(c["method"] not in ("magnitude", "2:4") for c in adapter.compression):
        raise ModelError("step 'prune': prune a causal LM before quantizing it")
    before = count_params(adapter.model)
    module = copy.deepcopy(adapter.model)
    rec = prune_2_4(module) if cfg.method == "2:4" else magnitude_prune(module, cfg.sparsity)
    new = CausalLMAdapter(module, adapter.tokenizer, adapter.info, [*adapter.compression, rec])
    after = count_params(module)
    info = {"method": cfg.method, "sparsity_requested": 0.5 if cfg.method == "2:4" else cfg.sparsity,
            "sparsity": linear_sparsity(module), "params_before": before[0], "nonzero_params_before": before[1],
            "params_after": after[0], "nonzero_params_after": after[1]}
    if rec.get("left_dense"):
        info["left_dense"] = rec["left_dense"]
    return StepResult(new, flops=0.0, info=info)
