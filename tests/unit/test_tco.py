"""The bill: ledger pricing, build cost closure, reconciliation; TCO, break-even and SLO, checked by hand."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leanbench.cost.ledger import (
    LedgerEntry,
    build_cost,
    by_candidate,
    by_phase,
    candidate_deps,
    check_phase,
    closure,
    price,
    reconcile,
    totals,
)
from leanbench.cost.tco import (
    Interval,
    break_even,
    break_even_queries,
    cents,
    cost_at,
    energy_per_query,
    serve_usd_per_million,
    slo_check,
    tco,
)
from leanbench.errors import LeanbenchError


# --------------------------------------------------------------------------- ledger
def e(phase: str, candidate: str | None, seconds: float, joules: float | None = None, **kw) -> LedgerEntry:
    return LedgerEntry(phase=phase, candidate=candidate, seconds=seconds, cpu_seconds=seconds, joules=joules,
                       energy_method="estimated: test" if joules is not None else None,
                       energy_uncertainty=0.5 if joules is not None else None, **kw)


def test_price_by_hand():
    # 1800 s at $2/h = $1.00; 360,000 J = 0.1 kWh at $0.30/kWh = $0.03; CO2 0.1 kWh * 0.5 kg/kWh = 0.05 kg
    (priced,) = price([e("build:train", "t", 1800.0, 360_000.0)], usd_per_hour=2.0, usd_per_kwh=0.30,
                      co2_kg_per_kwh=0.5)
    assert cents(priced.usd) == 1.03
    assert priced.co2_kg == pytest.approx(0.05)
    (no_energy,) = price([e("data", None, 36.0)], 2.0, 0.30, 0.5)
    assert no_energy.usd == pytest.approx(0.02) and no_energy.co2_kg is None
    with pytest.raises(LeanbenchError, match="cost.usd_per_kwh: must be a finite number >= 0, got -1"):
        price([], 1.0, -1, 0.0)


def test_phases_are_checked():
    assert check_phase("build:distill") == "build:distill"
    for ok in ("data", "plan", "sweep:trial", "teacher-logits", "calibration", "evaluate",
               "evaluate:perturbed", "integrity", "measure", "measure:edge", "analysis", "report",
               "overhead"):
        check_phase(ok)
    with pytest.raises(LeanbenchError, match="unknown phase 'build:'"):
        check_phase("build:")
    with pytest.raises(LeanbenchError, match="unknown phase 'training'"):
        LedgerEntry(phase="training")
    # rows as the store holds them (extra columns ignored) become entries
    row = {"id": 3, "run_id": 1, "study": "s", "cell_key": "k", "created_at": "now", "phase": "build:train",
           "candidate": "t", "seconds": 2.0, "cpu_seconds": 1.5, "flops": None}
    assert LedgerEntry.from_row(row) == LedgerEntry("build:train", "t", 2.0, 1.5)
    assert LedgerEntry.from_row(LedgerEntry("measure", "t", 1.0, joules=5.0).to_row()).joules == 5.0


STUDY = [
    {"name": "teacher", "steps": [{"train": {}}]},
    {"name": "teacher-int8", "from": "teacher", "steps": [{"quantize": {}}]},
    {"name": "student", "steps": [{"distill": {"teacher": "teacher"}}]},
    # derived from teacher-int8 (itself from teacher) AND distilled from teacher: two paths to teacher
    {"name": "combo", "from": "teacher-int8", "steps": [{"distill": {"teacher": "teacher"}}]},
]
LEDGER = [
    e("data", None, 5.0),
    e("build:train", "teacher", 100.0, 1000.0),
    e("teacher-logits", "teacher", 10.0, 100.0),
    e("evaluate", "teacher", 3.0, 30.0),
    e("build:quantize", "teacher-int8", 2.0, 20.0),
    e("calibration", "teacher-int8", 1.0, 10.0),
    e("build:distill", "student", 20.0, 200.0),
    e("build:distill", "combo", 30.0, None),
    e("sweep:trial", "combo", 7.0, 70.0, trial=0, kept=False),
    e("sweep:trial", "combo", 8.0, 80.0, trial=1, kept=True),
]


def test_candidate_deps_from_config():
    assert candidate_deps(STUDY) == {"teacher": [], "teacher-int8": ["teacher"], "student": ["teacher"],
                                     "combo": ["teacher-int8", "teacher"]}


def test_build_cost_counts_a_shared_teacher_once():
    deps = candidate_deps(STUDY)
    assert sorted(closure("combo", deps)) == ["combo", "teacher", "teacher-int8"]
    cost = build_cost("combo", deps, LEDGER)
    # combo own 30 + 7 + 8; teacher-int8 2 + 1; teacher 100 + 10 (once, though reachable twice);
    # no data, no evaluate
    assert cost["seconds"] == pytest.approx(30 + 7 + 8 + 2 + 1 + 100 + 10)
    assert cost["own"]["seconds"] == pytest.approx(45.0)
    assert cost["joules"] == pytest.approx(70 + 80 + 20 + 10 + 1000 + 100)  # combo's distill has no energy
    assert cost["energy_unknown"] == 1
    assert cost["joules_low"] == pytest.approx(0.5 * cost["joules"])
    assert set(cost["by_phase"]) == {"build:distill", "sweep:trial", "build:quantize", "calibration",
                                     "build:train", "teacher-logits"}
    assert build_cost("student", deps, LEDGER)["seconds"] == pytest.approx(20 + 100 + 10)
    assert build_cost("teacher", deps, LEDGER)["seconds"] == pytest.approx(110)


def test_closure_survives_a_cycle():
    assert sorted(closure("a", {"a": ["b"], "b": ["a"]})) == ["a", "b"]


def test_by_phase_and_by_candidate_add_up():
    assert sum(v["seconds"] for v in by_phase(LEDGER).values()) == pytest.approx(totals(LEDGER)["seconds"])
    groups = by_candidate(LEDGER)
    assert groups["(study)"]["seconds"] == 5.0
    assert groups["combo"]["entries"] == 3
    assert totals(LEDGER)["energy_method"] == "estimated: test"


def test_reconcile_flags_a_ten_percent_gap():
    entries = [e("data", None, 40.0), e("evaluate", "a", 50.0)]
    bad = reconcile(entries, measured_wall=100.0)
    assert bad["total"] == 90.0 and bad["gap"] == pytest.approx(10.0)
    assert bad["gap_rel"] == pytest.approx(0.10) and not bad["ok"]
    good = reconcile(entries + [e("measure", "a", 7.0)], measured_wall=100.0)
    assert good["gap_rel"] == pytest.approx(0.03) and good["ok"]
    over = reconcile(entries + [e("measure", "a", 20.0)], measured_wall=100.0)
    assert over["gap_rel"] == pytest.approx(-0.10) and not over["ok"]  # double counting is flagged too


# --------------------------------------------------------------------------- TCO by hand
FIXTURE = dict(queries_per_day=100_000, horizon_days=30,
               throughput_per_s={"value": 50.0, "low": 40.0, "high": 60.0},
               hardware_usd_per_hour=0.90, energy_kwh_per_query=2e-6, energy_uncertainty_rel=0.10,
               usd_per_kwh=0.20, co2_kg_per_kwh=0.4, build_usd=12.5, build_kwh=0.5)


def test_tco_by_hand_to_the_cent():
    r = tco(**FIXTURE)
    # queries = 100,000/day * 30 days = 3,000,000
    assert r["queries"] == 3_000_000
    # busy hours = 3,000,000 / 50 per s / 3600 = 16.667 h; hardware = 16.667 h * $0.90 = $15.00
    assert r["busy_hours"]["value"] == pytest.approx(3_000_000 / 50 / 3600)
    assert cents(r["hardware_usd"]["value"]) == 15.00
    # energy = 3,000,000 * 2e-6 kWh = 6 kWh; at $0.20/kWh = $1.20; serving = 15.00 + 1.20 = $16.20
    assert r["serve_kwh"]["value"] == pytest.approx(6.0)
    assert cents(r["serve_usd"]["value"]) == 16.20
    # TCO = build 12.50 + serving 16.20 = $28.70; per million queries 16.20 / 3 = $5.40
    assert cents(r["tco_usd"]["value"]) == 28.70
    assert cents(r["serve_usd_per_million"]["value"]) == 5.40
    # CO2 = (build 0.5 + serve 6) kWh * 0.4 kg/kWh = 2.6 kg
    assert r["co2_kg"]["value"] == pytest.approx(2.6)
    # low: throughput 60/s -> 13.889 h * 0.90 = $12.50; energy 5.4 kWh -> $1.08; serving $13.58; TCO $26.08
    assert cents(r["serve_usd"]["low"]) == 13.58 and cents(r["tco_usd"]["low"]) == 26.08
    # high: throughput 40/s -> 20.833 h * 0.90 = $18.75; energy 6.6 kWh -> $1.32; serving $20.07; TCO $32.57
    assert cents(r["serve_usd"]["high"]) == 20.07 and cents(r["tco_usd"]["high"]) == 32.57
    assert r["keeps_up"]  # 100,000/day = 1.16/s, far below 40/s
    assert cents(serve_usd_per_million(50.0, 0.90, 2e-6, 0.20)) == 5.40


def test_energy_per_query_from_a_measured_window():
    # 72 J over 10,000 queries = 7.2e-3 J = 2e-9 kWh per query, +/-50 %
    iv = energy_per_query(72.0, 10_000, 0.5)
    assert iv.value == pytest.approx(2e-9) and (iv.low, iv.high) == (pytest.approx(1e-9), pytest.approx(3e-9))
    with pytest.raises(LeanbenchError, match="queries must be an integer >= 1"):
        energy_per_query(1.0, 0)


def test_utilisation_scales_the_hardware_bill():
    half = tco(**{**FIXTURE, "energy_uncertainty_rel": 0.0}, utilisation=0.5)
    # paid hours double: hardware $30.00, energy unchanged $1.20
    assert cents(half["hardware_usd"]["value"]) == 30.00 and cents(half["serve_usd"]["value"]) == 31.20


def test_tco_is_monotone():
    base = tco(**FIXTURE)["tco_usd"]["value"]
    assert tco(**{**FIXTURE, "queries_per_day": 200_000})["tco_usd"]["value"] > base
    faster = {"value": 55.0, "low": 40.0, "high": 60.0}
    assert tco(**{**FIXTURE, "throughput_per_s": faster})["tco_usd"]["value"] < base
    assert tco(**{**FIXTURE, "energy_kwh_per_query": 3e-6})["tco_usd"]["value"] > base
    assert tco(**{**FIXTURE, "build_usd": 20.0})["tco_usd"]["value"] == pytest.approx(base + 7.5)


@settings(max_examples=60, deadline=None)
@given(qpd=st.floats(0, 1e8), days=st.floats(0, 3650), thr=st.floats(0.01, 1e5), spread=st.floats(0, 0.9),
       price_h=st.floats(0, 100), kwh=st.floats(0, 1e-3), u=st.floats(0, 0.9))
def test_intervals_contain_the_point_value(qpd, days, thr, spread, price_h, kwh, u):
    r = tco(queries_per_day=qpd, horizon_days=days, hardware_usd_per_hour=price_h,
            throughput_per_s=(thr, thr * (1 - spread), thr * (1 + spread)), energy_kwh_per_query=kwh,
            energy_uncertainty_rel=u, usd_per_kwh=0.25, co2_kg_per_kwh=0.3, build_usd=(5.0, 4.0, 7.0))
    for key in ("busy_hours", "serve_usd", "serve_kwh", "tco_usd", "co2_kg", "serve_usd_per_million"):
        assert r[key]["low"] <= r[key]["value"] <= r[key]["high"], key


def test_tco_rejects_bad_input():
    with pytest.raises(LeanbenchError, match="throughput_per_s: must be > 0"):
        tco(**{**FIXTURE, "throughput_per_s": 0.0})
    with pytest.raises(LeanbenchError, match="low <= value <= high"):
        Interval(1.0, 2.0, 3.0)
    with pytest.raises(LeanbenchError, match="utilisation"):
        tco(**FIXTURE, utilisation=0)


# --------------------------------------------------------------------------- break-even
def test_break_even_by_hand():
    # candidate: teacher 100 + distillation 12.50 = $112.50 to build; serves 50/s on a $0.90/h machine:
    #   0.90 / (50 * 3600) = $5.0e-6 per query + 2e-6 kWh * $0.20 = $4.0e-7  ->  $5.4e-6 per query
    # reference: $100 to build; serves 10/s: 0.90 / 36,000 = $2.5e-5 + 1e-5 kWh * 0.20 = $2.0e-6 -> $2.7e-5
    # break-even Q = (112.50 - 100) / (2.7e-5 - 5.4e-6) = 12.5 / 2.16e-5 = 578,703.7 queries
    cand = tco(**{**FIXTURE, "build_usd": 112.5, "energy_uncertainty_rel": 0.0,
                  "throughput_per_s": 50.0})
    ref = tco(**{**FIXTURE, "build_usd": 100.0, "energy_uncertainty_rel": 0.0, "throughput_per_s": 10.0,
                 "energy_kwh_per_query": 1e-5})
    assert cand["serve_usd_per_query"]["value"] == pytest.approx(5.4e-6)
    assert ref["serve_usd_per_query"]["value"] == pytest.approx(2.7e-5)
    be = break_even_queries(cand, ref)
    assert be["status"] == "after"
    assert round(be["queries"], 1) == 578_703.7
    assert be["low"] == be["queries"] == be["high"]  # no uncertainty given
    q = be["queries"]
    c = cost_at(q, 112.5, cand["serve_usd_per_query"]["value"])
    # at Q both cost the same: 112.50 + 578,703.7 * 5.4e-6 = 112.50 + 3.125 = 115.625
    #                        = 100.00 + 578,703.7 * 2.7e-5 = 100.00 + 15.625
    assert c == pytest.approx(115.625)
    assert cost_at(q, 100.0, ref["serve_usd_per_query"]["value"]) == pytest.approx(115.625)


def test_break_even_interval_brackets_the_point():
    cand = {"build_usd": 112.5, "serve_usd_per_query": {"value": 5.4e-6, "low": 4.0e-6, "high": 7.0e-6}}
    ref = {"build_usd": 100.0, "serve_usd_per_query": {"value": 2.7e-5, "low": 2.5e-5, "high": 3.0e-5}}
    be = break_even_queries(cand, ref)
    # best case 12.5 / (3.0e-5 - 4.0e-6) = 480,769; worst 12.5 / (2.5e-5 - 7.0e-6) = 694,444
    assert be["low"] == pytest.approx(12.5 / 2.6e-5) and be["high"] == pytest.approx(12.5 / 1.8e-5)
    assert be["low"] < be["queries"] < be["high"]


@pytest.mark.parametrize(("build_c", "serve_c", "status", "queries"), [
    (120.0, 3e-5, "never", None),  # dearer to build and to serve
    (120.0, 2.7e-5, "never", None),  # dearer to build, same serving cost: nothing to pay it back
    (80.0, 1e-5, "immediately", 0.0),  # cheaper to build and to serve
    (100.0, 1e-5, "immediately", 0.0),  # same build, cheaper to serve
    (80.0, 3.7e-5, "until", 2_000_000.0),  # cheaper to build, dearer to serve: (80-100)/(2.7e-5-3.7e-5)
    (100.0, 2.7e-5, "equal", None),
])
def test_break_even_cases(build_c, serve_c, status, queries):
    be = break_even(build_c, serve_c, 100.0, 2.7e-5)
    assert be["status"] == status
    assert be["queries"] == (None if queries is None else pytest.approx(queries))


def test_break_even_may_never_happen_within_the_bounds():
    cand = {"build_usd": 112.5, "serve_usd_per_query": {"value": 2.0e-5, "low": 1.0e-5, "high": 3.0e-5}}
    ref = {"build_usd": 100.0, "serve_usd_per_query": 2.7e-5}
    be = break_even_queries(cand, ref)
    assert be["status"] == "after" and be["high"] is None and "never" in be["status_range"]


# --------------------------------------------------------------------------- SLO
@pytest.mark.parametrize(("latency", "meets", "status"), [
    ({"value": 7.0, "ci_low": 5.0, "ci_high": 9.0}, True, "meets"),
    ({"value": 12.0, "ci_low": 11.0, "ci_high": 13.0}, False, "misses"),
    ({"value": 9.5, "ci_low": 8.0, "ci_high": 12.0}, None, "uncertain"),
    ({"value": 9.5, "ci_low": 8.0, "ci_high": None}, None, "uncertain"),  # unbounded CI: cannot show it met
    ({"value": 10.0, "ci_low": 10.0, "ci_high": 10.0}, True, "meets"),  # at the SLO counts as meeting it
    (8.0, True, "meets"),
])
def test_slo_check(latency, meets, status):
    r = slo_check(latency, slo_ms=10.0)
    assert r["meets"] is meets and r["status"] == status
    assert math.isclose(r["headroom_ms"], 10.0 - (latency["value"] if isinstance(latency, dict) else latency))
