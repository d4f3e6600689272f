"""The ``quantize`` step for Hugging Face classifiers: PyTorch dynamic int8 and ONNX Runtime runtimes.

Methods (``QuantizeConfig.method``):

* ``dynamic-int8``: ``torch.ao.quantization.quantize_dynamic`` of every nn.Linear (qint8 weights, one
  scale per tensor; activations quantized per call; Jacob et al. 2018). Embeddings and LayerNorms stay
  fp32. The model (adapter ``hf-dynamic-int8``, ``leanbench.models.hf_int8``) is saved as plain tensors
  (int8 weight + scale + zero point per Linear, ``quantized_state`` of ``leanbench.models.torch_models``)
  with config.json and the tokenizer, so it reloads bit-identically.
* ``onnx-fp32``: the same fp32 model exported to ONNX and run by ONNX Runtime. No compression at all:
  it is the control that separates the runtime change from the quantization (MEASURED.md: ORT fp32
  was 2x faster than eager torch fp32 at batch 1).
* ``onnxruntime-dynamic-int8``: ``onnxruntime.quantization.quantize_dynamic`` of the fp32 export (int8
  weights of MatMul/Gemm/Gather, per tensor or per channel; activations quantized per call).
* ``onnxruntime-static-int8``: ``quantize_static`` in QDQ format; activation ranges (MinMax) calibrated
  on a seeded sample of ``calibration_examples`` examples of the train split, one example per call (no
  padding), the calibration time recorded in the step's info.

Dynamic int8 models compute activation scales per batch: predictions depend on the batch composition
(MEASURED.md), so the info and ``describe()`` say that predictions were computed at the evaluation
batch size.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from leanbench.compress.base import StepContext, StepResult
from leanbench.errors import ModelError
from leanbench.models.hf import HFClassifierAdapter, linear_shapes
from leanbench.models.hf_int8 import HFDynamicInt8Adapter
from leanbench.models.onnx import BATCH_NOTE, ONNX_FILE, OnnxAdapter, onnx_from_hf
from leanbench.models.torch_common import quantized_linears
from leanbench.models.torch_models import quantize_module
from leanbench.study import QuantizeConfig

STATIC_OP_TYPES = ("MatMul", "Gemm", "Gather")
CALIBRATION_METHOD = "MinMax"


# --------------------------------------------------------------------------- the step
def quantize_hf(cfg: QuantizeConfig, model: HFClassifierAdapter, ctx: StepContext) -> StepResult:
    """The quantize step on an fp32 Hugging Face classifier: PyTorch dynamic int8, or an ONNX export (fp32,
    the runtime control) and ONNX Runtime int8 of it."""
    if cfg.method == "dynamic-int8":
        return StepResult(*torch_dynamic_int8(model))
    check = _check_texts(ctx.data.validation.X if len(ctx.data.validation) else ctx.data.train.X, ctx.seed)
    fp32 = onnx_from_hf(model, opset=cfg.opset, exporter=cfg.exporter, check_texts=check)
    if cfg.method == "onnx-fp32":
        return StepResult(fp32, 0.0, {"method": cfg.method, **fp32.info})
    return _ort_int8(cfg, fp32, ctx)


def quantize_onnx(cfg: QuantizeConfig, model: OnnxAdapter, ctx: StepContext) -> StepResult:
    """The quantize step on an fp32 ONNX model (an `onnx-fp32` candidate): ONNX Runtime int8 of it."""
    if model.info.get("quantization"):
        raise ModelError(f"step 'quantize' ({cfg.method}): the model is already an ONNX model "
                         f"(quantization: {model.info.get('quantization')}); start from the fp32 model")
    return _ort_int8(cfg, model, ctx)


def _ort_int8(cfg: QuantizeConfig, fp32: OnnxAdapter, ctx: StepContext) -> StepResult:
    if cfg.method == "onnxruntime-dynamic-int8":
        return StepResult(*ort_dynamic_int8(fp32, per_channel=cfg.per_channel))
    return StepResult(*ort_static_int8(fp32, ctx.data.train.X, cfg.calibration_examples, ctx.seed,
                                       per_channel=cfg.per_channel))


def _check_texts(X: np.ndarray, seed: int, n: int = 8) -> np.ndarray:
    """A seeded sample of up to n real examples to compare ONNX Runtime with PyTorch on."""
    rng = np.random.default_rng([seed, 1])
    return X[np.sort(rng.choice(len(X), size=min(n, len(X)), replace=False))]


# --------------------------------------------------------------------------- PyTorch dynamic int8
def torch_dynamic_int8(hf: HFClassifierAdapter) -> tuple[HFDynamicInt8Adapter, float, dict[str, Any]]:
    """(quantized adapter, FLOPs spent ~0, info) for torch dynamic int8 of every nn.Linear."""
    shapes = linear_shapes(hf.model)
    module = quantize_module(hf.model)
    layers = [name for name, _ in quantized_linears(module)]
    adapter = HFDynamicInt8Adapter(module, hf.tokenizer, hf.max_length, hf.label_names, layer_map=hf.layer_map,
                                   trust_remote_code=hf.trust_remote_code, source=hf.source,
                                   linear_shapes=shapes)
    info = {"method": "dynamic-int8", "runtime": "pytorch", "quantized_layers": len(layers),
            "fp32_parts": "embeddings, LayerNorm", "batch_note": BATCH_NOTE}
    return adapter, 0.0, info


# --------------------------------------------------------------------------- ONNX Runtime int8
@contextlib.contextmanager
def _ort_quantization(method: str) -> Iterator[None]:
    """Runs an onnxruntime.quantization call: its advice (root logger) silenced, its failures (shape
    inference, unsupported ops) raised as ModelError saying which method failed."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - onnx / onnxruntime raise many exception types
        raise ModelError(f"quantize method '{method}': ONNX Runtime quantization failed "
                         f"({type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]})") from None
    finally:
        root.setLevel(level)


