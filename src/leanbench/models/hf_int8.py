"""Hugging Face classifiers with torch dynamic int8 Linear layers (adapter ``hf-dynamic-int8``), as the
``quantize`` step's ``dynamic-int8`` method makes them (``leanbench.compress.hf_quantize``).

Every nn.Linear is ``torch.ao.quantization.quantize_dynamic``'d (qint8 weights, one scale per tensor;
activations quantized per call; Jacob et al. 2018); embeddings and LayerNorms stay fp32. Saved folder:
config.json + tokenizer files + ``model.safetensors`` with plain tensors (int8 weight + scale + zero point
per Linear, ``quantized_state`` of ``leanbench.models.torch_models``, fp32 for the rest) + adapter.json, so
it reloads bit-identically. Activation scales are computed per batch: predictions depend on the batch
composition (``BATCH_NOTE``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from leanbench.atomic import atomic_path
from leanbench.errors import ModelError
from leanbench.models.base import read_adapter_file, write_adapter_file
from leanbench.models.hf import (
    DEFAULT_MAX_LENGTH,
    HFClassifierAdapter,
    load_tokenizer,
    quiet_transformers,
    resize_linears,
)
from leanbench.models.onnx import BATCH_NOTE
from leanbench.models.torch_models import load_quantized_state, quantize_module, quantized_state

WEIGHTS_FILE = "model.safetensors"


class HFDynamicInt8Adapter(HFClassifierAdapter):
    """A Hugging Face classifier whose nn.Linear layers are torch dynamic int8 (qint8, per tensor).

    ``linear_shapes`` are the [out, in] of Linear layers resized by structured pruning before
    quantization (so loading rebuilds the same architecture)."""

    adapter_name = "hf-dynamic-int8"

    def __init__(self, model: torch.nn.Module, tokenizer: Any, max_length: int = DEFAULT_MAX_LENGTH,
                 label_names: list[str] | None = None, *, linear_shapes: dict[str, list[int]] | None = None,
                 **kwargs: Any):
        super().__init__(model, tokenizer, max_length, label_names, **kwargs)
        self.linear_shapes = dict(linear_shapes or {})

    # num_params / nonzero_params: TorchModuleMixin's (through HFClassifierAdapter), where an int8 Linear
    # weight counts like the fp32 weight it replaced

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "adapter": self.adapter_name, "runtime": "pytorch",
                "quantization": "dynamic-int8", "dtype": "int8 Linear weights, fp32 embeddings and norms",
                "batch_note": BATCH_NOTE}

    def copy(self) -> HFDynamicInt8Adapter:
        return HFDynamicInt8Adapter(copy.deepcopy(self.model), self.tokenizer, self.max_length, self.label_names,
                                    linear_shapes=self.linear_shapes, layer_map=self.layer_map,
                                    trust_remote_code=self.trust_remote_code, source=self.source)

    def save(self, path: Path) -> None:
        """config.json + tokenizer files + model.safetensors (int8 weights, scales, zero points, fp32 rest)
        + adapter.json."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            self.model.config.save_pretrained(str(path))
            self.tokenizer.save_pretrained(str(path))
        with atomic_path(path / WEIGHTS_FILE) as tmp:
            save_file(quantized_state(self.model), str(tmp), metadata={"format": "pt"})
        write_adapter_file(path, self.adapter_name, {
            "max_length": self.max_length, "label_names": self.label_names, "layer_map": self.layer_map,
            "trust_remote_code": self.trust_remote_code, "source": self.source,
            "linear_shapes": self.linear_shapes, "quantization": "dynamic-int8"})

    @classmethod
    def load(cls, path: Path) -> HFDynamicInt8Adapter:
        from transformers import AutoConfig, AutoModelForSequenceClassification

        path = Path(path)
        info = read_adapter_file(path)
        if not (path / WEIGHTS_FILE).is_file() or not (path / "config.json").is_file():
            raise ModelError(f"{path}: a saved int8 model needs config.json and {WEIGHTS_FILE}")
        remote = bool(info.get("trust_remote_code", False))
        with quiet_transformers():
            config = AutoConfig.from_pretrained(str(path), trust_remote_code=remote)
            model = AutoModelForSequenceClassification.from_config(config, trust_remote_code=remote)
        resize_linears(model, info.get("linear_shapes") or {})
        model = quantize_module(model)
        load_quantized_state(model, load_file(str(path / WEIGHTS_FILE)), str(path))
        return cls(model, load_tokenizer(str(path), remote), int(info.get("max_length", DEFAULT_MAX_LENGTH)),
                   info.get("label_names"), linear_shapes=info.get("linear_shapes"),
                   layer_map=info.get("layer_map"), trust_remote_code=remote, source=info.get("source"))
