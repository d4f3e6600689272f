"""Pareto fronts and the report's plotly figures.

`pareto_front` is pure Python. The figure builders import plotly when called, so importing this module
stays cheap. Each builder returns the figure and the names of candidates it had to leave off (missing
value), so the report can say so instead of silently dropping them.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from leanbench.analysis.results import CandidateResult, Comparison, MetricValue, StudyResults
from leanbench.errors import LeanbenchError
from leanbench.report import _format as f

if TYPE_CHECKING:
    import plotly.graph_objects as go

FIG_HEIGHT = 460
NEUTRAL = "#57606a"


def pareto_front(points: Sequence[tuple[float, float]], higher_is_better: bool = True) -> list[bool]:
    """Which points are Pareto-optimal when x is a cost (lower is better) and y a quality.

    Point i is dominated when some j has x_j <= x_i and y_j "at least as good" as y_i (>= when
    `higher_is_better`, <= otherwise) with at least one of the two strict. Identical points do not dominate
    each other, so ties on the front are all kept. O(n^2), fine for the tens of candidates a study has.
    """
    sign = 1.0 if higher_is_better else -1.0
    pts = []
    for i, p in enumerate(points):
        if len(p) != 2:
            raise LeanbenchError(f"pareto_front: point {i} must be (x, y), got {p!r}")
        pts.append((float(p[0]), sign * float(p[1])))
    return [not any(_dominates(q, p) for q in pts) for p in pts]


def _dominates(q: tuple[float, float], p: tuple[float, float]) -> bool:
    """q dominates p: no worse on both (lower x, higher y) and strictly better on one."""
    return q[0] <= p[0] and q[1] >= p[1] and (q[0] < p[0] or q[1] > p[1])


# ---------------------------------------------------------------------------------------------- labels

LABEL_POSITIONS = ("top center", "bottom center", "middle right", "middle left", "top right", "bottom left")
# a label's box in axis fractions: this many per character wide, this high; the marker's own half-size
_CHAR_W, _LABEL_H, _MARKER = 0.011, 0.045, 0.012


def label_positions(points: Sequence[tuple[float, float]], labels: Sequence[str], log_x: bool = True) -> list[str]:
    """A plotly `textposition` per point so that labels of nearby points do not overlap.

    Greedy: points are placed in order; each takes the first position in LABEL_POSITIONS whose label box
    (estimated from its length, in fractions of the axes) overlaps neither an earlier label nor a marker,
    or the least-overlapping one when all collide. Students with close latency and accuracy otherwise print
    their names on top of each other.
    """
    import math

    if not points:
        return []
    norm = axis_fractions(points, log_x)
    markers = [(x - _MARKER, y - _MARKER, x + _MARKER, y + _MARKER) for x, y in norm]
    placed: list[tuple[float, float, float, float]] = []
    out = []
    for (x, y), label in zip(norm, labels, strict=True):
        w = max(1, len(label)) * _CHAR_W
        best, best_cost = LABEL_POSITIONS[0], math.inf
        for pos in LABEL_POSITIONS:
            box = _label_box(pos, x, y, w)
            cost = sum(_overlap(box, b) for b in placed) + sum(_overlap(box, m) for m in markers)
            if cost < best_cost - 1e-12:
                best, best_cost = pos, cost
            if cost == 0:
                break
        placed.append(_label_box(best, x, y, w))
        out.append(best)
    return out


def axis_fractions(points: Sequence[tuple[float, float]], log_x: bool = True) -> list[tuple[float, float]]:
    """Points as fractions (0..1) of the span they cover on each axis; x in log10 when `log_x`."""
    import math

    xs = [math.log10(x) if log_x and x > 0 else float(x) for x, _ in points]
    ys = [float(y) for _, y in points]
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    return [((x - min(xs)) / span_x, (y - min(ys)) / span_y) for x, y in zip(xs, ys, strict=True)]


def _label_box(pos: str, x: float, y: float, w: float) -> tuple[float, float, float, float]:
    vert, horiz = pos.split()
    y0 = {"top": y + _MARKER, "middle": y - _LABEL_H / 2, "bottom": y - _MARKER - _LABEL_H}[vert]
    x0 = {"center": x - w / 2, "right": x + _MARKER, "left": x - _MARKER - w}[horiz]
    return (x0, y0, x0 + w, y0 + _LABEL_H)


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Area shared by two boxes (x0, y0, x1, y1)."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


# ---------------------------------------------------------------------------------------------- figures

NO_VERDICT = "no verdict"


def _by_verdict(items: list, cand_of: Any) -> list[tuple[str, list]]:
    """Items grouped by their candidate's verdict, in VERDICTS order, unknown verdicts last."""
    groups: dict[str, list] = {v: [] for v in (*f.VERDICTS, NO_VERDICT)}
    for item in items:
        v = f.verdict(cand_of(item))
        groups[v if v in f.VERDICTS else NO_VERDICT].append(item)
    return [(v, g) for v, g in groups.items() if g]


