"""Report renderers: Pareto fronts, human units, Markdown/HTML/JSON from the digits results fixture."""

from __future__ import annotations

import copy
import itertools
import json
import math
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from leanbench.errors import LeanbenchError
from leanbench.report import _format as f
from leanbench.report import render
from leanbench.report.json_report import render_json
from leanbench.report.markdown import render_markdown
from leanbench.report.plots import (
    _label_box,
    _overlap,
    axis_fractions,
    forest_figure,
    label_positions,
    latency_figure,
    pareto_front,
    size_figure,
)

FIXTURE = Path(__file__).parent / "fixtures" / "results_digits.json"
NAMES = ["teacher", "student-kd", "student-hard", "teacher-int8", "teacher-pruned90",
         "teacher-structured", "teacher-lowrank"]
EVIL = "<script>alert(1)</script>"


@pytest.fixture
def results() -> dict:
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def page() -> str:
    return render(json.loads(FIXTURE.read_text()), "html")


def _nulled(results: dict) -> dict:
    """The fixture with every optional measurement missing somewhere, the way a disabled run leaves it."""
    r = copy.deepcopy(results)
    for i, cand in enumerate(r["candidates"]):
        if i % 2:
            cand.update(latency=None, throughput=None, throughput_per_s=None, peak_memory_bytes=None,
                        memory=None, flops_per_example=None, speedup_vs_reference=None)
        cand["vs_reference"]["p_value"] = None
    r["candidates"][2]["metrics"]["nll"] = {"value": float("nan"), "ci_low": None, "ci_high": None}
    r["candidates"][3]["size_bytes"] = None
    r["candidates"][4]["cost"] = None
    r["candidates"][5]["vs_reference"]["diff"] = None
    r["candidates"][6]["vs_reference"] = None  # e.g. the decision metric failed for this one
    r.update(power=None, manifest=None, notes=None, task=None)
    return r


# ---------------------------------------------------------------------------------------------- pareto


@pytest.mark.parametrize(
    ("points", "hib", "expected"),
    [
        ([(1, 0.90), (2, 0.95), (3, 0.94)], True, [True, True, False]),
        ([(1, 0.90), (1, 0.90)], True, [True, True]),  # identical points: neither dominates
        ([(1, 0.90), (1, 0.95)], True, [False, True]),  # same cost, better metric wins
        ([(1, 0.90), (2, 0.90)], True, [True, False]),  # same metric, cheaper wins
        ([(1, 0.50), (2, 0.30), (3, 0.40)], False, [True, True, False]),  # lower-is-better (e.g. nll)
        ([(1, 0.50), (2, 0.30), (3, 0.40)], True, [True, False, False]),
        ([(5, 0.1)], True, [True]),
        ([], True, []),
    ],
)
def test_pareto_front_hand_cases(points, hib, expected):
    assert pareto_front(points, hib) == expected


def test_pareto_front_matches_sweep_on_random_points():
    """Independent check: the classic skyline sweep (sort by cost, keep a running best metric)."""
    rng = random.Random(0)
    for _ in range(50):
        pts = [(rng.randint(0, 6), rng.randint(0, 6)) for _ in range(rng.randint(1, 12))]
        best, sweep = -math.inf, set()
        for x, group in itertools.groupby(sorted(set(pts), key=lambda p: p[0]), key=lambda p: p[0]):
            top = max(y for _, y in group)
            if top > best:
                sweep.add((x, top))
                best = top
        assert [p in sweep for p in pts] == pareto_front(pts, True)


def test_pareto_front_rejects_malformed_points():
    with pytest.raises(LeanbenchError, match="point 1 must be"):
        pareto_front([(1, 2), (1, 2, 3)])


def test_label_positions_keep_close_labels_apart():
    # four students within a few percent of each other in latency and accuracy, two far-away models
    pts = [(0.33, 78.0), (0.32, 78.6), (0.34, 78.3), (0.31, 78.8), (13.3, 88.1), (3.3, 88.3)]
    names = ["textcnn-kd", "textcnn-hard", "embedbag-kd", "embedbag-hard", "teacher", "teacher-ort-int8"]
    where = label_positions(pts, names)
    assert len(where) == len(pts) and len(set(where[:4])) > 1  # the cluster's labels move apart
    assert where[4] == where[5] == "top center"  # isolated points keep the default
    norm = axis_fractions(pts)

    def overlap_area(positions):
        boxes = [_label_box(w, x, y, len(n) * 0.011) for w, (x, y), n in zip(positions, norm, names, strict=True)]
        return sum(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])

    assert overlap_area(["top center"] * 6) > 0.002  # the default stacks the cluster's names
    assert overlap_area(where) < overlap_area(["top center"] * 6) / 10
    assert label_positions([], []) == [] and label_positions([(1.0, 1.0)], ["a"]) == ["top center"]


