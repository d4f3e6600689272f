"""Markdown report: the verdict table and the bill, fit to paste into a README or a paper's appendix."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leanbench.analysis.results import StudyResults
from leanbench.report import _format as f
from leanbench.report import sections
from leanbench.report.blocks import blocks_md, md_table, md_text
from leanbench.report.sections.speed import speedup_source_blocks
from leanbench.report.sections.stats import correction_sentence, test_sentence, verdict_table


def render_markdown(results: StudyResults | Mapping[str, Any]) -> str:
    """The whole report as Markdown: title, summary, verdicts, notes, metrics, bill, settings, manifest."""
    results = f.as_results(results)
    cands = f.candidates(results)
    parts = [f"# {md_text(f.title(results))}"]
    if results.description:
        parts.append(md_text(results.description))
    parts.append(md_text(" ".join(t for t in (f.summary(results), test_sentence(results),
                                               correction_sentence(results)) if t)))
    parts.append("## Verdicts")
    table = verdict_table(results)
    parts.append(md_table(table.header, table.rows))
    parts.append(md_text(f.verdict_legend(results)))
    _extend(parts, blocks_md(speedup_source_blocks(results)))
    notes = f.warnings(results)
    if notes:
        parts.append("## Notes")
        parts.append("\n".join(f"- {md_text(n)}" for n in notes))
    _extend(parts, blocks_md(sections.blocks(results, sections.QUALITY)))
    parts.append("## All metrics")
    parts.append(md_table(f.metrics_header(results), [f.metrics_row(results, c) for c in cands]))
    parts.append("## Bill")
    parts.append(md_table(f.COST_COLUMNS, [f.cost_row(c) for c in cands], numeric_from=3))
    _extend(parts, blocks_md(sections.blocks(results, sections.BILL)))
    parts.append("## Measurement settings")
    parts.append("\n".join(f"- {md_text(line)}" for line in [*f.settings(results), *f.data_lines(results)]))
    manifest = f.manifest_rows(results)
    if manifest:
        parts.append("## Manifest")
        parts.append(md_table(["key", "value"], [list(r) for r in manifest], numeric_from=2))
    return "\n\n".join(parts) + "\n"


def _extend(parts: list[str], text: str) -> None:
    if text:
        parts.append(text)


__all__ = ["md_table", "md_text", "render_markdown"]
