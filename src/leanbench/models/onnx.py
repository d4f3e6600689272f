"""Hugging Face classifiers on ONNX Runtime: export with ``torch.onnx.export`` and the ``onnx`` adapter.

**Export** (``export_onnx``): the classifier's logits as a graph with dynamic batch and sequence axes on
every input (``input_ids``, ``attention_mask``, ``token_type_ids`` when the tokenizer gives them). The
dynamo exporter (``torch.export`` + onnxscript) is tried first; if it fails, the TorchScript exporter
is used; adapter.json says which ran. After export the model is checked to be in eval mode (export can
leave dropout on) and ONNX Runtime's logits are compared with PyTorch's on a few texts: an fp32 export
differing by more than ``FP32_LOGIT_ATOL`` (max absolute logit difference) is an error, not a model.

**Adapter** (``OnnxAdapter``, adapter name ``onnx``): an ``onnxruntime.InferenceSession`` on the CPU
execution provider with ``intra_op_num_threads`` set by ``set_threads(n)`` (the session is rebuilt:
ORT fixes its thread pool when a session is created; torch's thread setting does not reach it), the
tokenizer, max_length and label names. A saved folder is ``model.onnx`` + tokenizer files +
``adapter.json`` (runtime, exporter, opset, quantization, calibration). Nothing is unpickled.

**Dynamic int8** quantizes activations with a scale computed per call over the whole batch (padding
included), so its predictions depend on how examples are batched; ``describe()`` says so.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from leanbench.atomic import atomic_write_bytes
from leanbench.errors import ModelError
from leanbench.models.base import ModelAdapter, read_adapter_file, write_adapter_file
from leanbench.models.hf import load_tokenizer, quiet_transformers, split_texts, text_lengths

ONNX_FILE = "model.onnx"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "logits"
FP32_LOGIT_ATOL = 1e-3  # max |logit_ORT - logit_torch| accepted for an fp32 export
DEFAULT_OPSET = 18
EXPORTERS = ("auto", "dynamo", "torchscript")
CHECK_TEXTS = ("a short example .", "a somewhat longer example sentence , to check the export with padding",
               "the", "yes no maybe so")
BATCH_NOTE = ("activations are quantized per call over the whole batch (padding included): predictions "
              "depend on batch composition; they were computed at the evaluation batch size "
              "(length-sorted batches), latency at the measured batch")


# --------------------------------------------------------------------------- export
def _logits_module(model: Any) -> Any:
    """The classifier as a module taking tensors by input name and returning logits only."""
    from torch import nn

    class Logits(nn.Module):
        def __init__(self, inner: nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None) -> Any:
            extra = {k: v for k, v in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids))
                     if v is not None}
            return self.inner(input_ids=input_ids, **extra).logits  # (B, n_classes)

    return Logits(model).eval()


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Silences the exporters' progress prints, warnings and loggers (torchvision notices)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), quiet_transformers():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _export(module: Any, inputs: dict[str, Any], path: Path, opset: int, dynamo: bool) -> None:
    import torch

    names = list(inputs)
    if dynamo:
        dim = torch.export.Dim.DYNAMIC
        kw: dict[str, Any] = {"dynamic_shapes": {n: {0: dim, 1: dim} for n in names},
                              "external_data": False, "verbose": False}
    else:
        kw = {"dynamic_axes": {**{n: {0: "batch", 1: "sequence"} for n in names}, OUTPUT_NAME: {0: "batch"}}}
    with _quiet_export(), torch.no_grad():
        torch.onnx.export(module, (), str(path), kwargs=inputs, input_names=names, output_names=[OUTPUT_NAME],
                          opset_version=opset, dynamo=dynamo, **kw)


def export_onnx(hf_adapter: Any, path: str | Path, opset: int = DEFAULT_OPSET, exporter: str = "auto",
                check_texts: np.ndarray | None = None, atol: float = FP32_LOGIT_ATOL) -> dict[str, Any]:
    """Exports an ``HFClassifierAdapter``'s model to the ONNX file `path`; returns what was done:
    ``{"exporter", "opset", "max_abs_logit_diff", "atol", "check_examples"}``.

    Raises ModelError when both exporters fail, or when ONNX Runtime's logits differ from PyTorch's by
    more than `atol` on `check_texts` (default: a few built-in texts, batched with padding).
    """
    if exporter not in EXPORTERS:
        raise ModelError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    texts = np.asarray(CHECK_TEXTS if check_texts is None else check_texts, dtype=object)
    prepared = hf_adapter.prepare(texts)
    # in the order of the exported forward's signature: exporters name graph inputs positionally
    inputs = {k: prepared[k] for k in INPUT_NAMES if k in prepared}
    if "input_ids" not in inputs:
        raise ModelError(f"ONNX export needs a tokenizer giving input_ids, got {sorted(inputs)}")
    used = _run_exporters(_logits_module(hf_adapter.model), inputs, path, opset, exporter)
    hf_adapter.model.eval()  # export may switch modules to training mode (dropout on): never keep that
    if hf_adapter.model.training:
        raise ModelError("the model is still in training mode after ONNX export")
    diff = _max_logit_diff(hf_adapter, path, inputs)
    if not diff <= atol:
        raise ModelError(f"ONNX export ({used}, opset {opset}) of {type(hf_adapter.model).__name__}: ONNX Runtime "
                         f"logits differ from PyTorch by {diff:.3g} (max abs), more than the {atol:g} allowed")
    return {"exporter": used, "opset": opset, "max_abs_logit_diff": diff, "atol": atol,
            "check_examples": len(texts)}


def _run_exporters(module: Any, inputs: dict[str, Any], path: Path, opset: int, exporter: str) -> str:
    """Runs the dynamo exporter, then TorchScript if that fails (exporter "auto"); the one that worked."""
    order = {"auto": ("dynamo", "torchscript"), "dynamo": ("dynamo",), "torchscript": ("torchscript",)}[exporter]
    errors = []
    for name in order:
        try:
            _export(module, inputs, path, opset, dynamo=name == "dynamo")
            return name
        except Exception as exc:  # noqa: BLE001 - an exporter failure is reported with the next one's
            errors.append(f"{name}: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}")
        finally:
            module.eval()
    raise ModelError("ONNX export failed (" + "; ".join(errors) + ")")


def _max_logit_diff(hf_adapter: Any, path: Path, inputs: dict[str, Any]) -> float:
    session = make_session(path.read_bytes(), threads=1)
    names = {i.name for i in session.get_inputs()}
    feed = {k: v.numpy().astype(np.int64) for k, v in inputs.items() if k in names}
    ort_logits = session.run([OUTPUT_NAME], feed)[0]
    torch_logits = hf_adapter.forward(inputs).float().numpy()
    return float(np.max(np.abs(ort_logits - torch_logits)))


# --------------------------------------------------------------------------- sessions
def _cores() -> int:
    return max(1, len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else max(1, os.cpu_count() or 1)


def make_session(model: bytes, threads: int = 1) -> Any:
    """An InferenceSession on the CPU provider: `threads` intra-op threads (0 = every available core),
    one inter-op thread, sequential execution, all graph optimisations."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = _cores() if threads == 0 else int(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
        raise ModelError(f"ONNX Runtime cannot load the model: {str(exc).splitlines()[0][:300]}") from None


