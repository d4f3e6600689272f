"""Causal language models on ONNX Runtime (adapter "onnx-causal-lm"): the PyTorch causal LM exported with an
explicit KV cache and run by an ``InferenceSession``, behind the evaluator interface of ``models/causal_lm.py``
(``loglikelihood``, ``loglikelihood_rolling``, ``generate_greedy``, ``encode``, ``max_length``), so the
multiple-choice, language-modelling and generation task kinds and the serving protocol do not know which
runtime scored.

**Graph** (``export_causal_lm``; a file in optimum's decoder layout, without ``logits_to_keep``, also runs):

    inputs   input_ids (B, S) int64, attention_mask (B, P + S) int64 (1 = a real token, past included),
             position_ids (B, S) int64, logits_to_keep (K,) int64 (the positions along S whose logits are
             computed: the vocabulary projection runs only there), past_key_values.{i}.key / .value
             (B, kv_heads, P, head_dim) for every layer i (P = 0: an empty cache)
    outputs  logits (B, K, V), present.{i}.key / .value (B, kv_heads, P + S, head_dim)

The exported module wraps the transformers model: the past tensors become a ``DynamicCache``, the model runs
with ``logits_to_keep`` as an index tensor, and the cache it returns is flattened into the present tensors. The
dynamo exporter (``torch.export``) is tried first, then TorchScript (``QuantizeConfig.exporter``); TorchScript
traces one path, so the sample it traces has left padding in the mask and a non-empty cache (the general
path: a trace of an all-ones mask could freeze "no mask"). After export the model must be in eval mode and
ONNX Runtime must match PyTorch on the check prompts (left-padded prefill, then one cached step against a
full forward): a larger gap than ``FP32_LOGIT_ATOL`` is an error, not a model.

**Scoring** (lm-evaluation-harness semantics: ``CausalLMAdapter.encode_requests`` is the very function, and
``rolling_windows``): the choices of a question share its context through the KV cache. A batch of
contexts runs left-padded (logits only at each context's last token, which predicts every choice's first
token); then every choice's tokens but its last run right-padded on top of its question's cache (positions
continuing after the context, the cache's padding masked), so each scored token attends to exactly the keys,
values and positions of lm-eval's separate row. A request longer than max_length, and each rolling window,
is one row with an empty cache (lm-eval's ``(ctx + cont)[-(max_length + 1):][:-1]``). Log-softmax in float64
over ONNX Runtime's float32 logits.

**Generation** (``generate_greedy``): as the PyTorch adapter, left padding, one prefill run (logits at the last
position only), then one run per step with the tokens just chosen and the returned cache.

**Threads**: ``set_threads(n)`` selects a session with ``intra_op_num_threads = n`` (ORT fixes its pool when a
session is made); the last two sessions are kept, so the measurement's switch between the profile's threads
and the default costs no rebuild. **Size**: the ``.onnx`` file (``describe()["onnx_bytes"]``); the saved folder is
it, the tokenizer files, ``config.json`` and ``adapter.json`` (written last). Nothing is unpickled.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from leanbench.errors import ModelError
from leanbench.models.base import ModelAdapter, read_adapter_file, write_adapter_file
from leanbench.models.causal_lm import DEFAULT_MAX_LENGTH, MEASURE_TOKENS, CausalLMAdapter, rolling_windows

ONNX_FILE = "model.onnx"
DEFAULT_OPSET = 18
FP32_LOGIT_ATOL = 2e-3  # max |logit_ORT - logit_torch| accepted for an fp32 export (tiny Llama: ~1e-5)
MAX_LOGIT_FLOATS = 1 << 24  # logits per run while scoring (64 MB of float32)
SESSIONS_KEPT = 2
CHECK_TEXTS = ("The cat sees the old tree near the river.", "A dog", "Why does the sun rise in the east? Because")
LAYOUT = ("input_ids", "attention_mask", "position_ids", "logits_to_keep")
INT8_NOTE = ("activations are quantized per run over the whole batch (padding included): scores depend on how "
             "requests are batched")


# --------------------------------------------------------------------------- export
def _kv_module(model: Any) -> Any:
    """The transformers causal LM as a module of tensors only: (input_ids, attention_mask, position_ids,
    logits_to_keep, *past) -> (logits, *present), the cache flattened layer by layer (key, value)."""
    import inspect

    from torch import nn
    from transformers import DynamicCache

    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    class KVCausalLM(nn.Module):
        def __init__(self, inner: nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, position_ids: Any, logits_to_keep: Any,
                    *past: Any) -> Any:
            pairs = [(past[2 * i], past[2 * i + 1]) for i in range(len(past) // 2)]
            cache = DynamicCache(ddp_cache_data=pairs, config=self.inner.config)
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                             logits_to_keep=logits_to_keep, use_cache=True, **{cache_arg: cache})
            new = getattr(out, cache_arg)
            return (out.logits, *[t for layer in new.layers for t in (layer.keys, layer.values)])

    return KVCausalLM(model).eval()


def cache_shape(config: Any) -> tuple[int, int, int]:
    """(layers, kv heads, head dim) of a transformers config."""
    cfg = getattr(config, "text_config", None) or config
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    return int(cfg.num_hidden_layers), int(getattr(cfg, "num_key_value_heads", None) or heads), int(head_dim)


def io_names(layers: int) -> tuple[list[str], list[str]]:
    past = [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    return [*LAYOUT, *past], ["logits", *[p.replace("past_key_values.", "present.") for p in past]]


def _sample(config: Any, dtype: Any) -> tuple[Any, ...]:
    """Trace inputs on the general path: batch 2, 4 new tokens on a 3-token cache, row 0 left-padded by 2,
    logits kept at 2 positions."""
    import torch

    layers, kv_heads, head_dim = cache_shape(config)
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[0, :2] = 0
    pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, -4:]
    ids = torch.randint(1, max(2, min(int(config.vocab_size), 100)), (2, 4), generator=torch.Generator().manual_seed(0))
    past = [torch.zeros(2, kv_heads, 3, head_dim, dtype=dtype) for _ in range(2 * layers)]
    return (ids, mask, pos, torch.tensor([1, 3]), *past)


def _export(module: Any, sample: tuple[Any, ...], path: Path, opset: int, dynamo: bool, layers: int) -> None:
    import torch

    from leanbench.models.onnx import _quiet_export

    inputs, outputs = io_names(layers)
    if dynamo:
        batch, seq, past = torch.export.Dim("batch"), torch.export.Dim("sequence"), torch.export.Dim("past")
        dyn = torch.export.Dim.DYNAMIC
        shapes = ({0: batch, 1: seq}, {0: batch, 1: dyn}, {0: batch, 1: seq}, {0: dyn},
                  tuple({0: batch, 2: past} for _ in range(2 * layers)))
        kw: dict[str, Any] = {"dynamic_shapes": shapes, "external_data": False, "verbose": False}
    else:
        axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "total"},
                "position_ids": {0: "batch", 1: "sequence"}, "logits_to_keep": {0: "kept"},
                "logits": {0: "batch", 1: "kept"}}
        axes.update({n: {0: "batch", 2: "past"} for n in inputs[len(LAYOUT):]})
        axes.update({n: {0: "batch", 2: "total"} for n in outputs[1:]})
        kw = {"dynamic_axes": axes}
    with _quiet_export(), torch.no_grad():
        torch.onnx.export(module, sample, str(path), input_names=inputs, output_names=outputs,
                          opset_version=opset, dynamo=dynamo, **kw)


def export_causal_lm(lm: CausalLMAdapter, path: str | Path, opset: int = DEFAULT_OPSET, exporter: str = "auto",
                     check_texts: Sequence[str] = CHECK_TEXTS, atol: float = FP32_LOGIT_ATOL) -> dict[str, Any]:
    """Exports a float ``CausalLMAdapter`` with its KV cache to the ONNX file `path` (module docstring); returns
    ``{"exporter", "opset", "max_abs_logit_diff", "atol", "check_prompts"}``. ModelError when the model is
    compressed (its int layers have no ONNX form here), both exporters fail, the model is left in training
    mode, or ONNX Runtime differs from PyTorch by more than `atol`."""
    from leanbench.models.onnx import EXPORTERS

    if exporter not in EXPORTERS:
        raise ModelError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    kept = [c["method"] for c in lm.compression if c["method"] not in ("magnitude", "2:4")]
    if kept:
        raise ModelError(f"ONNX export of a causal LM needs float weights; this one is quantized ({kept[0]}): "
                         "export the float model and quantize it on ONNX Runtime (onnxruntime-dynamic-int8, "
                         "onnxruntime-int4)")
    n_bytes = sum(p.numel() * p.element_size() for p in lm.model.parameters())
    if n_bytes >= 2 ** 31:
        raise ModelError(f"ONNX export: the model has {n_bytes / 1e9:.1f} GB of weights; one ONNX file holds at "
                         "most 2 GB (external data is not supported here)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    layers = cache_shape(lm.model.config)[0]
    module = _kv_module(lm.model)
    sample = _sample(lm.model.config, lm._dtype())
    order = {"auto": ("dynamo", "torchscript"), "dynamo": ("dynamo",), "torchscript": ("torchscript",)}[exporter]
    errors, used = [], None
    for name in order:
        try:
            _export(module, sample, path, opset, name == "dynamo", layers)
            used = name
            break
        except Exception as exc:  # noqa: BLE001 - an exporter failure is reported with the next one's
            errors.append(f"{name}: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc) else ''}")
        finally:
            lm.model.eval()
    if used is None:
        raise ModelError("ONNX export of the causal LM failed (" + "; ".join(errors) + ")")
    if lm.model.training:
        raise ModelError("the model is still in training mode after ONNX export")
    diff = parity_gap(lm, OnnxCausalLMAdapter(path, lm.tokenizer, _info_of(lm)), check_texts)
    if not diff <= atol:
        raise ModelError(f"ONNX export ({used}, opset {opset}) of {type(lm.model).__name__}: ONNX Runtime logits "
                         f"differ from PyTorch by {diff:.3g} (max abs), more than the {atol:g} allowed")
    return {"exporter": used, "opset": opset, "max_abs_logit_diff": diff, "atol": atol,
            "check_prompts": len(check_texts)}


def _info_of(lm: CausalLMAdapter) -> dict[str, Any]:
    """What the ONNX adapter keeps of the PyTorch one: max_length, the stop ids, the source's info."""
    return {"max_length": lm.max_length, "eos_token_ids": sorted(lm.eos_token_ids),
            "source": lm.info.get("source"), "architecture": type(lm.model).__name__,
            "model_type": getattr(lm.model.config, "model_type", None)}


