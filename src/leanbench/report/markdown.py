"""Markdown report: the recommendation, a table of contents, the verdict table and the bill, fit to paste into
a README or a paper's appendix."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from leanbench.analysis.results import StudyResults
from leanbench.report import _format as f
from leanbench.report import sections
from leanbench.report.blocks import Details, blocks_md, md_table, md_text
from leanbench.report.sections.recommendation import recommendation_blocks
from leanbench.report.sections.speed import speedup_source_blocks
from leanbench.report.sections.stats import correction_sentence, test_sentence, verdict_tables

TOC_MARK = "\x00contents"


def render_markdown(results: StudyResults | Mapping[str, Any]) -> str:
    """The whole report as Markdown: title, summary, verdicts, notes, metrics, bill, settings, manifest."""
    results = f.as_results(results)
    if results.tasks:
        return _multitask_markdown(results)
    cands = f.candidates(results)
    parts = [f"# {md_text(f.title(results))}", blocks_md(recommendation_blocks(results)), TOC_MARK]
    if results.description:
        parts.append(md_text(results.description))
    parts.append(md_text(" ".join(t for t in (f.summary(results), test_sentence(results),
                                               correction_sentence(results)) if t)))
    parts.append("## Verdicts")
    main, details = verdict_tables(results)
    parts.append(md_table(main.header, main.rows))
    parts.append(blocks_md([Details("More columns", [details])]))
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
    return _with_contents("\n\n".join(parts)) + "\n"


def _multitask_markdown(results: StudyResults) -> str:
    """A study of several tasks: the cross-task tables and each task's sections, then the bill."""
    from leanbench.report.sections.multitask import lead

    cands = f.candidates(results)
    parts = [f"# {md_text(f.title(results))}", blocks_md(recommendation_blocks(results)), TOC_MARK]
    if results.description:
        parts.append(md_text(results.description))
    parts.append(md_text(" ".join(t for t in (lead(results), correction_sentence(results)) if t)))
    notes = f.warnings(results)
    if notes:
        parts += ["## Notes", "\n".join(f"- {md_text(n)}" for n in notes)]
    _extend(parts, blocks_md(sections.blocks(results, sections.MULTI_TASK)))
    parts += ["## Bill", md_table(f.COST_COLUMNS, [f.cost_row(c) for c in cands], numeric_from=3)]
    _extend(parts, blocks_md(sections.blocks(results, sections.BILL)))
    parts += ["## Measurement settings", "\n".join(f"- {md_text(line)}" for line in f.settings(results))]
    return _with_contents("\n\n".join(parts)) + "\n"


def _with_contents(text: str) -> str:
    """A list of links to the `## ` sections in place of `TOC_MARK` (anchors as GitHub makes them)."""
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    used: dict[str, int] = {}
    items = []
    for heading in headings:
        anchor = github_anchor(heading)
        n = used.get(anchor, 0)
        used[anchor] = n + 1
        items.append(f"- [{heading}](#{anchor}{f'-{n}' if n else ''})")
    toc = "**Contents**\n\n" + "\n".join(items) if len(items) > 1 else ""
    return text.replace(TOC_MARK + "\n\n", toc + "\n\n" if toc else "", 1)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _extend(parts: list[str], text: str) -> None:
    if text:
        parts.append(text)


__all__ = ["md_table", "md_text", "render_markdown"]
