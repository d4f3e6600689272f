"""The `quantize` step with `method: gguf`: a GGUF file of the requested type (`type: q8_0 | q4_0 | q4_k_m | ...`)
on the llama.cpp runtime.

- from a llama.cpp model: llama.cpp's own quantizer (``llama_model_quantize``) on its GGUF. A file that is
  already quantized is dequantized and quantized again (``allow_requantize``; the step's info says so).
- from a PyTorch causal LM (`causal-lm`): the model is written as a GGUF (``models/gguf_io.write_gguf``:
  f16 for `type: f16`, else f32), then quantized as above. `type: f16` (or `f32`) is the runtime control: the
  same weights on the same runtime, not quantized.

The input model is never changed; the new file lives in a temporary folder owned by the returned adapter
until the runner saves it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from leanbench.compress.base import StepResult
from leanbench.errors import ModelError
from leanbench.models.gguf_io import GGUF_TYPES, UNQUANTIZED, gguf_metadata, write_gguf
from leanbench.models.llamacpp import LlamaCppAdapter, _cores, _llama_cpp, quiet


def quantize_file(source: Path, dest: Path, gguf_type: str, threads: int | None = None) -> dict[str, Any]:
    """llama.cpp's quantizer: `source` -> `dest` as `gguf_type`; returns what it did."""
    lc = _llama_cpp()
    if gguf_type not in GGUF_TYPES:
        raise ModelError(f"quantize.type: unknown GGUF type '{gguf_type}'")
    params = lc.llama_model_quantize_default_params()
    params.ftype = GGUF_TYPES[gguf_type]
    params.nthread = threads or _cores()
    params.allow_requantize = True
    with quiet():
        rc = lc.llama_model_quantize(str(source).encode(), str(dest).encode(), params)
    if rc != 0 or not dest.is_file():
        raise ModelError(f"quantize: llama.cpp could not quantize '{source.name}' to {gguf_type} (return code {rc})")
    return {"type": gguf_type, "bytes_before": source.stat().st_size, "bytes_after": dest.stat().st_size}


def _source_type(path: Path) -> int | None:
    try:
        value = gguf_metadata(path, "general.file_type").get("general.file_type")
    except Exception:  # noqa: BLE001 (metadata is informative only)
        return None
    return int(value) if value is not None else None


def quantize_llamacpp(cfg: Any, model: LlamaCppAdapter, ctx: Any) -> StepResult:
    """`quantize: {method: gguf, type: ...}` on a GGUF model."""
    work = Path(tempfile.mkdtemp(prefix="leanbench-gguf-"))
    try:
        out = work / "model.gguf"
        info = quantize_file(model.path, out, cfg.type)
        before = _source_type(model.path)
        names = {v: k for k, v in GGUF_TYPES.items()}
        if before is not None and names.get(before) not in (None, *UNQUANTIZED) and cfg.type != names.get(before):
            info["note"] = (f"the source is already {names[before]}: llama.cpp dequantized it and quantized again "
                            f"to {cfg.type} (errors of both add up)")
        new = LlamaCppAdapter.from_file_copy(out, {**model.info, "gguf_type": cfg.type}, like=model)
    finally:
        _rmtree(work)
    return StepResult(new, flops=0.0, info={"method": "gguf", **info})


def quantize_causal_lm(cfg: Any, model: Any, ctx: Any) -> StepResult:
    """`quantize: {method: gguf, type: ...}` on a PyTorch causal LM: written as a GGUF, then quantized."""
    if getattr(model, "compression", None):
        raise ModelError("quantize method 'gguf': the causal LM is already compressed "
                         f"({model.compression[0].get('method')}); the GGUF conversion writes plain weights only")
    info = model.info or {}
    source_gguf = (Path(info["source"]) / info["gguf_file"]) if info.get("gguf_file") and info.get("source") else None
    if source_gguf is not None and not source_gguf.is_file():
        source_gguf = None  # the tokenizer is then written from the Hugging Face one (and checked)
    work = Path(tempfile.mkdtemp(prefix="leanbench-gguf-"))
    try:
        dense = "f16" if cfg.type in ("f16", "bf16") else "f32"
        full = write_gguf(model.model, model.tokenizer, work / f"model-{dense}.gguf", dtype=dense,
                          source_gguf=source_gguf)
        if cfg.type == dense:
            out, step = full, {"type": cfg.type, "bytes_after": full.stat().st_size}
        else:
            out = work / "model.gguf"
            step = quantize_file(full, out, cfg.type)
        new_info = {"converted_from": "causal-lm", "gguf_type": cfg.type,
                    "tokenizer": "copied from the source GGUF" if source_gguf else "written from the Hugging Face one",
                    **({"source": str(source_gguf)} if source_gguf else {})}
        new = LlamaCppAdapter.from_file_copy(out, new_info)
    finally:
        _rmtree(work)
    return StepResult(new, flops=0.0, info={"method": "gguf", "converted": f"{dense} GGUF", **step})


def _rmtree(path: Path) -> None:
    for f in path.glob("*"):
        f.unlink(missing_ok=True)
    os.rmdir(path)
