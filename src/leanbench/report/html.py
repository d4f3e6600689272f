"""Self-contained HTML report: one file, no network, plotly.js inlined once, every data string escaped.

Figures are written with `fig.to_html(full_html=False, include_plotlyjs=False)` after a single inline
<script> holding `plotly.offline.get_plotlyjs()`; plotly's own JSON encoder escapes "<", ">" and "/" in
figure data, and every string from the results that lands in markup goes through `html.escape`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from leanbench.analysis.results import StudyResults
from leanbench.report import _format as f
from leanbench.report import plots, sections
from leanbench.report.blocks import blocks_html, esc, figure_html, html_table
from leanbench.report.sections.speed import speedup_source_blocks
from leanbench.report.sections.stats import correction_sentence, test_sentence, verdict_table

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;margin:0;background:#fff}
main{max-width:1400px;margin:0 auto;padding:24px}
h1{font-size:1.6rem;margin:0 0 .3rem} h2{font-size:1.2rem;margin:2rem 0 .6rem;border-bottom:1px solid #d0d7de}
p.lead{font-size:1.02rem;line-height:1.5} .small{color:#57606a;font-size:.86rem}
table{border-collapse:collapse;font-size:.88rem;margin:.4rem 0;width:100%}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f6f8fa;white-space:normal} .tbl{overflow-x:auto} td:first-child,th:first-child{text-align:left}
td.text{text-align:left;white-space:normal}
td.verdict{font-weight:600;text-align:center}
.v-reference{background:#eaeef2;color:#424a53} .v-superior{background:#aceebb;color:#0f5323}
.v-non-inferior{background:#dafbe1;color:#116329} .v-inconclusive{background:#fff8c5;color:#7d4e00}
.v-inferior{background:#ffebe9;color:#a40e26}
.warn{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:8px 14px;margin:1rem 0}
.warn ul{margin:.3rem 0;padding-left:1.2rem}
.fig{margin:.4rem 0 1rem}
td.flag{background:#ffebe9;color:#a40e26;font-weight:600} td.slo-ok{color:#116329}
td.slo-miss{background:#ffebe9;color:#a40e26;font-weight:600} td.slo-unsure{background:#fff8c5;color:#7d4e00}
h3{font-size:1.02rem;margin:1.2rem 0 .4rem}
"""


def _left_out_note(names: list[str], what: str) -> str:
    if not names:
        return ""
    return f'<p class="small">Not shown (no {esc(what)}): {esc(", ".join(names))}.</p>'


def _plots_section(results: StudyResults) -> str:
    """Forest plot of Δ vs reference, then the two trade-off plots, each with a note for what is left off."""
    out = ["<h2>Difference vs reference</h2>"]
    specs = [
        (plots.forest_figure, "lb-forest", "difference vs reference", None),
        (plots.latency_figure, "lb-pareto-latency", "measured latency or metric", "Quality vs latency"),
        (plots.size_figure, "lb-pareto-size", "size or metric", "Quality vs size"),
    ]
    for builder, div_id, what, heading in specs:
        if heading:
            out.append(f"<h2>{esc(heading)}</h2>")
        fig, left_out = builder(results)
        if len(fig.data) == 0:
            out.append(f'<p class="small">No candidate to plot here (no {esc(what)}).</p>')
            continue
        out.append(figure_html(fig, div_id))
        out.append(_left_out_note(left_out, what))
    out.append(
        '<p class="small">Stars: Pareto-optimal (no other candidate is at least as good on both axes and '
        "better on one); diamond: the reference; error bars: confidence intervals.</p>"
    )
    return "\n".join(out)


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_describe(v)}" for k, v in value.items())
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _candidates_section(results: StudyResults) -> str:
    rows = []
    for cand in f.candidates(results):
        rows.append([str(cand.name), str(cand.from_ or f.DASH), f.steps_text(cand),
                     _describe(cand.describe or {}) or f.DASH])
    return "<h2>Candidates</h2>" + html_table(["candidate", "from", "steps", "model"], rows, text_cols=(3,))


def _warnings_box(results: StudyResults) -> str:
    notes = f.warnings(results)
    if not notes:
        return ""
    items = "".join(f"<li>{esc(n)}</li>" for n in notes)
    return f'<div class="warn"><strong>Read before trusting the verdicts</strong><ul>{items}</ul></div>'


def _body(results: StudyResults) -> str:
    cands = f.candidates(results)
    parts = [f"<h1>{esc(f.title(results))}</h1>"]
    if results.description:
        parts.append(f"<p>{esc(results.description)}</p>")
    lead = " ".join(t for t in (f.summary(results), test_sentence(results), correction_sentence(results)) if t)
    parts.append(f'<p class="lead">{esc(lead)}</p>')
    parts.append(_warnings_box(results))
    parts.append("<h2>Verdicts</h2>")
    table = verdict_table(results)
    parts.append(html_table(table.header, table.rows, classes=table.classes))
    parts.append(f'<p class="small">{esc(f.verdict_legend(results))}</p>')
    parts.append(blocks_html(speedup_source_blocks(results)))
    parts.append(_plots_section(results))
    parts.append(blocks_html(sections.blocks(results, sections.QUALITY)))
    parts.append("<h2>All metrics</h2>")
    parts.append(html_table(f.metrics_header(results), [f.metrics_row(results, c) for c in cands]))
    parts.append("<h2>Bill</h2>")
    parts.append(html_table(f.COST_COLUMNS, [f.cost_row(c) for c in cands]))
    parts.append(blocks_html(sections.blocks(results, sections.BILL)))
    parts.append(_candidates_section(results))
    parts.append("<h2>Measurement settings</h2><ul>")
    parts.extend(f"<li>{esc(line)}</li>" for line in [*f.settings(results), *f.data_lines(results)])
    parts.append("</ul>")
    manifest = f.manifest_rows(results)
    if manifest:
        parts.append("<h2>Manifest</h2>" + html_table(["key", "value"], [list(r) for r in manifest]))
    return "\n".join(p for p in parts if p)


def render_html(results: StudyResults | Mapping[str, Any]) -> str:
    """The report as one HTML page that opens offline: plotly.js inlined once, figures after it."""
    from plotly.offline import get_plotlyjs

    results = f.as_results(results)
    body = _body(results)  # build figures first: a plotting error surfaces before 5 MB of JS is joined
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{esc(f.title(results))}</title>\n<style>{CSS}</style>\n"
        f"<script type=\"text/javascript\">{get_plotlyjs()}</script>\n"
        f"</head>\n<body><main>\n{body}\n</main></body>\n</html>\n"
    )