def latency_figure(results: StudyResults | Mapping[str, Any]) -> tuple[go.Figure, list[str]]:
    """Decision metric vs p50 latency (log x) of the primary profile, CI error bars, front marked."""
    results = f.as_results(results)
    profile = f.primary_profile(results)
    xs = [f.p50_ms(c, profile) for c in f.candidates(results)]
    title = f"p50 latency, ms (profile '{profile}', log scale)" if profile else "p50 latency, ms (log scale)"
    return tradeoff_figure(results, xs, title, lambda x: f.fmt_ms(x))


def size_figure(results: StudyResults | Mapping[str, Any]) -> tuple[go.Figure, list[str]]:
    """Decision metric vs model size on disk (log x), CI error bars, front marked."""
    results = f.as_results(results)
    xs = [f.num(c.size_bytes) for c in f.candidates(results)]
    return tradeoff_figure(results, xs, "size on disk, bytes (log scale)", f.fmt_bytes)


def tradeoff_figure(
    results: StudyResults, xs: Sequence[float | None], x_title: str, x_fmt: Any
) -> tuple[go.Figure, list[str]]:
    """Scatter of the decision metric against a cost `xs` (one per candidate, None = not measured).

    Pareto-optimal candidates are drawn as stars and joined by a dashed line; the reference is a diamond
    with a thick outline; colour is the verdict; error bars are the metric's CI (asymmetric).
    """
    import plotly.graph_objects as go

    metric = f.decision_metric(results)
    scale = f.metric_scale(results, metric)
    rows: list[tuple[CandidateResult, float, float, MetricValue]] = []
    left_out = []
    for cand, x in zip(f.candidates(results), xs, strict=True):
        m = f.metric_entry(cand, metric)
        y = f.num(m.value)
        if x is None or y is None or x <= 0:
            left_out.append(str(cand.name))
            continue
        rows.append((cand, x, y, m))
    front = pareto_front([(x, y) for _, x, y, _ in rows], f.higher_is_better(results, metric))
    positions = label_positions([(x, y) for _, x, y, _ in rows], [str(c.name) for c, *_ in rows])
    fig = go.Figure()
    items = list(zip(rows, front, positions, strict=True))
    for verdict, group in _by_verdict(items, lambda item: item[0][0]):
        fig.add_trace(_scatter_trace(go, results, verdict, group, scale, x_fmt))
    _add_front_line(go, fig, [(x, y * scale) for (_, x, y, _), on in zip(rows, front, strict=True) if on])
    unit = " (%)" if scale == 100 else ""
    fig.update_layout(**_layout(x_title, f"{metric}{unit}, {f.confidence_pct(results)}% CI"))
    fig.update_xaxes(type="log")
    return fig, left_out


def _scatter_trace(go: Any, results: StudyResults, verdict: str, group: list, scale: float, x_fmt: Any):
    metric = f.decision_metric(results)
    fraction = f.is_fraction(results, metric)
    ref = results.reference
    xs, ys, up, down, text, hover, symbols, sizes, widths, where = ([] for _ in range(10))
    for (cand, x, y, m), on_front, position in group:
        where.append(position)
        name = html.escape(str(cand.name))
        lo, hi = f.num(m.ci_low), f.num(m.ci_high)
        xs.append(x)
        ys.append(y * scale)
        up.append(max(0.0, (hi - y) * scale) if hi is not None else 0.0)
        down.append(max(0.0, (y - lo) * scale) if lo is not None else 0.0)
        is_ref = cand.name == ref
        text.append(name)
        hover.append(
            f"<b>{name}</b>{' (reference)' if is_ref else ''}<br>{html.escape(metric)}: "
            f"{html.escape(f.fmt_value_ci(y, lo, hi, fraction))}<br>{html.escape(x_fmt(x))}"
            f"<br>{'Pareto-optimal' if on_front else 'dominated'}"
        )
        symbols.append("diamond" if is_ref else ("star" if on_front else "circle"))
        sizes.append(16 if is_ref else 13)
        widths.append(2.5 if is_ref else 0.5)
    color = f.VERDICT_COLORS.get(verdict, NEUTRAL)
    return go.Scatter(
        x=xs, y=ys, mode="markers+text", name=verdict, text=text, textposition=where,
        hovertext=hover, hoverinfo="text",
        error_y={"type": "data", "symmetric": False, "array": up, "arrayminus": down, "color": color},
        marker={"color": color, "symbol": symbols, "size": sizes,
                "line": {"color": "#1f2328", "width": widths}},
    )


