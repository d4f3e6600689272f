"""The full bill: build cost per candidate stacked by phase, TCO and break-even against the reference,
the cost of a hyper-parameter search, and where the study's time went (ledger with its reconciliation).

Break-even lines (issue 6): cumulative cost after q queries = build_usd + serve_usd_per_million / 1e6 × q.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from leanbench.report import _format as f
from leanbench.report.blocks import Block, Figure, Heading, Para, Table
from leanbench.report.sections.common import (
    DASH,
    fmt_co2,
    fmt_interval,
    fmt_kwh,
    fmt_queries,
    fmt_usd,
    get,
    method_note,
    ph,
    short_method,
)

Q_RANGE = (1e3, 1e10)
N_POINTS = 121


def _cost(cand: Mapping[str, Any]) -> Mapping[str, Any]:
    c = cand.get("cost")
    return c if isinstance(c, Mapping) else {}


def _has_bill(results: Mapping[str, Any]) -> bool:
    keys = ("build_usd", "build_kwh", "build_by_phase", "serve_usd_per_million", "tco_usd", "break_even")
    return any(any(_cost(c).get(k) is not None for k in keys) for c in f.candidates(results))


def bill_blocks(results: Mapping[str, Any]) -> list[Block]:
    out: list[Block] = []
    if _has_bill(results):
        out.append(Heading("Cost of building and serving"))
        out += _phase_blocks(results)
        out += _tco_blocks(results)
        out += _sweep_blocks(results)
    out += ledger_blocks(results)
    return out


# ---------------------------------------------------------------------------------------------- phases


def phase_unit(results: Mapping[str, Any]) -> str:
    """ "usd" when every phase entry carries money, else "seconds"."""
    entries = [p for c in f.candidates(results) for p in (_cost(c).get("build_by_phase") or {}).values()
               if isinstance(p, Mapping)]
    return "usd" if entries and all(f.num(p.get("usd")) is not None for p in entries) else "seconds"


def _phase_blocks(results: Mapping[str, Any]) -> list[Block]:
    rows = []
    for cand in f.candidates(results):
        cost = _cost(cand)
        if not cost:
            continue
        energy = fmt_kwh(cost.get("build_kwh"))
        if energy != DASH:
            energy += f" ({short_method(cost.get('energy_method'))})"
        phases = ", ".join(str(p) for p in (cost.get("build_by_phase") or {})) or DASH
        rows.append([str(cand.get("name")), f.fmt_seconds(cost.get("build_seconds")),
                     f.fmt_seconds(cost.get("build_seconds_own")), f.fmt_count(cost.get("build_flops")), energy,
                     fmt_usd(cost.get("build_usd")), fmt_co2(cost.get("build_co2_kg")), phases])
    out: list[Block] = []
    if any(_cost(c).get("build_by_phase") for c in f.candidates(results)):
        out.append(Figure(lambda: phase_figure(results), "lb-cost-phases"))
    out.append(Table(["candidate", "build time", "own steps", "build FLOPs", "build energy (method)", "build cost",
                      "build CO2", "phases"], rows, text_cols=(4, 7)))
    text = ("Build cost includes whatever a candidate was derived from (its from: chain and teacher), counted once "
            "per study; every energy figure says whether it was measured or estimated.")
    note = method_note(_cost(c).get("energy_method") for c in f.candidates(results))
    out.append(Para(f"{text} {note}" if note else text, small=True))
    return out


def phase_figure(results: Mapping[str, Any]) -> Any:
    """Stacked bars: build cost by phase per candidate, in USD when every phase has it, else seconds."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    from leanbench.report.plots import _layout

    unit = phase_unit(results)
    cands = [c for c in f.candidates(results) if _cost(c).get("build_by_phase")]
    phases: dict[str, None] = {}
    for c in cands:
        phases.update((str(p), None) for p in _cost(c)["build_by_phase"])
    fig = go.Figure()
    for phase in phases:
        ys = [f.num(get(_cost(c)["build_by_phase"], phase, unit)) for c in cands]
        fig.add_trace(go.Bar(x=[ph(c.get("name")) for c in cands], y=[y or 0.0 for y in ys], name=ph(phase),
                             hoverinfo="text",
                             hovertext=[f"{ph(c.get('name'))} · {ph(phase)}: "
                                        f"{fmt_usd(y) if unit == 'usd' else f.fmt_seconds(y)}"
                                        for c, y in zip(cands, ys, strict=True)]))
    fig.update_layout(**_layout("", "build cost, USD" if unit == "usd" else "build time, s"))
    fig.update_layout(barmode="stack", legend_title_text="phase", height=400,
                      colorway=qualitative.Plotly + qualitative.Pastel)  # 21 distinct colours
    return fig


