"""Slices: per slice the reference's metric and each candidate's difference with its CI, flags where a
candidate degrades significantly more on the slice than overall (domain-specific degradation)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leanbench.report import _format as f
from leanbench.report.blocks import Block, Bullets, Heading, Para, Table
from leanbench.report.sections.common import DASH, names_in_order

FLAG = "⚑"


def _section(results: Mapping[str, Any]) -> Mapping[str, Any] | None:
    sl = results.get("slices")
    if not isinstance(sl, Mapping) or not sl.get("rows"):
        return None
    return sl


def _rows(sl: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [r for r in sl.get("rows") or [] if isinstance(r, Mapping)]


def _ci(d: Any, fraction: bool, diff: bool) -> str:
    if not isinstance(d, Mapping):
        return DASH
    fmt = f.fmt_diff_ci if diff else f.fmt_value_ci
    return fmt(d.get("value"), d.get("ci_low"), d.get("ci_high"), fraction)


def slice_blocks(results: Mapping[str, Any]) -> list[Block]:
    sl = _section(results)
    if sl is None:
        return []
    metric = str(sl.get("metric") or f.decision_metric(results))
    fraction = f.is_fraction(results, metric)
    rows = _rows(sl)
    names = names_in_order(results, dict.fromkeys(str(r.get("name")) for r in rows))
    order = [str(s.get("name")) for s in sl.get("slices") or [] if isinstance(s, Mapping)]
    order += [s for s in dict.fromkeys(str(r.get("slice")) for r in rows) if s not in order]
    by = {(str(r.get("name")), str(r.get("slice"))): r for r in rows}
    sizes = {str(s.get("name")): s.get("n") for s in sl.get("slices") or [] if isinstance(s, Mapping)}
    table, classes = [], []
    for s in order:
        first = next((r for r in rows if str(r.get("slice")) == s), {})
        row = [s, f.fmt_count(sizes.get(s, first.get("n"))), _ci(first.get("reference"), fraction, False)]
        cls: list[str | None] = [None, None, None]
        for name in names:
            r = by.get((name, s))
            text = _ci(r.get("diff"), fraction, True) if r else DASH
            flagged = bool(r and r.get("flagged"))
            row.append(f"{FLAG} {text}" if flagged else text)
            cls.append("flag" if flagged else None)
        table.append(row)
        classes.append(cls)
    conf = f.confidence_pct(results)
    header = ["slice", "n", f"reference {metric} ({conf}% CI)", *(f"Δ {n}" for n in names)]
    out: list[Block] = [Heading("Slices"), Table(header, table, classes=classes)]
    flagged = [r for r in rows if r.get("flagged")]
    out.append(Bullets([_flag_text(r, fraction) for r in flagged], title="Domain-specific degradation", warn=True)
               if flagged else Para("No candidate degrades significantly more on any slice than overall.",
                                    small=True))
    text = f"Δ = candidate − reference on {metric} within the slice; {FLAG}: flagged."
    untested = sorted({str(r.get("slice")) for r in rows if r.get("testable") is False})
    if untested:
        text += f" Not tested: {', '.join(untested)}."
    if sl.get("method"):
        text += f" Method: {sl['method']}."
    out.append(Para(text, small=True))
    return out


def _flag_text(r: Mapping[str, Any], fraction: bool) -> str:
    d = r.get("diff") or {}
    over = f.fmt_diff_ci(r.get("overall_diff"), None, None, fraction)
    return (f"{r.get('name')} on {r.get('slice')} (n = {f.fmt_count(r.get('n'))}): Δ {_ci(d, fraction, True)} vs "
            f"{over} overall; excess loss {_ci(r.get('excess'), fraction, True)}, "
            f"adjusted p {f.fmt_p(r.get('p_adjusted'))}.")
