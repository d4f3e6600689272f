"""The model adapter interface every backend implements.

An adapter wraps one trained model. Saved models are a folder holding ``adapter.json`` (which adapter
loads it, plus its own config) and weights in safetensors (or ONNX). Nothing is unpickled.
"""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from leanbench.errors import ModelError
from leanbench.registry import Registry

ADAPTERS: Registry[type[ModelAdapter]] = Registry("model adapter")
ADAPTER_FILE = "adapter.json"

# Implementations load lazily (transformers, onnxruntime are heavy): adapter name -> module that registers it,
# and model-spec kind (`leanbench.study.model_kind`) -> "module:function" building a fresh model.
ADAPTER_MODULES: dict[str, str] = {
    "torch": "leanbench.models.torch_models",
    "causal-lm": "leanbench.models.causal_lm",
    "hf": "leanbench.models.hf",
    "onnx": "leanbench.models.onnx",
    "hf-dynamic-int8": "leanbench.compress.hf_quantize",
    "text-student": "leanbench.models.text_students",
    "sklearn": "leanbench.models.sklearn_models",
}
BUILDERS: dict[str, str] = {
    "mlp": "leanbench.models.torch_models:build_model",
    "cnn": "leanbench.models.torch_models:build_model",
    "hf": "leanbench.models.hf:build_hf_model",
    "textcnn": "leanbench.models.text_students:build_text_student",
    "embedbag": "leanbench.models.text_students:build_text_student",
    "bilstm": "leanbench.models.text_students:build_text_student",
    "tfidf-logreg": "leanbench.models.sklearn_models:build_tfidf_logreg",
    # "<kind>:<task kind>" takes precedence over "<kind>": an `hf:` model on an LM task is a causal LM
    "hf:multiple-choice": "leanbench.models.causal_lm:build_model",
    "hf:language-modeling": "leanbench.models.causal_lm:build_model",
}


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


def _import(target: str) -> Any:
    module, _, attr = target.partition(":")
    mod = importlib.import_module(module)
    return getattr(mod, attr) if attr else mod


def load_model(path: str | Path) -> ModelAdapter:
    """Loads any saved model, dispatching on adapter.json."""
    info = read_adapter_file(Path(path))
    name = info["adapter"]
    if name in ADAPTER_MODULES:
        _import(ADAPTER_MODULES[name])  # importing the implementation registers it
    return ADAPTERS.get(name).load(Path(path))


def build_model(spec: Any, data: Any, seed: int) -> ModelAdapter:
    """A fresh (or pretrained) model for a candidate's `model:` spec."""
    from leanbench.study import model_kind

    kind = model_kind(spec)
    task_kind = getattr(data, "meta", {}).get("task_kind")
    if f"{kind}:{task_kind}" in BUILDERS:
        kind = f"{kind}:{task_kind}"
    if kind not in BUILDERS:
        raise ModelError(f"no builder for model kind '{kind}'; known: {', '.join(sorted(BUILDERS))}")
    return _import(BUILDERS[kind])(spec, data, seed)


def dir_size_bytes(path: str | Path) -> int:
    """Serialized size of a saved model: every file in its folder."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
