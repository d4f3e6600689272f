"""Slices: per slice the reference's metric and each candidate's difference with its CI, flags where a
candidate degrades significantly more on the slice than overall (domain-specific degradation)."""

from __future__ import annotations

from leanbench.analysis.results import MetricValue, SliceRow, Slices, StudyResults
from leanbench.report import _format as f
from leanbench.report.blocks import Block, Bullets, Heading, Para, Table
from leanbench.report.sections.common import DASH, names_in_order

FLAG = "⚑"


def _section(results: StudyResults) -> Slices | None:
    sl = results.slices
    if sl is None or not sl.rows:
        return None
    return sl


def _ci(d: MetricValue | None, fraction: bool, diff: bool) -> str:
    if d is None:
        return DASH
    fmt = f.fmt_diff_ci if diff else f.fmt_value_ci
    return fmt(d.value, d.ci_low, d.ci_high, fraction)


def slice_blocks(results: StudyResults) -> list[Block]:
    sl = _section(results)
    if sl is None:
        return []
    metric = str(sl.metric or f.decision_metric(results))
    fraction = f.is_fraction(results, metric)
    rows = list(sl.rows or [])
    names = names_in_order(results, dict.fromkeys(str(r.name) for r in rows))
    order = [str(s.name) for s in sl.slices or []]
    order += [s for s in dict.fromkeys(str(r.slice) for r in rows) if s not in order]
    by = {(str(r.name), str(r.slice)): r for r in rows}
    sizes = {str(s.name): s.n for s in sl.slices or []}
    table, classes = [], []
    for s in order:
        first = next((r for r in rows if str(r.slice) == s), SliceRow())
        row = [s, f.fmt_count(sizes[s] if s in sizes else first.n), _ci(first.reference, fraction, False)]
        cls: list[str | None] = [None, None, None]
        for name in names:
            r = by.get((name, s))
            text = _ci(r.diff, fraction, True) if r else DASH
            flagged = bool(r and r.flagged)
            row.append(f"{FLAG} {text}" if flagged else text)
            cls.append("flag" if flagged else None)
        table.append(row)
        classes.append(cls)
    conf = f.confidence_pct(results)
    header = ["slice", "n", f"reference {metric} ({conf}% CI)", *(f"Δ {n}" for n in names)]
    out: list[Block] = [Heading("Slices"), Table(header, table, classes=classes)]
    flagged = [r for r in rows if r.flagged]
    out.append(Bullets([_flag_text(r, fraction) for r in flagged], title="Domain-specific degradation", warn=True)
               if flagged else Para("No candidate degrades significantly more on any slice than overall.",
                                    small=True))
    text = f"Δ = candidate − reference on {metric} within the slice; {FLAG}: flagged."
    untested = sorted({str(r.slice) for r in rows if r.testable is False})
    if untested:
        text += f" Not tested: {', '.join(untested)}."
    if sl.method:
        text += f" Method: {sl.method}."
    out.append(Para(text, small=True))
    return out


def _flag_text(r: SliceRow, fraction: bool) -> str:
    over = f.fmt_diff_ci(r.overall_diff, None, None, fraction)
    return (f"{r.name} on {r.slice} (n = {f.fmt_count(r.n)}): Δ {_ci(r.diff, fraction, True)} vs "
            f"{over} overall; excess loss {_ci(r.excess, fraction, True)}, "
            f"adjusted p {f.fmt_p(r.p_adjusted)}.")
