"""Reports rendered from one study's results: HTML, Markdown, JSON.

The input is the typed results (`leanbench.analysis.results.StudyResults`, what `analyse` returns) or a
results dict in their JSON form (docs/architecture.md, "Results JSON"; old and partial ones too), which is
read into them. The JSON report of a dict is the dict itself. Renderers never touch the store or run models.
plotly is imported only for HTML.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leanbench.analysis.results import StudyResults
from leanbench.errors import LeanbenchError
from leanbench.registry import did_you_mean

FORMATS = ("html", "md", "json")
_ALIASES = {"markdown": "md", "htm": "html"}
PLOTLY_MODES = ("inline", "cdn")


def check_plotly(mode: str) -> str:
    """`mode` when it is a known way to load plotly.js in the HTML report ("inline": the page opens offline;
    "cdn": a small page that loads it from the plotly CDN), else one clear error."""
    key = str(mode).lower()
    if key not in PLOTLY_MODES:
        hint = did_you_mean(key, PLOTLY_MODES)
        raise LeanbenchError(f"--plotly: unknown mode '{mode}'{hint}; known: inline (the page opens offline, "
                             "plotly.js inside it), cdn (a small page that loads plotly.js from the network)")
    return key


def render(results: StudyResults | Mapping[str, Any], fmt: str, plotly: str = "inline") -> str:
    """Render `results` as "html" (one page; plotly.js inlined, or from the CDN with `plotly="cdn"`), "md"
    (Markdown) or "json"."""
    plotly = check_plotly(plotly)
    key = _ALIASES.get(str(fmt).lower(), str(fmt).lower())
    if key not in FORMATS:
        hint = did_you_mean(str(fmt).lower(), FORMATS)
        raise LeanbenchError(f"unknown report format '{fmt}'{hint}; known: {', '.join(FORMATS)}")
    if not isinstance(results, StudyResults) and (
            not isinstance(results, Mapping) or not isinstance(results.get("candidates", []), list)):
        raise LeanbenchError(
            f"report: results must be a dict with a 'candidates' list, got {type(results).__name__}"
        )
    if key == "json":
        from leanbench.report.json_report import render_json

        return render_json(results)
    if key == "md":
        from leanbench.report.markdown import render_markdown

        return render_markdown(results)
    from leanbench.report.html import render_html

    return render_html(results, plotly=plotly)


__all__ = ["FORMATS", "PLOTLY_MODES", "check_plotly", "render"]
