"""Robustness under perturbations: a heatmap (candidate × perturbation, cell = metric under the perturbation,
annotated with the drop vs clean) and the "robust" columns: worst case, mean, worst drop with its CI."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leanbench.analysis.results import (
    CandidateResult,
    MetricValue,
    PerturbationCell,
    Robustness,
    RobustnessEntry,
    StudyResults,
)
from leanbench.report import _format as f
from leanbench.report.blocks import Block, Figure, Heading, Para, Table
from leanbench.report.sections.common import DASH, names_in_order, ph


def _section(results: StudyResults) -> Robustness | None:
    rob = results.robustness
    if rob is None or not rob.perturbations or not rob.candidates:
        return None
    return rob


def _metric(results: StudyResults, rob: Robustness) -> tuple[str, bool, bool]:
    metric = str(rob.metric or f.decision_metric(results))
    hib = rob.higher_is_better
    return metric, f.is_fraction(results, metric), f.higher_is_better(results, metric) if hib is None else bool(hib)


def _value(m: MetricValue | None) -> Any:
    return m.value if m is not None else None


def _cell_text(cell: PerturbationCell | None, fraction: bool) -> str:
    """ "95.0% (−2.5 pt)": the metric under the perturbation and its drop vs clean."""
    if cell is None:
        return DASH
    text = f.fmt_value_ci(_value(cell.metric), None, None, fraction)
    drop = f.fmt_diff_ci(_value(cell.drop), None, None, fraction)
    return text if drop == DASH else f"{text} ({drop})"


def worst_drop(entry: RobustnessEntry, hib: bool) -> tuple[str | None, MetricValue]:
    """The perturbation with the largest loss (drop oriented higher-is-better) and its drop {value, ci}."""
    best: tuple[float, str | None, MetricValue] = (float("inf"), None, MetricValue())
    for label, cell in (entry.by_perturbation or {}).items():
        d = f.num(_value(cell.drop)) if cell is not None else None
        if d is None:
            continue
        oriented = d if hib else -d
        if oriented < best[0]:
            best = (oriented, str(label), cell.drop)
    return best[1], best[2]


def _entry(rob: Robustness, name: str) -> RobustnessEntry:
    return (rob.candidates or {}).get(name) or RobustnessEntry()


def robustness_blocks(results: StudyResults) -> list[Block]:
    rob = _section(results)
    if rob is None:
        return []
    metric, fraction, hib = _metric(results, rob)
    labels = [str(p) for p in rob.perturbations or []]
    names = names_in_order(results, rob.candidates or {})
    per_rows, robust_rows = [], []
    for name in names:
        entry = _entry(rob, name)
        by = entry.by_perturbation or {}
        clean = f.metric_entry(_cand(results, name), metric)
        per_rows.append([name, f.fmt_value_ci(clean.value, None, None, fraction),
                         *(_cell_text(by.get(lbl), fraction) for lbl in labels)])
        label, drop = worst_drop(entry, hib)
        worst_drop_text = f.fmt_diff_ci(drop.value, drop.ci_low, drop.ci_high, fraction)
        robust_rows.append([
            name, f.fmt_value_ci(entry.worst, None, None, fraction),
            f.fmt_value_ci(entry.mean, None, None, fraction),
            worst_drop_text + (f" ({label})" if label and worst_drop_text != DASH else ""),
            f.fmt_diff_ci(entry.mean_drop, None, None, fraction),
        ])
    conf = f.confidence_pct(results)
    out: list[Block] = [
        Heading("Robustness under perturbations"),
        Figure(lambda: robustness_figure(results), "lb-robustness"),
        Table(["candidate", f"{metric} clean", *labels], per_rows),
        Table(["candidate", "worst case", "mean over perturbations", f"worst drop ({conf}% CI)",
               "mean drop"], robust_rows),
    ]
    text = f"Cells: {metric} under each perturbation (drop vs clean in brackets)."
    if rob.method:
        text += f" Method: {rob.method}."
    out.append(Para(text, small=True))
    return out


def _cand(results: StudyResults, name: str) -> CandidateResult:
    return next((c for c in f.candidates(results) if str(c.name) == name), CandidateResult())


def robustness_figure(results: StudyResults | Mapping[str, Any]) -> Any:
    """Heatmap, rows = candidates (results' order, top to bottom), columns = perturbations; the colour is
    the metric under the perturbation, the text its value and the drop vs clean."""
    import plotly.graph_objects as go

    from leanbench.report.plots import _layout

    results = f.as_results(results)
    rob = _section(results) or Robustness(perturbations=[], candidates={})
    metric, fraction, hib = _metric(results, rob)
    scale = 100.0 if fraction else 1.0
    labels = [str(p) for p in rob.perturbations or []]
    names = names_in_order(results, rob.candidates or {})
    z, text, hover = [], [], []
    for name in names:
        by = _entry(rob, name).by_perturbation or {}
        zr, tr, hr = [], [], []
        for lbl in labels:
            cell = by.get(lbl)
            v = f.num(_value(cell.metric)) if cell is not None else None
            zr.append(None if v is None else v * scale)
            drop = f.fmt_diff_ci(_value(cell.drop) if cell is not None else None, None, None, fraction)
            value = f.fmt_value_ci(v, None, None, fraction)
            tr.append(f"{value}<br>{drop}" if drop != DASH else value)
            hr.append(f"{ph(name)} · {ph(lbl)}<br>{ph(value)}, drop {ph(drop)}")
        z.append(zr)
        text.append(tr)
        hover.append(hr)
    fig = go.Figure(go.Heatmap(
        z=z, x=[ph(lbl) for lbl in labels], y=[ph(n) for n in names], text=text, texttemplate="%{text}",
        hovertext=hover, hoverinfo="text", colorscale="RdYlGn" if hib else "RdYlGn_r",
        colorbar={"title": {"text": f"{ph(metric)}{' (%)' if fraction else ''}"}},
    ))
    fig.update_layout(**_layout("perturbation", ""))
    fig.update_layout(height=max(260, 90 + 48 * len(names)))
    fig.update_yaxes(autorange="reversed")
    return fig
