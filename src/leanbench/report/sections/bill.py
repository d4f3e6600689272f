"""The full bill: build cost per candidate stacked by phase, TCO and break-even against the reference,
the cost of a hyper-parameter search, and where the study's time went (ledger with its reconciliation).

Break-even lines (issue 6): cumulative cost after q queries = build_usd + serve_usd_per_million / 1e6 × q.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from leanbench.analysis.results import (
    BreakEven,
    BuildLedger,
    BuildPhase,
    CandidateCost,
    CandidateResult,
    Interval,
    Reconcile,
    Serving,
    StudyResults,
)
from leanbench.report import _format as f
from leanbench.report.blocks import Block, Figure, Heading, Para, Table
from leanbench.report.sections.common import (
    DASH,
    fmt_co2,
    fmt_interval,
    fmt_kwh,
    fmt_queries,
    fmt_usd,
    method_note,
    ph,
    short_method,
)

Q_RANGE = (1e3, 1e10)
N_POINTS = 121


def _cost(cand: CandidateResult) -> CandidateCost:
    return f.cost_of(cand)


def _ledger(cand: CandidateResult) -> BuildLedger:
    return _cost(cand).ledger or BuildLedger()


def _serving(cand: CandidateResult) -> Serving:
    return _cost(cand).serving or Serving()


def _break_even(cand: CandidateResult) -> tuple[BreakEven | None, float | None]:
    """The break-even vs the reference and its query count (None where there is none)."""
    group = _cost(cand).break_even
    if group is None:
        return None, None
    be = group.break_even
    q = be.queries if be is not None else None
    return be, group.break_even_queries if q is None else q


def _phases(cand: CandidateResult) -> dict[str, BuildPhase | None]:
    return _ledger(cand).build_by_phase or {}


def _has_bill(results: StudyResults) -> bool:
    def known(c: CandidateResult) -> bool:
        led, srv = _ledger(c), _serving(c)
        be = _cost(c).break_even
        return any(v is not None for v in (led.build_usd, led.build_kwh, led.build_by_phase,
                                           srv.serve_usd_per_million, srv.tco_usd,
                                           be.break_even if be is not None else None))

    return any(known(c) for c in f.candidates(results))


def bill_blocks(results: StudyResults) -> list[Block]:
    out: list[Block] = []
    if _has_bill(results):
        out.append(Heading("Cost of building and serving"))
        out += _phase_blocks(results)
        out += _tco_blocks(results)
        out += _sweep_blocks(results)
    out += ledger_blocks(results)
    return out


# ---------------------------------------------------------------------------------------------- phases


def phase_unit(results: StudyResults) -> str:
    """ "usd" when every phase entry carries money, else "seconds"."""
    entries = [p for c in f.candidates(results) for p in _phases(c).values() if p is not None]
    return "usd" if entries and all(f.num(p.usd) is not None for p in entries) else "seconds"


def _phase_blocks(results: StudyResults) -> list[Block]:
    rows = []
    for cand in f.candidates(results):
        if cand.cost is None or not cand.cost.to_dict():
            continue
        cost, led = _cost(cand), _ledger(cand)
        energy = fmt_kwh(led.build_kwh)
        if energy != DASH:
            energy += f" ({short_method(led.energy_method)})"
        phases = ", ".join(str(p) for p in _phases(cand)) or DASH
        rows.append([str(cand.name), f.fmt_seconds(cost.build_seconds),
                     f.fmt_seconds(cost.build_seconds_own), f.fmt_count(cost.build_flops), energy,
                     fmt_usd(led.build_usd), fmt_co2(led.build_co2_kg), phases])
    out: list[Block] = []
    if any(_phases(c) for c in f.candidates(results)):
        out.append(Figure(lambda: phase_figure(results), "lb-cost-phases"))
    out.append(Table(["candidate", "build time", "own steps", "build FLOPs", "build energy (method)", "build cost",
                      "build CO2", "phases"], rows, text_cols=(4, 7)))
    text = ("Build cost includes whatever a candidate was derived from (its from: chain and teacher), counted once "
            "per study; every energy figure says whether it was measured or estimated.")
    note = method_note(_ledger(c).energy_method for c in f.candidates(results))
    out.append(Para(f"{text} {note}" if note else text, small=True))
    return out


def phase_figure(results: StudyResults | Mapping[str, Any]) -> Any:
    """Stacked bars: build cost by phase per candidate, in USD when every phase has it, else seconds."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    from leanbench.report.plots import _layout

    results = f.as_results(results)
    unit = phase_unit(results)
    cands = [c for c in f.candidates(results) if _phases(c)]
    phases: dict[str, None] = {}
    for c in cands:
        phases.update((str(p), None) for p in _phases(c))
    fig = go.Figure()
    for phase in phases:
        ys = [f.num(_phase_amount(_phases(c).get(phase), unit)) for c in cands]
        fig.add_trace(go.Bar(x=[ph(c.name) for c in cands], y=[y or 0.0 for y in ys], name=ph(phase),
                             hoverinfo="text",
                             hovertext=[f"{ph(c.name)} · {ph(phase)}: "
                                        f"{fmt_usd(y) if unit == 'usd' else f.fmt_seconds(y)}"
                                        for c, y in zip(cands, ys, strict=True)]))
    fig.update_layout(**_layout("", "build cost, USD" if unit == "usd" else "build time, s"))
    fig.update_layout(barmode="stack", legend_title_text="phase", height=400,
                      colorway=qualitative.Plotly + qualitative.Pastel)  # 21 distinct colours
    return fig


