"""LLM serving per deployment profile (`analysis/serving.py`): per candidate and batch, prefill tokens/s at each
prompt length, time to first token, decode tokens/s, time per output token (each median [CI] over interleaved
rounds), peak memory with the KV cache at the longest context, and the decode speed-up over the reference and
over the runtime control."""

from __future__ import annotations

from typing import Any

from leanbench.analysis.results import Speedup, StudyResults
from leanbench.report import _format as f
from leanbench.report.blocks import Block, Heading, Para, Table
from leanbench.report.sections.common import DASH


def _fig(fig: Any, fmt: Any) -> str:
    """"41.2 [39.8, 43.0]" from {value, ci_low, ci_high}."""
    if not isinstance(fig, dict) or f.num(fig.get("value")) is None:
        return DASH
    lo, hi = fig.get("ci_low"), fig.get("ci_high")
    bounds = f" [{'?' if lo is None else fmt(lo)}, {'?' if hi is None else fmt(hi)}]"
    return fmt(fig["value"]) + bounds


def _rate(x: float) -> str:
    return f"{x:.3g}" if x < 1000 else f"{x:,.0f}"


def _ms(x: float) -> str:
    return f"{x:.3g}"


def _speedup(vs: Any, batch: str) -> str:
    s = ((vs or {}).get("batches", {}).get(batch) or {}).get("decode") if isinstance(vs, dict) else None
    return f.fmt_speedup_ci(Speedup.from_dict(s)) if s else DASH


def _profiles(results: StudyResults) -> list[str]:
    seen: dict[str, None] = {}
    for c in f.candidates(results):
        seen.update((str(p), None) for p in (c.serving or {}))
    return list(seen)


def _table(results: StudyResults, profile: str) -> tuple[Table, dict[str, Any]] | None:
    rows, settings = [], {}
    conf = f.confidence_pct(results)
    controls = any(isinstance((c.serving or {}).get(profile), dict) and c.serving[profile].get("vs_control")
                   for c in f.candidates(results))
    lengths: list[str] = []
    for c in f.candidates(results):
        s = (c.serving or {}).get(profile)
        if not isinstance(s, dict):
            continue
        settings = s.get("settings") or settings
        lengths = [str(L) for L in (settings.get("prompt_lengths") or [])]
        for b, figs in sorted(s.get("batches", {}).items(), key=lambda kv: int(kv[0])):
            pre, dec, mem = figs.get("prefill", {}), figs.get("decode", {}), figs.get("memory") or {}
            kv = mem.get("kv_cache_bytes")
            row = [str(c.name), b, *(_fig(pre.get(L, {}).get("tok_per_s"), _rate) for L in lengths),
                   _fig(pre.get(lengths[0], {}).get("ttft_ms") if lengths else None, _ms),
                   _fig(dec.get("tok_per_s"), _rate), _fig(dec.get("tpot_ms"), _ms),
                   f.fmt_bytes(mem.get("peak_bytes")) + (f" (KV {f.fmt_bytes(kv)})" if kv else ""),
                   _speedup(s.get("vs_reference"), b)]
            if controls:
                vs = s.get("vs_control")
                row += [f"{_speedup(vs, b)} vs {vs['baseline']}" if vs else DASH]
            rows.append(row)
    if not rows:
        return None
    first = lengths[0] if lengths else "?"
    header = ["candidate", "batch", *(f"prefill tok/s @{L} ({conf}% CI)" for L in lengths), f"TTFT ms @{first}",
              "decode tok/s", "TPOT ms", f"peak memory @{settings.get('memory_context', '?')} tokens",
              "decode vs reference", *(["decode vs runtime control"] if controls else [])]
    return Table(header, rows, text_cols=(0,), numeric_from=1), settings


def llm_serving_blocks(results: StudyResults) -> list[Block]:
    """One table per profile of the candidates that generate; [] when none has serving figures."""
    profiles = _profiles(results)
    if not profiles:
        return []
    out: list[Block] = [Heading("LLM serving: prefill and decode")]
    for profile in profiles:
        made = _table(results, profile)
        if made is None:
            continue
        table, s = made
        out += [Heading(f"Profile '{profile}'", 3), table,
                Para(f"Median [CI] over {s.get('rounds', '?')} interleaved rounds. Prefill: a 1-token generation "
                     f"(tok/s = batch x prompt tokens / TTFT). Decode: {s.get('new_tokens', '?')} new tokens from "
                     f"a {s.get('decode_prompt', '?')}-token prompt, steps after the first (TPOT; tok/s = tokens "
                     "after each sequence's first / their time). Speed-ups pair rounds (time per output token). "
                     "Peak memory: one generation at the longest context (PyTorch: weights + allocator peak; "
                     "other runtimes: file + KV cache + resident-set growth; KV: the cache's size as the model "
                     "counts it); a count, no CI.", small=True)]
        notes = {n for c in f.candidates(results) for n in ((c.serving or {}).get(profile) or {}).get("notes", [])}
        if notes:
            out.append(Para("; ".join(sorted(notes)) + ".", small=True))
    return out if len(out) > 1 else []