def _ort_quantized(fp32: OnnxAdapter, out_bytes: bytes, info: dict[str, Any]) -> OnnxAdapter:
    adapter = OnnxAdapter(out_bytes, fp32.tokenizer, fp32.max_length, fp32.label_names,
                          {**fp32.info, **info}, threads=fp32.threads)
    return adapter


def ort_dynamic_int8(fp32: OnnxAdapter, per_channel: bool = False) -> tuple[OnnxAdapter, float, dict[str, Any]]:
    """(int8 adapter, FLOPs ~0, info): ORT dynamic quantization, QInt8 weights, uint8 activations."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    info = {"quantization": "onnxruntime-dynamic-int8", "per_channel": per_channel, "weight_type": "int8",
            "activations": "uint8, scale per call (dynamic)", "batch_note": BATCH_NOTE}
    with tempfile.TemporaryDirectory(prefix="leanbench-ort-") as tmp:
        src, dst = Path(tmp) / ONNX_FILE, Path(tmp) / "int8.onnx"
        src.write_bytes(fp32.model_bytes)
        with _ort_quantization(info["quantization"]):
            quantize_dynamic(src, dst, per_channel=per_channel, weight_type=QuantType.QInt8)
        data = dst.read_bytes()
    return _ort_quantized(fp32, data, info), 0.0, {"method": info["quantization"], **info}


class SampleReader:
    """``onnxruntime.quantization.CalibrationDataReader`` over examples, one example per call (so no
    padding token enters the activation ranges)."""

    def __init__(self, adapter: OnnxAdapter, X: np.ndarray):
        self.adapter = adapter
        self.X = X
        self._it: Iterator[dict[str, np.ndarray]] | None = None

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(len(self.X)):
            yield self.adapter.prepare(self.X[i:i + 1])

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = self._batches()
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None


def calibration_sample(X: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A seeded sample of min(n, len(X)) rows of X, in their original order."""
    if len(X) == 0:
        raise ModelError("onnxruntime-static-int8 needs training examples to calibrate on; the train split is empty")
    rng = np.random.default_rng([seed, 2])
    return X[np.sort(rng.choice(len(X), size=min(n, len(X)), replace=False))]


def ort_static_int8(fp32: OnnxAdapter, X_train: np.ndarray, n_examples: int, seed: int,
                    per_channel: bool = False) -> tuple[OnnxAdapter, float, dict[str, Any]]:
    """(int8 adapter, forward FLOPs are not counted, info): QDQ static quantization of MatMul, Gemm and
    Gather weights and activations, int8 weights (symmetric), uint8 activations (MinMax ranges)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    sample = calibration_sample(np.asarray(X_train, dtype=object), n_examples, seed)
    with tempfile.TemporaryDirectory(prefix="leanbench-ort-") as tmp:
        src, dst = Path(tmp) / ONNX_FILE, Path(tmp) / "int8.onnx"
        src.write_bytes(fp32.model_bytes)
        start = time.perf_counter()
        with _ort_quantization("onnxruntime-static-int8"):
            quantize_static(src, dst, SampleReader(fp32, sample), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=list(STATIC_OP_TYPES), per_channel=per_channel,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
        seconds = time.perf_counter() - start
        data = dst.read_bytes()
    info = {"quantization": "onnxruntime-static-int8", "format": "QDQ", "per_channel": per_channel,
            "op_types": list(STATIC_OP_TYPES), "weight_type": "int8 (symmetric)", "activations": "uint8",
            "calibration": {"split": "train", "examples": len(sample), "seed": seed, "batch": 1,
                            "method": CALIBRATION_METHOD, "seconds": round(seconds, 3)},
            "step_flops_note": "the calibration forward passes are not counted as FLOPs; their time is"}
    return _ort_quantized(fp32, data, info), 0.0, {"method": info["quantization"], **info}