def _phase_amount(p: BuildPhase | None, unit: str) -> float | None:
    if p is None:
        return None
    return p.usd if unit == "usd" else p.seconds


# ---------------------------------------------------------------------------------------------- TCO


def _break_even_text(cand: CandidateResult) -> str:
    be, q = _break_even(cand)
    status = be.status if be is not None else None
    if status == "after":
        return f"after {fmt_queries(q)} queries"
    if status == "until":
        return f"cheaper until {fmt_queries(q)} queries"
    if status == "immediately":
        return "cheaper from the first query"
    if status == "never":
        return "never cheaper"
    if status == "equal":
        return "same cost"
    return DASH if f.num(q) is None else f"{fmt_queries(q)} queries"


def tco_sentence(results: StudyResults) -> str | None:
    tco = results.tco
    if tco is None:
        return None
    traffic, prices = tco.traffic, tco.prices
    qpd = f.num(traffic.queries_per_day) if traffic is not None else None
    days = f.num(traffic.horizon_days) if traffic is not None else None
    text = f"TCO on profile '{tco.profile or DASH}'"
    if qpd is not None and days is not None:
        text += f": {qpd:,.0f} queries/day over {days:g} days ({fmt_queries(qpd * days)} queries)"
    bits = []
    if prices is not None:
        co2 = f.num(prices.co2_kg_per_kwh)
        bits = [f"{fmt_usd(prices.usd_per_hour)}/hour of hardware" if prices.usd_per_hour is not None else None,
                f"{fmt_usd(prices.usd_per_kwh)}/kWh" if prices.usd_per_kwh is not None else None,
                f"{co2:g} kg CO2/kWh" if co2 is not None else None]
    bits = [b for b in bits if b]
    text += f"; prices: {', '.join(bits)}" if bits else ""
    return text + (f". Method: {tco.method}." if tco.method else ".")


def _tco_blocks(results: StudyResults) -> list[Block]:
    rows, classes = [], []
    ref = results.reference
    for cand in f.candidates(results):
        led, srv = _ledger(cand), _serving(cand)
        be, _ = _break_even(cand)
        if srv.serve_usd_per_million is None and srv.tco_usd is None and be is None:
            continue
        is_ref = cand.name == ref
        slo = _slo_flags(cand)
        rows.append([str(cand.name), fmt_usd(led.build_usd),
                     fmt_interval(srv.serve_usd_per_million, fmt_usd),
                     fmt_interval(srv.tco_usd, fmt_usd),
                     "reference" if is_ref else _break_even_text(cand), slo])
        classes.append([None] * 5 + ["slo-miss" if "✗" in slo else None])
    if not rows:
        return []
    out: list[Block] = [Heading("Total cost of ownership", 3),
                        Table(["candidate", "build", "serving per million queries [interval]", "TCO [interval]",
                               "break-even vs reference", "latency SLO"], rows, classes=classes)]
    sentence = tco_sentence(results)
    if sentence:
        out.append(Para(sentence, small=True))
    if _break_even_lines(results):
        out.append(Figure(lambda: break_even_figure(results), "lb-break-even"))
        out.append(Para("Cumulative cost = build cost + serving cost per query × queries served; a candidate "
                        "pays back its extra build cost where its line crosses the reference's.", small=True))
    return out


