"""The report's layout: the recommendation first, a table of contents, a verdict table that fits a 1,400-px
window (its details collapsed below it), a readable manifest, numbers formatted everywhere, plotly.js inline
or from the CDN, speed-ups against the parent and the runtime control, and every data string escaped.

`results_digits_run.json` is the JSON report (`leanbench report --format json`) of a real run of
studies/digits.yaml, so its numbers are the raw floats a run produces (`run_seconds`, the machine score) and it
carries the `recommendation` the analysis wrote; `results_digits_full.json` is the hand-made fixture with every
section."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leanbench.report import render
from leanbench.report.sections.stats import verdict_table, verdict_tables

FIXTURES = Path(__file__).parent / "fixtures"
RUN = FIXTURES / "results_digits_run.json"
FULL = FIXTURES / "results_digits_full.json"
EVIL = "<script>document.title='pwned'</script>"


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def page() -> str:
    return render(_load(RUN), "html", plotly="cdn")


def _text(page: str) -> str:
    """The page's visible text: scripts and styles dropped, tags removed, entities decoded."""
    body = re.sub(r"<(script|style)\b.*?</\1>", "", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "\n", body))


# ---------------------------------------------------------------------------------------------- order


def test_the_recommendation_comes_first_then_the_contents(page):
    body = page.split("<main>", 1)[1]
    assert body.lstrip().startswith("<h1>leanbench report — digits</h1>")
    first = body.index('<a class="anchor" id="sec-recommendation"></a><h2>Recommendation</h2>')
    box = body.index('<div class="box box-')
    toc = body.index('<nav class="toc"')
    assert first < box < toc < body.index("<h2>Verdicts</h2>") < body.index('<p class="lead">') + 10**9
    assert body.index("<h2>") == body.index("<h2>Recommendation</h2>")  # no section before it
    rec = _load(RUN)["recommendation"]
    assert html.escape(rec["why"], quote=True) in body[box:toc]


def test_the_contents_link_every_section(page):
    toc = page.split('<nav class="toc"', 1)[1].split("</nav>", 1)[0]
    links = re.findall(r'<a href="#([a-z0-9-]+)">(.*?)</a>', toc)
    headings = re.findall(r'<a class="anchor" id="([a-z0-9-]+)"></a><h2>(.*?)</h2>', page)
    assert links == headings and len(links) >= 10
    assert len({ident for ident, _ in links}) == len(links)  # ids unique
    assert [t for _, t in links][:3] == ["Recommendation", "Verdicts", "Difference vs reference"]