# --------------------------------------------------------------------------- parameter counting
_WEIGHT_TYPES = {1, 2, 3, 10, 11, 16}  # FLOAT, UINT8, INT8, FLOAT16, DOUBLE, BFLOAT16 (onnx.TensorProto)
_INT32 = 6


def weight_initializers(model_proto: Any) -> dict[str, np.ndarray]:
    """The initializers that are weights: float or int8/uint8 tensors of more than one element, not the
    scales and zero points that quantization adds (ONNX Runtime names them ``*_scale``,
    ``*_zero_point``); int32 ``*_quantized`` tensors (static-quantized biases) count too, and so do
    tensors of Constant nodes. A quantized weight counts once, like the float weight it replaced.
    Exporters store tensors with identical values once (an untrained model's LayerNorm weights, all
    ones, collapse into one), so an untrained model can count fewer weights than torch does."""
    from onnx import numpy_helper

    out = {}
    constants = [a.t for node in model_proto.graph.node if node.op_type == "Constant"
                 for a in node.attribute if a.name == "value"]
    for init in [*model_proto.graph.initializer, *constants]:
        numel = int(np.prod(init.dims)) if len(init.dims) else 1
        weight_type = init.data_type in _WEIGHT_TYPES or (init.data_type == _INT32
                                                          and init.name.endswith("_quantized"))
        if numel <= 1 or not weight_type or init.name.endswith(("_scale", "_zero_point")):
            continue
        out[init.name] = numpy_helper.to_array(init)
    return out


