"""Markdown report: the verdict table and the bill, fit to paste into a README or a paper's appendix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from leanbench.report import _format as f


def md_text(text: str) -> str:
    """Escape text from the data for a Markdown table cell: pipes, angle brackets (raw HTML), newlines."""
    return (
        str(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
        .replace("\r", " ").replace("\n", " ")
    )


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1) -> str:
    """A pipe table; columns from `numeric_from` on are right-aligned except the verdict column."""
    align = ["---:" if i >= numeric_from and header[i] != "verdict" else "---" for i in range(len(header))]
    lines = [
        "| " + " | ".join(md_text(h) for h in header) + " |",
        "| " + " | ".join(align) + " |",
    ]
    lines.extend("| " + " | ".join(md_text(c) for c in row) + " |" for row in rows)
    return "\n".join(lines)


def render_markdown(results: Mapping[str, Any]) -> str:
    """The whole report as Markdown: title, summary, verdicts, notes, metrics, bill, settings, manifest."""
    cands = f.candidates(results)
    parts = [f"# {md_text(f.title(results))}"]
    if results.get("description"):
        parts.append(md_text(results["description"]))
    parts.append(md_text(f.summary(results)))
    parts.append("## Verdicts")
    parts.append(md_table(f.verdict_header(results), [f.verdict_row(results, c) for c in cands]))
    parts.append(md_text(f.verdict_legend(results)))
    notes = f.warnings(results)
    if notes:
        parts.append("## Notes")
        parts.append("\n".join(f"- {md_text(n)}" for n in notes))
    parts.append("## All metrics")
    parts.append(md_table(f.metrics_header(results), [f.metrics_row(results, c) for c in cands]))
    parts.append("## Bill")
    parts.append(md_table(f.COST_COLUMNS, [f.cost_row(c) for c in cands], numeric_from=3))
    parts.append("## Measurement settings")
    parts.append("\n".join(f"- {md_text(line)}" for line in [*f.settings(results), *f.data_lines(results)]))
    manifest = f.manifest_rows(results)
    if manifest:
        parts.append("## Manifest")
        parts.append(md_table(["key", "value"], [list(r) for r in manifest], numeric_from=2))
    return "\n\n".join(parts) + "\n"
