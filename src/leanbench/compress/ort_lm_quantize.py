"""The ``quantize`` step for causal LMs on ONNX Runtime (family ``onnx-causal-lm``, models/onnx_causal_lm.py).

From a PyTorch causal LM (``causal-lm``) the model is first exported with its KV cache and checked against
PyTorch; from an ``onnx-causal-lm`` model its fp32 file is used. Methods (``QuantizeConfig.method``):

* ``onnx-fp32`` (from ``causal-lm`` only): the export alone, the runtime control (the same weights on ONNX
  Runtime, not quantized);
* ``onnxruntime-dynamic-int8``: ``onnxruntime.quantization.quantize_dynamic`` (int8 weights of the MatMul and
  Gather nodes with constant weights, per tensor or per channel; activations quantized per run);
* ``onnxruntime-int4``: int4 weight-only with ONNX Runtime's MatMulNBits quantizer
  (``matmul_nbits_quantizer.MatMulNBitsQuantizer``, round to nearest, symmetric, blocks of ``group_size``
  (default 32) consecutive input weights, one fp32 scale per block) on every MatMul with a constant 2-D weight,
  the output projection included; the embedding Gather stays fp32. ``accuracy_level`` 4 (``INT4_ACCURACY``):
  ORT's CPU kernel quantizes activations to int8 per block for its int8 dot products, as llama.cpp's q4_0 does.

The input model is never changed; the new file lives in a temporary folder owned by the returned adapter
until the runner saves it.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from leanbench.compress.base import StepResult
from leanbench.compress.hf_quantize import _ort_quantization
from leanbench.errors import ModelError
from leanbench.models.onnx_causal_lm import INT8_NOTE, ONNX_FILE, OnnxCausalLMAdapter, onnx_from_causal_lm

INT4_BLOCK = 32
INT4_ACCURACY = 4  # MatMulNBits accuracy_level: 4 = int8 activations in the dot products (CPU)


def quantize_causal_lm_ort(cfg: Any, model: Any, ctx: Any) -> StepResult:
    """`quantize: {method: onnx-fp32 | onnxruntime-dynamic-int8 | onnxruntime-int4}` on a PyTorch causal LM."""
    fp32 = onnx_from_causal_lm(model, opset=cfg.opset, exporter=cfg.exporter)
    if cfg.method == "onnx-fp32":
        return StepResult(fp32, 0.0, {"method": cfg.method, **{k: v for k, v in fp32.info.items() if k != "source"}})
    return _quantized(cfg, fp32)


def quantize_onnx_lm(cfg: Any, model: OnnxCausalLMAdapter, ctx: Any) -> StepResult:
    """`quantize: {method: onnxruntime-dynamic-int8 | onnxruntime-int4}` on an fp32 ONNX causal LM."""
    if model.info.get("quantization"):
        raise ModelError(f"step 'quantize' ({cfg.method}): the ONNX causal LM is already quantized "
                         f"({model.info['quantization']}); start from the fp32 model")
    return _quantized(cfg, model)


def _quantized(cfg: Any, fp32: OnnxCausalLMAdapter) -> StepResult:
    owned = tempfile.TemporaryDirectory(prefix="leanbench-onnx-lm-")
    dst = Path(owned.name) / ONNX_FILE
    try:
        if cfg.method == "onnxruntime-dynamic-int8":
            info = ort_dynamic_int8(fp32.path, dst, cfg.per_channel)
        else:
            info = ort_int4(fp32.path, dst, cfg.group_size or INT4_BLOCK)
        info["bytes_before"], info["bytes_after"] = fp32.path.stat().st_size, dst.stat().st_size
        new = fp32.with_file(dst, info, owned)
    except BaseException:
        owned.cleanup()
        raise
    return StepResult(new, 0.0, {"method": cfg.method, **info})


def ort_dynamic_int8(src: Path, dst: Path, per_channel: bool = False) -> dict[str, Any]:
    """ORT dynamic quantization of `src` into `dst`: int8 weights (QInt8), activations uint8 per run."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _ort_quantization("onnxruntime-dynamic-int8"):
        quantize_dynamic(src, dst, per_channel=per_channel, weight_type=QuantType.QInt8,
                         extra_options={"MatMulConstBOnly": True})
    return {"quantization": "onnxruntime-dynamic-int8", "per_channel": per_channel, "weight_type": "int8",
            "activations": "uint8, scale per run (dynamic)", "batch_note": INT8_NOTE}


def ort_int4(src: Path, dst: Path, block: int) -> dict[str, Any]:
    """MatMulNBits int4 (symmetric, round to nearest, `block` weights per scale) of `src` into `dst`."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    logger = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")  # a line per node at INFO
    level = logger.level
    logger.setLevel(logging.ERROR)
    with _ort_quantization("onnxruntime-int4"):
        config = DefaultWeightOnlyQuantConfig(block_size=block, is_symmetric=True, accuracy_level=INT4_ACCURACY,
                                              op_types_to_quantize=("MatMul",))
        quant = MatMulNBitsQuantizer(onnx.load(str(src)), bits=4, block_size=block, is_symmetric=True,
                                     accuracy_level=INT4_ACCURACY, algo_config=config)
        quant.process()
        quant.model.save_model_to_file(str(dst), use_external_data_format=False)
    logger.setLevel(level)
    proto = onnx.load(str(dst), load_external_data=False)
    n = sum(node.op_type == "MatMulNBits" for node in proto.graph.node)
    if n == 0:
        raise ModelError("quantize method 'onnxruntime-int4': the MatMulNBits quantizer found no MatMul with a "
                         "constant weight to quantize")
    return {"quantization": "onnxruntime-int4", "op": "MatMulNBits (com.microsoft)", "bits": 4,
            "block_size": block, "symmetric": True, "accuracy_level": INT4_ACCURACY, "quantized_matmuls": n,
            "algorithm": "round to nearest (DEFAULT)", "kept_fp32": "embedding Gather, norms"}