def parity_gap(lm: CausalLMAdapter, ort: OnnxCausalLMAdapter, texts: Sequence[str]) -> float:
    """Max |logit| gap between ONNX Runtime and PyTorch: a left-padded prefill (logits at every real position),
    then one cached step of the argmax tokens compared with PyTorch's full forward over the longer sequences."""
    import torch

    prompts = [t or [ort.prefix_token_id] for t in lm.encode(list(texts))]
    ids, mask = ort.left_padded(prompts)
    pos = positions(mask, ids.shape[1])
    logits, past = ort.run(ids, mask, pos, np.arange(ids.shape[1]), None)
    with torch.inference_mode():
        ref = lm.model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                       position_ids=torch.from_numpy(pos), use_cache=False).logits.float().numpy()
    real = mask.astype(bool)
    gap = float(np.abs(logits - ref)[real].max())
    nxt = ref[:, -1].argmax(-1)[:, None]
    mask2 = np.concatenate([mask, np.ones_like(nxt)], axis=1)
    step, _ = ort.run(nxt, mask2, positions(mask2, 1), np.zeros(1, dtype=np.int64), past)
    with torch.inference_mode():
        full = lm.model(input_ids=torch.from_numpy(np.concatenate([ids, nxt], axis=1)),
                        attention_mask=torch.from_numpy(mask2),
                        position_ids=torch.from_numpy(positions(mask2, mask2.shape[1])),
                        use_cache=False).logits[:, -1].float().numpy()
    return max(gap, float(np.abs(step[:, 0] - full).max()))


