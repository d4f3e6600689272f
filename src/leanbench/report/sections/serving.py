"""Serving per deployment profile: latency percentiles with CIs, throughput, energy per query (with its
method), memory cap, SLO markers (✓ meets, ✗ misses, ? uncertain) and a latency plot with the SLO lines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leanbench.analysis.results import CandidateResult, Latency, ProfileResult, ReferenceScore, Slo, StudyResults
from leanbench.report import _format as f
from leanbench.report.blocks import Block, Figure, Heading, Para, Table, slug
from leanbench.report.sections.common import DASH, fmt_joules, fmt_ms_ci, method_note, ph, short_method

PCTS = (50, 90, 99)
SLO_MARK = {True: "✓", False: "✗", None: "?"}


def profile_names(results: StudyResults) -> list[str]:
    """Deployment profiles seen in any candidate's latency or profiles, first-seen order."""
    seen: dict[str, None] = {}
    for cand in f.candidates(results):
        for block in (cand.latency, cand.profiles):
            seen.update((str(k), None) for k, v in (block or {}).items() if v is not None)
    return list(seen)


def slo_mark(slo: Slo | None) -> str:
    """ "✓ p90 ≤ 0.07 ms", "✗ …" or "? …" (the CI straddles the SLO); a dash when no SLO is set."""
    if slo is None or f.num(slo.slo_ms) is None:
        return DASH
    mark = SLO_MARK.get(slo.meets if isinstance(slo.meets, bool) else None)
    return f"{mark} {pct_label(slo.percentile)} ≤ {f.fmt_ms(slo.slo_ms)}"


def pct_label(pct: Any) -> str:
    """ "p90" from 90 or from 0.9 (both spellings occur); "latency" when unknown."""
    value = f.num(pct)
    if value is None:
        return "latency"
    return f"p{value * 100 if 0 < value < 1 else value:g}"


def _normalised(lat: Latency) -> str | None:
    """Reference-machine p50 when the latency carries `normalised_ms` (a number or {p50_ms, ...})."""
    norm = lat.normalised_ms
    if isinstance(norm, Mapping):
        norm = norm.get("p50_ms", norm.get("p50"))
    return None if f.num(norm) is None else f.fmt_ms(norm)


def _latency(cand: CandidateResult, profile: str) -> Latency | None:
    return cand.latency_of(profile)


def _has_normalised(results: StudyResults, profile: str) -> bool:
    return any((lat := _latency(c, profile)) is not None and _normalised(lat) for c in f.candidates(results))


def _profile_table(results: StudyResults, profile: str) -> Table | None:
    norm = _has_normalised(results, profile)
    e2e = any((lat := _latency(c, profile)) is not None and lat.end_to_end for c in f.candidates(results))
    rows, classes = [], []
    for cand in f.candidates(results):
        lat, prof = _latency(cand, profile), cand.profile(profile)
        if (lat is None or not lat.to_dict()) and (prof is None or not prof.to_dict()):
            continue
        lat, prof = lat or Latency(), prof or ProfileResult()
        mark = slo_mark(prof.slo)
        row = [str(cand.name), *(fmt_ms_ci(lat.percentile(p), lat.percentile_ci(p)) for p in PCTS), mark]
        if norm:
            row.append(_normalised(lat) or DASH)
        if e2e:
            row.append(f.fmt_ms(lat.end_to_end.p50_ms if lat.end_to_end is not None else None))
        thr = f.fmt_rate(prof.throughput_per_s)
        ci = prof.throughput_ci
        if thr != DASH and isinstance(ci, (list, tuple)) and len(ci) == 2 and all(f.num(b) is not None for b in ci):
            thr += f" [{f.fmt_count(ci[0])}, {f.fmt_count(ci[1])}]"
        energy = fmt_joules(prof.energy_j_per_query)
        if energy != DASH:
            energy += f" ({short_method(prof.energy_method)})"
        cap = prof.memory_cap_ok
        row += [thr, energy, DASH if cap is None else ("✓ fits" if cap else "✗ exceeds")]
        rows.append(row)
        classes.append([None] * 4 + [_slo_class(mark)] + [None] * (len(row) - 5))
    if not rows:
        return None
    conf = f.confidence_pct(results)
    header = ["candidate", *(f"p{p} ({conf}% CI)" for p in PCTS), "SLO"]
    header += ["p50, reference machine"] if norm else []
    header += ["p50 end to end (with tokenization)"] if e2e else []
    header += ["throughput [CI]", "energy / query", "memory cap"]
    return Table(header, rows, classes=classes, text_cols=(len(header) - 2,))


def _slo_class(mark: str) -> str | None:
    return {"✓": "slo-ok", "✗": "slo-miss", "?": "slo-unsure"}.get(mark[:1])