# ---------------------------------------------------------------------------------------------- TCO


def _break_even_text(cost: Mapping[str, Any]) -> str:
    be = cost.get("break_even")
    status = be.get("status") if isinstance(be, Mapping) else None
    q = be.get("queries") if isinstance(be, Mapping) else None
    q = cost.get("break_even_queries") if q is None else q
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


def tco_sentence(results: Mapping[str, Any]) -> str | None:
    tco = results.get("tco")
    if not isinstance(tco, Mapping):
        return None
    traffic, prices = tco.get("traffic") or {}, tco.get("prices") or {}
    qpd, days = f.num(traffic.get("queries_per_day")), f.num(traffic.get("horizon_days"))
    text = f"TCO on profile '{tco.get('profile') or DASH}'"
    if qpd is not None and days is not None:
        text += f": {qpd:,.0f} queries/day over {days:g} days ({fmt_queries(qpd * days)} queries)"
    bits = [f"{fmt_usd(prices.get('usd_per_hour'))}/hour of hardware" if prices.get("usd_per_hour") is not None
            else None,
            f"{fmt_usd(prices.get('usd_per_kwh'))}/kWh" if prices.get("usd_per_kwh") is not None else None,
            f"{f.num(prices.get('co2_kg_per_kwh')):g} kg CO2/kWh" if f.num(prices.get("co2_kg_per_kwh")) is not None
            else None]
    bits = [b for b in bits if b]
    text += f"; prices: {', '.join(bits)}" if bits else ""
    return text + (f". Method: {tco['method']}." if tco.get("method") else ".")


def _tco_blocks(results: Mapping[str, Any]) -> list[Block]:
    rows, classes = [], []
    ref = results.get("reference")
    for cand in f.candidates(results):
        cost = _cost(cand)
        if not any(cost.get(k) is not None for k in ("serve_usd_per_million", "tco_usd", "break_even")):
            continue
        is_ref = cand.get("name") == ref
        slo = _slo_flags(cand)
        rows.append([str(cand.get("name")), fmt_usd(cost.get("build_usd")),
                     fmt_interval(cost.get("serve_usd_per_million"), fmt_usd),
                     fmt_interval(cost.get("tco_usd"), fmt_usd),
                     "reference" if is_ref else _break_even_text(cost), slo])
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


def _slo_flags(cand: Mapping[str, Any]) -> str:
    """Profiles whose SLO is missed (✗) or uncertain (?), e.g. "✗ edge"; "✓ all" when every SLO is met."""
    from leanbench.report.sections.serving import SLO_MARK

    marks = []
    for name, prof in (cand.get("profiles") or {}).items():
        slo = prof.get("slo") if isinstance(prof, Mapping) else None
        if isinstance(slo, Mapping) and f.num(slo.get("slo_ms")) is not None:
            meets = slo.get("meets")
            marks.append((SLO_MARK.get(meets if isinstance(meets, bool) else None), str(name)))
    if not marks:
        return DASH
    bad = [f"{m} {n}" for m, n in marks if m != "✓"]
    return ", ".join(bad) if bad else "✓ all"


def _break_even_lines(results: Mapping[str, Any]) -> list[tuple[str, float, float, bool]]:
    """(name, build_usd, serve_usd_per_query, is_reference) for candidates with both numbers."""
    out = []
    for cand in f.candidates(results):
        cost = _cost(cand)
        build = f.num(cost.get("build_usd"))
        spm = cost.get("serve_usd_per_million")
        spm = f.num(spm.get("value") if isinstance(spm, Mapping) else spm)
        if build is not None and spm is not None:
            out.append((str(cand.get("name")), build, spm / 1e6, cand.get("name") == results.get("reference")))
    return out


def break_even_grid(results: Mapping[str, Any]) -> list[float]:
    """Log-spaced query counts over Q_RANGE, widened to hold every break-even point, which are included."""
    points = [f.num(get(c, "cost", "break_even", "queries")) or f.num(get(c, "cost", "break_even_queries"))
              for c in f.candidates(results)]
    points = [p for p in points if p is not None and p > 0]
    lo = min([Q_RANGE[0], *(p / 10 for p in points)])
    hi = max([Q_RANGE[1], *(p * 10 for p in points)])
    a, b = math.log10(lo), math.log10(hi)
    grid = [10 ** (a + (b - a) * i / (N_POINTS - 1)) for i in range(N_POINTS)]
    return sorted(set(grid) | set(points))


def break_even_figure(results: Mapping[str, Any]) -> Any:
    """Cumulative cost vs queries served (log x, log y), one line per candidate, the reference thick and
    dark; a marker where a candidate's line crosses the reference's (its break-even volume)."""
    import plotly.graph_objects as go

    from leanbench.report.plots import NEUTRAL, _layout

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


