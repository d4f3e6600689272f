"""LLM serving figures, one protocol for every runtime: prefill and decode speed, time to first token, time
per output token and peak memory with the KV cache, each over interleaved rounds with a CI.

The figures llama-bench (``pp512`` / ``tg128``, mean ± sd over repetitions) and optimum-benchmark (prefill /
decode latency and throughput) users read first, measured through one call every generating adapter has::

    generate_greedy(prompts, max_new_tokens, stop_ids=None, on_step=None) -> new tokens per prompt

with ``on_step(i)`` called once step i's tokens exist (i = 0: the prefill forward and the first token). A
clock read at the call, at every ``on_step`` and at the return gives, for a batch of ``b`` prompts of ``L``
tokens and ``N`` new tokens each (``t_i``: the time of step i, ``t_start``, ``t_end``):

- time to first token  ``TTFT = t_0 - t_start`` (prefill + the first token's step), at each prompt length;
- prefill tokens/s  ``b * L / TTFT`` (a call with ``max_new_tokens = 1``, as llama-bench's ``pp``);
- time per output token  ``TPOT = (t_{N-1} - t_0) / (N - 1)`` (the decode steps only, TTFT excluded, as
  optimum-benchmark's per-token latency and vLLM's TPOT);
- decode tokens/s  ``D / (t_{N-1} - t_0)`` with ``D`` the tokens generated after each sequence's first (no stop
  tokens: ``b * (N - 1)``), counted from the outputs, not assumed;
- ``total_ms = t_end - t_start``.

Decode runs on prompts of the first prompt length. Every candidate of a profile is warmed up (``warmup``
untimed calls of each setting), then in each of ``rounds`` rounds every candidate runs every setting once,
candidates in a balanced, seeded order (``measure.interleaved.balanced_orders``), so that load on the machine
hits every candidate of a round alike. A figure is the median over rounds with the distribution-free CI of
the median (``measure.percentiles.percentile_with_ci``); its per-round values are kept, so a speed-up over
any other candidate of the group is paired by round (``stats.speedup.paired_speedup``, at analysis time).

Peak memory, per batch, is one call at the longest context that fits (longest prompt + ``N`` tokens): for a
model with a torch module, its weights plus the peak of torch's allocator during the call (the KV cache,
activations, logits; ``measure.memory``); without one, the file size plus the KV cache plus the resident set's
growth during the call. The KV cache's own size is the adapter's ``kv_cache_bytes(context, batch)`` (the
PyTorch causal LM: ``2 * layers * kv_heads * head_dim * context * batch * bytes`` from its config; llama.cpp:
the same count in its f16 cache), reported beside the peak. A runtime without a torch module that gives it
(llama.cpp) holds its cache outside the call, allocated with its context: one untimed call at the same shape
runs first, so the growth counts what the call adds beyond the cache, never the cache twice; without it (ONNX
Runtime) the growth is all there is. It is a count, not a sample: no CI.

Prompts are the task's texts, tokenized by each model's own tokenizer and tiled to exactly ``L`` tokens, the
same rows for every candidate. A prompt length whose context (``L + N``) exceeds a model's ``max_length`` is
skipped for every candidate, and said so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from leanbench.errors import ConfigError, ModelError

METHOD = ("generate_greedy timed with perf_counter at the call, every step and the return; prefill = a "
          "1-token generation; decode = steps 1..N-1; median over interleaved rounds, distribution-free CI")
MEMORY_TORCH = ("weights + peak of torch's CPU allocator during one generation at the longest context (KV cache "
                "included); kv_cache_bytes: the model's own count")
MEMORY_OTHER = "serialized size + the resident set's growth during one generation at the longest context"
MEMORY_OTHER_KV = ("serialized size + the KV cache the generation needs (kv_cache_bytes, allocated with the "
                   "runtime's context) + the resident set's growth during one generation at the longest context, "
                   "after an untimed one")
DECODE_WARMUP_TOKENS = 4


def generates(model: Any) -> bool:
    """Whether a model has the generation interface the serving protocol times."""
    return callable(getattr(model, "generate_greedy", None))


# --------------------------------------------------------------------------- prompts
def _texts(X: np.ndarray) -> list[str]:
    """One text per example: a multiple-choice example's context and first choice, else the text."""
    return [x[0] + " " + x[1][0] if isinstance(x, tuple) else str(x) for x in X]


