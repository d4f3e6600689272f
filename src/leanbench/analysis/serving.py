"""LLM serving figures of the results: each candidate's `serving` per profile (from its measure cell,
`measure/serving.py`) with its speed-ups over the reference and over its runtime control, paired by round.

Every generating candidate is timed in the same interleaved rounds, so the speed-up of C over X at a batch
pairs the per-round times exactly as `analysis/speed.py` does for latency: decode from the time per output
token, prefill at each prompt length from the time to first token (``stats.speedup.paired_speedup``: > 1 means
C is faster, "faster" only beyond ``measure.min_speedup``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from leanbench.analysis.common import Loaded
    from leanbench.analysis.results import CandidateResult


def stored_serving(loaded: Loaded, name: str) -> dict[str, dict[str, Any]]:
    """Profile -> the serving figures the candidate's measure cell holds (none for a model that does not
    generate, or measured before leanbench measured them)."""
    m = loaded.measures.get(name)
    out = {}
    for profile, prof in ((m.result.profiles or {}) if m is not None else {}).items():
        s = prof.extra.get("serving") if prof is not None else None
        if isinstance(s, dict) and s.get("batches"):
            out[str(profile)] = s
    return out


def _times(fig: Any) -> list[float] | None:
    rounds = fig.get("rounds") if isinstance(fig, dict) else None
    return [float(v) for v in rounds] if rounds and all(v > 0 for v in rounds) else None


def serving_speedups(mine: dict[str, Any], theirs: dict[str, Any], confidence: float,
                     min_effect: float) -> dict[str, Any]:
    """Batch -> {"decode": speed-up from TPOT, "prefill": {length: speed-up from TTFT}}, where both hold the
    same setting measured in the same number of rounds."""
    from leanbench.stats.speedup import paired_speedup

    def one(a: Any, b: Any) -> dict[str, Any] | None:
        c, x = _times(a), _times(b)
        if c is None or x is None or len(c) != len(x):
            return None
        return paired_speedup(x, c, confidence=confidence, min_effect=min_effect)

    out: dict[str, Any] = {}
    for b, mb in mine.get("batches", {}).items():
        tb = theirs.get("batches", {}).get(b)
        if tb is None:
            continue
        entry = {"decode": one(mb.get("decode", {}).get("tpot_ms"), tb.get("decode", {}).get("tpot_ms")),
                 "prefill": {L: s for L, fig in mb.get("prefill", {}).items()
                             if (s := one(fig.get("ttft_ms"), tb.get("prefill", {}).get(L, {}).get("ttft_ms")))}}
        out[b] = entry
    return out


def attach_serving(loaded: Loaded, candidates: list[CandidateResult], controls: dict[str, str]) -> None:
    """Sets each generating candidate's `serving`: per profile its figures, `vs_reference` and, with a runtime
    control, `vs_control` (speed-ups only between cells of the same run: the same interleaved rounds)."""
    cfg = loaded.study.measure
    stored = {str(c.name): stored_serving(loaded, str(c.name)) for c in candidates}
    run = {n: (m.run_id if m is not None else None) for n, m in loaded.measures.items()}
    for c in candidates:
        name = str(c.name)
        if not stored[name]:
            continue
        out = {}
        for profile, s in stored[name].items():
            entry = {**s}
            for key, baseline in (("vs_reference", loaded.reference), ("vs_control", controls.get(name))):
                other = stored.get(baseline or "", {}).get(profile)
                if other is not None and run.get(baseline) == run.get(name):
                    entry[key] = {"baseline": baseline,
                                  "batches": serving_speedups(s, other, cfg.confidence, cfg.min_speedup)}
            out[profile] = entry
        c.serving = out