def _add_front_line(go: Any, fig: Any, pts: list[tuple[float, float]]) -> None:
    if len(pts) < 2:
        return
    pts = sorted(pts)
    fig.add_trace(go.Scatter(
        x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines", name="Pareto front",
        line={"color": NEUTRAL, "dash": "dash", "width": 1}, hoverinfo="skip",
    ))


def forest_figure(results: StudyResults | Mapping[str, Any]) -> tuple[go.Figure, list[str]]:
    """Difference vs reference with its CI, one row per candidate, lines at 0 and at the margin.

    The non-inferiority margin is drawn at −margin when higher is better and at +margin when lower is
    better (Δ = candidate − reference in both cases). Fractions are shown in percentage points.
    """
    import plotly.graph_objects as go

    results = f.as_results(results)
    metric = f.decision_metric(results)
    scale = f.metric_scale(results, metric)
    rows: list[tuple[CandidateResult, Comparison]] = []
    left_out = []
    for cand in f.candidates(results):
        if f.verdict(cand) == "reference" or cand.name == results.reference:
            continue
        vs = cand.vs_reference
        if vs is None or f.num(vs.diff) is None:
            left_out.append(str(cand.name))
            continue
        rows.append((cand, vs))
    fig = go.Figure()
    for verdict, group in _by_verdict(rows, lambda item: item[0]):
        fig.add_trace(_forest_trace(go, results, verdict, group, scale))
    _add_reference_lines(fig, results, metric, scale)
    names = [html.escape(str(c.name)) for c, _ in rows]
    unit = " (points)" if scale == 100 else ""
    ref = html.escape(str(results.reference))
    fig.update_layout(**_layout(f"Δ {metric} vs {ref}{unit}, {f.confidence_pct(results)}% CI", ""))
    fig.update_layout(height=max(240, 80 + 44 * len(rows)))
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(names)))
    return fig, left_out


def _forest_trace(go: Any, results: StudyResults, verdict: str, group: list, scale: float):
    fraction = f.is_fraction(results, f.decision_metric(results))
    xs, ys, up, down, hover = [], [], [], [], []
    for cand, vs in group:
        d, lo, hi = f.num(vs.diff), f.num(vs.ci_low), f.num(vs.ci_high)
        name = html.escape(str(cand.name))
        xs.append(d * scale)
        ys.append(name)
        up.append(max(0.0, (hi - d) * scale) if hi is not None else 0.0)
        down.append(max(0.0, (d - lo) * scale) if lo is not None else 0.0)
        hover.append(
            f"<b>{name}</b>: {verdict}<br>Δ {html.escape(f.fmt_diff_ci(d, lo, hi, fraction))}"
            f"<br>p (McNemar) {f.fmt_p(vs.p_value)}"
        )
    color = f.VERDICT_COLORS.get(verdict, NEUTRAL)
    return go.Scatter(
        x=xs, y=ys, mode="markers", name=verdict, hovertext=hover, hoverinfo="text",
        error_x={"type": "data", "symmetric": False, "array": up, "arrayminus": down, "color": color,
                 "thickness": 2, "width": 6},
        marker={"color": color, "size": 11, "symbol": "square"},
    )


def _add_reference_lines(fig: Any, results: StudyResults, metric: str, scale: float) -> None:
    fig.add_vline(x=0, line={"color": NEUTRAL, "width": 1})
    margin = f.num(f.decision(results).margin)
    if margin is None or margin == 0:
        return
    hib = f.higher_is_better(results, metric)
    fig.add_vline(
        x=(-margin if hib else margin) * scale,
        line={"color": f.VERDICT_COLORS["inferior"], "dash": "dash", "width": 1.5},
        annotation_text=f"{f.MINUS if hib else '+'}margin ({f.fmt_margin(results, metric, margin)})",
        annotation_position="top",
    )


def _layout(x_title: str, y_title: str) -> dict[str, Any]:
    return {
        "template": "plotly_white", "height": FIG_HEIGHT, "margin": {"l": 60, "r": 20, "t": 30, "b": 50},
        "xaxis_title": x_title, "yaxis_title": y_title, "legend_title_text": "verdict",
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 13},
    }


# ---------------------------------------------------------------------------------------------- several tasks

VERDICT_MARK = {"superior": "▲", "non-inferior": "✓", "inconclusive": "?", "inferior": "✗"}


