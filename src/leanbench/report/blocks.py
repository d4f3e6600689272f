"""A tiny document model shared by the HTML and Markdown renderers: headings, paragraphs, tables, lists
and figures, each holding *unescaped* text. Sections build blocks once; each renderer escapes them for its
own output (Markdown leaves figures out and says so in one line).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str
    small: bool = False


@dataclass(frozen=True)
class Table:
    """`classes[i][j]` is an optional CSS class for cell (i, j) (e.g. "v-inferior", "flag"); Markdown
    ignores it. Columns from `numeric_from` on are right-aligned; `text_cols` wrap and align left."""

    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    classes: Sequence[Sequence[str | None]] | None = None
    text_cols: Sequence[int] = ()
    numeric_from: int = 1


@dataclass(frozen=True)
class Bullets:
    items: Sequence[str]
    title: str | None = None
    warn: bool = False


@dataclass(frozen=True)
class Figure:
    """A plotly figure built lazily (`build()` returns a go.Figure) with a stable div id."""

    build: Callable[[], Any] = field(repr=False)
    div_id: str
    caption: str | None = None


@dataclass(frozen=True)
class Details:
    """Blocks shown on demand: a collapsed <details> in HTML (open when `open`), a bold line and the blocks in
    Markdown."""

    summary: str
    blocks: Sequence[Any]
    open: bool = False


@dataclass(frozen=True)
class Box:
    """Blocks in a framed box with a title; `kind` picks its colour in HTML (box-<kind>: "ship", "keep",
    "none")."""

    title: str
    blocks: Sequence[Any]
    kind: str = "info"


Block = Heading | Para | Table | Bullets | Figure | Details | Box


def slug(text: Any, index: int | None = None) -> str:
    """A deterministic id fragment: lower-case [a-z0-9-] only, with an index to keep ids unique."""
    base = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:40] or "x"
    return base if index is None else f"{index}-{base}"


# ---------------------------------------------------------------------------------------------- HTML


def esc(text: Any) -> str:
    """HTML-escape any value from the data (quotes included, so it is safe in attributes too)."""
    return html.escape(str(text), quote=True)


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]], verdict_col: int | None = None,
               text_cols: Sequence[int] = (), classes: Sequence[Sequence[str | None]] | None = None) -> str:
    """A table of escaped cells; the verdict column, if any, is coloured by its verdict; `classes` adds a
    CSS class per cell."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for j, cell in enumerate(row):
            extra = (classes[i][j] if classes and i < len(classes) and j < len(classes[i]) else None) or ""
            if j == verdict_col:
                cells.append(f'<td class="verdict v-{esc(cell)}">{esc(cell)}</td>')
                continue
            cls = " ".join(c for c in ("text" if j in text_cols else "", extra) if c)
            cells.append(f'<td class="{esc(cls)}">{esc(cell)}</td>' if cls else f"<td>{esc(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="tbl"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def figure_html(fig: Any, div_id: str) -> str:
    """One figure as a <div> + <script> that uses the already-inlined plotly.js; stable div ids."""
    body = fig.to_html(
        full_html=False, include_plotlyjs=False, div_id=div_id, default_width="100%",
        config={"displaylogo": False, "responsive": True},
    )
    return f'<div class="fig">{body}</div>'


def block_html(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{esc(block.text)}</h{block.level}>"
    if isinstance(block, Para):
        return f'<p class="small">{esc(block.text)}</p>' if block.small else f"<p>{esc(block.text)}</p>"
    if isinstance(block, Table):
        return html_table(block.header, block.rows, text_cols=block.text_cols, classes=block.classes)
    if isinstance(block, Bullets):
        items = "".join(f"<li>{esc(t)}</li>" for t in block.items)
        title = f"<strong>{esc(block.title)}</strong>" if block.title else ""
        return f'<div class="warn">{title}<ul>{items}</ul></div>' if block.warn else f"{title}<ul>{items}</ul>"
    if isinstance(block, Details):
        attr = " open" if block.open else ""
        return f"<details{attr}><summary>{esc(block.summary)}</summary>\n{blocks_html(block.blocks)}\n</details>"
    if isinstance(block, Box):
        return (f'<div class="box box-{slug(block.kind)}"><p class="box-title">{esc(block.title)}</p>\n'
                f"{blocks_html(block.blocks)}\n</div>")
    out = figure_html(block.build(), block.div_id)
    return out + (f'<p class="small">{esc(block.caption)}</p>' if block.caption else "")


def blocks_html(blocks: Sequence[Block]) -> str:
    return "\n".join(block_html(b) for b in blocks)


# ---------------------------------------------------------------------------------------------- Markdown


_MD_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")


def md_text(text: Any) -> str:
    """Escape text from the data for a Markdown table cell: pipes, newlines, and a `<` that could open raw
    HTML (a tag, comment or declaration; "<0.001" stays readable)."""
    text = str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
    return _MD_TAG_OPEN.sub("&lt;", text)


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1,
             text_cols: Sequence[int] = ()) -> str:
    """A pipe table; columns from `numeric_from` on are right-aligned except verdict and text columns."""
    align = ["---:" if i >= numeric_from and not header[i].startswith("verdict") and i not in text_cols
             else "---" for i in range(len(header))]
    lines = [
        "| " + " | ".join(md_text(h) for h in header) + " |",
        "| " + " | ".join(align) + " |",
    ]
    lines.extend("| " + " | ".join(md_text(c) for c in row) + " |" for row in rows)
    return "\n".join(lines)


def block_md(block: Block) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {md_text(block.text)}"
    if isinstance(block, Para):
        return md_text(block.text)
    if isinstance(block, Table):
        return md_table(block.header, block.rows, block.numeric_from, block.text_cols)
    if isinstance(block, Bullets):
        items = "\n".join(f"- {md_text(t)}" for t in block.items)
        return f"**{md_text(block.title)}**\n\n{items}" if block.title else items
    if isinstance(block, (Details, Box)):
        title = block.summary if isinstance(block, Details) else block.title
        inner = blocks_md(block.blocks)
        return f"**{md_text(title)}**" + (f"\n\n{inner}" if inner else "")
    return ""  # figures live in the HTML report


def blocks_md(blocks: Sequence[Block]) -> str:
    return "\n\n".join(text for text in (block_md(b) for b in blocks) if text)