# ---------------------------------------------------------------------------------------------- units


def test_human_units():
    assert f.fmt_count(279562) == "279.6k"
    assert f.fmt_count(950) == "950"
    assert f.fmt_count(1.2e11) == "120.0G"
    assert f.fmt_bytes(1119000) == "1.1 MB"
    assert f.fmt_bytes(512) == "512 B"
    assert f.fmt_ms(0.0512) == "0.051 ms"
    assert f.fmt_ms(12.34) == "12.3 ms"
    assert f.fmt_speedup(1.914) == "1.91×"
    assert f.fmt_p(0.0004) == "<0.001"
    assert f.fmt_value_ci(0.972, 0.953, 0.986, True) == "97.2% [95.3, 98.6]"
    assert f.fmt_value_ci(0.0921, 0.0614, 0.1312, False) == "0.092 [0.061, 0.131]"
    assert f.fmt_diff_ci(-0.003, -0.014, 0.008, True) == "−0.3 pt [−1.4, +0.8]"
    assert f.fmt_diff_ci(0.0001, -0.01, 0.01, True) == "0.0 pt [−1.0, +1.0]"  # rounds to 0: no sign


def test_missing_numbers_are_dashes():
    for fmt in (f.fmt_count, f.fmt_bytes, f.fmt_ms, f.fmt_speedup, f.fmt_p, f.fmt_seconds, f.fmt_rate):
        assert fmt(None) == f.DASH
        assert fmt(float("nan")) == f.DASH
        assert fmt(float("inf")) == f.DASH
    assert f.fmt_value_ci(None, 0.1, 0.2, True) == f.DASH
    assert f.fmt_value_ci(0.5, None, None, True) == "50.0%"


# ---------------------------------------------------------------------------------------------- markdown


def _md_rows(md: str, section: str) -> dict[str, list[str]]:
    """Rows of the first table after `## section`, keyed by their first cell."""
    block = md.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    table = block[block.index("\n| "):].split("\n\n", 1)[0]  # the first table only
    rows = [line.strip("|").split(" | ") for line in table.splitlines() if line.startswith("| ")]
    return {r[0].strip(): [c.strip() for c in r] for r in rows[2:]}  # after header and alignment rows


