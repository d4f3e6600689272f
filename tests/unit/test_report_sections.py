"""Report sections beyond the verdicts (issues 5 and 6), rendered from the full digits fixture: verdict grid,
seeds, robustness heatmap, slices, integrity, serving profiles with SLOs, cost by phase, TCO, break-even and
the study ledger; each omitted gracefully when its key is missing or null."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from leanbench.report import render
from leanbench.report.sections.bill import break_even_figure, phase_figure
from leanbench.report.sections.common import fmt_queries, fmt_usd
from leanbench.report.sections.robustness import robustness_figure
from leanbench.report.sections.serving import latency_profile_figure
from leanbench.report.sections.stats import seed_figure

FIXTURES = Path(__file__).parent / "fixtures"
FULL = FIXTURES / "results_digits_full.json"
OLD = FIXTURES / "results_digits.json"
NAMES = ["teacher", "student-kd", "student-hard", "teacher-int8", "teacher-pruned90",
         "teacher-structured", "teacher-lowrank"]
EVIL = "<script>alert(1)</script>"
SECTION_HEADINGS = {  # top-level key -> the Markdown heading it produces
    "robustness": "## Robustness under perturbations",
    "slices": "## Slices",
    "integrity": "## Integrity",
    "cost": "## Where the time went",
}
CANDIDATE_HEADINGS = {  # per-candidate key -> the Markdown heading it produces
    "seeds": "## Seed spread",
    "comparisons": "## Verdicts per metric",
    "profiles": None,  # the serving section still shows latency CIs without profiles
}


@pytest.fixture
def full() -> dict:
    return json.loads(FULL.read_text())


@pytest.fixture(scope="module")
def md() -> str:
    return render(json.loads(FULL.read_text()), "md")


@pytest.fixture(scope="module")
def page() -> str:
    return render(json.loads(FULL.read_text()), "html")


def _md_rows(md: str, heading: str, nth: int = 0) -> dict[str, list[str]]:
    """Rows of the nth table after `heading` (up to the next heading of any level), keyed by first cell."""
    block = md.split(f"{heading}\n", 1)[1].split("\n#", 1)[0]
    tables, current = [], []
    for line in block.splitlines():
        if line.startswith("| "):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    tables.append(current)
    rows = [line.strip("|").split(" | ") for line in tables[nth]]
    return {r[0].strip(): [c.strip() for c in r] for r in rows[2:]}


def _trace(fig, name: str):
    return next(tr for tr in fig.data if tr.name == name)


# ---------------------------------------------------------------------------------------------- all formats


def test_full_fixture_renders_every_section(md, page):
    for heading in ["## Verdicts per metric", "### Tests behind the accuracy verdicts", "## Seed spread",
                    *SECTION_HEADINGS.values(), "### Contamination", "### Full vs decontaminated",
                    "### Duplicates in the evaluated split", "## Serving by deployment profile",
                    "### Profile 'edge': 1 thread(s), batch 1", "## Cost of building and serving",
                    "### Total cost of ownership", "### Hyper-parameter search"]:
        assert heading in md, heading
        level = heading.count("#")
        text = heading.lstrip("# ").replace("'", "&#x27;")
        assert f"<h{level}>{text}</h{level}>" in page, heading
    for div in ("lb-seeds", "lb-robustness", "lb-latency-0-edge", "lb-latency-1-server", "lb-cost-phases",
                "lb-break-even"):
        assert f'id="{div}"' in page
    assert page.count("Plotly.newPlot(") == 9
    assert page.count("* plotly.js v") == 1  # inlined once for all nine figures


def test_json_passes_the_new_sections_through(full):
    back = json.loads(render(full, "json"))
    assert back == full
    for key in ("robustness", "slices", "integrity", "tco", "cost"):
        assert back[key] == full[key]
    cost = back["candidates"][1]["cost"]
    for key in ("build_seconds", "build_kwh", "build_usd", "serve_usd_per_million", "tco_usd",
                "break_even_queries", "energy_method"):
        assert key in cost


def test_html_ids_are_deterministic(full, page):
    assert render(full, "html") == page


# ---------------------------------------------------------------------------------------------- verdicts


def test_summary_names_the_correction_and_the_test(md, full):
    assert "Multiplicity: Holm-Bonferroni step-down adjustment (Holm 1979)" in md
    assert "The verdicts shown are after this correction." in md
    assert "TOST equivalence test" in md
    full["decision"]["correction"] = None
    assert "Multiplicity: no correction was applied" in render(full, "md")


def test_main_table_shows_adjusted_verdicts_tost_and_seeds(md):
    rows = _md_rows(md, "## Verdicts")
    # lowrank: superior before Holm, non-inferior after it
    assert rows["teacher-lowrank"][4] == "non-inferior"
    details = _md_rows(md, "## Verdicts", nth=1)  # the optional columns sit in the details table
    assert details["teacher-lowrank"][4:] == ["superior", "not shown (p 0.602)", "97.9% ± 0.1 (3 seeds)"]
    assert details["student-kd"][5] == "equivalent (p 0.046)"
    assert details["teacher"][4:6] == ["reference", "—"]
    header = md.split("**More columns**\n\n", 1)[1].splitlines()[0]
    assert header.endswith("| verdict before correction | TOST equivalence | accuracy, mean ± std over 3 seeds |")


def test_causal_lm_latency_per_token_column(full):
    from leanbench.report import _format as f

    profile = f.primary_profile(full)
    for cand in full["candidates"]:
        cand["describe"] = {**(cand.get("describe") or {}), "measure_tokens": 64}
    md = render(full, "md")
    title = f"p50 per token ({profile}, 64-token prompts)"
    header = md.split("**More columns**\n\n", 1)[1].splitlines()[0].split(" | ")
    col = [h.strip(" |") for h in header].index(title)
    rows = _md_rows(md, "## Verdicts", nth=1)
    for cand in full["candidates"]:
        p50 = f.p50_ms(cand, profile)
        assert rows[cand["name"]][col] == f.fmt_ms(p50 / 64)
    assert title in render(full, "html")


def test_no_per_token_column_without_measure_tokens(md):
    assert "per token" not in md


def test_verdict_grid_is_coloured_per_metric(md, page):
    grid = _md_rows(md, "## Verdicts per metric")
    assert list(grid) == NAMES
    assert grid["student-hard"][1:] == ["inferior", "inferior", "inferior", "inconclusive"]
    assert grid["student-kd"][1] == "non-inferior ≡"  # equivalent by TOST
    grid_html = page.split("<h2>Verdicts per metric</h2>", 1)[1].split("</table>", 1)[0]
    assert grid_html.count('<td class="verdict v-inferior">inferior</td>') == 3
    assert grid_html.count('<td class="verdict v-reference">reference</td>') == 4
    tests = _md_rows(md, "### Tests behind the accuracy verdicts")
    assert tests["teacher-lowrank"][3] == "0.004 → 0.105"  # superiority p, raw and Holm-adjusted


# ---------------------------------------------------------------------------------------------- seeds


def test_seed_spread_table_and_strip_plot(md, full):
    rows = _md_rows(md, "## Seed spread")
    assert rows["student-hard"][1:] == ["94.4% ± 0.8 (3 seeds)", "93.7%", "95.4%", "94.2, 95.4, 93.7"]
    fig = seed_figure(full)
    dots = [tr for tr in fig.data if not tr.name.endswith(" mean")]
    assert [tr.name for tr in dots] == NAMES
    seeds = full["candidates"][2]["seeds"]
    assert list(_trace(fig, "student-hard").y) == pytest.approx([v * 100 for v in seeds["values"]])
    assert _trace(fig, "student-hard mean").y[0] == pytest.approx(seeds["mean"] * 100)


def test_single_seed_shows_no_spread(full):
    for cand in full["candidates"]:
        cand["seeds"] = {**cand["seeds"], "n": 1, "values": cand["seeds"]["values"][:1], "std": None}
    md = render(full, "md")
    assert "## Seed spread" not in md and "mean ± std over" not in md


# ---------------------------------------------------------------------------------------------- robustness


def test_robustness_heatmap_has_candidates_by_perturbations(full):
    fig = robustness_figure(full)
    (heat,) = fig.data
    perts = full["robustness"]["perturbations"]
    assert list(heat.x) == perts and list(heat.y) == NAMES
    assert len(heat.z) == len(NAMES) and all(len(row) == len(perts) for row in heat.z)
    cell = full["robustness"]["candidates"]["student-hard"]["by_perturbation"]["shift:1"]
    assert heat.z[2][2] == pytest.approx(cell["metric"]["value"] * 100)
    assert heat.text[2][2] == "79.8%<br>−14.4 pt"  # value and drop vs clean
    assert heat.texttemplate == "%{text}"


def test_robustness_tables(md):
    per = _md_rows(md, "## Robustness under perturbations")
    assert per["teacher"][1:] == ["97.5%", "96.3% (−1.2 pt)", "94.0% (−3.5 pt)", "88.5% (−9.0 pt)",
                                  "91.5% (−6.0 pt)"]
    robust = _md_rows(md, "## Robustness under perturbations", nth=1)
    assert robust["student-hard"][1:] == ["79.8%", "86.3%", "−14.4 pt [−15.8, −13.2] (shift:1)", "−7.9 pt"]


# ---------------------------------------------------------------------------------------------- slices


def test_slices_table_flags_degradation(md, page):
    rows = _md_rows(md, "## Slices")
    assert rows["label:8"][:3] == ["label:8", "35", "95.5% [89.5, 97.5]"]
    assert rows["label:8"][4] == "⚑ −14.3 pt [−20.3, −9.3]"  # student-hard, flagged
    assert not rows["label:8"][3].startswith("⚑")
    assert "- student-hard on label:8 (n = 35): Δ −14.3 pt [−20.3, −9.3] vs −3.3 pt overall" in md
    assert page.count('<td class="flag">⚑') == 2


# ---------------------------------------------------------------------------------------------- integrity


def test_integrity_counts_decontaminated_duplicates_holdout(md):
    counts = _md_rows(md, "### Contamination")
    assert counts["train → test"][1:] == ["1.1k", "360", "2 (0.6%)", "0 (0.0%)", "5 (1.4%)", "5 (1.4%)"]
    assert counts["validation → test"][5] == "1 (0.3%)"
    decon = _md_rows(md, "### Full vs decontaminated")
    assert decon["student-kd"][1:] == ["97.8% [96.1, 99.2]", "97.7% [96.0, 99.2]", "−0.1 pt"]
    assert "accuracy, 355 clean (95% CI)" in md
    assert "- n conflicting groups: 1" in md and "- groups: 2 group(s)" in md
    assert "**Holdout reuse**" in md and "select on the validation split instead" in md


def test_integrity_settings_read_as_durations_and_short_numbers(full):
    methods = full["integrity"]["against"]["train"]["methods"]
    methods["exact"].update(params={"normalize_seconds": 0.11964720300056797}, seconds=0.013)
    methods["near_duplicate"]["params"] = {"threshold": 0.8, "num_perm": 128, "shingle": "word"}
    md = render(full, "md")
    assert "train, exact: normalize_seconds = 0.12 s (0.013 s)" in md
    assert "near_duplicate: threshold = 0.8, num_perm = 128, shingle = word" in md and "0.1196" not in md


def test_integrity_example_texts_are_escaped(full):
    train = full["integrity"]["against"]["train"]
    train["examples"]["exact"][0].update(eval_text=EVIL, train_text=f"a & b {EVIL}")
    full["integrity"]["holdout"]["warnings"] = [EVIL]
    full["robustness"]["perturbations"][0] = EVIL
    full["slices"]["rows"][0]["slice"] = EVIL
    page = render(full, "html")
    assert EVIL not in page and "alert(1)</script>" not in page
    assert "<td class=\"text\">&lt;script&gt;alert(1)&lt;/script&gt;</td>" in page
    assert "a &amp; b &lt;script&gt;" in page
    md = render(full, "md")
    assert EVIL not in md and "&lt;script>alert(1)&lt;/script>" in md


# ---------------------------------------------------------------------------------------------- serving


def test_profile_tables_with_cis_and_slo_markers(md, page, full):
    edge = _md_rows(md, "### Profile 'edge': 1 thread(s), batch 1")
    assert edge["teacher"][1] == "0.061 ms [0.059, 0.063]"
    assert edge["teacher"][4] == "✓ p90 ≤ 0.070 ms"
    assert edge["teacher"][5] == "0.056 ms"  # reference-machine p50
    assert edge["teacher"][7] == "1.46 mJ (estimated)"
    assert [edge[n][4][0] for n in ("teacher", "teacher-int8", "teacher-pruned90")] == ["✓", "✗", "?"]
    server = _md_rows(md, "### Profile 'server': 2 thread(s), batch 256")
    assert server["teacher-int8"][3] == "2.69 ms [2.42, ?]"  # missing upper bound
    assert "Machine score on the reference micro-benchmark: 41.7 GFLOP/s" in md
    assert page.count('<td class="slo-miss">✗ p90 ≤ 0.070 ms</td>') == 1  # teacher-int8 on edge
    assert page.count('<td class="slo-unsure">?') == 2  # pruned90 on edge, int8 on server
    fig = latency_profile_figure(full, "edge")
    assert [tr.name for tr in fig.data] == ["p50", "p90", "p99"]
    assert [s.y0 for s in fig.layout.shapes] == [0.07]  # the SLO line


# ---------------------------------------------------------------------------------------------- cost


def test_cost_by_phase_stacks_to_the_build_cost(full):
    fig = phase_figure(full)
    assert fig.layout.barmode == "stack"
    for i, cand in enumerate(full["candidates"]):
        total = sum(tr.y[i] for tr in fig.data)
        assert total == pytest.approx(cand["cost"]["build_usd"], rel=1e-6)
    assert {tr.name for tr in fig.data} >= {"sweep", "distill", "teacher logits", "train"}


def test_break_even_lines_cross_at_the_fixture_break_even(full):
    fig = break_even_figure(full)
    assert fig.layout.xaxis.type == "log"
    ref = _trace(fig, "teacher (reference)")
    assert ref.line.width == 4
    crossed = 0
    for cand in full["candidates"][1:]:
        q = cand["cost"]["break_even"]["queries"]
        if not q:
            continue
        line = _trace(fig, cand["name"])
        i = list(line.x).index(q)
        assert list(ref.x)[i] == q
        assert line.y[i] == pytest.approx(ref.y[i], rel=1e-9)
        # independent: b_c + s_c q == b_r + s_r q from the fixture's own numbers
        c, r = cand["cost"], full["candidates"][0]["cost"]
        by_hand = c["build_usd"] + c["serve_usd_per_million"]["value"] / 1e6 * q
        assert by_hand == pytest.approx(r["build_usd"] + r["serve_usd_per_million"]["value"] / 1e6 * q, rel=1e-9)
        assert line.y[i] == pytest.approx(by_hand, rel=1e-9)
        crossed += 1
    assert crossed == 4
    marks = _trace(fig, "break-even")
    assert len(marks.x) == 4
    assert min(ref.x) <= 1e3 and max(ref.x) >= 1e10


def test_tco_table_and_sweep(md):
    tco = _md_rows(md, "### Total cost of ownership")
    assert tco["student-kd"][4] == "after 5.14 million queries"
    assert tco["student-hard"][4] == "cheaper from the first query"
    assert tco["teacher-int8"][4:] == ["never cheaper", "✗ edge, ? server"]
    assert tco["teacher"][3] == "$0.058 [$0.056, $0.061]"
    assert "1,000,000 queries/day over 365 days (365 million queries)" in md
    sweep = _md_rows(md, "### Hyper-parameter search")
    assert sweep["student-kd"][1:6] == ["12", "21.6 s", "$0.000622", "lr = 0.0031, temperature = 4", "0.9805"]
    build = _md_rows(md, "## Cost of building and serving")
    assert build["teacher"][4] == "45.3 mWh (estimated)"
    assert "Energy: estimated: cpu-power model" in md.split("## Cost of building and serving", 1)[1]


def test_ledger_and_reconciliation(md, full):
    rows = _md_rows(md, "## Where the time went")
    assert list(rows)[0] == "sweep" and rows["sweep"][1:3] == ["21.6 s", "29.9%"]
    assert "gap −2.1%: reconciles (within 5%)." in md
    full["cost"]["reconcile"].update(ok=False, gap_rel=0.12)
    assert "gap +12.0%: does NOT reconcile" in render(full, "md")


def test_units():
    assert fmt_usd(1234.5) == "$1,234" and fmt_usd(12.345) == "$12.35" and fmt_usd(0.0581) == "$0.058"
    assert fmt_usd(0.000196) == "$0.000196" and fmt_usd(1.96e-05) == "$1.96e-05"
    assert fmt_usd(None) == "—" and fmt_usd(-2) == "−$2.00"
    assert fmt_queries(315819.8) == "315,820" and fmt_queries(5.1356e6) == "5.14 million"
    assert fmt_queries(3.65e9) == "3.65 billion"


# ---------------------------------------------------------------------------------------------- omission


@pytest.mark.parametrize("key", sorted(SECTION_HEADINGS))
@pytest.mark.parametrize("how", ["null", "missing"])
def test_top_level_sections_are_omitted(full, key, how):
    if how == "null":
        full[key] = None
    else:
        del full[key]
    md = render(full, "md")
    assert SECTION_HEADINGS[key] not in md
    assert "## Verdicts" in md and "teacher-lowrank" in md


@pytest.mark.parametrize("key", sorted(CANDIDATE_HEADINGS))
def test_candidate_sections_are_omitted(full, key):
    for i, cand in enumerate(full["candidates"]):
        if i % 2:
            del cand[key]
        else:
            cand[key] = None
    md = render(full, "md")
    if CANDIDATE_HEADINGS[key]:
        assert CANDIDATE_HEADINGS[key] not in md
    for name in NAMES:
        assert name in md


def test_cost_and_tco_nulls(full):
    full["tco"] = None
    for cand in full["candidates"]:
        cand["cost"] = {"build_seconds": 1.0, "build_seconds_own": 1.0, "build_flops": None}
    md = render(full, "md")
    assert "## Cost of building and serving" not in md and "### Total cost of ownership" not in md
    full["candidates"][2]["cost"] = None
    full["candidates"][3]["profiles"] = None
    full["candidates"][4]["latency"] = {"edge": {"p50_ms": 0.06}}
    assert "## Serving by deployment profile" in render(full, "md")


def test_html_with_every_new_key_null(full):
    for key in ("robustness", "slices", "integrity", "tco", "cost"):
        full[key] = None
    for cand in full["candidates"]:
        cand.update(seeds=None, comparisons=None, profiles=None, cost=None)
        for lat in cand["latency"].values():
            for k in [k for k in lat if k.endswith("_ci") or k == "normalised_ms"]:
                del lat[k]
        if isinstance(cand["vs_reference"], dict):
            for k in [k for k in cand["vs_reference"] if k not in ("metric", "diff", "ci_low", "ci_high",
                                                                  "p_value", "margin", "verdict")]:
                del cand["vs_reference"][k]
    full["decision"] = {k: v for k, v in full["decision"].items() if k not in ("correction", "test", "seeds")}
    page = render(full, "html")
    assert page.count("Plotly.newPlot(") == 3  # only the forest and the two trade-off plots
    assert "Multiplicity" not in page and "Robustness" not in page and "Integrity" not in page


def test_old_fixture_has_no_new_sections():
    md = render(json.loads(OLD.read_text()), "md")
    for heading in ["Verdicts per metric", "Seed spread", "Robustness", "Slices", "Integrity", "Serving by",
                    "Cost of building", "Where the time went", "Multiplicity"]:
        assert heading not in md
    minimal = copy.deepcopy({"study": "x", "reference": "a", "candidates": [], "robustness": {},
                             "slices": {"rows": []}, "integrity": {}, "cost": {"by_phase": {}}})
    assert "Robustness" not in render(minimal, "md")


def _knock_out(obj, rng, rate: float):
    """A copy with random values (leaves and whole sub-trees) replaced by None, or keys dropped."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            r = rng.random()
            if r < rate / 2:
                continue  # key missing
            out[k] = None if r < rate else _knock_out(v, rng, rate)
        return out
    if isinstance(obj, list):
        return [None if rng.random() < rate / 2 else _knock_out(v, rng, rate) for v in obj]
    return obj