def _slo_flags(cand: CandidateResult) -> str:
    """Profiles whose SLO is missed (✗) or uncertain (?), e.g. "✗ edge"; "✓ all" when every SLO is met."""
    from leanbench.report.sections.serving import SLO_MARK

    marks = []
    for name, prof in (cand.profiles or {}).items():
        slo = prof.slo if prof is not None else None
        if slo is not None and f.num(slo.slo_ms) is not None:
            marks.append((SLO_MARK.get(slo.meets if isinstance(slo.meets, bool) else None), str(name)))
    if not marks:
        return DASH
    bad = [f"{m} {n}" for m, n in marks if m != "✓"]
    return ", ".join(bad) if bad else "✓ all"


def _per_million(spm: Interval | float | None) -> float | None:
    return f.num(spm.value if isinstance(spm, Interval) else spm)


def _break_even_lines(results: StudyResults) -> list[tuple[str, float, float, bool]]:
    """(name, build_usd, serve_usd_per_query, is_reference) for candidates with both numbers."""
    out = []
    for cand in f.candidates(results):
        build = f.num(_ledger(cand).build_usd)
        spm = _per_million(_serving(cand).serve_usd_per_million)
        if build is not None and spm is not None:
            out.append((str(cand.name), build, spm / 1e6, cand.name == results.reference))
    return out


def _break_even_point(cand: CandidateResult) -> float | None:
    return f.num(_break_even(cand)[1])


def break_even_grid(results: StudyResults) -> list[float]:
    """Log-spaced query counts over Q_RANGE, widened to hold every break-even point, which are included."""
    points = [_break_even_point(c) for c in f.candidates(results)]
    points = [p for p in points if p is not None and p > 0]
    lo = min([Q_RANGE[0], *(p / 10 for p in points)])
    hi = max([Q_RANGE[1], *(p * 10 for p in points)])
    a, b = math.log10(lo), math.log10(hi)
    grid = [10 ** (a + (b - a) * i / (N_POINTS - 1)) for i in range(N_POINTS)]
    return sorted(set(grid) | set(points))


def break_even_figure(results: StudyResults | Mapping[str, Any]) -> Any:
    """Cumulative cost vs queries served (log x, log y), one line per candidate, the reference thick and
    dark; a marker where a candidate's line crosses the reference's (its break-even volume)."""
    import plotly.graph_objects as go

    from leanbench.report.plots import NEUTRAL, _layout

    results = f.as_results(results)
    grid = break_even_grid(results)
    lines = _break_even_lines(results)
    fig = go.Figure()
    for name, build, per_q, is_ref in lines:
        ys = [build + per_q * q for q in grid]
        color = "#1f2328" if is_ref else None
        fig.add_trace(go.Scatter(
            x=grid, y=ys, mode="lines", name=ph(name) + (" (reference)" if is_ref else ""),
            line={"width": 4 if is_ref else 1.8, **({"color": color} if color else {})},
            hoverinfo="text", hovertext=[f"{ph(name)}: {fmt_usd(y)} after {fmt_queries(q)} queries"
                                         for q, y in zip(grid, ys, strict=True)],
        ))
    crossings = _crossings(results, lines)
    if crossings:
        fig.add_trace(go.Scatter(
            x=[q for _, q, _ in crossings], y=[y for _, _, y in crossings], mode="markers", name="break-even",
            marker={"symbol": "x", "size": 11, "color": NEUTRAL}, hoverinfo="text",
            hovertext=[f"{ph(n)} breaks even after {fmt_queries(q)} queries" for n, q, _ in crossings]))
    positive = all(y > 0 for tr in fig.data for y in tr.y)
    fig.update_layout(**_layout("queries served (log scale)", "cumulative cost, USD"))
    fig.update_layout(legend_title_text="candidate")
    fig.update_xaxes(type="log")
    if positive:
        fig.update_yaxes(type="log")
    return fig


