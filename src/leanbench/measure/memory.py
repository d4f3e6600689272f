"""Memory a model needs: its weights, and the peak extra memory of one forward call at a batch size.

* ``weights_bytes``: parameters and buffers at their stored dtype (shared tensors once). Quantized
  modules (``torch.ao.nn.quantized``) keep weights packed outside ``parameters()``; they are unpacked
  and counted as stored: int8 weight (1 byte each) + quantization parameters (scales, zero points at
  the dtype torch holds them) + float bias; fp16 dynamic-quantized weights as 2 bytes each.
* ``activation_bytes``: torch.profiler with ``profile_memory=True`` records every allocation and free
  of torch's CPU allocator; replaying them in order (running sum of sizes) gives the peak of memory
  allocated during the call above what existed before it (the input is excluded, the output included).
  Scratch memory that kernels take outside torch's allocator (oneDNN/fbgemm internals) is not seen.
  If the profiler fails or records nothing, the sum of every module's output tensor sizes is used instead (an
  upper bound on simultaneously live activations for a sequential model), and ``method`` says so.
* ``rss_peak_delta_bytes``: process-level, Linux only: the peak resident set (VmHWM, reset by writing
  "5" to /proc/self/clear_refs) during one forward minus the resident set before it; None elsewhere.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from leanbench.errors import ConfigError, DataError
from leanbench.models.base import ModelAdapter

PROFILER_METHOD = "torch.profiler CPU allocator events replayed in order (peak of running sum)"
HOOKS_METHOD = (
    "sum of module output tensor sizes seen by forward hooks (profiler unavailable or recorded nothing)"
)
WEIGHTS_METHOD = "weights: parameters + buffers at stored dtype, quantized weights as packed (int8 + qparams)"
PROC_STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes a tensor's elements take, plus its scales and zero points when it is quantized."""
    size = t.numel() * t.element_size()
    if not t.is_quantized:
        return size
    if t.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric,
                       torch.per_channel_affine_float_qparams):
        q = t.q_per_channel_scales(), t.q_per_channel_zero_points()
        return size + sum(x.numel() * x.element_size() for x in q)
    return size + 16  # one float64 scale + one int64 zero point


def _packed_weight_bytes(module: nn.Module) -> int:
    """Bytes of a quantized module's packed weight and bias (``weight()`` / ``bias()`` unpack them)."""
    weight = module.weight()
    packed_dtype = getattr(getattr(module, "_packed_params", None), "dtype", None)
    w = weight.numel() * 2 if packed_dtype == torch.float16 else tensor_bytes(weight)
    bias_fn = getattr(module, "bias", None)
    bias = bias_fn() if callable(bias_fn) else None
    return w + (tensor_bytes(bias) if isinstance(bias, torch.Tensor) else 0)