def task_heatmap_figure(results: StudyResults | Mapping[str, Any]) -> tuple[go.Figure, list[str]]:
    """Candidate x task heatmap of the difference from the reference on each task's decision metric (points for
    fractions), diverging around 0; each cell prints the difference and its verdict mark, and its hover the CI,
    the margin and the verdict; a last column is the candidate's macro average over tasks. Candidates with no
    comparison on any task are left off."""
    import plotly.graph_objects as go

    results = f.as_results(results)
    tasks = list(results.tasks or [])
    names, z, text, hover, left_out = [], [], [], [], []
    for cand in f.candidates(results):
        if cand.name == results.reference:
            continue
        entries = cand.tasks or {}
        if not any(e is not None and e.vs_reference is not None for e in entries.values()):
            left_out.append(str(cand.name))
            continue
        row, row_text, row_hover = [], [], []
        for t in tasks:
            value, label, tip = _heat_cell(results, cand, t, entries.get(str(t.name)))
            row.append(value)
            row_text.append(label)
            row_hover.append(tip)
        value, label, tip = _macro_cell(results, cand)
        names.append(html.escape(str(cand.name)))
        z.append([*row, value])
        text.append([*row_text, label])
        hover.append([*row_hover, tip])
    columns = [html.escape(str(t.name)) for t in tasks] + ["macro average"]
    finite = [abs(v) for r in z for v in r if v is not None]
    span = max(finite) if finite else 1.0
    fig = go.Figure(go.Heatmap(
        z=z, x=columns, y=names, text=text, texttemplate="%{text}", hovertext=hover, hoverinfo="text",
        colorscale="RdBu", zmid=0, zmin=-span, zmax=span, xgap=2, ygap=2,
        colorbar={"title": {"text": "Δ vs ref"}}))
    ref = html.escape(str(results.reference))
    fig.update_layout(**_layout(f"task (Δ on its decision metric vs {ref}, {f.confidence_pct(results)}% CI in the "
                                "hover; ✓ non-inferior, ▲ superior, ? inconclusive, ✗ inferior)", ""))
    fig.update_layout(height=max(260, 110 + 48 * len(names)), legend_title_text=None)
    fig.update_yaxes(autorange="reversed")
    return fig, left_out


def _heat_cell(results: StudyResults, cand: CandidateResult, task: Any, entry: Any) -> tuple[Any, str, str]:
    """(z in display units, cell text, hover) of one candidate on one task."""
    name, tname = html.escape(str(cand.name)), html.escape(str(task.name))
    vs = entry.vs_reference if entry is not None else None
    if vs is None or f.num(vs.diff) is None:
        why = "cannot serve this task" if str(cand.name) in (task.skipped or []) else "not evaluated"
        return None, "—", f"<b>{name}</b> on {tname}: {why}"
    metric = str(vs.metric or task.metric)
    fraction = f.is_fraction(results, metric)
    d = f.num(vs.diff) * (100.0 if fraction else 1.0)
    diff = f.fmt_diff_ci(vs.diff, vs.ci_low, vs.ci_high, fraction)
    verdict = str(vs.verdict)
    return d, f"{_short(d, fraction)} {VERDICT_MARK.get(verdict, '')}".strip(), (
        f"<b>{name}</b> on {tname}<br>Δ {html.escape(metric)}: {html.escape(diff)}"
        f"<br>margin {html.escape(f.fmt_margin(results, metric, vs.margin))}<br>verdict: {html.escape(verdict)}")


def _macro_cell(results: StudyResults, cand: CandidateResult) -> tuple[Any, str, str]:
    name = html.escape(str(cand.name))
    cross = cand.cross_task
    macro = cross.macro_diff if cross is not None else None
    if macro is None or f.num(macro.value) is None:
        why = (cross.note if cross is not None and cross.note else "no macro average")
        return None, "—", f"<b>{name}</b>: {html.escape(str(why))}"
    fraction = all(f.is_fraction(results, m) for m in (cross.metrics or {}).values())
    d = f.num(macro.value) * (100.0 if fraction else 1.0)
    ci = f.fmt_diff_ci(macro.value, macro.ci_low, macro.ci_high, fraction)
    tip = f"<b>{name}</b>: macro average over {len(cross.tasks or [])} tasks<br>Δ {html.escape(ci)}"
    return d, _short(d, fraction), tip + "<br>each task's examples resampled independently"


def _short(x: float, fraction: bool) -> str:
    return (f"{x:+.1f}" if fraction else f"{x:+.3g}").replace("-", f.MINUS)
