"""The HTML report: one file, every data string escaped. plotly.js is inlined once (`plotly="inline"`, the
default: the page opens offline, ~5 MB) or loaded from the plotly CDN at the version plotly.py ships
(`plotly="cdn"`: a small page that needs the network to draw its plots).

Figures are written with `fig.to_html(full_html=False, include_plotlyjs=False)` after the single <script> that
loads plotly.js; plotly's own JSON encoder escapes "<", ">" and "/" in figure data, and every string from the
results that lands in markup goes through `html.escape`. The page opens with the recommendation and a table
of contents built from its <h2> headings.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

from leanbench.analysis.results import StudyResults
from leanbench.report import _format as f
from leanbench.report import check_plotly, plots, sections
from leanbench.report.blocks import Details, blocks_html, esc, figure_html, html_table, slug
from leanbench.report.sections.recommendation import recommendation_blocks
from leanbench.report.sections.speed import speedup_source_blocks
from leanbench.report.sections.stats import correction_sentence, test_sentence, verdict_tables

PLOTLY_CDN = "https://cdn.plot.ly/plotly-{version}.min.js"
TOC_MARK = "<!--contents-->"
LONG_VALUE = 120  # manifest values longer than this are collapsed to their start

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;margin:0;background:#fff}
main{max-width:1400px;margin:0 auto;padding:24px;box-sizing:border-box}
h1{font-size:1.6rem;margin:0 0 .3rem} h2{font-size:1.2rem;margin:2rem 0 .6rem;border-bottom:1px solid #d0d7de}
p.lead{font-size:1.02rem;line-height:1.5} .small{color:#57606a;font-size:.86rem}
table{border-collapse:collapse;font-size:.88rem;margin:.4rem 0;width:100%}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f6f8fa;white-space:normal} .tbl{overflow-x:auto} td:first-child,th:first-child{text-align:left}
td:first-child{white-space:normal;overflow-wrap:anywhere;min-width:8rem}
td.text{text-align:left;white-space:normal;overflow-wrap:anywhere}
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
.box{border:2px solid #d0d7de;border-radius:8px;padding:10px 16px;margin:.6rem 0 1rem}
.box-ship{border-color:#2da44e;background:#f3fbf5} .box-keep{border-color:#bf8700;background:#fffbea}
.box-none{border-color:#cf222e;background:#fff5f5}
.box p.box-title{font-size:1.25rem;font-weight:700;margin:.2rem 0 .4rem} .box ul{margin:.3rem 0;padding-left:1.2rem}
details{margin:.4rem 0} summary{cursor:pointer;color:#0969da;font-size:.92rem}
nav.toc{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:6px 16px;margin:1rem 0}
nav.toc ol{columns:3 16rem;margin:.3rem 0;padding-left:1.4rem;font-size:.9rem} nav.toc a{color:#0969da}
table.kv{width:auto;max-width:100%} table.kv td{text-align:left}
table.kv td.value{white-space:normal;overflow-wrap:anywhere;max-width:60rem;font-family:ui-monospace,monospace;
font-size:.82rem}
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
    return f.fmt_value(value) if isinstance(value, Mapping) else str(value)


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


def _verdicts(results: StudyResults) -> str:
    main, details = verdict_tables(results)
    more = ", ".join(h for h in details.header[1:])
    return "\n".join([
        "<h2>Verdicts</h2>",
        html_table(main.header, main.rows, classes=main.classes, text_cols=main.text_cols),
        blocks_html([Details(f"More columns: {more}", [details])]),
        f'<p class="small">{esc(f.verdict_legend(results))}</p>',
    ])


def _manifest(results: StudyResults) -> str:
    """The manifest as a key/value table whose values wrap; a very long value shows its start and opens in full."""
    rows = f.manifest_rows(results)
    if not rows:
        return ""
    out = []
    for key, value in rows:
        cell = esc(value)
        if len(value) > LONG_VALUE:
            cell = f"<details><summary>{esc(value[:LONG_VALUE - 20])}…</summary>{esc(value)}</details>"
        out.append(f'<tr><td>{esc(key)}</td><td class="value">{cell}</td></tr>')
    return ('<h2>Manifest</h2><div class="tbl"><table class="kv"><thead><tr><th>key</th><th>value</th></tr></thead>'
            f"<tbody>{''.join(out)}</tbody></table></div>")


def _multitask_body(results: StudyResults) -> str:
    """A study of several tasks: the cross-task part and each task's sections in place of the verdicts, then
    the bill and the settings (builds and measurements are shared by the tasks)."""
    from leanbench.report.sections.multitask import lead

    cands = f.candidates(results)
    parts = [blocks_html(recommendation_blocks(results)), TOC_MARK]
    if results.description:
        parts.append(f"<p>{esc(results.description)}</p>")
    lead_text = " ".join(t for t in (lead(results), correction_sentence(results)) if t)
    parts += [f'<p class="lead">{esc(lead_text)}</p>', _warnings_box(results),
              blocks_html(sections.blocks(results, sections.MULTI_TASK)), "<h2>Bill</h2>",
              html_table(f.COST_COLUMNS, [f.cost_row(c) for c in cands], text_cols=(1, 2)),
              blocks_html(sections.blocks(results, sections.BILL)), _candidates_section(results),
              "<h2>Measurement settings</h2><ul>", *(f"<li>{esc(line)}</li>" for line in f.settings(results)),
              "</ul>", _manifest(results)]
    return "\n".join(p for p in parts if p)


def _body(results: StudyResults) -> str:
    if results.tasks:
        return _multitask_body(results)
    cands = f.candidates(results)
    parts = [blocks_html(recommendation_blocks(results)), TOC_MARK]
    if results.description:
        parts.append(f"<p>{esc(results.description)}</p>")
    lead = " ".join(t for t in (f.summary(results), test_sentence(results), correction_sentence(results)) if t)
    parts.append(f'<p class="lead">{esc(lead)}</p>')
    parts.append(_warnings_box(results))
    parts.append(_verdicts(results))
    parts.append(blocks_html(speedup_source_blocks(results)))
    parts.append(_plots_section(results))
    parts.append(blocks_html(sections.blocks(results, sections.QUALITY)))
    parts.append("<h2>All metrics</h2>")
    parts.append(html_table(f.metrics_header(results), [f.metrics_row(results, c) for c in cands]))
    parts.append("<h2>Bill</h2>")
    parts.append(html_table(f.COST_COLUMNS, [f.cost_row(c) for c in cands], text_cols=(1, 2)))
    parts.append(blocks_html(sections.blocks(results, sections.BILL)))
    parts.append(_candidates_section(results))
    parts.append("<h2>Measurement settings</h2><ul>")
    parts.extend(f"<li>{esc(line)}</li>" for line in [*f.settings(results), *f.data_lines(results)])
    parts.append("</ul>")
    parts.append(_manifest(results))
    return "\n".join(p for p in parts if p)


_H2 = re.compile(r"<h2>(.*?)</h2>", re.S)


def with_contents(body: str) -> str:
    """`body` with an anchor before every <h2> and a table of contents linking them in place of `TOC_MARK` (after
    the recommendation; data text cannot forge the mark: it is escaped). Heading text is already escaped; ids
    are [a-z0-9-] only."""
    entries: list[tuple[str, str]] = []
    used: set[str] = set()

    def anchor(m: re.Match[str]) -> str:
        base = "sec-" + slug(html.unescape(m.group(1)))
        ident, i = base, 2
        while ident in used:
            ident, i = f"{base}-{i}", i + 1
        used.add(ident)
        entries.append((ident, m.group(1)))
        return f'<a class="anchor" id="{ident}"></a><h2>{m.group(1)}</h2>'

    body = _H2.sub(anchor, body)
    items = "".join(f'<li><a href="#{ident}">{text}</a></li>' for ident, text in entries)
    toc = f'<nav class="toc" aria-label="Contents"><strong>Contents</strong><ol>{items}</ol></nav>'
    return body.replace(TOC_MARK, toc if len(entries) > 1 else "", 1)


def plotly_script(plotly: str = "inline") -> str:
    """The one <script> that loads plotly.js: inlined (offline) or from the CDN at plotly.py's pinned version."""
    from plotly.offline import get_plotlyjs, get_plotlyjs_version

    if check_plotly(plotly) == "cdn":
        src = PLOTLY_CDN.format(version=get_plotlyjs_version())
        return f'<script src="{esc(src)}" charset="utf-8" crossorigin="anonymous"></script>'
    return f'<script type="text/javascript">{get_plotlyjs()}</script>'


def render_html(results: StudyResults | Mapping[str, Any], plotly: str = "inline") -> str:
    """The report as one HTML page: plotly.js inlined once (`plotly="inline"`, opens offline) or referenced from
    the CDN (`plotly="cdn"`), figures after it."""
    results = f.as_results(results)
    script = plotly_script(plotly)  # a bad mode fails before any work
    body = with_contents(f"<h1>{esc(f.title(results))}</h1>\n{_body(results)}")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{esc(f.title(results))}</title>\n<style>{CSS}</style>\n"
        f"{script}\n"
        f"</head>\n<body><main>\n{body}\n</main></body>\n</html>\n"
    )
