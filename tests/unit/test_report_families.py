"""The report on verdict families (the decision metric decides, the other metrics are a secondary family) and
on why a verdict is inconclusive; the speed-up over the parent and over the runtime control beside the one over
the reference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leanbench.analysis.results import StudyResults
from leanbench.report import render

FULL = Path(__file__).parent / "fixtures" / "results_digits_full.json"


@pytest.fixture
def full() -> dict:
    """The full digits fixture as the analysis now writes it: families in the decision block, each comparison's
    family, and a reason on the inconclusive verdicts."""
    data = json.loads(FULL.read_text())
    data["decision"]["families"] = {
        "primary": {"metrics": ["accuracy"], "comparisons": 6, "decides": True},
        "secondary": {"metrics": ["macro_f1", "nll", "ece"], "comparisons": 18, "decides": False}}
    reasons = {"teacher-int8": "power", "teacher-pruned90": "ci_straddles_margin", "teacher-structured": "multiplicity"}
    for cand in data["candidates"]:
        for metric, row in (cand.get("comparisons") or {}).items():
            row["family"] = "primary" if metric == "accuracy" else "secondary"
            row["family_size"] = 6 if metric == "accuracy" else 18
        if cand["name"] in reasons:
            cand["vs_reference"]["inconclusive_because"] = reasons[cand["name"]]
    return data


def _section(md: str, heading: str) -> str:
    return md.split(f"{heading}\n", 1)[1].split("\n#", 1)[0]


def _header(section: str) -> str:
    return next(line for line in section.splitlines() if line.startswith("| "))


def test_legend_says_which_family_decides(full):
    md = render(full, "md")
    legend = _section(md, "## Verdicts")
    assert ("The verdict is decided on accuracy alone (the primary family, Holm-adjusted across the 6 candidates). "
            "The other metrics (macro_f1, nll, ece) are a secondary family, Holm-adjusted on their own across 18 "
            "comparisons: they are shown under 'Verdicts per metric' and never change a verdict.") in legend
    assert "The notes say why each inconclusive verdict is one" in legend
    assert "Latency is the median of timed runs. Every candidate" in legend
    full["decision"]["correction"] = None
    assert "(the primary family, not adjusted for multiplicity)" in render(full, "md")


def test_grid_note_and_the_reasons_column(full):
    md = render(full, "md")
    grid = _section(md, "## Verdicts per metric")
    assert ("The accuracy column is the verdict (the primary family, Holm-adjusted across 6 candidates); the other "
            "columns are the secondary family, Holm-adjusted on their own across 18 comparisons, for information: "
            "they never change a verdict") in grid
    tests = _section(md, "### Tests behind the accuracy verdicts")
    header = _header(tests)
    assert header.endswith("| TOST | why inconclusive |")
    rows = {line.split(" | ")[0].strip("| "): line for line in tests.splitlines() if line.startswith("| teacher-")}
    assert rows["teacher-int8"].endswith("| test set too small for the margin |")
    assert rows["teacher-pruned90"].endswith("| CI straddles the margin |")
    assert rows["teacher-structured"].endswith("| multiplicity correction |")
    assert rows["teacher-lowrank"].endswith("| — |")
    assert "why inconclusive" in render(full, "html")


def test_results_from_before_the_families_render_as_before():
    md = render(json.loads(FULL.read_text()), "md")
    assert "Each cell is the verdict on that metric after the multiplicity correction; ≡" in md
    assert "primary family" not in md and "why inconclusive" not in md


def test_new_keys_read_back_exactly(full):
    typed = StudyResults.from_dict(full)
    assert json.dumps(typed.to_dict()) == json.dumps(full)
    vs = typed.candidate("teacher-int8").vs_reference
    assert vs.inconclusive_because == "power" and typed.decision.families["primary"].decides
    assert typed.candidate("teacher-int8").comparison("nll").family == "secondary"


# ---------------------------------------------------------------------------------------------- speed-up sources


def _speedup(value: float, low: float, high: float, baseline: str | None = None) -> dict:
    out = {"value": value, "ci_low": low, "ci_high": high, "rounds": 20, "disturbed_rounds": 0,
           "faster": low > 1.05, "slower": high < 1 / 1.05, "confidence": 0.95, "min_effect": 0.05, "method": "m"}
    return {**out, "baseline": baseline} if baseline else out


def _lineage() -> dict:
    """teacher -> teacher-ort (ONNX fp32, the runtime control) and teacher-int8-ort (ONNX int8 from the hf
    teacher); teacher -> teacher-pruned -> teacher-pruned-int8."""
    edge = {"p50_ms": 1.0, "threads": 1, "batch": 1}

    def cand(name, parent, ref, vs_parent=None, control=None, vs_control=None):
        c = {"name": name, "from": parent, "latency": {"edge": edge}, "speedup": {"edge": ref}}
        if vs_parent is not None:
            c["speedup_vs_parent"] = {"edge": vs_parent}
        if control is not None:
            c["runtime_control"], c["speedup_vs_control"] = control, {"edge": vs_control}
        return c

    return {"study": "lineage", "reference": "teacher", "candidates": [
        cand("teacher", None, _speedup(1.0, 1.0, 1.0)),
        cand("teacher-ort", "teacher", _speedup(1.34, 1.30, 1.39), _speedup(1.34, 1.30, 1.39, "teacher")),
        cand("teacher-int8-ort", "teacher", _speedup(3.46, 3.30, 3.60), _speedup(3.46, 3.30, 3.60, "teacher"),
             "teacher-ort", _speedup(2.58, 2.49, 2.66, "teacher-ort")),
        cand("teacher-pruned", "teacher", _speedup(1.79, 1.69, 1.95), _speedup(1.79, 1.69, 1.95, "teacher")),
        cand("teacher-pruned-int8", "teacher-pruned", _speedup(0.77, 0.74, 0.80),
             _speedup(0.43, 0.40, 0.44, "teacher-pruned")),
    ]}


def test_speedup_sources_beside_the_reference_speedup():
    md = render(_lineage(), "md")
    table = _section(md, "### Where the speed-up comes from")
    lines = table.splitlines()
    assert _header(table) == ("| candidate | vs reference (95% CI) | parent | vs parent | runtime control | "
                        "runtime: control vs its parent | vs runtime control |")
    rows = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith("| teacher")}
    assert set(rows) == {"teacher-int8-ort", "teacher-pruned-int8"}  # a parent that is the reference adds nothing
    assert rows["teacher-int8-ort"] == ("| teacher-int8-ort | 3.46× [3.30, 3.60] | teacher | 3.46× [3.30, 3.60] | "
                                        "teacher-ort | 1.34× [1.30, 1.39] | 2.58× [2.49, 2.66] |")
    assert rows["teacher-pruned-int8"] == ("| teacher-pruned-int8 | 0.77× [0.74, 0.80] | teacher-pruned | "
                                           "0.43× [0.40, 0.44] | — | — | — |")
    assert ("teacher-int8-ort: 3.46× vs the reference, of which 1.34× is the runtime (teacher-ort vs teacher) and "
            "2.58× the rest of its build (vs teacher-ort).") in table
    page = render(_lineage(), "html")
    assert "<h3>Where the speed-up comes from</h3>" in page and "of which 1.34× is the runtime" in page
    assert page.index("Where the speed-up comes from") < page.index("<h2>Difference vs reference</h2>")


def test_no_control_no_control_columns_and_no_lineage_no_section():
    data = _lineage()
    data["candidates"] = [c for c in data["candidates"] if "ort" not in c["name"]]
    table = _section(render(data, "md"), "### Where the speed-up comes from")
    assert "runtime control" not in _header(table)
    assert "| teacher-pruned-int8 | 0.77× [0.74, 0.80] | teacher-pruned | 0.43× [0.40, 0.44] |" in table
    assert "Where the speed-up comes from" not in render(json.loads(FULL.read_text()), "md")


def test_several_profiles_get_a_profile_column():
    data = _lineage()
    for c in data["candidates"]:
        for key in ("latency", "speedup", "speedup_vs_parent", "speedup_vs_control"):
            if key in c:
                c[key]["server"] = c[key]["edge"]
    table = _section(render(data, "md"), "### Where the speed-up comes from")
    assert _header(table).startswith("| candidate | profile | vs reference")
    assert sum(line.startswith("| teacher-int8-ort |") for line in table.splitlines()) == 2


@pytest.mark.parametrize("seed", range(8))
def test_new_parts_survive_random_missing_values(full, seed):
    """Old stores leave any part missing or null: the family sentences and the speed-up table never crash."""
    import random

    rng = random.Random(seed)
    for data in (full, _lineage()):
        broken = {k: (_knock_out(v, rng, 0.2) if k != "candidates" else v) for k, v in data.items()}
        broken["candidates"] = [_knock_out(c, rng, 0.2) for c in data["candidates"]]
        for c in broken["candidates"]:
            c.setdefault("name", "x")
        assert render(broken, "md").startswith("# leanbench report")


def _knock_out(obj, rng, rate: float):
    """A copy with random values (leaves and whole sub-trees) replaced by None, or keys dropped."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            r = rng.random()
            if r < rate / 2:
                continue
            out[k] = None if r < rate else _knock_out(v, rng, rate)
        return out
    if isinstance(obj, list):
        return [None if rng.random() < rate / 2 else _knock_out(v, rng, rate) for v in obj]
    return obj