def _crossings(results: StudyResults, lines: list) -> list[tuple[str, float, float]]:
    by_name = {n: (b, s) for n, b, s, _ in lines}
    out = []
    for cand in f.candidates(results):
        q = _break_even_point(cand)
        name = str(cand.name)
        if q is not None and q > 0 and name in by_name:
            b, s = by_name[name]
            out.append((name, q, b + s * q))
    return out


# ---------------------------------------------------------------------------------------------- sweeps


def _sweep_blocks(results: StudyResults) -> list[Block]:
    rows = []
    metric = f.decision_metric(results)
    for cand in f.candidates(results):
        sweep = _cost(cand).sweep
        if sweep is None:
            continue
        params = sweep.best_params or {}
        ptext = ", ".join(f"{k} = {v}" for k, v in params.items())
        best = f.num(sweep.best_value)
        rows.append([str(cand.name), f.fmt_count(sweep.n_trials), f.fmt_seconds(sweep.seconds),
                     fmt_usd(sweep.usd), ptext or DASH, DASH if best is None else f"{best:.4g}",
                     f.fmt_seconds(_cost(cand).build_seconds), str(f.verdict(cand) or DASH)])
    if not rows:
        return []
    return [Heading("Hyper-parameter search", 3),
            Table(["candidate (winner)", "trials", "search time", "search cost", "best parameters",
                   "best validation value", "build time incl. search", "verdict"], rows, text_cols=(4,)),
            Para(f"Every trial, discarded ones included, is in the ledger and in the winner's build cost; the "
                 f"search selected on the validation split (best value: the study's objective, e.g. {metric}).",
                 small=True)]


# ---------------------------------------------------------------------------------------------- ledger


def ledger_blocks(results: StudyResults) -> list[Block]:
    """Where the study's time went: seconds, CPU seconds, FLOPs, energy and money per phase, and whether
    the ledger reconciles with the measured wall time."""
    cost = results.cost
    by_phase = cost.by_phase if cost is not None else None
    if cost is None or not by_phase:
        return []
    total = f.num(cost.seconds) or sum((f.num(p.seconds) or 0.0) if p is not None else 0.0
                                       for p in by_phase.values())
    rows = []
    for phase, p in sorted(by_phase.items(), key=lambda kv: -((f.num(kv[1].seconds) if kv[1] else None) or 0.0)):
        if p is None:
            rows.append([str(phase), *([DASH] * 2), *([DASH] * 5)])
            continue
        s = f.num(p.seconds)
        share = DASH if s is None or not total else f"{s / total * 100:.1f}%"
        rows.append([str(phase), f.fmt_seconds(s), share, f.fmt_seconds(p.cpu_seconds),
                     f.fmt_count(p.flops), f.fmt_count(p.entries), fmt_kwh(p.kwh), fmt_usd(p.usd)])
    top = ", ".join(f"{r[0]} {r[2]}" for r in rows[:3])
    out: list[Block] = [Heading("Where the time went"),
                        Para(f"{f.fmt_seconds(total)} in the ledger; most in {top}."),
                        Table(["phase", "wall time", "share", "CPU time", "FLOPs", "entries", "energy", "cost"],
                              rows)]
    methods = [cost.energy_method] if cost.energy_method else [_ledger(c).energy_method for c in f.candidates(results)]
    note = method_note(methods) if any(p is not None and p.kwh is not None for p in by_phase.values()) else None
    if note:
        out.append(Para(note, small=True))
    rec = reconcile_sentence(cost.reconcile)
    if rec:
        out.append(Para(rec))
    return out


def reconcile_sentence(rec: Reconcile | None) -> str | None:
    if rec is None:
        return None
    gap = f.num(rec.gap_rel)
    gap_text = DASH if gap is None else f"{gap * 100:+.1f}%".replace("-", f.MINUS)
    ok = rec.ok
    verdict = ("reconciles (within 5%)" if ok else "does NOT reconcile: time is unaccounted for") \
        if isinstance(ok, bool) else "reconciliation not checked"
    return (f"Reconciliation: ledger total {f.fmt_seconds(rec.total)} vs measured wall time "
            f"{f.fmt_seconds(rec.measured)}, gap {gap_text}: {verdict}.")