def positions(mask: np.ndarray, width: int) -> np.ndarray:
    """Position ids of the last `width` columns: real tokens counted, left padding skipped."""
    return np.maximum(mask.cumsum(-1) - 1, 0)[:, mask.shape[1] - width:].astype(np.int64)


def onnx_from_causal_lm(lm: CausalLMAdapter, opset: int = DEFAULT_OPSET, exporter: str = "auto",
                        check_texts: Sequence[str] = CHECK_TEXTS) -> OnnxCausalLMAdapter:
    """An fp32 ``OnnxCausalLMAdapter`` of a PyTorch causal LM (export, check), owning its temporary file."""
    owned = tempfile.TemporaryDirectory(prefix="leanbench-onnx-lm-")
    f = Path(owned.name) / ONNX_FILE
    try:
        report = export_causal_lm(lm, f, opset=opset, exporter=exporter, check_texts=check_texts)
    except BaseException:
        owned.cleanup()
        raise
    info = {**_info_of(lm), **report, "quantization": None, "source_adapter": lm.adapter_name}
    return OnnxCausalLMAdapter(f, lm.tokenizer, info, owned=owned)


# --------------------------------------------------------------------------- the adapter
class OnnxCausalLMAdapter(ModelAdapter):
    """An ONNX causal LM with a KV cache (module docstring) and its tokenizer. `owned`: a temporary folder that
    holds the file (a step's output) and lives as long as the adapter."""

    adapter_name = "onnx-causal-lm"

    def __init__(self, path: str | Path, tokenizer: Any, info: dict[str, Any] | None = None, threads: int = 1,
                 owned: Any = None):
        if tokenizer is None:
            raise ModelError("a causal LM needs a tokenizer, got none")
        self.path = Path(path)
        self.tokenizer = tokenizer
        self.info = dict(info or {})
        self._owned = owned
        self._sessions: dict[int, Any] = {}
        self.threads = -1
        self.set_threads(threads)
        self._read_layout()

    # ----------------------------------------------------------------- runtime
    def set_threads(self, n: int) -> int:
        """A session with `n` intra-op threads (0 = every available core); returns the count in force."""
        from leanbench.models.onnx import _cores, make_session

        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ModelError(f"threads must be an integer >= 0 (0 = all cores), got {n!r}")
        wanted = _cores() if n == 0 else n
        if wanted not in self._sessions:
            if not self.path.is_file():
                raise ModelError(f"no ONNX file at {self.path}")
            try:
                session = make_session(str(self.path), wanted)
            except ModelError as exc:
                raise ModelError(f"{self.path} ({self.path.stat().st_size:,} bytes; truncated or not ONNX?): "
                                 f"{exc}") from None
            while len(self._sessions) >= SESSIONS_KEPT:
                self._sessions.pop(next(iter(self._sessions)))
            self._sessions[wanted] = session
        self.session = self._sessions[wanted]
        self.threads = wanted
        return wanted

    def _read_layout(self) -> None:
        """The graph's inputs and outputs, checked against the layout this adapter feeds (module docstring)."""
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        past = sorted((n for n in inputs if n.startswith("past_key_values.")),
                      key=lambda n: (int(n.split(".")[1]), n.split(".")[2] != "key"))
        missing = [n for n in ("input_ids", "attention_mask") if n not in inputs]
        layers = len(past) // 2
        want_out = ["logits", *[p.replace("past_key_values.", "present.") for p in past]]
        lacking_out = [n for n in want_out if n not in outputs]
        extra = [n for n in inputs if n not in LAYOUT and n not in past]
        if missing or not past or lacking_out or extra or io_names(layers)[0][len(LAYOUT):] != past:
            raise ModelError(f"{self.path}: not a causal LM with a KV cache in the layout leanbench runs (inputs "
                             "input_ids, attention_mask, [position_ids, logits_to_keep,] "
                             "past_key_values.<i>.key/value; outputs logits, present.<i>.key/value): it has inputs "
                             f"{sorted(inputs)[:8]} and outputs {outputs[:6]}")
        shape = inputs[past[0]].shape
        if len(shape) != 4 or not all(isinstance(d, int) for d in (shape[1], shape[3])):
            raise ModelError(f"{self.path}: {past[0]} has shape {shape}; want (batch, kv_heads, past, head_dim) "
                             "with fixed kv_heads and head_dim")
        self.past_names = past
        self.present_names = want_out[1:]
        self.kv_shape = (int(shape[1]), int(shape[3]))
        self.kv_dtype = np.float16 if "float16" in inputs[past[0]].type else np.float32
        self.has_positions = "position_ids" in inputs
        self.has_keep = "logits_to_keep" in inputs

    def run(self, ids: np.ndarray, mask: np.ndarray, pos: np.ndarray, keep: np.ndarray,
            past: list[np.ndarray] | None) -> tuple[np.ndarray, list[np.ndarray]]:
        """One session run: logits (B, len(keep), V) float32 at the positions `keep` of the new tokens, and the
        cache after them (one array per past input)."""
        b = ids.shape[0]
        feed: dict[str, np.ndarray] = {"input_ids": ids.astype(np.int64), "attention_mask": mask.astype(np.int64)}
        if self.has_positions:
            feed["position_ids"] = pos.astype(np.int64)
        if self.has_keep:
            feed["logits_to_keep"] = np.asarray(keep, dtype=np.int64)
        if past is None:
            past = [np.zeros((b, self.kv_shape[0], 0, self.kv_shape[1]), dtype=self.kv_dtype)] * len(self.past_names)
        feed.update(zip(self.past_names, past, strict=True))
        try:
            out = self.session.run(["logits", *self.present_names], feed)
        except Exception as exc:  # noqa: BLE001 - ORT's own exception types
            raise ModelError(f"ONNX Runtime failed on {self.path.name}: {str(exc).splitlines()[0][:300]}") from None
        logits = out[0] if self.has_keep else out[0][:, np.asarray(keep)]
        return logits.astype(np.float32, copy=False), out[1:]

    # ----------------------------------------------------------------- tokens
    @property
    def max_length(self) -> int:
        value = self.info.get("max_length")
        if value:
            return int(value)
        limit = getattr(self.tokenizer, "model_max_length", None)
        return int(limit) if limit and limit < 1e12 else DEFAULT_MAX_LENGTH

    @property
    def prefix_token_id(self) -> int:
        tok = self.tokenizer
        return tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id

    @property
    def pad_token_id(self) -> int:
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.prefix_token_id

    @property
    def eos_token_ids(self) -> set[int]:
        ids = set(self.info.get("eos_token_ids") or ()) | {self.tokenizer.eos_token_id}
        return {int(i) for i in ids if i is not None}

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    encode = CausalLMAdapter.encode  # the tokenizer's ids, default special tokens as lm-eval
    decode = CausalLMAdapter.decode
    encode_requests = CausalLMAdapter.encode_requests  # one lm-eval semantics: the PyTorch adapter's function

    def left_padded(self, prompts: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        width = max(len(p) for p in prompts)
        ids = np.array([[self.pad_token_id] * (width - len(p)) + list(p) for p in prompts], dtype=np.int64)
        mask = np.array([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=np.int64)
        return ids, mask

    # ----------------------------------------------------------------- scoring
    def loglikelihood(self, requests: Sequence[tuple[str, str]], batch_size: int = 16,
                      pack: bool = True) -> list[tuple[float, bool]]:
        """(sum of log p(continuation tokens | context), is_greedy) per (context, continuation); `batch_size`
        contexts (questions) per run."""
        encoded = self.encode_requests(requests)
        sums = np.zeros(len(encoded), dtype=np.float64)
        misses = np.zeros(len(encoded), dtype=np.int64)
        groups: dict[tuple[int, ...], list[tuple[int, list[int]]]] = {}
        singles = []
        for req, (ctx, cont) in enumerate(encoded):
            if not cont:
                raise ModelError(f"request {req}: the continuation is empty after tokenization")
            if not pack or len(ctx) + len(cont) > self.max_length + 1:
                inp = (ctx + cont)[-(self.max_length + 1):][:-1]
                singles.append((req, inp, list(range(len(inp) - len(cont), len(inp))), list(cont)))
            else:
                groups.setdefault(tuple(ctx), []).append((req, list(cont)))
        items = sorted(groups.items(), key=lambda g: -len(g[0]))
        for i in range(0, len(items), max(1, batch_size)):
            self._score_groups(items[i:i + max(1, batch_size)], sums, misses)
        self._score_rows(singles, batch_size, sums, misses)
        return [(float(s), bool(m == 0)) for s, m in zip(sums, misses, strict=True)]

    def loglikelihood_rolling(self, texts: Sequence[str], batch_size: int = 16,
                              max_length: int | None = None) -> list[tuple[float, int]]:
        """(log-likelihood, number of tokens) of each whole text, with lm-eval's disjoint rolling windows."""
        limit = max_length or self.max_length
        rows, n_tokens = [], []
        for doc, tokens in enumerate(self.encode(list(texts))):
            n_tokens.append(len(tokens))
            for ctx, pred in rolling_windows(tokens, self.prefix_token_id, limit):
                inp = (ctx + pred)[-(limit + 1):][:-1]
                rows.append((doc, inp, list(range(len(inp) - len(pred), len(inp))), pred))
        sums = np.zeros(len(texts), dtype=np.float64)
        self._score_rows(rows, batch_size, sums, np.zeros(len(texts), dtype=np.int64))
        return list(zip(sums.tolist(), n_tokens, strict=True))

    @staticmethod
    def _add(logits: np.ndarray, targets: np.ndarray, reqs: np.ndarray, sums: np.ndarray, misses: np.ndarray) -> None:
        """log-softmax (float64) of logits (M, V) at the M targets, summed into sums[reqs]; non-argmax targets
        counted into misses[reqs]."""
        x = logits.astype(np.float64)
        m = x.max(axis=1, keepdims=True)
        logz = m[:, 0] + np.log(np.exp(x - m).sum(axis=1))
        np.add.at(sums, reqs, x[np.arange(len(targets)), targets] - logz)
        np.add.at(misses, reqs, (logits.argmax(axis=1) != targets).astype(np.int64))

    def _score_groups(self, groups: list[tuple[tuple[int, ...], list[tuple[int, list[int]]]]], sums: np.ndarray,
                      misses: np.ndarray) -> None:
        """Questions sharing nothing: their contexts left-padded in one run, then every choice on its
        question's cache (module docstring)."""
        ids, ctx_mask = self.left_padded([list(c) for c, _ in groups])
        width = ids.shape[1]
        first, past = self.run(ids, ctx_mask, positions(ctx_mask, width), np.array([width - 1]), None)
        q_of = np.array([q for q, (_, conts) in enumerate(groups) for _ in conts])
        reqs = np.array([r for _, conts in groups for r, _ in conts])
        firsts = np.array([c[0] for _, conts in groups for _, c in conts])
        self._add(first[q_of, 0], firsts, reqs, sums, misses)
        rest = [(q, r, c) for q, (_, conts) in enumerate(groups) for r, c in conts if len(c) > 1]
        if not rest:
            return
        vocab = first.shape[-1]
        lengths = np.array([len(c) - 1 for _, _, c in rest])
        per_run = max(1, MAX_LOGIT_FLOATS // max(1, int(lengths.max()) * vocab))
        for i in range(0, len(rest), per_run):
            part = rest[i:i + per_run]
            qs = np.array([q for q, _, _ in part])
            span = max(len(c) - 1 for _, _, c in part)
            body = np.array([c[:-1] + [self.pad_token_id] * (span - len(c) + 1) for _, _, c in part], dtype=np.int64)
            new_mask = np.array([[1] * (len(c) - 1) + [0] * (span - len(c) + 1) for _, _, c in part], dtype=np.int64)
            mask = np.concatenate([ctx_mask[qs], new_mask], axis=1)
            pos = ctx_mask[qs].sum(axis=1, keepdims=True) + np.arange(span)[None]
            logits, _ = self.run(body, mask, pos, np.arange(span), [p[qs] for p in past])
            rows = np.concatenate([np.full(len(c) - 1, k) for k, (_, _, c) in enumerate(part)])
            cols = np.concatenate([np.arange(len(c) - 1) for _, _, c in part])
            targets = np.concatenate([c[1:] for _, _, c in part])
            owners = np.concatenate([np.full(len(c) - 1, r) for _, r, c in part])
            self._add(logits[rows, cols], targets, owners, sums, misses)

    def _score_rows(self, rows: list[tuple[int, list[int], list[int], list[int]]], batch_size: int,
                    sums: np.ndarray, misses: np.ndarray) -> None:
        """Rows (owner, input tokens, target positions, target tokens), each on an empty cache, longest first,
        right-padded up to `batch_size` rows (and MAX_LOGIT_FLOATS logits) per run."""
        rows = sorted(rows, key=lambda r: -len(r[1]))
        i = 0
        while i < len(rows):
            width = len(rows[i][1])
            vocab_guess = max(1, self.vocab_size)
            n = max(1, min(batch_size, MAX_LOGIT_FLOATS // (width * vocab_guess)))
            part = rows[i:i + n]
            i += len(part)
            ids = np.array([r[1] + [self.pad_token_id] * (width - len(r[1])) for r in part], dtype=np.int64)
            mask = np.array([[1] * len(r[1]) + [0] * (width - len(r[1])) for r in part], dtype=np.int64)
            pos = np.broadcast_to(np.arange(width), ids.shape)
            logits, _ = self.run(ids, mask, pos, np.arange(width), None)
            sel_rows = np.concatenate([np.full(len(r[2]), k) for k, r in enumerate(part)])
            sel_cols = np.concatenate([np.asarray(r[2], dtype=np.int64) for r in part])
            targets = np.concatenate([np.asarray(r[3], dtype=np.int64) for r in part])
            owners = np.concatenate([np.full(len(r[2]), r[0]) for r in part])
            self._add(logits[sel_rows, sel_cols], targets, owners, sums, misses)

    # ----------------------------------------------------------------- generation
    def generate_greedy(self, prompts: list[list[int]], max_new_tokens: int, stop_ids: set[int] | None = None,
                        on_step: Callable[[int], None] | None = None) -> list[list[int]]:
        """Greedy continuation of each prompt (token ids), batched with the KV cache and left padding: at most
        `max_new_tokens` new tokens per prompt, a sequence ending at its first token in `stop_ids` (kept).
        `on_step(i)` runs once step i's tokens exist (i = 0: prefill + first token)."""
        if not prompts or any(not p for p in prompts):
            raise ModelError("generate_greedy: every prompt needs at least one token")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ModelError(f"generate_greedy: max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
        ids, mask = self.left_padded(prompts)
        stop = np.array(sorted(stop_ids or ()), dtype=np.int64)
        done = np.zeros(len(prompts), dtype=bool)
        out: list[list[int]] = [[] for _ in prompts]
        past = None
        last = np.zeros(1, dtype=np.int64)
        for step in range(max_new_tokens):
            logits, past = self.run(ids, mask, positions(mask, ids.shape[1]), last + ids.shape[1] - 1, past)
            nxt = np.where(done, self.pad_token_id, logits[:, -1].argmax(axis=-1))
            for b in np.flatnonzero(~done):
                out[b].append(int(nxt[b]))
            if len(stop):
                done |= np.isin(nxt, stop)
            if on_step is not None:
                on_step(step)
            if done.all():
                break
            ids = nxt[:, None].astype(np.int64)
            mask = np.concatenate([mask, np.ones((len(prompts), 1), dtype=np.int64)], axis=1)
        return out

    # ----------------------------------------------------------------- ModelAdapter
    def predict_proba(self, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
        raise ModelError("a causal LM gives log-likelihoods, not class probabilities: use it on a "
                         "multiple-choice or language-modeling task")

    def prepare(self, X: np.ndarray) -> np.ndarray:
        """(len(X), MEASURE_TOKENS) token ids, as the PyTorch adapter's ``prepare``."""
        return CausalLMAdapter.measure_ids(self, X).numpy()

    def forward(self, inputs: Any) -> np.ndarray:
        """One prefill run over the prompts on an empty cache, logits at every position (as the PyTorch
        forward)."""
        ids = np.asarray(inputs, dtype=np.int64)
        mask = np.ones_like(ids)
        return self.run(ids, mask, positions(mask, ids.shape[1]), np.arange(ids.shape[1]), None)[0]

    def _proto(self) -> Any:
        import onnx

        return onnx.load(str(self.path))

    def _counts(self) -> tuple[int, int]:
        if "_param_counts" not in self.__dict__:
            self.__dict__["_param_counts"] = graph_params(self._proto())
        return self.__dict__["_param_counts"]

    def num_params(self) -> int:
        return self._counts()[0]

    def nonzero_params(self) -> int:
        return self._counts()[1]

    def describe(self) -> dict[str, Any]:
        import onnxruntime

        quant = self.info.get("quantization")
        out = {"adapter": self.adapter_name, "runtime": f"onnxruntime {onnxruntime.__version__}",
               "provider": "CPUExecutionProvider", "threads": self.threads, "max_length": self.max_length,
               "onnx_bytes": self.path.stat().st_size, "kv_cache": f"{self.kv_dtype.__name__}, "
               f"{len(self.past_names) // 2} layers x {self.kv_shape[0]} kv heads x {self.kv_shape[1]}",
               "measure_tokens": MEASURE_TOKENS,
               "latency_note": f"prefill of {MEASURE_TOKENS}-token prompts: ms per token = latency / {MEASURE_TOKENS}",
               **{k: v for k, v in self.info.items() if v is not None}, "quantization": quant}
        if quant == "onnxruntime-dynamic-int8":
            out["batch_note"] = INT8_NOTE
        return out

    @classmethod
    def export_form(cls, saved: Path) -> str:
        return (f"an ONNX causal LM with a KV cache (`{ONNX_FILE}`: input_ids, attention_mask, position_ids, "
                "logits_to_keep, past_key_values.<i>.key/value -> logits, present.<i>.key/value) and its tokenizer "
                f"files: run it with `onnxruntime.InferenceSession(folder / '{ONNX_FILE}')`")

    def save(self, path: Path) -> None:
        """model.onnx + tokenizer files + adapter.json (written last)."""
        from leanbench.models.hf import quiet_transformers

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / (ONNX_FILE + ".tmp")
        shutil.copyfile(self.path, tmp)
        tmp.replace(path / ONNX_FILE)
        with quiet_transformers():
            self.tokenizer.save_pretrained(str(path))
        write_adapter_file(path, self.adapter_name, {"info": self.info})

    @classmethod
    def load(cls, path: Path) -> OnnxCausalLMAdapter:
        from leanbench.models.hf import load_tokenizer

        path = Path(path)
        meta = read_adapter_file(path)
        if not (path / ONNX_FILE).is_file():
            raise ModelError(f"{path}: no {ONNX_FILE}")
        return cls(path / ONNX_FILE, load_tokenizer(str(path)), meta.get("info"))

    def with_file(self, data_path: Path, info: dict[str, Any], owned: Any) -> OnnxCausalLMAdapter:
        """Another ONNX file of this model (a quantized copy), with this tokenizer and thread count."""
        return OnnxCausalLMAdapter(data_path, self.tokenizer, {**self.info, **info}, threads=self.threads, owned=owned)


# --------------------------------------------------------------------------- parameter counts
def graph_params(proto: Any) -> tuple[int, int]:
    """(weights, nonzero weights) of an ONNX graph: the float / int8 weight initializers
    (``models.onnx.weight_initializers``), and the 4-bit weights of MatMulNBits nodes counted as N x K values
    each (their scales and zero points are not weights; a weight is zero where its 4-bit value is the zero
    point: 8 when symmetric)."""
    from onnx import numpy_helper

    from leanbench.models.onnx import _zero_points, weight_initializers

    nbits = {n.input[1]: n for n in proto.graph.node if n.op_type == "MatMulNBits"}
    aux = {name for n in nbits.values() for name in n.input[2:]}
    inits = {i.name: i for i in proto.graph.initializer}
    total = nonzero = 0
    zps = _zero_points(proto)
    for name, w in weight_initializers(proto).items():
        if name in nbits or name in aux:
            continue
        zp = zps.get(name.removesuffix("_quantized"), 0.0) if w.dtype in (np.int8, np.uint8) else 0.0
        total += int(w.size)
        nonzero += int(np.count_nonzero(w.astype(np.float64) != zp))
    for name, node in nbits.items():
        attrs = {a.name: a.i for a in node.attribute}
        n, k = int(attrs["N"]), int(attrs["K"])
        raw = numpy_helper.to_array(inits[name]).reshape(n, -1)
        values = np.stack([raw & 0xF, raw >> 4], axis=-1).reshape(n, -1)[:, :k]
        total += n * k
        nonzero += int(np.count_nonzero(values != 8)) if len(node.input) < 4 or not node.input[3] else n * k
    return total, nonzero
