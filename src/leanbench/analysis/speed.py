"""Speed-ups between candidates: over a candidate's `from:` parent and over its runtime control, derived from
the per-round medians the measure cells store (`latency.<profile>.round_medians`).

Every candidate of a study is timed in the same interleaved rounds (`runner/measure_cell.py`), so the
speed-up of a candidate C over any other candidate X pairs rounds exactly as the one over the reference does:
with c_i, x_i the per-round medians per example (a call's median over its batch),

    speed-up(C over X) = exp(median_i log(x_i / c_i)),

and log(x_i / c_i) = log(r_i / c_i) - log(r_i / x_i): per round, the ratio of the two speed-ups over the
reference. Its CI is the same distribution-free CI of a median (`stats.speedup.paired_speedup`), and
"faster" is claimed only beyond `measure.min_speedup`, as for the reference.

**Runtime control.** A candidate whose steps change the model family to another runtime (a step's
`Handler.produces`: `quantize: {method: onnxruntime-dynamic-int8}` turns an `hf` model into an `onnx` one)
owes part of its speed-up to the runtime, not to the compression. Its control is the same model on the same
runtime without the compression: a candidate built from the model the runtime change starts from (the
candidate's nearest ancestor on another family) whose steps do nothing but change the runtime (each changes
the family and none lowers the precision: `quantize: {method: onnx-fp32}`). Then

    speed-up over the reference ~ runtime (control over that model) x compression (candidate over control).

The control is found for a candidate that changes the runtime itself (`teacher -> teacher-ort-int8`, control
the sibling `teacher-ort`) and for one built on a converted model (`teacher -> teacher-ort ->
teacher-ort-int8`, control its parent `teacher-ort`). A candidate whose own steps only change the runtime is a
control itself; its speed-up over its parent is the runtime's share.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np

from leanbench.analysis.results import CandidateResult, Speedup

if TYPE_CHECKING:
    from leanbench.analysis.common import Loaded
    from leanbench.analysis.stored import MeasureCell
    from leanbench.study import Study

_BITS = re.compile(r"(?:int|fp|bf)(\d+)")


def per_example_medians(measure: MeasureCell | None, profile: str) -> np.ndarray | None:
    """The per-round medians of one profile, per example (ms per call / batch), or None when the measure cell
    did not store them (measured before they were stored, or under the `blocks` protocol's old cells)."""
    lat = (measure.result.latency or {}).get(profile) if measure is not None else None
    if lat is None or not lat.round_medians or not lat.batch:
        return None
    medians = np.asarray(lat.round_medians, dtype=np.float64)
    if medians.ndim != 1 or not np.all(np.isfinite(medians)) or np.any(medians <= 0):
        return None
    return medians / float(lat.batch)


def speedup_between(loaded: Loaded, name: str, baseline: str, profile: str) -> Speedup | None:
    """`name` over `baseline` under `profile` (> 1: `name` is faster), paired by round; None unless both were
    measured in the same run (the same interleaved rounds) with their round medians stored."""
    from leanbench.stats.speedup import disturbed_rounds, paired_speedup

    mine, theirs = loaded.measures.get(name), loaded.measures.get(baseline)
    if mine is None or theirs is None or mine.run_id != theirs.run_id:
        return None
    c, x = per_example_medians(mine, profile), per_example_medians(theirs, profile)
    if c is None or x is None or c.shape != x.shape:
        return None
    cfg = loaded.study.measure
    s = paired_speedup(x, c, confidence=cfg.confidence, min_effect=cfg.min_speedup)
    either = disturbed_rounds(c) | disturbed_rounds(x)
    return Speedup.from_dict({**s, "disturbed_rounds": int(either.sum()), "baseline": baseline})


def lowers_precision(config: Any) -> bool:
    """Whether a step's `method` names a precision below 32 bits (int8, int4, fp16, bf16), unless its config
    says itself (`lowers_precision()` not None: a GGUF `type`, where f16 is the llama.cpp runtime control)."""
    own = getattr(config, "lowers_precision", None)
    if callable(own) and (said := own()) is not None:
        return bool(said)
    method = getattr(config, "method", None)
    found = _BITS.search(method) if isinstance(method, str) else None
    return found is not None and int(found.group(1)) < 32


def runtime_only(study: Study, name: str, path: list[tuple[str | None, str | None]]) -> bool:
    """Whether candidate `name` is its parent on another runtime and nothing else: built `from:` a parent, and
    every step changes the family without lowering the precision."""
    cand = study.candidate(name)
    if cand.from_ is None or not cand.steps:
        return False
    families = [family for _, family in path]
    return all(None not in (families[j], families[j + 1]) and families[j] != families[j + 1]
               and not lowers_precision(step.config) for j, step in enumerate(cand.steps))


def runtime_controls(study: Study) -> dict[str, str]:
    """Candidate -> its runtime control (module docstring), for the candidates of the study that have one."""
    try:
        paths = study.family_paths()
    except Exception:  # a plugin missing since the study ran: no family to compare
        return {}
    final = {name: path[-1][1] for name, path in paths.items()}
    only = {name: runtime_only(study, name, path) for name, path in paths.items()}
    out = {}
    for cand in study.candidates:
        family = final.get(cand.name)
        if family is None or cand.from_ is None or only.get(cand.name):
            continue
        origin, node = None, cand
        while node.from_ is not None:  # the nearest ancestor on another family: where the runtime changed
            parent = study.candidate(node.from_)
            if final.get(parent.name) != family:
                origin = parent.name
                break
            node = parent
        if origin is None:
            continue
        control = next((c.name for c in study.candidates if c.name != cand.name and c.from_ == origin
                        and only.get(c.name) and final.get(c.name) == family), None)
        if control is not None:
            out[cand.name] = control
    return out


def derived_speedups(loaded: Loaded, out: CandidateResult, controls: dict[str, str]) -> None:
    """Sets `speedup_vs_parent`, `runtime_control` and `speedup_vs_control` of one candidate's results, per
    profile of its latency (where the round medians allow)."""
    name = str(out.name)
    profiles = list(out.latency or {})
    control = controls.get(name)
    if control is not None:
        out.runtime_control = control
    for key, baseline in (("speedup_vs_parent", out.from_), ("speedup_vs_control", control)):
        if baseline is None:
            continue
        found = {p: s for p in profiles if (s := speedup_between(loaded, name, baseline, p)) is not None}
        if found:
            setattr(out, key, found)


def missing_round_medians(loaded: Loaded, candidates: list[CandidateResult], controls: dict[str, str]) -> list[str]:
    """One note naming the candidates whose speed-up over their parent (other than the reference) or runtime
    control cannot be derived because a measure cell holds no per-round medians (measured before they were
    stored)."""
    found = []
    for c in candidates:  # a parent that is the reference adds nothing to the speed-up over the reference
        for baseline in (c.from_ if c.from_ != loaded.reference else None, controls.get(str(c.name))):
            if baseline is None or loaded.measures.get(str(c.name)) is None or loaded.measures.get(baseline) is None:
                continue
            lat = loaded.measures[str(c.name)].result.latency or {}
            if any(per_example_medians(m, p) is None
                   for p in lat for m in (loaded.measures[str(c.name)], loaded.measures[baseline])):
                found.append(f"'{c.name}' over '{baseline}'")
    if not found:
        return []
    return [f"No speed-up over the parent or the runtime control for {', '.join(dict.fromkeys(found))}: their "
            "measure cells hold no per-round medians (measured before leanbench stored them); measure again to "
            "derive them."]