@pytest.mark.parametrize("seed", range(12))
def test_sections_survive_random_missing_values(full, seed):
    """Old stores and disabled features leave any part missing or null: nothing may crash."""
    import random

    rng = random.Random(seed)
    broken = {k: (_knock_out(v, rng, 0.15) if k not in ("candidates",) else v) for k, v in full.items()}
    broken["candidates"] = [_knock_out(c, rng, 0.15) for c in full["candidates"]]
    for c in broken["candidates"]:
        c.setdefault("name", "x")
    md = render(broken, "md")
    assert md.startswith("# leanbench report")
    for build in (seed_figure, robustness_figure, phase_figure, break_even_figure,
                  lambda r: latency_profile_figure(r, "edge")):
        build(broken)


# ---------------------------------------------------------------------------------------------- real run


def test_results_of_a_real_run_render():
    """results_iris_bill.json: analyse() on the integration 'bill' study (iris, a sweep, two profiles, no
    robustness): tabular contamination methods, SLO percentile given as a fraction, auto batch per candidate,
    holdout warnings already in the notes."""
    real = json.loads((FIXTURES / "results_iris_bill.json").read_text())
    md = render(real, "md")
    assert "| training split → evaluated | n train | n eval | exact rows | any |" in md
    assert "✓ p90 ≤ 50.0 ms" in md and "p0.9" not in md
    assert "### Profile 'server': 2 thread(s), batch 1 / 2 thread(s), batch 16" in md
    assert "Holdout reuse: see the warnings at the top of the report." in md
    assert "## Robustness" not in md and "## Where the time went" in md
    page = render(real, "html")
    assert 'id="lb-break-even"' in page and 'id="lb-robustness"' not in page
    assert json.loads(render(real, "json")) == real


def test_markdown_of_the_full_fixture_does_not_import_plotly():
    import subprocess
    import sys

    code = (
        "import json, sys; from leanbench.report import render; "
        f"r = json.load(open({str(FULL)!r})); render(r, 'md'); render(r, 'json'); "
        "print(any(m.split('.')[0] == 'plotly' for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
