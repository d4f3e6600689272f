"""The model adapter interface every backend implements.

An adapter wraps one trained model. Saved models are a folder holding ``adapter.json`` (which adapter
loads it, plus its own config) and weights in safetensors (or ONNX). Nothing is unpickled.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from leanbench.errors import ModelError

ADAPTER_FILE = "adapter.json"

class ModelAdapter(ABC):
    """A trained classifier behind one interface.

    ``predict_proba`` is what evaluation uses; ``forward`` is the raw call that latency measurement times
    (a batch already in the model's input format, as returned by ``prepare``).
    """

    adapter_name: str = "base"

    @abstractmethod
    def predict_proba(self, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities, shape (N, n_classes), float64, rows summing to 1."""

    @abstractmethod
    def prepare(self, X: np.ndarray) -> Any:
        """Turns raw examples (rows of X) into the model's input (e.g. a float tensor)."""

    @abstractmethod
    def forward(self, inputs: Any) -> Any:
        """One inference call on prepared inputs (no grad); returns logits."""

    @abstractmethod
    def save(self, path: Path) -> None:
        """Writes the model into the folder `path` (created if needed), including adapter.json."""

    @classmethod
    @abstractmethod
    def load(cls, path: Path) -> ModelAdapter:
        """Reads a model that `save` wrote."""

    @abstractmethod
    def num_params(self) -> int:
        """Total parameters (weights of quantized layers count once each)."""

    @abstractmethod
    def nonzero_params(self) -> int:
        """Parameters that are not exactly zero."""

    def torch_module(self) -> Any | None:
        """The underlying torch.nn.Module, when there is one (FLOP counting uses it)."""
        return None

    def describe(self) -> dict[str, Any]:
        """A small JSON-able summary for reports (architecture, dtype, quantization)."""
        return {"adapter": self.adapter_name}


def write_adapter_file(path: Path, adapter_name: str, config: dict[str, Any]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / ADAPTER_FILE).write_text(json.dumps({"adapter": adapter_name, **config}, indent=2, sort_keys=True))


def read_adapter_file(path: Path) -> dict[str, Any]:
    f = Path(path) / ADAPTER_FILE
    if not f.is_file():
        raise ModelError(f"{path}: not a saved leanbench model (no {ADAPTER_FILE})")
    return json.loads(f.read_text())


def load_model(path: str | Path) -> ModelAdapter:
    """Loads any saved model with the adapter of the family its adapter.json names."""
    from leanbench.plugins import FAMILIES, adapter_class
    from leanbench.schema import models  # noqa: F401  (registers the built-in families)

    name = read_adapter_file(Path(path))["adapter"]
    if name not in FAMILIES:
        raise ModelError(f"{path}: saved by an unknown model adapter '{name}'; known: {', '.join(FAMILIES.names())}")
    return adapter_class(name).load(Path(path))


def build_model(spec: Any, data: Any, seed: int) -> ModelAdapter:
    """A fresh (or pretrained) model for a candidate's `model:` spec, by its model kind's builder (which may
    depend on the task kind: an `hf:` model on a language-modeling task is a causal LM)."""
    from leanbench.plugins import MODEL_KINDS, model_kind
    from leanbench.schema import models  # noqa: F401  (registers the built-in model kinds)

    task_kind = getattr(data, "meta", {}).get("task_kind") or "classification"
    return MODEL_KINDS.get(model_kind(spec)).builder_for(task_kind)(spec, data, seed)


def dir_size_bytes(path: str | Path) -> int:
    """Serialized size of a saved model: every file in its folder."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