def test_markdown_verdict_table(results):
    md = render_markdown(results)
    rows = _md_rows(md, "Verdicts")
    assert list(rows) == NAMES
    assert rows["teacher"] == ["teacher", "1.2 MB", "97.5% [95.8, 98.9]", "—", "reference", "0.061 ms", "1.00×"]
    assert rows["student-kd"][3:5] == ["+0.3 pt [−0.6, +1.1]", "non-inferior"]
    assert rows["student-hard"][3:5] == ["−3.3 pt [−5.3, −1.4]", "inferior"]
    assert rows["teacher-int8"][4:7] == ["inconclusive", "0.083 ms", "0.73×"]
    assert rows["teacher-lowrank"][4] == "superior"
    header = "| candidate | size | accuracy (95% CI) | Δ vs ref (95% CI) | verdict |"
    assert header in md
    # the verdict table's details: a second table under it
    details = md.split("**More columns**\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert details[0] == "| candidate | params | p (McNemar) | FLOPs/ex |"
    assert details[2] == "| teacher | 301.1k | — | 600.1k |"
    assert "| student-hard | 4.8k | 0.007 | 9.5k |" in details


def test_markdown_summary_notes_settings_manifest(results):
    md = render_markdown(results)
    assert md.startswith("# leanbench report — digits\n")
    assert "Reference: teacher." in md and "360 test examples" in md and "margin of 1.0 pt" in md
    assert "Of 6 candidates: 1 superior, 1 non-inferior, 3 inconclusive, 1 inferior." in md
    assert "Underpowered: with n = 360" in md and "about 2,100 examples would be needed" in md
    assert "Latency, profile 'edge': threads 1, batch 1, warm-up 20, timed runs 200" in md
    assert "Throughput: threads 2, batch 256, warm-up 3, timed runs 20" in md
    assert _md_rows(md, "Manifest")["git_commit"] == ["git_commit", "ed0c3c2"]
    metrics = _md_rows(md, "All metrics")
    assert metrics["teacher"] == ["teacher", "97.5% [95.8, 98.9]", "97.5% [95.7, 98.9]",
                                  "0.092 [0.061, 0.131]", "1.8% [1.0, 3.3]"]
    assert _md_rows(md, "Bill")["teacher-pruned90"][4] == "31.0k"  # non-zero params after pruning


def test_markdown_escapes_table_breakers(results):
    results["candidates"][1]["name"] = "a|b <i>x</i>"
    md = render_markdown(results)
    assert "a\\|b &lt;i>x&lt;/i>" in md
    assert "<i>" not in md


def test_markdown_keeps_a_less_than_sign_readable():
    from leanbench.report.blocks import md_text

    assert md_text("p <0.001, a < b") == "p <0.001, a < b"
    assert md_text("<!-- x --> <?php </b>") == "&lt;!-- x --> &lt;?php &lt;/b>"


# ---------------------------------------------------------------------------------------------- json


CONTRACT = ["name", "params", "nonzero_params", "size_bytes", "flops_per_example", "metrics", "vs_reference",
            "latency", "throughput_per_s", "peak_memory_bytes", "cost"]


def test_json_round_trips_and_keeps_contract_keys(results):
    text = render(results, "json")
    back = json.loads(text)
    assert back == results
    assert list(back) == list(results)  # key order kept
    assert {"study", "reference", "manifest", "candidates"} <= set(back)
    for cand in back["candidates"]:
        assert all(k in cand for k in CONTRACT), set(CONTRACT) - set(cand)
        assert {"value", "ci_low", "ci_high"} <= set(cand["metrics"]["accuracy"])


def test_json_writes_non_finite_and_numpy_as_plain_json(results):
    cand = results["candidates"][1]
    cand["metrics"]["nll"]["value"] = float("nan")
    cand["metrics"]["nll"]["ci_high"] = float("inf")
    cand["params"] = np.int64(4810)
    cand["throughput_per_s"] = np.float32(1.5e6)
    cand["extra"] = (np.array([1.0, np.nan]), "x")

    def strict(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    back = json.loads(render_json(results), parse_constant=strict)
    c = back["candidates"][1]
    assert c["metrics"]["nll"]["value"] is None and c["metrics"]["nll"]["ci_high"] is None
    assert c["params"] == 4810 and c["throughput_per_s"] == 1.5e6
    assert c["extra"] == [[1.0, None], "x"]


def test_json_refuses_unserialisable_objects(results):
    results["candidates"][0]["cost"] = {"build_seconds": object()}
    with pytest.raises(LeanbenchError, match=r"results\.candidates\[0\]\.cost\.build_seconds"):
        render_json(results)


# ---------------------------------------------------------------------------------------------- html


def test_html_is_self_contained(page):
    from plotly.offline import get_plotlyjs

    assert page.startswith("<!DOCTYPE html>")
    assert re.findall(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=", page, flags=re.I) == []
    assert page.count(get_plotlyjs()) == 1
    assert page.count("* plotly.js v") == 1  # the library banner: inlined once, not once per figure
    for div in ("lb-forest", "lb-pareto-latency", "lb-pareto-size"):
        assert f'id="{div}"' in page
    assert page.count("Plotly.newPlot(") == 3


def test_html_contains_tables_and_names(page):
    for name in NAMES:
        assert f"<td>{name}</td>" in page
    assert '<td class="verdict v-non-inferior">non-inferior</td>' in page
    assert '<td class="verdict v-inferior">inferior</td>' in page
    assert "+0.3 pt [−0.6, +1.1]" in page
    assert '<div class="warn">' in page and "about 2,100 examples would be needed" in page
    assert "Latency, profile &#x27;edge&#x27;: threads 1, batch 1" in page
    assert '<td>git_commit</td><td class="value">ed0c3c2</td>' in page


def test_html_escapes_data(results):
    results["description"] = EVIL
    results["candidates"][1]["name"] = EVIL
    results["candidates"][2]["describe"] = {"note": EVIL, "arch": "mlp"}
    results["notes"] = [EVIL]
    results["manifest"]["cpu"] = EVIL
    page = render(results, "html")
    assert EVIL not in page
    assert "alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# ---------------------------------------------------------------------------------------------- figures


def _markers(fig) -> dict[str, tuple[str, float, float, float]]:
    """name -> (marker symbol, y, error up, error down), over the verdict traces."""
    out = {}
    for tr in fig.data:
        if tr.name == "Pareto front":
            continue
        for i, name in enumerate(tr.text):
            out[name] = (tr.marker.symbol[i], tr.y[i], tr.error_y.array[i], tr.error_y.arrayminus[i])
    return out


def test_latency_figure_marks_front_and_reference(results):
    fig, left_out = latency_figure(results)
    assert left_out == []
    assert fig.layout.xaxis.type == "log"
    m = _markers(fig)
    assert set(m) == set(NAMES)
    assert {n for n, v in m.items() if v[0] == "star"} == {"student-kd", "teacher-lowrank"}
    assert m["teacher"][0] == "diamond"
    sym, y, up, down = m["teacher"]  # CI 97.5 [95.83, 98.89] in percent, asymmetric
    assert (y, up, down) == pytest.approx((97.5, 1.39, 1.67))
    front = [tr for tr in fig.data if tr.name == "Pareto front"][0]
    assert list(front.x) == [0.019, 0.034]


def test_size_figure_front(results):
    fig, _ = size_figure(results)
    stars = {n for n, v in _markers(fig).items() if v[0] == "star"}
    assert stars == {"student-kd", "teacher-lowrank"}


def test_forest_figure_lines_at_zero_and_margin(results):
    fig, left_out = forest_figure(results)
    names = [y for tr in fig.data for y in tr.y]
    assert sorted(names) == sorted(NAMES[1:])  # the reference is not a row
    xs = sorted(shape.x0 for shape in fig.layout.shapes)
    assert xs == pytest.approx([-1.0, 0.0])  # −margin in points, and zero
    hard = [tr for tr in fig.data if tr.name == "inferior"][0]
    assert hard.x[0] == pytest.approx(-3.33) and hard.error_x.array[0] == pytest.approx(1.94)


def test_forest_margin_side_for_lower_is_better(results):
    results["decision"].update(metric="nll", margin=0.05, higher_is_better=False)
    fig, _ = forest_figure(results)
    assert sorted(shape.x0 for shape in fig.layout.shapes) == pytest.approx([0.0, 0.05])


# ---------------------------------------------------------------------------------------------- nulls


@pytest.mark.parametrize("fmt", ["md", "json", "html"])
def test_null_fields_do_not_crash(results, fmt):
    out = render(_nulled(results), fmt)
    for name in NAMES:
        assert name in out
    if fmt == "html":
        left_out = "student-kd, teacher-int8, teacher-structured"
        assert f"Not shown (no measured latency or metric): {left_out}." in out
    if fmt == "md":
        assert "nan" not in out.lower().replace("nanoseconds", "")
        assert "Underpowered" not in out
        assert "over the same test examples" in out
        tally = "0 superior, 1 non-inferior, 3 inconclusive, 1 inferior, 1 without a verdict"
        assert f"Of 6 candidates: {tally}." in out


def test_candidate_without_verdict_gets_its_own_trace(results):
    fig, _ = latency_figure(_nulled(results))
    assert [tr.name for tr in fig.data if tr.name == "no verdict"] == ["no verdict"]
    fig, left_out = forest_figure(_nulled(results))
    assert left_out == ["teacher-structured", "teacher-lowrank"]


def test_latency_plot_omitted_when_nothing_measured(results):
    for cand in results["candidates"]:
        cand["latency"] = None
    page = render(results, "html")
    assert "No candidate to plot here (no measured latency or metric)." in page
    assert 'id="lb-pareto-latency"' not in page
    assert "Latency and throughput: not measured." not in page  # throughput was still measured


def test_empty_results_render(results):
    minimal = {"study": "x", "reference": "a", "candidates": []}
    for fmt in ("md", "json", "html"):
        assert "x" in render(minimal, fmt)


# ---------------------------------------------------------------------------------------------- dispatch


def test_render_dispatch_and_unknown_format(results):
    assert render(results, "md") == render_markdown(results)
    assert render(results, "markdown") == render_markdown(results)
    with pytest.raises(LeanbenchError, match=r"unknown report format 'jsn' \(did you mean 'json'\?\)"):
        render(results, "jsn")
    with pytest.raises(LeanbenchError, match="must be a dict with a 'candidates' list"):
        render({"candidates": "nope"}, "md")


def test_markdown_and_json_do_not_import_plotly():
    code = (
        "import json, sys; from leanbench.report import render; "
        f"r = json.load(open({str(FIXTURE)!r})); render(r, 'md'); render(r, 'json'); "
        "print(any(m.split('.')[0] == 'plotly' for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
