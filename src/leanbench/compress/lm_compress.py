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
- ``int4-packed``: the weight-only-int4 values (same groups, same round to nearest) multiplied by torch's CPU
  int4 kernel (``models/lm_layers.py: Int4PackedLinear``, activations in bfloat16) instead of dequantized:
  the real-kernel counterpart of the reference. Group sizes 32, 64, 128 or 256; a layer whose output width is
  not a multiple of 16 stays the reference layer (listed in the step's info as `left_rtn`).
- ``onnx-fp32``, ``onnxruntime-dynamic-int8``, ``onnxruntime-int4``: the model exported with its KV cache and
  run on ONNX Runtime (``compress/ort_lm_quantize.py``, family ``onnx-causal-lm``).
- ``magnitude`` pruning: per Linear layer, the round(sparsity * n) weights of smallest |w| are zeroed
  (uniform layer-wise sparsity, as in Wanda/SparseGPT comparisons); embeddings and a tied head are kept.
- ``2:4`` pruning: in every group of 4 consecutive input weights of a row, the 2 largest |w| are kept
  (NVIDIA's 2:4 semi-structured sparsity, Mishra et al. 2021); layers whose input width is not a
  multiple of 4 are left dense and listed.
Quality is then measured by the task (perplexity on a language-modeling task, acc on multiple choice).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from leanbench.compress.base import StepResult
from leanbench.errors import ModelError
from leanbench.models.causal_lm import CausalLMAdapter
from leanbench.models.lm_layers import (
    INT4_GROUP,
    Int4PackedLinear,
    WeightOnlyLinear,
    count_params,
    int4_kernel_problem,
    quantize_dynamic_linears,
    set_module,
)


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


# --------------------------------------------------------------------------- weight-only
def weight_only(model: nn.Module, bits: int, group_size: int | None) -> tuple[nn.Module, dict]:
    """A copy of `model` with every Linear but a tied head replaced by WeightOnlyLinear."""
    group = group_size or INT4_GROUP
    model = copy.deepcopy(model)
    names = linear_names(model)
    for name in names:
        set_module(model, name, WeightOnlyLinear.from_linear(model.get_submodule(name), bits, group))
    return model, {"method": f"weight-only-int{bits}", "group_size": None if bits == 8 else group,
                   "layers": names, "kept_fp32": [n for n in [tied_head(model)] if n]}


def int4_packed(model: nn.Module, group_size: int | None) -> tuple[nn.Module, dict]:
    """A copy with every Linear but a tied head replaced by Int4PackedLinear (torch's CPU int4 kernel), the
    same round-to-nearest weights as weight-only-int4; a layer the kernel cannot take (its output features not a
    multiple of 16) becomes the reference WeightOnlyLinear and is listed in `left_rtn`."""
    group = group_size or INT4_GROUP
    model = copy.deepcopy(model)
    packed, rtn = [], []
    for name in linear_names(model):
        layer = model.get_submodule(name)
        if int4_kernel_problem(layer, group) is None:
            set_module(model, name, Int4PackedLinear.from_linear(layer, 4, group))
            packed.append(name)
        else:
            set_module(model, name, WeightOnlyLinear.from_linear(layer, 4, group))
            rtn.append(name)
    records = {"method": "int4-packed", "group_size": group, "layers": packed,
               "kernel": "aten._weight_int4pack_mm_for_cpu (bfloat16 activations)", "left_rtn": rtn,
               "kept_fp32": [n for n in [tied_head(model)] if n]}
    return model, records


# --------------------------------------------------------------------------- dynamic int8
def dynamic_int8(model: nn.Module) -> tuple[nn.Module, dict]:
    """A copy with every Linear but a tied head dynamically quantized to int8 (the sharing survives)."""
    model = copy.deepcopy(model).eval()
    names = linear_names(model)
    quantize_dynamic_linears(model, names)
    return model, {"method": "dynamic-int8", "layers": names, "kept_fp32": [n for n in [tied_head(model)] if n]}


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


# --------------------------------------------------------------------------- step handlers
def quantize_lm(cfg: Any, model: Any, ctx: Any) -> Any:
    """The `quantize` step for causal LMs (dynamic-int8, weight-only-int8, weight-only-int4; gguf: a GGUF file on
    llama.cpp, compress/gguf_quantize.py)."""
    if cfg.method == "gguf":
        from leanbench.compress.gguf_quantize import quantize_causal_lm

        return quantize_causal_lm(cfg, model, ctx)
    if cfg.method in ("onnx-fp32", "onnxruntime-dynamic-int8", "onnxruntime-int4"):
        from leanbench.compress.ort_lm_quantize import quantize_causal_lm_ort

        return quantize_causal_lm_ort(cfg, model, ctx)
    adapter = model
    done = [c["method"] for c in adapter.compression if c["method"] != "magnitude" and c["method"] != "2:4"]
    if done:
        raise ModelError(f"step 'quantize': the model is already quantized ({done[0]})")
    if cfg.method == "dynamic-int8":
        module, rec = dynamic_int8(adapter.model)
    elif cfg.method == "int4-packed":
        module, rec = int4_packed(adapter.model, cfg.group_size)
    else:
        module, rec = weight_only(adapter.model, 8 if cfg.method.endswith("int8") else 4, cfg.group_size)
    new = CausalLMAdapter(module, adapter.tokenizer, adapter.info, [*adapter.compression, rec])
    info = {"method": cfg.method, "quantized_layers": len(rec["layers"]), "kept_fp32": rec["kept_fp32"],
            "group_size": rec.get("group_size")}
    if rec.get("kernel"):
        info.update(kernel=rec["kernel"], left_rtn=rec["left_rtn"])
    if rec["kept_fp32"]:
        info["note"] = "the tied lm_head / input embeddings stay fp32 so that the weight sharing survives"
    return StepResult(new, flops=0.0, info=info)


def prune_lm(cfg: Any, model: Any, ctx: Any) -> Any:
    """The `prune` step for causal LMs: `magnitude` (per layer) or `2:4`, on a copy."""
    adapter = model
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