def _zero_points(model_proto: Any) -> dict[str, float]:
    from onnx import numpy_helper

    return {i.name.removesuffix("_zero_point"): float(numpy_helper.to_array(i).ravel()[0])
            for i in model_proto.graph.initializer if i.name.endswith("_zero_point") and int(np.prod(i.dims)) <= 1}


# --------------------------------------------------------------------------- the adapter
class OnnxAdapter(ModelAdapter):
    """A text classifier on ONNX Runtime: the serialized model, a CPU session, tokenizer, max_length,
    label names and ``info`` (exporter, opset, quantization, calibration) for adapter.json."""

    adapter_name = "onnx"

    def __init__(self, model: bytes, tokenizer: Any, max_length: int, label_names: list[str],
                 info: dict[str, Any] | None = None, threads: int = 1):
        if max_length <= 0:
            raise ModelError(f"max_length must be > 0, got {max_length}")
        self.model_bytes = bytes(model)
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.label_names = [str(n) for n in label_names]
        self.info = dict(info or {})
        self._proto: Any = None
        self.threads = -1
        self.set_threads(threads)

    # ---- runtime
    def set_threads(self, n: int) -> int:
        """Rebuilds the session with `n` intra-op threads (0 = every available core) unless it already
        has them; returns the count in force."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ModelError(f"threads must be an integer >= 0 (0 = all cores), got {n!r}")
        wanted = _cores() if n == 0 else n
        if wanted != self.threads:
            self.session = make_session(self.model_bytes, wanted)
            self.input_names = [i.name for i in self.session.get_inputs()]
            self.threads = wanted
        return self.threads

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    # ---- inference
    def prepare(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Tokenized batch as int64 arrays (the inputs the graph takes), padded to the longest example,
        truncated to max_length tokens: the same ids as the PyTorch model's ``prepare``."""
        first, second = split_texts(X)
        enc = self.tokenizer(first, second, padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="np")
        missing = [n for n in self.input_names if n not in enc]
        if missing:
            raise ModelError(f"the ONNX model needs inputs {missing} that the tokenizer does not give")
        return {n: np.asarray(enc[n], dtype=np.int64) for n in self.input_names}

    def forward(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Logits (B, n_classes), float32, from one session.run; columns in the task's label order (a model
        built elsewhere whose labels come in another order has `info["label_order"]`, see `build_onnx_file`)."""
        logits = self.session.run([self.info.get("output_name", OUTPUT_NAME)], inputs)[0]
        order = self.info.get("label_order")
        return logits[:, order] if order else logits

    def predict_proba(self, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Softmax of the logits in float64; batches in order of text length (as the PyTorch adapter),
        rows returned in the order of X."""
        X = np.asarray(X, dtype=object)
        out = np.zeros((len(X), self.n_classes), dtype=np.float64)
        order = np.argsort(text_lengths(X), kind="stable") if len(X) else np.zeros(0, dtype=np.int64)
        for i in range(0, len(X), batch_size):
            idx = order[i:i + batch_size]
            out[idx] = softmax64(self.forward(self.prepare(X[idx])))
        return out

    # ---- size
    @property
    def proto(self) -> Any:
        if self._proto is None:
            import onnx

            self._proto = onnx.load_model_from_string(self.model_bytes)
        return self._proto

    def num_params(self) -> int:
        return int(sum(w.size for w in weight_initializers(self.proto).values()))

    def nonzero_params(self) -> int:
        """Weights not equal to zero (quantized weights: integer value not equal to its zero point)."""
        zps = _zero_points(self.proto)
        total = 0
        for name, w in weight_initializers(self.proto).items():
            zp = zps.get(name.removesuffix("_quantized"), 0.0) if w.dtype in (np.int8, np.uint8) else 0.0
            total += int(np.count_nonzero(w.astype(np.float64) != zp))
        return total

    def describe(self) -> dict[str, Any]:
        quant = self.info.get("quantization")
        out = {"adapter": self.adapter_name, "runtime": "onnxruntime", "provider": "CPUExecutionProvider",
               "max_length": self.max_length, "threads": self.threads, **self.info,
               "dtype": "int8 weights" if quant else "float32"}
        if quant and "dynamic" in str(quant):
            out["batch_note"] = BATCH_NOTE
        return out

    @classmethod
    def export_form(cls, saved: Path) -> str:
        return (f"an ONNX model (`{ONNX_FILE}`) with its tokenizer files: run it with "
                f"`onnxruntime.InferenceSession(folder / '{ONNX_FILE}')`")

    # ---- save / load
    def save(self, path: Path) -> None:
        """model.onnx + tokenizer files + adapter.json (written last)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path / ONNX_FILE, self.model_bytes)
        with quiet_transformers():
            self.tokenizer.save_pretrained(str(path))
        write_adapter_file(path, self.adapter_name, {"max_length": self.max_length,
                                                     "label_names": self.label_names, "info": self.info})

    @classmethod
    def load(cls, path: Path) -> OnnxAdapter:
        path = Path(path)
        info = read_adapter_file(path)
        f = path / ONNX_FILE
        if not f.is_file():
            raise ModelError(f"{path}: no {ONNX_FILE}")
        tokenizer = load_tokenizer(str(path))
        return cls(f.read_bytes(), tokenizer, int(info["max_length"]), info["label_names"], info.get("info"))


# --------------------------------------------------------------------------- a file built elsewhere
def _resolve(path: str, base: Path | None) -> Path:
    p = Path(path).expanduser()
    return Path(base) / p if not p.is_absolute() and base is not None and (Path(base) / p).exists() else p


def _config_labels(spec: Any, onnx_file: Path, tokenizer: Path, base: Path | None) -> tuple[dict | None, str | None]:
    """id2label of the model's config.json (`model.config`, else beside the file, else in the tokenizer
    folder) and the file it came from; (None, None) when there is none."""
    import json

    given = _resolve(spec.config, base) if spec.config else None
    if given is not None and given.is_dir():
        given = given / "config.json"
    if given is not None and not given.is_file():
        raise ModelError(f"model.config: no file {given}")
    for f in [given] if given is not None else [onnx_file.parent / "config.json", tokenizer / "config.json"]:
        if f.is_file():
            try:
                labels = json.loads(f.read_text()).get("id2label")
            except (OSError, ValueError) as exc:
                raise ModelError(f"model.config: {f} is not readable JSON ({exc})") from None
            return labels, str(f)
    return None, None


def _graph_output(session: Any, where: str) -> tuple[str, Any]:
    outputs = session.get_outputs()
    names = [o.name for o in outputs]
    if OUTPUT_NAME in names:
        return OUTPUT_NAME, outputs[names.index(OUTPUT_NAME)].shape
    if len(outputs) == 1:
        return names[0], outputs[0].shape
    raise ModelError(f"{where}: the ONNX model has outputs {names} and none is named '{OUTPUT_NAME}'; export "
                     "the classifier's logits as its only output or name it 'logits'")


def build_onnx_file(spec: Any, data: Any, seed: int) -> OnnxAdapter:
    """The model of an ``onnx:`` spec: a sequence classifier exported elsewhere, as it is (no build step).
    Checked before use: the file reads as ONNX (a truncated file is one message), its inputs are among the
    tokenizer's outputs, its logits have one column per task label, and its labels (a config.json's id2label)
    are the task's: reordered explicitly when they come in another order (``hf.label_order``)."""
    import onnx

    from leanbench.models.hf import label_order

    base = (getattr(data, "meta", None) or {}).get("base_dir")
    base = Path(base) if base else None
    f, tok_dir = _resolve(spec.onnx, base), _resolve(spec.tokenizer, base)
    if not f.is_file():
        raise ModelError(f"model.onnx: no file {f}")
    raw = f.read_bytes()
    try:
        onnx.load_model_from_string(raw)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and onnx's own errors
        raise ModelError(f"model.onnx: {f} is not a readable ONNX model ({len(raw)} bytes; truncated or not ONNX?): "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}") from None
    try:
        session = make_session(raw, threads=1)
    except ModelError as exc:
        raise ModelError(f"model.onnx: {f} ({len(raw)} bytes; truncated?): {exc}") from None
    tokenizer = load_tokenizer(str(tok_dir))
    given = sorted(tokenizer(["a b"], return_tensors="np"))
    inputs = [i.name for i in session.get_inputs()]
    missing = [n for n in inputs if n not in given]
    if missing:
        raise ModelError(f"model.onnx: {f} takes inputs {inputs}, but the tokenizer at {tok_dir} gives {given} "
                         f"({', '.join(missing)} missing): is this the model's own tokenizer?")
    labels = [str(v) for v in data.label_names]
    output, shape = _graph_output(session, f"model.onnx: {f}")
    width = shape[-1] if shape and isinstance(shape[-1], int) else None
    if width is not None and width != len(labels):
        raise ModelError(f"model.onnx: {f} gives {width} logits per example, the task has {len(labels)} labels "
                         f"{labels}")
    id2label, config = _config_labels(spec, f, tok_dir, base)
    order, note = label_order(id2label, labels, f"model.onnx: {f}" + (f" (labels from {config})" if config else ""))
    max_length = int(spec.max_length or (data.meta or {}).get("max_length") or 128)
    info = {"source": str(f), "built_elsewhere": True, "output_name": output, "label_order": order, "labels": note,
            "labels_config": config, "quantization": None}
    adapter = OnnxAdapter(raw, tokenizer, max_length, labels, info)
    probe = adapter.forward(adapter.prepare(np.asarray(["a b"], dtype=object)))
    if probe.ndim != 2 or probe.shape[1] != len(labels):
        raise ModelError(f"model.onnx: {f} gives logits of shape {list(probe.shape)}, want (batch, {len(labels)})")
    return adapter


def softmax64(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, shifted by the row max for stability."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def onnx_from_hf(hf_adapter: Any, opset: int = DEFAULT_OPSET, exporter: str = "auto",
                 check_texts: np.ndarray | None = None) -> OnnxAdapter:
    """An fp32 ``OnnxAdapter`` of an ``HFClassifierAdapter`` (export, check, load into a session)."""
    with tempfile.TemporaryDirectory(prefix="leanbench-onnx-") as tmp:
        f = Path(tmp) / ONNX_FILE
        report = export_onnx(hf_adapter, f, opset=opset, exporter=exporter, check_texts=check_texts)
        data = f.read_bytes()
    info = {**report, "quantization": None, "source_adapter": hf_adapter.adapter_name}
    return OnnxAdapter(data, hf_adapter.tokenizer, hf_adapter.max_length, hf_adapter.label_names, info)
