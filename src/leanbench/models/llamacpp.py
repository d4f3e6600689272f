"""GGUF models on llama.cpp (adapter "llama.cpp"), through llama-cpp-python: the runtime small LLMs ship on.

The evaluator interface is the PyTorch causal LM's (``models/causal_lm.py``), so multiple-choice and
language-modelling tasks and every statistic work unchanged:
- ``loglikelihood(requests)``: lm-evaluation-harness semantics (``CausalLMAdapter.encode_requests``, the same
  function: trailing context whitespace moved to the continuation, ``whole[len(ctx):]`` continuation tokens,
  an empty context conditioned on the prefix token), with llama.cpp's tokenizer and llama.cpp's own logits.
  The choices of a question are *packed* as in the PyTorch adapter, with llama.cpp's own means: one decode
  holds the context once, its tokens in the sequences of every choice, and each choice's tokens in its own
  sequence (positions restarting after the context), so every scored token attends to exactly the keys,
  values and positions of lm-eval's separate row. log-softmax in float64 over llama.cpp's float32 logits.
- ``loglikelihood_rolling(texts)``: lm-eval's disjoint rolling windows (``causal_lm.rolling_windows``).
- ``generate_greedy(prompts, max_new_tokens, stop_ids, on_step)``: argmax decoding; several prompts decode in
  lock step, one sequence id each, one llama.cpp batch per step (as llama.cpp's server batches requests).
  With ``decode`` (special tokens skipped, llama.cpp's detokenizer), ``eos_token_ids`` (llama.cpp's
  end-of-generation tokens) and ``vocab_size``, what the generation task needs (``evaluate/generation.py``).
- ``forward`` (what latency times): a prefill of MEASURE_TOKENS-token prompts, the batch's prompts in one
  decode (a sequence each), logits at every position as the PyTorch forward computes them.

Decoding goes through llama-cpp-python's low-level API on a context made here (``_Context``: a unified KV cache
shared by up to ``MAX_SEQ`` sequences), with the logits flag only at the positions read
(``Llama(logits_all=True)`` would copy a (n_ctx, vocab) float32 array per call). The ``Llama`` object loads the
model and tokenizes. ``evaluate.batch_size`` does not apply (a question is one decode; tokens are batched up to
``n_batch`` per call). Threads: ``set_threads(n)`` (``llama_set_n_threads``), set by measurement from the
profile. Size = the GGUF file; ``save`` copies it beside ``adapter.json``; ``leanbench export`` writes that
folder, the GGUF file at its top (``export_form`` names it). ``kv_cache_bytes(context, batch)``: the f16 cache
a generation needs, which serving's peak memory adds (the cache is allocated with the context, outside the
measured call).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from leanbench.errors import ModelError
from leanbench.models.base import ModelAdapter, read_adapter_file, write_adapter_file
from leanbench.models.causal_lm import CausalLMAdapter, rolling_windows
from leanbench.models.gguf_io import check_gguf, resolve_gguf

GGUF_NAME = "model.gguf"
DEFAULT_N_CTX = 2048  # lm-eval's default max length; the model's training context when that is smaller
DEFAULT_N_BATCH = 512  # tokens per llama_decode call (llama.cpp's default)
MEASURE_TOKENS = 64  # as causal_lm: prompts of 64 tokens, ms per token = latency / 64 (prefill)
MAX_SEQ = 8  # sequences one decode may hold: the choices of a question, the prompts of a batch
MISSING = ("the llama.cpp runtime needs the package 'llama_cpp' (llama-cpp-python), which is not installed: "
           "pip install 'leanbench[llama]'")


def _llama_cpp() -> Any:
    try:
        import llama_cpp
    except ModuleNotFoundError:
        raise ModelError(MISSING) from None
    return llama_cpp


def quiet() -> Any:
    """Silences llama.cpp's own log lines (context-size warnings, quantizer progress) for the block: llama-cpp-
    python's `suppress_stdout_stderr`, the one its `Llama(verbose=False)` uses while loading."""
    from llama_cpp._utils import suppress_stdout_stderr

    return suppress_stdout_stderr(disable=False)