def _encode(model: Any, texts: list[str]) -> list[list[int]]:
    if callable(getattr(model, "encode", None)):
        return [list(t) for t in model.encode(texts)]
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        raise ModelError(f"{type(model).__name__}: no tokenizer to build serving prompts from")
    return [list(t) for t in tok(texts)["input_ids"]]


def make_prompts(model: Any, X: np.ndarray, length: int, batch: int, seed: int = 0) -> list[list[int]]:
    """`batch` prompts of exactly `length` tokens: rows of X in a seeded order, tokenized by the model's own
    tokenizer, each repeated or cut to `length` tokens."""
    if len(X) == 0:
        raise ConfigError(["measure.serving: the evaluated split has no examples to build prompts from"], "measure")
    order = np.random.default_rng(seed).permutation(len(X))
    rows = [order[i % len(X)] for i in range(batch)]
    out = []
    for toks in _encode(model, _texts([X[r] for r in rows])):
        toks = toks or [0]
        out.append((toks * (length // len(toks) + 1))[:length])
    return out


def max_context(model: Any) -> int | None:
    value = getattr(model, "max_length", None)
    return int(value) if isinstance(value, (int, np.integer)) and value > 0 else None


# --------------------------------------------------------------------------- one timed call
def timed_generation(model: Any, prompts: list[list[int]], new_tokens: int) -> dict[str, Any]:
    """One `generate_greedy` call, timed: ttft_ms, decode_ms (step 0 to the last step), total_ms, steps and
    the tokens generated (all, and after each sequence's first)."""
    stamps: list[int] = []
    t0 = time.perf_counter_ns()
    out = model.generate_greedy(prompts, new_tokens, None, lambda i: stamps.append(time.perf_counter_ns()))
    end = time.perf_counter_ns()
    if not stamps:
        raise ModelError(f"{type(model).__name__}.generate_greedy never called on_step")
    produced = sum(len(o) for o in out)
    return {"ttft_ms": (stamps[0] - t0) / 1e6, "decode_ms": (stamps[-1] - stamps[0]) / 1e6,
            "total_ms": (end - t0) / 1e6, "steps": len(stamps), "tokens": produced,
            "decode_tokens": sum(max(len(o) - 1, 0) for o in out)}


# --------------------------------------------------------------------------- the protocol
def _settings(models: Mapping[str, Any], cfg: Any) -> tuple[list[int], list[str]]:
    """The prompt lengths every model's context holds with `new_tokens` more, and a note per one skipped."""
    limits = [c for c in (max_context(m) for m in models.values()) if c is not None]
    limit = min(limits) if limits else None
    keep = [L for L in cfg.prompt_lengths if limit is None or L + cfg.new_tokens <= limit]
    notes = [f"prompt length {L} skipped: {L} + {cfg.new_tokens} new tokens exceed the context of {limit} tokens"
             for L in cfg.prompt_lengths if L not in keep]
    if not keep:
        raise ConfigError([f"measure.serving.prompt_lengths: none of {list(cfg.prompt_lengths)} fits the models' "
                           f"context of {limit} tokens with new_tokens {cfg.new_tokens}"], "measure")
    return keep, notes


def _one_round(model: Any, prompts: dict[tuple[int, int], list[list[int]]], lengths: list[int],
               batches: list[int], new_tokens: int) -> dict[str, float]:
    """Every setting once: prefill at each length and batch, decode at the first length and each batch."""
    out: dict[str, float] = {}
    for b in batches:
        for L in lengths:
            r = timed_generation(model, prompts[(L, b)], 1)
            out[f"prefill/{b}/{L}/ttft_ms"] = r["ttft_ms"]
            out[f"prefill/{b}/{L}/tok_per_s"] = b * L / (r["ttft_ms"] / 1e3)
        r = timed_generation(model, prompts[(lengths[0], b)], new_tokens)
        if r["tokens"] != b * new_tokens or r["steps"] != new_tokens:
            raise ModelError(f"{type(model).__name__}.generate_greedy gave {r['tokens']} tokens in {r['steps']} "
                             f"steps; {b * new_tokens} in {new_tokens} were asked (no stop tokens)")
        out[f"decode/{b}/ttft_ms"] = r["ttft_ms"]
        out[f"decode/{b}/total_ms"] = r["total_ms"]
        out[f"decode/{b}/tpot_ms"] = r["decode_ms"] / (r["steps"] - 1)
        out[f"decode/{b}/tok_per_s"] = r["decode_tokens"] / (r["decode_ms"] / 1e3)
        out[f"decode/{b}/tokens"] = r["tokens"]
        out[f"decode/{b}/decode_tokens"] = r["decode_tokens"]
    return out


def figure(values: list[float], confidence: float) -> dict[str, Any]:
    """Median over rounds with the distribution-free CI of the median, and the per-round values."""
    from leanbench.measure.percentiles import percentile_with_ci

    ci = percentile_with_ci(np.asarray(values, dtype=np.float64), 0.5, confidence)
    return {"value": float(np.median(values)), "ci_low": ci["ci_low"], "ci_high": ci["ci_high"],
            "rounds": [float(v) for v in values]}


def _nest(flat: dict[str, list[float]], confidence: float) -> dict[str, Any]:
    """{"prefill/1/128/ttft_ms": [...]} -> {"1": {"prefill": {"128": {"ttft_ms": figure}}, "decode": {...}}}."""
    out: dict[str, Any] = {}
    for key, values in flat.items():
        phase, b, *rest = key.split("/")
        node = out.setdefault(b, {}).setdefault(phase, {})
        for part in rest[:-1]:
            node = node.setdefault(part, {})
        counted = rest[-1] in ("tokens", "decode_tokens")
        node[rest[-1]] = int(values[0]) if counted else figure(values, confidence)
    return out


def measure_serving(models: Mapping[str, Any], X: np.ndarray, cfg: Any, *, threads: int = 1, seed: int = 0,
                    confidence: float = 0.95, sizes: Mapping[str, int] | None = None,
                    on_round: Callable[[int, int], None] | None = None) -> dict[str, dict[str, Any]]:
    """The serving figures of every generating model of `models`, measured together (module docstring).
    `cfg` is a ``ServingConfig``; `sizes` (serialized bytes) stand in for the weights of a model without a
    torch module; `on_round(done, total)` hears of the warm-up (0) and of every round."""
    from leanbench.measure.interleaved import balanced_orders
    from leanbench.measure.latency import gc_paused, model_threads

    names = [n for n in models if generates(models[n])]
    if not names:
        return {}
    gens = {n: models[n] for n in names}
    lengths, notes = _settings(gens, cfg)
    batches = list(cfg.batches)
    prompts = {n: {(L, b): make_prompts(gens[n], X, L, b, seed) for L in lengths for b in batches} for n in names}
    for n in names:  # warm-up, each model once, before any timed call
        with model_threads(gens[n], threads):
            for _ in range(cfg.warmup):
                for b in batches:
                    for L in lengths:
                        gens[n].generate_greedy(prompts[n][(L, b)], 1)
                    gens[n].generate_greedy(prompts[n][(lengths[0], b)], min(DECODE_WARMUP_TOKENS, cfg.new_tokens))
    if on_round is not None:
        on_round(0, cfg.rounds)
    flat: dict[str, dict[str, list[float]]] = {n: {} for n in names}
    used: dict[str, int] = {}
    rng = np.random.default_rng([seed, 28])
    with gc_paused():
        for r, order in enumerate(balanced_orders(names, cfg.rounds, rng)):
            for n in order:
                with model_threads(gens[n], threads) as used[n]:
                    for key, v in _one_round(gens[n], prompts[n], lengths, batches, cfg.new_tokens).items():
                        flat[n].setdefault(key, []).append(v)
            if on_round is not None:
                on_round(r + 1, cfg.rounds)
    out = {}
    for n in names:
        with model_threads(gens[n], threads):
            memory = {str(b): generation_memory(gens[n], prompts[n][(lengths[-1], b)], cfg.new_tokens,
                                                (sizes or {}).get(n)) for b in batches}
        by_batch = _nest(flat[n], confidence)
        for b in batches:
            by_batch[str(b)]["memory"] = memory[str(b)]
        out[n] = {"batches": by_batch, "threads": used[n], "method": METHOD, "notes": notes,
                  "settings": {"prompt_lengths": lengths, "decode_prompt": lengths[0], "new_tokens": cfg.new_tokens,
                               "batches": batches, "rounds": cfg.rounds, "warmup": cfg.warmup,
                               "confidence": confidence, "memory_context": lengths[-1] + cfg.new_tokens}}
    return out


# --------------------------------------------------------------------------- memory
def kv_cache_bytes(model: Any, context: int, batch: int) -> int | None:
    """The model's own count of its KV cache (``ModelAdapter.kv_cache_bytes``), None when it gives none."""
    count = getattr(model, "kv_cache_bytes", None)
    value = count(context, batch) if callable(count) else None
    return None if value is None else int(value)


def generation_memory(model: Any, prompts: list[list[int]], new_tokens: int,
                      size_bytes: int | None = None) -> dict[str, Any]:
    """Peak memory of one generation of `new_tokens` tokens from `prompts` (module docstring)."""
    from leanbench.measure.memory import _profiled_peak, rss_peak_delta, weights_bytes

    def call(p: list[list[int]]) -> Any:
        return model.generate_greedy(p, new_tokens)

    context = len(prompts[0]) + new_tokens
    kv = kv_cache_bytes(model, context, len(prompts))
    module = model.torch_module() if callable(getattr(model, "torch_module", None)) else None
    if module is None and kv is not None:
        call(prompts)  # the runtime's cache for this shape exists before the measured call (module docstring)
    from leanbench.models.device import GPU_MEMORY_METHOD, gpu_peak_bytes, model_device

    if module is not None and model_device(model) == "cuda":  # the GPU allocator's peak, KV cache included
        weights = weights_bytes(module)
        return {"peak_bytes": weights + gpu_peak_bytes(call, prompts), "weights_bytes": weights,
                "kv_cache_bytes": kv, "rss_peak_delta_bytes": None, "batch": len(prompts), "context": context,
                "device": "cuda", "method": f"GPU: weights + {GPU_MEMORY_METHOD} (KV cache included)"}
    rss = rss_peak_delta(call, prompts)
    if module is None:
        peak = None if size_bytes is None else int(size_bytes) + int(kv or 0) + int(rss or 0)
        return {"peak_bytes": peak, "weights_bytes": size_bytes, "kv_cache_bytes": kv, "rss_peak_delta_bytes": rss,
                "batch": len(prompts), "context": context, "method": MEMORY_OTHER if kv is None else MEMORY_OTHER_KV}
    extra = _profiled_peak(call, prompts)
    weights = weights_bytes(module)
    return {"peak_bytes": None if extra is None else weights + extra, "weights_bytes": weights,
            "kv_cache_bytes": kv, "rss_peak_delta_bytes": rss,
            "batch": len(prompts), "context": context, "method": MEMORY_TORCH}
