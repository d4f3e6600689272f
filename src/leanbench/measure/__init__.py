"""leanbench.measure: honest measurements of a model under a stated setting.

Submodules: ``threads`` (torch_threads), ``latency`` (measure_latency, measure_throughput),
``flops`` (flops_per_example), ``memory`` (peak_memory), ``size`` (model_size). Importing this package
does not import torch; the names below load their submodule on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "torch_threads": "threads",
    "measure_latency": "latency",
    "measure_throughput": "latency",
    "flops_per_example": "flops",
    "peak_memory": "memory",
    "model_size": "size",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"leanbench.measure.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'leanbench.measure' has no attribute {name!r}")