def serving_blocks(results: StudyResults) -> list[Block]:
    """One table and one latency plot per profile, when latency has CIs or profiles are present."""
    profiles = profile_names(results)
    rich = any(c.profiles for c in f.candidates(results)) or any(
        lat is not None and (lat.has("p50_ci") or lat.has("normalised_ms"))
        for c in f.candidates(results) for lat in (c.latency or {}).values())
    if not profiles or not rich:
        return []
    out: list[Block] = [Heading("Serving by deployment profile")]
    for i, profile in enumerate(profiles):
        table = _profile_table(results, profile)
        if table is None:
            continue
        out.append(Heading(f"Profile '{profile}'{_setting(results, profile)}", 3))
        out.append(table)
        note = method_note(prof.energy_method for c in f.candidates(results)
                           if (prof := c.profile(profile)) is not None)
        if note:
            out.append(Para(f"{note} Energy per query = energy of the throughput runs / queries served.",
                            small=True))
        out.append(Figure(lambda p=profile: latency_profile_figure(results, p), f"lb-latency-{slug(profile, i)}"))
    out.append(Para("SLO: ✓ the percentile's CI is within the SLO, ✗ it is entirely above it, ? the CI straddles "
                    "it (or a bound is missing: too few runs). Latency CIs are for the percentile itself.",
                    small=True))
    score = reference_score_line(results)
    if score:
        out.append(Para(score, small=True))
    return out


def _setting(results: StudyResults, profile: str) -> str:
    """ ": 1 thread(s), batch 1", listing each distinct setting once when candidates differ (auto batch)."""
    seen: dict[str, None] = {}
    for cand in f.candidates(results):
        lat = _latency(cand, profile)
        setting: Latency | ProfileResult | None = lat if lat is not None and lat.to_dict() else cand.profile(profile)
        if setting is not None and (setting.threads is not None or setting.batch is not None):
            threads = f.num(setting.threads)
            t_text = "all cores" if threads == 0 else f.fmt_count(threads)
            seen[f"{t_text} thread(s), batch {f.fmt_count(setting.batch)}"] = None
    return f": {' / '.join(seen)}" if seen else ""


def reference_score_line(results: StudyResults) -> str | None:
    score = results.manifest.reference_score if results.manifest is not None else None
    if isinstance(score, ReferenceScore) and f.num(score.score) is not None:
        method = f" ({score.method})" if score.method else ""
        return (f"Machine score on the reference micro-benchmark: {f.num(score.score):.3g} GFLOP/s{method}; "
                "reference-machine latency = measured latency × machine score / reference score.")
    if f.num(score) is not None:
        return f"Machine score on the reference micro-benchmark: {f.num(score):.3g} GFLOP/s."
    return None


def latency_profile_figure(results: StudyResults | Mapping[str, Any], profile: str) -> Any:
    """p50/p90/p99 per candidate with CI bars (log y), and a dashed line at each SLO of the profile."""
    import plotly.graph_objects as go

    from leanbench.report.plots import _layout

    results = f.as_results(results)
    cands = [(c, lat) for c in f.candidates(results) if (lat := _latency(c, profile)) is not None]
    fig = go.Figure()
    for p, color in zip(PCTS, ("#0969da", "#8250df", "#bf3989"), strict=True):
        xs, ys, up, down = [], [], [], []
        for cand, lat in cands:
            y = f.num(lat.percentile(p))
            if y is None or y <= 0:
                continue
            ci = lat.percentile_ci(p) if isinstance(lat.percentile_ci(p), (list, tuple)) else [None, None]
            lo, hi = (f.num(b) for b in (list(ci) + [None, None])[:2])
            xs.append(ph(cand.name))
            ys.append(y)
            up.append(max(0.0, hi - y) if hi is not None else 0.0)
            down.append(max(0.0, y - lo) if lo is not None else 0.0)
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name=f"p{p}", marker={"color": color, "size": 9},
                                     error_y={"type": "data", "symmetric": False, "array": up,
                                              "arrayminus": down, "color": color}))
    slos = dict.fromkeys((f.num(slo.slo_ms), f.num(slo.percentile)) for c in f.candidates(results)
                         if (slo := _slo(c, profile)) is not None)
    for slo in slos:
        if slo[0] is not None:
            pct = f"{pct_label(slo[1])} " if slo[1] is not None else ""
            fig.add_hline(y=slo[0], line={"color": f.VERDICT_COLORS["inferior"], "dash": "dash", "width": 1.5},
                          annotation_text=f"SLO {pct}≤ {f.fmt_ms(slo[0])}", annotation_position="top left")
    fig.update_layout(**_layout("", f"latency, ms (profile '{ph(profile)}', log scale)"))
    fig.update_layout(legend_title_text="percentile", height=380)
    fig.update_yaxes(type="log")
    return fig


def _slo(cand: CandidateResult, profile: str) -> Slo | None:
    prof = cand.profile(profile)
    return prof.slo if prof is not None else None
