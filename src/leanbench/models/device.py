"""Where a PyTorch model runs: the CPU (always) or a CUDA GPU (`evaluate.device`, `deploy.profiles[].device`).

A model is moved only for the work that asks for it and moved back after (``on_device``): the runner keeps
loaded models across cells, so a model evaluated on the GPU is measured on the CPU by a cpu profile. A torch
adapter's ``prepare`` puts its inputs on the module's device and its outputs come back to the CPU as numpy, so
the rest of leanbench never sees a device. Families other than PyTorch modules (ONNX Runtime, llama.cpp,
scikit-learn) run on the CPU only (``Family.devices``); a PyTorch module holding CPU-only layers (torch dynamic
int8, the packed int4 kernel for CPU) refuses to move (``cpu_only_layers``).

GPU timing: CUDA kernels run asynchronously, so a timed call is bracketed by ``torch.cuda.synchronize()``
(``synced``): the clock stops when the GPU has finished, not when the launch returns (optimum-benchmark's
latency tracker does the same). GPU memory is the caching allocator's peak (``torch.cuda.max_memory_allocated``
after ``reset_peak_memory_stats``); GPU energy is NVML's cumulative energy counter
(``nvmlDeviceGetTotalEnergyConsumption``, millijoules, Volta and later) when ``pynvml`` imports and the counter
reads, and "not measured" with the reason otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from leanbench.errors import ModelError

DEVICES = ("cpu", "cuda")
GPU_MEMORY_METHOD = "torch.cuda.max_memory_allocated during one call, minus the allocation before it"
NVML_METHOD = "NVML total energy counter of the GPU (nvmlDeviceGetTotalEnergyConsumption)"


def cuda_problem() -> str | None:
    """Why `device: cuda` cannot run here (None when a CUDA device is usable). Imports torch."""
    import torch

    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is built without CUDA"
    if not torch.cuda.is_available():
        return "this machine has no usable CUDA device (torch.cuda.is_available() is False)"
    return None


def gpu_name() -> str | None:
    """The name of CUDA device 0, None without one (the manifest and a cuda profile's measure key)."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def model_device(model: Any) -> str:
    """"cuda" or "cpu": where a model's module lives (an adapter without a `device` runs on the CPU)."""
    return str(getattr(model, "device", "cpu"))


def supports(model: Any, device: str) -> bool:
    """Whether the model's family runs on `device` (``Family.devices``)."""
    if device == "cpu":
        return True
    from leanbench.plugins import FAMILIES

    name = getattr(model, "adapter_name", None)
    return name in FAMILIES and device in FAMILIES.get(name).devices


def move(value: Any, device: str) -> Any:
    """Tensors (alone, in a mapping such as a tokenizer's output, a list or a tuple) on `device`."""
    import torch

    if isinstance(value, torch.Tensor):
        return value if value.device.type == device else value.to(device, non_blocking=False)
    if isinstance(value, Mapping):
        return {k: move(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(move(v, device) for v in value)
    return value


def cpu_only_layers(module: Any) -> list[str]:
    """Names of layers with no CUDA kernel: torch dynamic/static quantized modules, and layers that say so with a
    class attribute `cpu_only = True` (the packed int4 CPU kernel)."""
    out: list[str] = []
    for n, m in module.named_modules():
        inside = any(n.startswith(o + ".") for o in out)  # a quantized layer's own parts: named once, by the layer
        if not inside and (type(m).__module__.startswith("torch.ao.nn.quantized") or getattr(m, "cpu_only", False)):
            out.append(n)
    return out


@contextmanager
def on_device(models: Any | Mapping[str, Any], device: str) -> Iterator[None]:
    """Every model (one, or a mapping of them) on `device` for the block, back on the CPU after (even on error).
    "cpu" changes nothing."""
    group = list(models.values()) if isinstance(models, Mapping) else [models]
    if device == "cpu":
        yield
        return
    moved = []
    try:
        for m in group:
            m.to_device(device)
            moved.append(m)
        yield
    finally:
        for m in moved:
            m.to_device("cpu")
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def synchronize(model: Any) -> None:
    """Waits for the model's queued GPU work (nothing on a CPU)."""
    if model_device(model) == "cuda":
        import torch

        torch.cuda.synchronize()


def synced(model: Any, call: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`call`, bracketed by CUDA synchronisation when the model is on a GPU (the call as it is otherwise), so a
    clock around it times the GPU's work and not the kernel launches."""
    if model_device(model) != "cuda":
        return call
    import torch

    def run(inputs: Any) -> Any:
        torch.cuda.synchronize()
        out = call(inputs)
        torch.cuda.synchronize()
        return out

    return run


def gpu_peak_bytes(call: Callable[[Any], Any], inputs: Any) -> int:
    """Bytes the CUDA caching allocator held at its peak during one call, above what it held before."""
    import torch

    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out = call(inputs)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    del out
    return max(0, int(peak - before))


class GpuEnergy:
    """NVML energy of CUDA device 0 over a window (a context manager): ``joules`` after it, or None with
    ``reason`` when pynvml is missing or the counter cannot be read (then the energy is "not measured")."""

    def __init__(self) -> None:
        self.joules: float | None = None
        self.reason: str | None = None
        self._start: int | None = None
        self._nvml: Any = None
        self._handle: Any = None

    def _read(self) -> int:
        return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))  # millijoules since load

    def __enter__(self) -> GpuEnergy:
        try:
            import pynvml
        except ImportError:
            self.reason = "GPU energy not measured: pynvml is not installed (pip install nvidia-ml-py)"
            return self
        try:
            pynvml.nvmlInit()
            self._nvml, self._handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
            self._start = self._read()
        except Exception as exc:  # noqa: BLE001  (NVMLError_* of an old GPU, a driver without the counter)
            self.reason = f"GPU energy not measured: NVML energy counter unreadable ({exc})"
            self._start = None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._start is None:
            return
        import torch

        torch.cuda.synchronize()
        try:
            self.joules = (self._read() - self._start) / 1e3
        except Exception as err:  # noqa: BLE001
            self.reason = f"GPU energy not measured: NVML energy counter unreadable ({err})"
        finally:
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001, S110
                pass


def to_device_of(module: Any, device: str, what: str) -> None:
    """Moves a torch module to `device` (ModelError naming its CPU-only layers when it has some)."""
    if device not in DEVICES:
        raise ModelError(f"unknown device {device!r}; known: {', '.join(DEVICES)}")
    if device != "cpu":
        bad = cpu_only_layers(module)
        if bad:
            raise ModelError(f"{what} cannot run on {device}: it holds layers with CPU-only kernels (torch dynamic "
                             f"int8 / packed int4 for CPU): {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}; "
                             "measure it in a cpu profile")
    module.to(device)