def weights_bytes(module: nn.Module) -> int:
    """Stored bytes of a module's weights: parameters + buffers (each storage once) + packed weights."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for m in module.modules():
        if callable(getattr(m, "weight", None)) and type(m).__module__.startswith("torch.ao.nn.quantized"):
            total += _packed_weight_bytes(m)
        for t in [*m.parameters(recurse=False), *m.buffers(recurse=False)]:
            key = (t.data_ptr(), t.numel())
            if key not in seen:
                seen.add(key)
                total += tensor_bytes(t)
    return total


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silences file descriptor 2 (the profiler's C++ code prints start/stop lines there)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _profiled_peak(forward: Any, inputs: Any) -> int | None:
    """Peak of the running sum of CPU allocator events during one call; None if none were recorded."""
    try:
        with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            out = forward(inputs)
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    except (RuntimeError, AttributeError):  # profiler busy elsewhere, or its result API changed
        return None
    del out
    if not events:
        return None
    sizes = [e.nbytes() for e in sorted(events, key=lambda e: e.start_ns())]
    return max(0, int(np.max(np.cumsum(sizes))))


def _hooked_outputs(module: nn.Module, forward: Any, inputs: Any) -> int:
    """Sum of the sizes of every tensor output by every module during one call."""
    total = [0]

    def hook(_m: nn.Module, _args: Any, output: Any) -> None:
        outs = output if isinstance(output, (tuple, list)) else [output]
        total[0] += sum(tensor_bytes(o) for o in outs if isinstance(o, torch.Tensor))

    handles = [m.register_forward_hook(hook) for m in module.modules()]
    try:
        forward(inputs)
    finally:
        for h in handles:
            h.remove()
    return total[0]


def _status_kib(field: str) -> int | None:
    for line in PROC_STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def rss_peak_delta(forward: Any, inputs: Any) -> int | None:
    """Peak resident set during one call minus the resident set before (bytes); None when unsupported."""
    try:
        CLEAR_REFS.write_text("5")  # resets VmHWM to the current RSS (proc(5), /proc/pid/clear_refs)
        before = _status_kib("VmRSS")
        forward(inputs)
        peak = _status_kib("VmHWM")
    except OSError:
        return None
    if before is None or peak is None:
        return None
    return max(0, peak - before) * 1024


def peak_memory(model: ModelAdapter, X: np.ndarray, *, batch: int = 256) -> dict[str, Any]:
    """Weights plus peak activation memory of one forward call on ``batch`` rows of X (tiled if needed).

    One untimed call runs first so that lazy initialisation is not counted as activations.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError([f"batch: must be an integer >= 1, got {batch!r}"], source="peak_memory")
    if len(X) == 0:
        raise DataError("peak_memory: X has no rows; at least one example is needed")
    from leanbench.models.device import GPU_MEMORY_METHOD, gpu_peak_bytes, model_device

    module = model.torch_module()
    inputs = model.prepare(X[np.arange(batch) % len(X)])
    with torch.inference_mode():
        model.forward(inputs)
        if model_device(model) == "cuda":  # the GPU allocator's peak; host memory is not what it holds
            activation, weights = gpu_peak_bytes(model.forward, inputs), weights_bytes(module)
            return {"peak_bytes": weights + activation, "weights_bytes": weights, "activation_bytes": activation,
                    "batch": batch, "rss_peak_delta_bytes": None, "device": "cuda",
                    "method": f"GPU: {WEIGHTS_METHOD}; activations at batch {batch}: {GPU_MEMORY_METHOD}"}
        rss = rss_peak_delta(model.forward, inputs)
        if module is None:
            return {"peak_bytes": None, "weights_bytes": None, "activation_bytes": None, "batch": batch,
                    "rss_peak_delta_bytes": rss, "method": "unavailable (no torch module); rss only"}
        activation, method = _profiled_peak(model.forward, inputs), PROFILER_METHOD
        if activation is None:
            activation, method = _hooked_outputs(module, model.forward, inputs), HOOKS_METHOD
    weights = weights_bytes(module)
    return {"peak_bytes": weights + activation, "weights_bytes": weights, "activation_bytes": activation,
            "batch": batch, "rss_peak_delta_bytes": rss,
            "method": f"{WEIGHTS_METHOD}; activations at batch {batch}: {method}; input not counted"}


OWN_TORCH_METHOD = "weights + peak activations of one call at its batch (peak_memory)"
OWN_OTHER_METHOD = ("serialized size (no torch module to count weights in) + the resident set's growth during one "
                    "call at its batch")


def own_memory_bytes(memory: dict[str, Any], size_bytes: int | None = None) -> tuple[int | None, str]:
    """The memory a model itself holds while it serves, from a :func:`peak_memory` result: its weights plus
    the peak activations of one call (``peak_bytes``); for a model without a torch module (TF-IDF, ONNX
    Runtime) its serialized size plus the growth of the resident set during one call. Never the process's
    resident set, which holds every other model loaded too. Returns (bytes or None, how it was counted)."""
    if memory.get("peak_bytes") is not None:
        return int(memory["peak_bytes"]), OWN_TORCH_METHOD
    if size_bytes is None:
        return None, "unknown (no torch module and no serialized size)"
    return int(size_bytes) + int(memory.get("rss_peak_delta_bytes") or 0), OWN_OTHER_METHOD