def _crossings(results: Mapping[str, Any], lines: list) -> list[tuple[str, float, float]]:
    by_name = {n: (b, s) for n, b, s, _ in lines}
    out = []
    for cand in f.candidates(results):
        q = f.num(get(cand, "cost", "break_even", "queries"))
        q = f.num(get(cand, "cost", "break_even_queries")) if q is None else q
        name = str(cand.get("name"))
        if q is not None and q > 0 and name in by_name:
            b, s = by_name[name]
            out.append((name, q, b + s * q))
    return out


# ---------------------------------------------------------------------------------------------- sweeps


def _sweep_blocks(results: Mapping[str, Any]) -> list[Block]:
    rows = []
    metric = f.decision_metric(results)
    for cand in f.candidates(results):
        sweep = _cost(cand).get("sweep")
        if not isinstance(sweep, Mapping):
            continue
        params = sweep.get("best_params") or {}
        ptext = ", ".join(f"{k} = {v}" for k, v in params.items()) if isinstance(params, Mapping) else str(params)
        best = f.num(sweep.get("best_value"))
        rows.append([str(cand.get("name")), f.fmt_count(sweep.get("n_trials")), f.fmt_seconds(sweep.get("seconds")),
                     fmt_usd(sweep.get("usd")), ptext or DASH, DASH if best is None else f"{best:.4g}",
                     f.fmt_seconds(_cost(cand).get("build_seconds")), str(f.verdict(cand) or DASH)])
    if not rows:
        return []
    return [Heading("Hyper-parameter search", 3),
            Table(["candidate (winner)", "trials", "search time", "search cost", "best parameters",
                   "best validation value", "build time incl. search", "verdict"], rows, text_cols=(4,)),
            Para(f"Every trial, discarded ones included, is in the ledger and in the winner's build cost; the "
                 f"search selected on the validation split (best value: the study's objective, e.g. {metric}).",
                 small=True)]


# ---------------------------------------------------------------------------------------------- ledger


def ledger_blocks(results: Mapping[str, Any]) -> list[Block]:
    """Where the study's time went: seconds, CPU seconds, FLOPs, energy and money per phase, and whether
    the ledger reconciles with the measured wall time."""
    cost = results.get("cost")
    by_phase = cost.get("by_phase") if isinstance(cost, Mapping) else None
    if not isinstance(by_phase, Mapping) or not by_phase:
        return []
    total = f.num(cost.get("seconds")) or sum(f.num(get(p, "seconds")) or 0.0 for p in by_phase.values())
    rows = []
    for phase, p in sorted(by_phase.items(), key=lambda kv: -(f.num(get(kv[1], "seconds")) or 0.0)):
        p = p if isinstance(p, Mapping) else {}
        s = f.num(p.get("seconds"))
        share = DASH if s is None or not total else f"{s / total * 100:.1f}%"
        rows.append([str(phase), f.fmt_seconds(s), share, f.fmt_seconds(p.get("cpu_seconds")),
                     f.fmt_count(p.get("flops")), f.fmt_count(p.get("entries")), fmt_kwh(p.get("kwh")),
                     fmt_usd(p.get("usd"))])
    top = ", ".join(f"{r[0]} {r[2]}" for r in rows[:3])
    out: list[Block] = [Heading("Where the time went"),
                        Para(f"{f.fmt_seconds(total)} in the ledger; most in {top}."),
                        Table(["phase", "wall time", "share", "CPU time", "FLOPs", "entries", "energy", "cost"],
                              rows)]
    methods = [cost.get("energy_method")] if cost.get("energy_method") else [
        _cost(c).get("energy_method") for c in f.candidates(results)]
    note = method_note(methods) if any(get(p, "kwh") is not None for p in by_phase.values()) else None
    if note:
        out.append(Para(note, small=True))
    rec = reconcile_sentence(cost.get("reconcile"))
    if rec:
        out.append(Para(rec))
    return out


def reconcile_sentence(rec: Any) -> str | None:
    if not isinstance(rec, Mapping):
        return None
    gap = f.num(rec.get("gap_rel"))
    gap_text = DASH if gap is None else f"{gap * 100:+.1f}%".replace("-", f.MINUS)
    ok = rec.get("ok")
    verdict = ("reconciles (within 5%)" if ok else "does NOT reconcile: time is unaccounted for") \
        if isinstance(ok, bool) else "reconciliation not checked"
    return (f"Reconciliation: ledger total {f.fmt_seconds(rec.get('total'))} vs measured wall time "
            f"{f.fmt_seconds(rec.get('measured'))}, gap {gap_text}: {verdict}.")
