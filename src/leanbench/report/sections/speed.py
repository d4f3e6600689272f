"""Where a speed-up comes from: beside each candidate's speed-up over the reference, its speed-up over its
`from:` parent and over its runtime control (the same model on the same runtime without the compression),
each with its CI from the same interleaved rounds (`leanbench.analysis.speed`). Shown right below the verdict
table, only for candidates whose parent is not the reference or that have a runtime control."""

from __future__ import annotations

from leanbench.analysis.results import CandidateResult, Speedup, StudyResults
from leanbench.report import _format as f
from leanbench.report.blocks import Block, Heading, Para, Table
from leanbench.report.sections.common import DASH


def _profiles(results: StudyResults) -> list[str]:
    """Profiles with a derived speed-up, the primary one first."""
    seen: dict[str, None] = {}
    primary = f.primary_profile(results)
    if primary:
        seen[primary] = None
    for cand in f.candidates(results):
        for block in (cand.speedup_vs_parent, cand.speedup_vs_control):
            seen.update((str(p), None) for p, s in (block or {}).items() if s is not None)
    return [p for p in seen if any(_shown(results, c, p) for c in f.candidates(results))]


def _shown(results: StudyResults, cand: CandidateResult, profile: str) -> bool:
    """A row adds something beside the verdict table: a runtime control, or a parent other than the reference."""
    return cand.speedup_vs_control_of(profile) is not None or (
        cand.speedup_vs_parent_of(profile) is not None and cand.from_ != results.reference)


def runtime_share(results: StudyResults, cand: CandidateResult, profile: str) -> Speedup | None:
    """The runtime's share of a candidate's speed-up: its control's speed-up over the model the control was
    converted from (the control's parent; its speed-up over the reference when that parent is the reference)."""
    control = results.candidate(cand.runtime_control) if cand.runtime_control else None
    if control is None:
        return None
    return control.speedup_vs_parent_of(profile) or (
        control.speedup_of(profile) if control.from_ == results.reference else None)


def _x(s: Speedup | None) -> str:
    return f.fmt_speedup(s.value) if s is not None else DASH


def speedup_source_blocks(results: StudyResults) -> list[Block]:
    """A small table: speed-up over the reference, over the parent, over the runtime control and the runtime's
    own share, per candidate (and profile, when there are several); a sentence per runtime-changed candidate."""
    profiles = _profiles(results)
    if not profiles:
        return []
    several = len(profiles) > 1
    controls = any(c.runtime_control for c in f.candidates(results))
    conf = f.confidence_pct(results)
    header = ["candidate", *(["profile"] if several else []), f"vs reference ({conf}% CI)", "parent", "vs parent",
              *(["runtime control", "runtime: control vs its parent", "vs runtime control"] if controls else [])]
    rows, sentences = [], []
    for cand in f.candidates(results):
        for profile in profiles:
            if not _shown(results, cand, profile):
                continue
            ref, parent = cand.speedup_of(profile), cand.speedup_vs_parent_of(profile)
            control, runtime = cand.speedup_vs_control_of(profile), runtime_share(results, cand, profile)
            row = [str(cand.name), *([profile] if several else []), f.fmt_speedup_ci(ref),
                   str(cand.from_ or DASH), f.fmt_speedup_ci(parent) if parent is not None else DASH]
            if controls:
                row += [str(cand.runtime_control or DASH), f.fmt_speedup_ci(runtime) if runtime is not None else DASH,
                        f.fmt_speedup_ci(control) if control is not None else DASH]
            rows.append(row)
            if control is not None and ref is not None and profile == profiles[0]:
                ctl = results.candidate(cand.runtime_control)
                was = f" vs {ctl.from_}" if ctl is not None and ctl.from_ else ""
                sentences.append(f"{cand.name}: {_x(ref)} vs the reference, of which {_x(runtime)} is the runtime "
                                 f"({cand.runtime_control}{was}) and {_x(control)} the rest of its build (vs "
                                 f"{cand.runtime_control}).")
    if not rows:
        return []
    text = (f"Profile '{profiles[0]}'. " if not several else "") + (
        "Every candidate is timed in the same interleaved rounds, so a speed-up over the parent or over the "
        "runtime control (the same model on the same runtime without the compression, e.g. ONNX fp32 beside "
        "ONNX int8) pairs rounds exactly as the one over the reference does, with its own CI; the runtime's "
        "share is the control's speed-up over the model it was converted from. The shares multiply only "
        "approximately (each is a median over rounds).")
    names = tuple(header.index(h) for h in ("parent", "runtime control") if h in header)
    return [Heading("Where the speed-up comes from", 3), Table(header, rows, text_cols=names),
            *([Para(" ".join(sentences))] if sentences else []), Para(text, small=True)]
