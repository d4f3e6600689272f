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

    device: str = "cpu"  # where the model runs; a PyTorch module may move to "cuda" (models/device.py)

    def to_device(self, device: str) -> None:
        """Moves the model to `device` ("cpu" or "cuda"; ``models.device.on_device`` moves it back after). Only
        a family whose ``Family.devices`` lists the device can: the others run on the CPU."""
        if device != "cpu":
            raise ModelError(f"a {self.adapter_name} model runs on the CPU only, not on {device}")

    def kv_cache_bytes(self, context: int, batch: int) -> int | None:
        """Bytes of the keys and values a generating model holds for `batch` sequences of `context` tokens (its
        KV cache, as the runtime stores it); None when the model has none or cannot say. Serving's peak memory
        reports it (``measure.serving.generation_memory``)."""
        return None

    def describe(self) -> dict[str, Any]:
        """A small JSON-able summary for reports (architecture, dtype, quantization)."""
        return {"adapter": self.adapter_name}

    # ----------------------------------------------------------------- export (`leanbench export`)
    @classmethod
    def export(cls, saved: Path, dest: Path) -> list[Path]:
        """Writes the model that `save` wrote into `saved` in its family's standard form into the existing,
        empty folder `dest`; returns the files written. Nothing is loaded: the default copies the saved
        folder as it is (a folder `save` writes is already the standard form of most families: a Hugging Face
        `save_pretrained` folder, `model.onnx` with its tokenizer, safetensors weights); a family whose
        standard form differs overrides this (a causal LM: its `hf/` folder)."""
        return copy_files(saved, dest)

    @classmethod
    def export_form(cls, saved: Path) -> str:
        """One line for the model card: what the exported folder holds and how to load it."""
        return (f"the saved leanbench `{cls.adapter_name}` model folder ({ADAPTER_FILE} and its weights); "
                "load it with `leanbench.models.base.load_model(folder)`")


def write_adapter_file(path: Path, adapter_name: str, config: dict[str, Any]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / ADAPTER_FILE).write_text(json.dumps({"adapter": adapter_name, **config}, indent=2, sort_keys=True))


def read_adapter_file(path: Path) -> dict[str, Any]:
    f = Path(path) / ADAPTER_FILE
    if not f.is_file():
        raise ModelError(f"{path}: not a saved leanbench model (no {ADAPTER_FILE})")
    return json.loads(f.read_text())


def saved_adapter_class(path: str | Path) -> type[ModelAdapter]:
    """The adapter class of the family a saved model's adapter.json names."""
    from leanbench.plugins import FAMILIES, adapter_class
    from leanbench.schema import models  # noqa: F401  (registers the built-in families)

    name = read_adapter_file(Path(path))["adapter"]
    if name not in FAMILIES:
        raise ModelError(f"{path}: saved by an unknown model adapter '{name}'; known: {', '.join(FAMILIES.names())}")
    return adapter_class(name)


def load_model(path: str | Path) -> ModelAdapter:
    """Loads any saved model with the adapter of the family its adapter.json names."""
    return saved_adapter_class(path).load(Path(path))


def build_model(spec: Any, data: Any, seed: int) -> ModelAdapter:
    """A fresh (or pretrained) model for a candidate's `model:` spec, by its model kind's builder (which may
    depend on the task kind: an `hf:` model on a language-modeling task is a causal LM)."""
    from leanbench.plugins import MODEL_KINDS, model_kind
    from leanbench.schema import models  # noqa: F401  (registers the built-in model kinds)

    task_kind = getattr(data, "meta", {}).get("task_kind") or "classification"
    return MODEL_KINDS.get(model_kind(spec)).builder_for(task_kind)(spec, data, seed)


def copy_files(src: Path, dest: Path) -> list[Path]:
    """Copies every file under `src` to the same place under `dest`; returns the copies."""
    import shutil

    out = []
    for f in sorted(Path(src).rglob("*")):
        rel = f.relative_to(src)
        if f.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            out.append(Path(shutil.copy2(f, dest / rel)))
    return out


def export_model(saved: str | Path, dest: str | Path) -> tuple[list[Path], str]:
    """The model saved at `saved` written in its standard form into the existing folder `dest`, by the
    adapter of its family (`ModelAdapter.export`): the files written and a line saying how to load them."""
    cls = saved_adapter_class(saved)
    return cls.export(Path(saved), Path(dest)), cls.export_form(Path(saved))


def dir_size_bytes(path: str | Path) -> int:
    """Serialized size of a saved model: every file in its folder."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