def test_markdown_has_the_recommendation_and_contents():
    md = render(_load(RUN), "md")
    assert md.index("## Recommendation") < md.index("**Contents**") < md.index("## Verdicts")
    toc = md.split("**Contents**\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    headings = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    assert len(toc) == len(headings) and toc[0] == "- [Recommendation](#recommendation)"
    assert "- [Serving by deployment profile](#serving-by-deployment-profile)" in toc


# ---------------------------------------------------------------------------------------------- width


CHAR_PX, CELL_PAD_PX, WINDOW_PX = 8.0, 17.0, 1400 - 2 * 24  # 0.88rem text; 8px padding + border; <main> padding


def _width(table) -> float:
    """A conservative width estimate of a table whose cells do not wrap (headers wrap at spaces)."""
    total = 0.0
    for j, head in enumerate(table.header):
        longest = max([len(row[j]) for row in table.rows] + [max(len(w) for w in head.split())])
        total += longest * CHAR_PX + CELL_PAD_PX
    return total


@pytest.mark.parametrize("fixture", [RUN, FULL])
def test_the_verdict_table_fits_a_1400px_window(fixture):
    results = _load(fixture)
    main, details = verdict_tables(results)
    assert _width(main) < WINDOW_PX, main.header
    assert _width(verdict_table(results)) > WINDOW_PX  # the table it replaces did not fit: the estimate tells
    # nothing is lost: every column of the old table is in one of the two
    assert set(verdict_table(results).header) <= set(main.header) | set(details.header)
    page = render(results, "html", plotly="cdn")
    assert "<details><summary>More columns: params, p (McNemar), FLOPs/ex" in page


# ---------------------------------------------------------------------------------------------- numbers


LONG_NUMBER = re.compile(r"(?<![\w.])\d+\.\d+(?:e[-+]?\d+)?(?![\w.])")


def _significant(number: str) -> int:
    return len(number.split("e")[0].replace(".", "").lstrip("0"))


@pytest.mark.parametrize("fixture", [RUN, FULL])
@pytest.mark.parametrize("fmt", ["html", "md"])
def test_no_number_is_printed_raw(fixture, fmt):
    out = render(_load(fixture), fmt, plotly="cdn")
    text = _text(out) if fmt == "html" else out
    raw = [m.group() for m in LONG_NUMBER.finditer(text) if _significant(m.group()) > 6]
    assert raw == []


def test_the_manifest_is_readable():
    results = _load(RUN)
    assert isinstance(results["manifest"]["run_seconds"], float)
    results["manifest"]["note"] = "x" * 300
    page = render(results, "html", plotly="cdn")
    manifest = page.split("<h2>Manifest</h2>", 1)[1]
    assert '<table class="kv">' in manifest and '<td class="value">' in manifest
    assert "<td>run_seconds</td><td class=\"value\">" + _fmt_seconds(results["manifest"]["run_seconds"]) in manifest
    assert f"<details><summary>{'x' * 100}…</summary>{'x' * 300}</details>" in manifest
    assert "score: " in manifest and "GFLOP/s" in manifest  # the machine score, its numbers formatted


def _fmt_seconds(x: float) -> str:
    from leanbench.report._format import fmt_seconds

    return fmt_seconds(x)


def test_fmt_num_keeps_significant_digits():
    from leanbench.report._format import fmt_num, fmt_value

    assert fmt_num(51.871460729999995) == "51.87" and fmt_num(0.0070084999999999245) == "0.007008"
    assert fmt_num(4.0) == "4" and fmt_num(9999.5) == "10,000" and fmt_num(-0.25) == "−0.25"
    assert fmt_num(33554432) == "33,554,432" and fmt_num(1.2e-07) == "1.2e-07" and fmt_num(None) == "—"
    assert fmt_value({"a": [0.30851000000001, None], "b": True}) == "a: [0.3085, —], b: true"


# ---------------------------------------------------------------------------------------------- plotly


def test_cdn_mode_is_small_and_references_a_pinned_plotly(page):
    from plotly.offline import get_plotlyjs, get_plotlyjs_version

    assert len(page.encode()) < 1_000_000
    src = f"https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js"
    assert re.findall(r'<script src="([^"]+)"', page) == [src]
    assert get_plotlyjs()[:2000] not in page
    assert page.count("Plotly.newPlot(") >= 3  # the figures are still plotly divs
    inline = render(_load(RUN), "html")
    assert len(inline.encode()) > 3_000_000 and inline.count(get_plotlyjs()) == 1
    assert "<script src=" not in inline  # inline stays the offline default


def test_plotly_option_on_the_cli_rejects_an_unknown_mode(tmp_path):
    from leanbench.cli import app

    runner = CliRunner()
    for args in (["report", "--plotly", "cnd"], ["run", str(tmp_path / "missing.yaml"), "--plotly", "cnd"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2, res.output
        assert "--plotly: unknown mode 'cnd' (did you mean 'cdn'?)" in res.output
        assert "Traceback" not in res.output


# ---------------------------------------------------------------------------------------------- speed-ups


def _lineage() -> dict:
    """The full fixture with an ONNX fp32 control and an int8 candidate derived from it."""
    r = _load(FULL)
    cands = r["candidates"]
    speed = {"value": 2.58, "ci_low": 2.49, "ci_high": 2.66, "rounds": 20, "faster": True, "slower": False}
    control = dict(cands[0], name="teacher-ort", **{"from": "teacher"})
    int8 = dict(cands[3], name="teacher-int8-ort", **{"from": "teacher-ort"}, runtime_control="teacher-ort",
                speedup_vs_parent={"edge": speed}, speedup_vs_control={"edge": speed})
    control["speedup_vs_parent"] = {"edge": {**speed, "value": 1.34, "ci_low": 1.3, "ci_high": 1.39}}
    control["vs_reference"] = dict(cands[1]["vs_reference"])
    cands += [control, int8]
    return r


def test_speedups_vs_the_parent_and_the_runtime_control_are_shown():
    page = render(_lineage(), "html", plotly="cdn")
    details = page.split("<summary>More columns:", 1)[1].split("</details>", 1)[0]
    assert "<th>speed-up vs parent (edge)</th><th>speed-up vs runtime control (edge)</th>" in details
    assert ('<td class="text">2.58× [2.49, 2.66] vs teacher-ort</td>'
            '<td class="text">2.58× [2.49, 2.66] vs teacher-ort</td>') in details
    assert '<td class="text">1.34× [1.30, 1.39] vs teacher</td><td class="text">—</td>' in details
    assert "<h3>Where the speed-up comes from</h3>" in page


# ---------------------------------------------------------------------------------------------- escaping


def test_every_data_string_is_escaped_in_the_new_parts():
    r = _lineage()
    r["description"] = EVIL
    r["study"] = EVIL
    r["manifest"]["cpu"] = EVIL * 10  # long: collapsed in the manifest
    for cand in r["candidates"]:
        if cand["name"] == "student-kd":  # the recommended one: in the box, the why and the checks table
            cand["name"] = EVIL
            cand["steps"] = [{"distill": {"note": EVIL}}]
        for block in ("latency", "profiles"):  # a profile name: in headings (the contents) and the checks table
            if cand.get(block) and "edge" in cand[block]:
                cand[block][EVIL] = cand[block].pop("edge")
    for fmt_ in ("inline", "cdn"):
        page = render(r, "html", plotly=fmt_)
        assert "<script>document" not in page and "'pwned'</script>" not in page
        assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    md = render(r, "md")
    assert "<script>" not in md