def _train_ctx(path: Path) -> int | None:
    """The training context length a GGUF file declares (`<arch>.context_length`), or None."""
    try:
        from leanbench.models.gguf_io import gguf_metadata

        meta = gguf_metadata(path, "")
        return int(meta[f"{meta['general.architecture']}.context_length"])
    except Exception:  # noqa: BLE001 (an unusual file: llama.cpp's default then)
        return None


_LIVE: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Frees llama.cpp models before the interpreter tears modules down (llama-cpp-python's own __del__ then
    finds its C functions gone and prints a traceback)."""
    for adapter in list(_LIVE):
        adapter.close()


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def build_model(spec: Any, data: Any, seed: int) -> LlamaCppAdapter:
    """Builder for `model: {gguf: <file>, runtime: llama.cpp}` (a GGUF file as a candidate, no build step)."""
    base = (getattr(data, "meta", None) or {}).get("base_dir")
    path = check_gguf(resolve_gguf(spec.gguf, Path(base) if base else None))
    return LlamaCppAdapter(path, n_ctx=spec.n_ctx, n_batch=spec.n_batch, info={"source": str(path)})


class LlamaCppAdapter(ModelAdapter):
    """A GGUF file opened by llama.cpp. `owned`: a temporary folder holding the file (a quantize step's output)
    that lives as long as the adapter."""

    adapter_name = "llama.cpp"

    def __init__(self, path: str | Path, *, threads: int = 0, n_ctx: int | None = None,
                 n_batch: int = DEFAULT_N_BATCH, info: dict | None = None, owned: Any = None):
        lc = _llama_cpp()
        self.path = check_gguf(path)
        self.info = dict(info or {})
        self._owned = owned
        self.threads = _cores() if threads == 0 else threads
        train_ctx = _train_ctx(self.path)
        if n_ctx is None:  # the model's own context when it is shorter than the default
            n_ctx = min(DEFAULT_N_CTX, train_ctx) if train_ctx else DEFAULT_N_CTX
        self.n_ctx = int(n_ctx)  # lm-eval's max_length for this model
        self.n_batch = min(int(n_batch), self.n_ctx)
        try:
            with quiet():  # the Llama object loads the model and tokenizes; its own context stays small
                self.llm = lc.Llama(model_path=str(self.path), n_ctx=256, n_batch=64, n_ubatch=64,
                                    n_threads=self.threads, verbose=False)
        except Exception as exc:  # llama-cpp-python raises ValueError "Failed to load model from file"
            raise ModelError(f"llama.cpp cannot load the GGUF file '{self.path}': {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200] if str(exc) else ''}") from None
        _LIVE.add(self)
        self.n_vocab = int(self.llm.n_vocab())
        self.ctx = _Context(self, self.n_ctx, MAX_SEQ)  # one sequence of max_length, or packed choices
        self._extra: _Context | None = None  # for generation batches the first does not hold

    def set_threads(self, n: int) -> int:
        """Threads for decoding and prompt processing (0 = every available core); returns the count in force."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ModelError(f"threads must be an integer >= 0 (0 = all cores), got {n!r}")
        self.threads = _cores() if n == 0 else n
        for ctx in (self.ctx, self._extra):
            if ctx is not None:
                ctx.set_threads(self.threads)
        return self.threads

    # ----------------------------------------------------------------- tokens
    @property
    def max_length(self) -> int:
        """The context length of one sequence (lm-eval's max_length for this model)."""
        return self.n_ctx

    @property
    def prefix_token_id(self) -> int:
        bos = int(self.llm.token_bos())
        return bos if bos >= 0 else int(self.llm.token_eos())

    def encode(self, texts: list[str], add_special_tokens: bool | None = None) -> list[list[int]]:
        """llama.cpp's token ids of each text; special tokens (a BOS) as the GGUF's `add_bos_token` says, as a
        Hugging Face tokenizer adds its default special tokens."""
        add = True if add_special_tokens is None else add_special_tokens
        return [list(self.llm.tokenize(t.encode("utf-8"), add_bos=add, special=False)) for t in texts]

    encode_requests = CausalLMAdapter.encode_requests  # one lm-eval semantics: the PyTorch adapter's function

    def decode(self, sequences: Sequence[Sequence[int]]) -> list[str]:
        """Text of each token sequence, special tokens skipped, as ``CausalLMAdapter.decode`` (the tokenizer's
        ``batch_decode(skip_special_tokens=True)``): control and unknown tokens are dropped first, then
        llama.cpp's detokenizer (``llama_detokenize``) joins the rest with the GGUF tokenizer's rules (byte-level
        or SentencePiece pieces, the first token's prefix space); bytes that are not UTF-8 (a character cut
        between tokens) become U+FFFD, as Hugging Face decodes them."""
        lc, skip = _llama_cpp(), self._token_sets[0]
        vocab = lc.llama_model_get_vocab(self.llm.model)
        out = []
        for seq in sequences:
            toks = [int(t) for t in seq if int(t) not in skip]
            arr = (lc.llama_token * max(1, len(toks)))(*toks)
            size = 16 * len(toks) + 16
            while True:  # a negative return is the size needed
                buf = ctypes.create_string_buffer(size)
                n = lc.llama_detokenize(vocab, arr, len(toks), buf, size, False, False)
                if n >= 0:
                    break
                size = -n
            out.append(buf.raw[:n].decode("utf-8", errors="replace"))
        return out

    @property
    def vocab_size(self) -> int:
        """Token ids the model's vocabulary holds (0..vocab_size-1)."""
        return self.n_vocab

    @property
    def eos_token_ids(self) -> set[int]:
        """Ids that end a generation: llama.cpp's end-of-generation tokens (``llama_vocab_is_eog``: the GGUF's
        EOS, EOT and EOM ids and the end-of-turn tokens llama.cpp recognises), what llama.cpp's own generation
        stops on, as the PyTorch adapter's set (the tokenizer's EOS and ``generation_config.eos_token_id``) is
        what transformers' ``generate`` stops on."""
        return set(self._token_sets[1])

    @cached_property
    def _token_sets(self) -> tuple[frozenset[int], frozenset[int]]:
        """(ids a decode skips: control and unknown tokens, end-of-generation ids), read once from the vocab."""
        lc = _llama_cpp()
        vocab = lc.llama_model_get_vocab(self.llm.model)
        special = lc.LLAMA_TOKEN_ATTR_CONTROL | lc.LLAMA_TOKEN_ATTR_UNKNOWN
        skip = frozenset(t for t in range(self.n_vocab) if lc.llama_vocab_get_attr(vocab, t) & special)
        eog = frozenset(t for t in range(self.n_vocab) if lc.llama_vocab_is_eog(vocab, t))
        return skip, eog

    # ----------------------------------------------------------------- scoring
    @staticmethod
    def _score(logits: np.ndarray, targets: Sequence[int]) -> tuple[float, bool]:
        """(sum of log p(target), every target the argmax) for logits (k, V) and k targets."""
        x = logits.astype(np.float64)
        m = x.max(axis=1, keepdims=True)
        logz = m[:, 0] + np.log(np.exp(x - m).sum(axis=1))
        tgt = np.asarray(targets)
        ll = float((x[np.arange(len(tgt)), tgt] - logz).sum())
        return ll, bool((logits.argmax(axis=1) == tgt).all())

    def _single(self, ctx: list[int], cont: list[int]) -> tuple[float, bool]:
        """One request as lm-eval feeds it: (ctx + cont)[-(max_length + 1):][:-1], a fresh cache."""
        inp = (ctx + cont)[-(self.max_length + 1):][:-1]
        flags = [False] * (len(inp) - len(cont)) + [True] * len(cont)
        self.ctx.clear()
        return self._score(self.ctx.decode(inp, list(range(len(inp))), [(0,)] * len(inp), flags), cont)

    def _packed(self, ctx: list[int], conts: list[list[int]]) -> list[tuple[float, bool]]:
        """The choices of one question in one decode: the context in every choice's sequence, then each
        choice's tokens but its last in its own sequence; logits at the context's last token and at every
        choice token."""
        seqs = tuple(range(len(conts)))
        toks, pos, ids, flags = list(ctx), list(range(len(ctx))), [seqs] * len(ctx), [False] * len(ctx)
        flags[-1] = True
        for s, cont in enumerate(conts):
            body = cont[:-1]
            toks += body
            pos += range(len(ctx), len(ctx) + len(body))
            ids += [(s,)] * len(body)
            flags += [True] * len(body)
        self.ctx.clear()
        logits = self.ctx.decode(toks, pos, ids, flags)
        out, at = [], 1
        for cont in conts:
            out.append(self._score(np.concatenate([logits[:1], logits[at:at + len(cont) - 1]]), cont))
            at += len(cont) - 1
        return out

    def loglikelihood(self, requests: Sequence[tuple[str, str]], batch_size: int = 16,
                      pack: bool = True) -> list[tuple[float, bool]]:
        """(sum of log p(continuation tokens | context), is_greedy) per (context, continuation). `batch_size`
        is accepted for the interface and does not apply (see the module docstring)."""
        encoded = self.encode_requests(requests)
        out: list[tuple[float, bool]] = [(0.0, False)] * len(encoded)
        groups: dict[tuple[int, ...], list[int]] = {}
        for req, (ctx, cont) in enumerate(encoded):
            if not cont:
                raise ModelError(f"request {req}: the continuation is empty after tokenization")
            if not pack or len(ctx) + len(cont) > self.max_length + 1:
                out[req] = self._single(ctx, cont)
            else:
                groups.setdefault(tuple(ctx), []).append(req)
        for ctx_t, reqs in groups.items():
            ctx, part = list(ctx_t), []
            for req in reqs:  # as many choices per decode as fit in MAX_SEQ sequences and the cache
                size = len(ctx) + sum(len(encoded[r][1]) - 1 for r in part) + len(encoded[req][1]) - 1
                if part and (len(part) == MAX_SEQ or size > self.ctx.n_ctx):
                    self._commit(ctx, part, encoded, out)
                    part = []
                part.append(req)
            self._commit(ctx, part, encoded, out)
        return out

    def _commit(self, ctx: list[int], reqs: list[int], encoded: list, out: list) -> None:
        for req, res in zip(reqs, self._packed(ctx, [encoded[r][1] for r in reqs]), strict=True):
            out[req] = res

    def loglikelihood_rolling(self, texts: Sequence[str], batch_size: int = 16,
                              max_length: int | None = None) -> list[tuple[float, int]]:
        """(log-likelihood, number of tokens) of each whole text, with lm-eval's disjoint rolling windows."""
        limit = min(max_length or self.max_length, self.max_length)
        out = []
        for tokens in self.encode(list(texts)):
            total = 0.0
            for ctx, pred in rolling_windows(tokens, self.prefix_token_id, limit):
                total += self._single(ctx, pred)[0]
            out.append((total, len(tokens)))
        return out

    # ----------------------------------------------------------------- generation
    def generate_greedy(self, prompts: list[list[int]], max_new_tokens: int, stop_ids: set[int] | None = None,
                        on_step: Callable[[int], None] | None = None) -> list[list[int]]:
        """Greedy continuation of each prompt (token ids): at most `max_new_tokens` new tokens per prompt (the
        prompt excluded), a sequence ending at its first token in `stop_ids` (that token kept). `on_step(i)`
        runs once step i's tokens exist (i = 0: prefill + first token). The prompts decode in lock step, one
        sequence each, one llama.cpp batch per step (a context made for the call when the model's own has too
        few sequences or cells)."""
        if not prompts or any(not p for p in prompts):
            raise ModelError("generate_greedy: every prompt needs at least one token")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ModelError(f"generate_greedy: max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
        need = max(len(p) for p in prompts) + max_new_tokens
        if need > self.n_ctx:
            raise ModelError(f"generate_greedy: a prompt of {need - max_new_tokens} tokens + {max_new_tokens} new "
                             f"ones exceed the context of {self.n_ctx} tokens")
        return _greedy(self._context_for(len(prompts), need), [list(p) for p in prompts], max_new_tokens,
                       set(stop_ids or ()), on_step)

    def _context_for(self, n_seq: int, per_seq: int) -> _Context:
        """The model's context when it holds `n_seq` sequences of `per_seq` tokens, else a larger one, made once
        and kept for the next calls (so that timed generations do not allocate a KV cache)."""
        for ctx in (self.ctx, self._extra):
            if ctx is not None and ctx.n_seq >= n_seq and ctx.n_ctx >= n_seq * per_seq:
                return ctx
        if self._extra is not None:
            self._extra.free()
        self._extra = _Context(self, n_seq * per_seq, max(n_seq, MAX_SEQ))
        return self._extra

    # ----------------------------------------------------------------- ModelAdapter
    def predict_proba(self, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
        raise ModelError("a causal LM gives log-likelihoods, not class probabilities: use it on a "
                         "multiple-choice or language-modeling task")

    def prepare(self, X: np.ndarray) -> list[list[int]]:
        """Each example's text (context + first choice for a multiple-choice example), tokenized, cut or
        repeated to exactly MEASURE_TOKENS tokens (as causal_lm.prepare)."""
        texts = [x[0] + " " + x[1][0] if isinstance(x, tuple) else str(x) for x in X]
        rows = []
        for toks in self.encode(texts):
            toks = toks or [self.prefix_token_id]
            rows.append((toks * (MEASURE_TOKENS // len(toks) + 1))[:MEASURE_TOKENS])
        return rows

    def forward(self, inputs: list[list[int]]) -> np.ndarray:
        """A prefill of the prompts, up to MAX_SEQ of them (and as many as the cache holds) in one decode, a
        sequence each, with logits at every position as the PyTorch forward computes them; returns each
        prompt's last logits (B, V)."""
        out, i = [], 0
        while i < len(inputs):
            part = [inputs[i]]
            while (i + len(part) < len(inputs) and len(part) < MAX_SEQ
                   and sum(map(len, part)) + len(inputs[i + len(part)]) <= self.ctx.n_ctx):
                part.append(inputs[i + len(part)])
            toks = [t for row in part for t in row]
            pos = [p for row in part for p in range(len(row))]
            ids = [(s,) for s, row in enumerate(part) for _ in row]
            self.ctx.clear()
            logits = self.ctx.decode(toks, pos, ids, [True] * len(toks))
            out += [logits[end - 1] for end in np.cumsum([len(r) for r in part])]
            i += len(part)
        return np.stack(out)

    def num_params(self) -> int:
        return int(_llama_cpp().llama_model_n_params(self.llm.model))

    def nonzero_params(self) -> int:
        """Not counted in quantized blocks: the parameter count (describe() says so)."""
        return self.num_params()

    def kv_cache_bytes(self, context: int, batch: int) -> int:
        """Keys and values (f16, llama.cpp's default cache type) of every layer for `batch` sequences of `context`
        tokens: 2 * layers * kv_heads * head_dim * context * batch * 2 bytes. The caches of this adapter's
        contexts are allocated when they are made (`describe()["kv_cache_allocated_bytes"]`)."""
        lc, m = _llama_cpp(), self.llm.model
        head_dim = lc.llama_model_n_embd(m) // max(1, lc.llama_model_n_head(m))
        return int(2 * lc.llama_model_n_layer(m) * lc.llama_model_n_head_kv(m) * head_dim * context * batch * 2)

    def gguf_type(self) -> str:
        """The file's type as llama.cpp describes the model (e.g. 'llama 135M Q8_0')."""
        buf = ctypes.create_string_buffer(256)
        _llama_cpp().llama_model_desc(self.llm.model, buf, len(buf))
        return buf.value.decode("utf-8", "replace")

    def describe(self) -> dict[str, Any]:
        lc = _llama_cpp()
        return {"adapter": self.adapter_name, "runtime": f"llama.cpp (llama-cpp-python {lc.__version__})",
                "model": self.gguf_type(), "file": self.path.name, "file_bytes": self.path.stat().st_size,
                "vocab_size": self.n_vocab, "max_length": self.max_length, "n_batch": self.n_batch,
                "kv_cache": f"f16, unified, {self.ctx.n_ctx} cells shared by up to {MAX_SEQ} sequences",
                "kv_cache_allocated_bytes": self.kv_cache_bytes(self.ctx.n_ctx, 1),
                "threads": self.threads, "measure_tokens": MEASURE_TOKENS,
                "latency_note": f"prefill of {MEASURE_TOKENS}-token prompts (up to {MAX_SEQ} in one decode): "
                                f"ms per token = latency / {MEASURE_TOKENS}",
                "batch_note": "scoring decodes one question per call, its choices packed (evaluate.batch_size "
                              "does not apply); generation runs the prompts of a batch in lock step",
                "nonzero_params_note": "not counted inside quantized blocks: equal to params",
                **{k: v for k, v in self.info.items() if v is not None}}

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.path, path / GGUF_NAME)
        write_adapter_file(path, self.adapter_name, {"info": self.info, "n_ctx": self.n_ctx, "n_batch": self.n_batch})

    @classmethod
    def export(cls, saved: Path, dest: Path) -> list[Path]:
        """The saved folder as it is: the GGUF file (`model.gguf`, what llama.cpp's tools load) at the top of
        `dest` and adapter.json beside it (`load_model(dest)` reads it back). The file is checked first."""
        check_gguf(Path(saved) / GGUF_NAME)
        return super().export(saved, dest)

    @classmethod
    def export_form(cls, saved: Path) -> str:
        kind = ""
        try:  # the file's type (e.g. MOSTLY_Q8_0) from its metadata; nothing is loaded
            from gguf import LlamaFileType

            from leanbench.models.gguf_io import gguf_metadata

            meta = gguf_metadata(Path(saved) / GGUF_NAME, "general.file_type")
            kind = f", {LlamaFileType(int(meta['general.file_type'])).name}"
        except Exception:  # noqa: BLE001 (no file type recorded: the form without it)
            pass
        return (f"a GGUF file (`{GGUF_NAME}`{kind}) for llama.cpp: run it with `llama-cli -m {GGUF_NAME}` or "
                f"`llama_cpp.Llama(model_path=folder / '{GGUF_NAME}')`; `leanbench.models.base.load_model(folder)` "
                "reads the folder back (adapter.json)")

    @classmethod
    def load(cls, path: Path) -> LlamaCppAdapter:
        meta = read_adapter_file(Path(path))
        return cls(Path(path) / GGUF_NAME, n_ctx=meta.get("n_ctx"), n_batch=meta.get("n_batch", DEFAULT_N_BATCH),
                   info=meta.get("info"))

    @classmethod
    def from_file_copy(cls, source: Path, info: dict, like: LlamaCppAdapter | None = None) -> LlamaCppAdapter:
        """An adapter over `source`, which it owns (a temporary folder removed with the adapter)."""
        owned = tempfile.TemporaryDirectory(prefix="leanbench-gguf-")
        dest = Path(owned.name) / GGUF_NAME
        shutil.move(str(source), dest)
        kw = {"n_ctx": like.n_ctx, "n_batch": like.n_batch} if like is not None else {}
        return cls(dest, info=info, owned=owned, **kw)

    def close(self) -> None:
        for name in ("ctx", "_extra"):
            if getattr(self, name, None) is not None:
                getattr(self, name).free()
                setattr(self, name, None)
        self.llm.close()
        _LIVE.discard(self)


# --------------------------------------------------------------------------- llama.cpp contexts and batches
class _Context:
    """A llama.cpp context over the adapter's model: `n_ctx` KV-cache cells in one unified cache shared by up
    to `n_seq` sequences (a token may belong to several: a shared prefix), and a batch of `n_batch` tokens."""

    def __init__(self, model: LlamaCppAdapter, n_ctx: int, n_seq: int):
        lc = self.lc = _llama_cpp()
        self.n_vocab, self.n_seq = model.n_vocab, n_seq
        params = lc.llama_context_default_params()
        params.n_ctx = self.n_ctx = -(-n_ctx // 256) * 256  # llama.cpp pads to 256 cells
        params.n_batch = params.n_ubatch = self.n_batch = max(model.n_batch, n_seq)
        params.n_seq_max = n_seq
        params.kv_unified = True
        params.n_threads = params.n_threads_batch = model.threads
        params.no_perf = True
        with quiet():
            self.ctx = lc.llama_init_from_model(model.llm.model, params)
        if not self.ctx:
            raise ModelError(f"llama.cpp: cannot make a context of {self.n_ctx} cells for {n_seq} sequences")
        self.batch = lc.llama_batch_init(self.n_batch, 0, n_seq)
        view = np.ctypeslib.as_array
        self.token, self.pos = view(self.batch.token, (self.n_batch,)), view(self.batch.pos, (self.n_batch,))
        self.flags, self.n_seq_id = view(self.batch.logits, (self.n_batch,)), view(self.batch.n_seq_id, (self.n_batch,))

    def set_threads(self, n: int) -> None:
        self.lc.llama_set_n_threads(self.ctx, n, n)

    def clear(self) -> None:
        self.lc.llama_memory_clear(self.lc.llama_get_memory(self.ctx), True)

    def decode(self, tokens: Sequence[int], pos: Sequence[int], seqs: Sequence[tuple[int, ...]],
               flags: Sequence[bool]) -> np.ndarray:
        """Decodes the tokens at their positions and sequences, `n_batch` per llama_decode call; returns the
        logits (k, V) float32 of the k flagged tokens, in order."""
        out = []
        for i in range(0, len(tokens), self.n_batch):
            j = min(len(tokens), i + self.n_batch)
            n = j - i
            self.batch.n_tokens = n
            self.token[:n], self.pos[:n] = tokens[i:j], pos[i:j]
            self.flags[:n] = np.asarray(flags[i:j], dtype=np.int8)
            for k, ids in enumerate(seqs[i:j]):
                self.n_seq_id[k] = len(ids)
                for m, s in enumerate(ids):
                    self.batch.seq_id[k][m] = s
            rc = self.lc.llama_decode(self.ctx, self.batch)
            if rc != 0:
                raise ModelError(f"llama.cpp: llama_decode failed (return code {rc})")
            k = int(np.count_nonzero(self.flags[:n]))
            if k:
                out.append(np.ctypeslib.as_array(self.lc.llama_get_logits(self.ctx), shape=(k, self.n_vocab)).copy())
        return np.concatenate(out) if out else np.zeros((0, self.n_vocab), dtype=np.float32)

    def free(self) -> None:
        if self.batch is not None and self.lc.llama_batch_free is not None:
            self.lc.llama_batch_free(self.batch)
            self.lc.llama_free(self.ctx)
        self.batch = self.ctx = None


def _greedy(ctx: _Context, prompts: list[list[int]], max_new: int, stop: set[int],
            on_step: Callable[[int], None] | None) -> list[list[int]]:
    """Argmax decoding of every prompt in lock step on `ctx`: the prompts' prefill in one decode (a sequence
    each, logits at each last token), then one decode per step of every sequence still running."""
    toks = [t for p in prompts for t in p]
    pos = [i for p in prompts for i in range(len(p))]
    seqs = [(s,) for s, p in enumerate(prompts) for _ in p]
    flags = [i == len(p) - 1 for p in prompts for i in range(len(p))]
    ctx.clear()
    out = [[int(t)] for t in ctx.decode(toks, pos, seqs, flags).argmax(axis=1)]
    active = [s for s in range(len(prompts)) if out[s][-1] not in stop]
    if on_step is not None:
        on_step(0)
    for step in range(1, max_new):
        if not active:
            break
        nxt = ctx.decode([out[s][-1] for s in active], [len(prompts[s]) + step - 1 for s in active],
                         [(s,) for s in active], [True] * len(active)).argmax(axis=1)
        for s, t in zip(active, nxt, strict=True):
            out[s].append(int(t))
        active = [s for s in active if out[s][-1] not in stop]
        if on_step is not None:
            on_step(step)
    return out
