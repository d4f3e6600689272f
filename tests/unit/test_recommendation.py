"""The recommendation (analysis/recommendation.py): what to ship under the study's constraints, or why nothing
qualifies and what to do next, from typed results built here case by case, the digits fixtures, and a real
(tiny) run through `analyse`."""

from __future__ import annotations

import json
from pathlib import Path

from leanbench.analysis import recommendation as rec_mod
from leanbench.analysis.recommendation import Constraint, Recommendation, TaskCheck, constraints_of, recommend
from leanbench.analysis.results import (
    CandidateCost,
    CandidateResult,
    Comparison,
    DecisionInfo,
    Interval,
    Latency,
    MetricInfo,
    MetricValue,
    Power,
    ProfileResult,
    Serving,
    Slo,
    StudyResults,
)

FIXTURES = Path(__file__).parent / "fixtures"
EDGE = Constraint(profile="edge", slo_ms=1.0, slo_percentile=0.9)


def cand(name: str, verdict: str | None = "non-inferior", diff: float = 0.002, lo: float = -0.004,
         hi: float = 0.008, because: str | None = None, tco: float | None = None, p50: float | None = None,
         p90: float | None = None, p90_ci: tuple[float, float] | None = None, peak: int | None = None,
         size: int | None = None) -> CandidateResult:
    """A candidate as `analyse` writes one: its comparison on accuracy, its edge profile (latency at p90 against
    the 1 ms SLO, peak memory), its TCO."""
    c = CandidateResult(name=name, size_bytes=size, metrics={"accuracy": MetricValue(value=0.95)})
    if verdict == "reference":
        c.vs_reference = Comparison.for_reference("accuracy", 0.01)
    elif verdict is not None:
        c.vs_reference = Comparison(metric="accuracy", diff=diff, ci_low=lo, ci_high=hi, margin=0.01,
                                    verdict=verdict, inconclusive_because=because)
    if p50 is not None:
        c.latency = {"edge": Latency(p50_ms=p50, p90_ms=p90)}
    if p90 is not None:
        low, high = p90_ci or (p90 * 0.95, p90 * 1.05)
        meets = True if high <= 1.0 else False if low > 1.0 else None
        c.profiles = {"edge": ProfileResult(peak_memory_bytes=peak, slo=Slo(
            meets=meets, slo_ms=1.0, latency_ms=p90, ci_low=low, ci_high=high, percentile=0.9))}
    if tco is not None:
        c.cost = CandidateCost(serving=Serving(tco_usd=Interval(value=tco, low=tco * 0.9, high=tco * 1.1)))
    return c


def results(*cands: CandidateResult, power: Power | None = None) -> StudyResults:
    return StudyResults(study="s", reference="ref",
                        decision=DecisionInfo(metric="accuracy", margin=0.01, alpha=0.05, higher_is_better=True),
                        metrics_info={"accuracy": MetricInfo(higher_is_better=True, unit="fraction")},
                        power=power, candidates=list(cands))


def ref(**kw) -> CandidateResult:
    return cand("ref", "reference", **{"tco": 0.06, "p50": 0.5, "p90": 0.6, "size": 1_000_000, **kw})


# ---------------------------------------------------------------------------------------------- ship


def test_the_cheapest_qualifying_candidate_is_recommended():
    r = results(ref(), cand("a", tco=0.02, p50=0.2, p90=0.3), cand("b", "superior", diff=0.02, lo=0.012, hi=0.03,
                                                                   tco=0.01, p50=0.3, p90=0.4),
                cand("c", "inferior", diff=-0.05, lo=-0.08, hi=-0.02, tco=0.001, p50=0.1, p90=0.15))
    rec = recommend(r, [EDGE])
    assert (rec.status, rec.choice, rec.ship) == ("ship", "b", ["b", "a"])
    assert rec.why.startswith("Ship 'b': superior on accuracy (+2.0 pt [+1.2, +3.0], margin 1.0 pt), meets the "
                              "p90 SLO on 'edge' (0.4 ms ≤ 1 ms); the lowest total cost of ownership of the 2 that "
                              "qualify ($0.01 vs $0.02 for 'a', the reference $0.06)")
    assert rec.check("c").blockers == ["inferior"] and not rec.check("c").qualifies  # cheapest, but inferior
    assert rec.why_not is None and rec.next_steps is None


def test_without_tco_the_fastest_then_the_smallest_wins():
    r = results(ref(tco=None), cand("a", p50=0.3, p90=0.4, size=10), cand("b", p50=0.2, p90=0.3, size=20))
    rec = recommend(r, [EDGE])
    assert rec.choice == "b" and "the lowest p50 latency of the 2 that qualify (0.2 ms vs 0.3 ms for 'a'" in rec.why
    r = results(ref(tco=None, p50=None, p90=None), cand("a", size=30_000), cand("b", size=20_000))
    rec = recommend(r, [])
    assert rec.choice == "b" and "the lowest size of the 2 that qualify (0.02 MB vs 0.03 MB for 'a'" in rec.why


def test_the_reference_is_kept_when_it_is_cheaper_than_every_qualifying_candidate():
    r = results(ref(tco=0.01), cand("a", tco=0.05, p50=0.2, p90=0.3))
    rec = recommend(r, [EDGE])
    assert (rec.status, rec.choice, rec.ship) == ("keep-reference", "ref", ["a"])
    assert rec.why == ("Keep the reference 'ref': 'a' qualifies, but its total cost of ownership is lower ($0.01 vs "
                       "$0.05 for 'a').")


# ---------------------------------------------------------------------------------------------- why not


def test_underpowered_says_the_n_needed_and_what_to_do():
    power = Power(n=360, minimum_detectable_margin=0.025, required_n=2100, underpowered=True)
    r = results(ref(), cand("a", "inconclusive", diff=-0.003, lo=-0.028, hi=0.022, because="power", tco=0.01,
                            p50=0.2, p90=0.3), power=power)
    rec = recommend(r, [EDGE])
    assert (rec.status, rec.choice, rec.ship) == ("keep-reference", "ref", [])
    assert rec.check("a").blockers == ["underpowered"]
    assert rec.why_not == ["Too few test examples for the margin (underpowered): 'a' inconclusive because the test "
                           "set is too small to resolve it: 360 examples resolve about 2.5 pt, wider than the margin "
                           "of 1.0 pt; about 2,100 examples are needed ('a' (−0.3 pt [−2.8, +2.2]))."]
    assert rec.next_steps[0].startswith("Evaluate on more examples: about 2,100 (now 360)")
    assert "accept a margin of about 2.5 pt" in rec.next_steps[0]


def test_inferior_and_the_other_inconclusive_reasons():
    r = results(ref(), cand("inf", "inferior", diff=-0.05, lo=-0.08, hi=-0.02),
                cand("mult", "inconclusive", diff=-0.001, lo=-0.006, hi=0.004, because="multiplicity"),
                cand("near", "inconclusive", diff=-0.01, lo=-0.014, hi=-0.006, because="ci_straddles_margin"))
    rec = recommend(r, [])
    assert rec.status == "keep-reference"
    assert rec.why_not == [
        "Inferior on accuracy: 'inf' (−5.0 pt [−8.0, −2.0]).",
        "Inconclusive after the multiplicity correction: 'mult' (−0.1 pt [−0.6, +0.4]).",
        "Inconclusive, the CI straddles the margin: 'near' (−1.0 pt [−1.4, −0.6]).",
    ]
    steps = " ".join(rec.next_steps)
    assert "Compress less" in steps and "`evaluate.bootstrap`" in steps and "A larger test set" in steps


def test_slo_missed_by_how_much_and_uncertain():
    r = results(ref(), cand("slow", p50=1.1, p90=1.3, p90_ci=(1.2, 1.4)),
                cand("edgy", p50=0.8, p90=0.98, p90_ci=(0.9, 1.05)))
    rec = recommend(r, [EDGE])
    assert rec.status == "keep-reference"
    assert rec.check("slow").blockers == ["slo_missed"] and rec.check("edgy").blockers == ["slo_uncertain"]
    assert ("Latency SLO missed: 'slow' (p90 1.3 ms on 'edge', over the 1 ms SLO by 0.3 ms)." in rec.why_not)
    assert ("Latency SLO not shown met (its CI straddles it): 'edgy' (p90 0.98 ms [0.9 ms, 1.05 ms] on 'edge' "
            "against 1 ms)." in rec.why_not)
    steps = " ".join(rec.next_steps)
    assert "Make it faster for profile 'edge'" in steps and "`measure.rounds`" in steps


def test_memory_cap_exceeded_with_its_value():
    cap = Constraint(profile="edge", memory_cap_mb=0.5)
    r = results(ref(peak=400_000), cand("big", p50=0.2, p90=0.3, peak=800_000), cand("ok", p50=0.3, p90=0.4,
                                                                                    peak=300_000, tco=0.01))
    rec = recommend(r, [cap])
    assert rec.check("big").blockers == ["memory_cap"] and rec.check("ok").qualifies
    assert rec.choice == "ok" and "meets the memory cap on 'edge'" in rec.why
    failing = recommend(results(ref(peak=400_000), cand("big", p50=0.2, p90=0.3, peak=800_000)), [cap])
    assert failing.why_not == ["Memory cap exceeded: 'big' (peak 0.8 MB on 'edge', over the 0.5 MB cap by 0.3 MB)."]
    assert any("raise its `memory_cap_mb`" in s for s in failing.next_steps)


def test_nothing_qualifies_when_the_reference_misses_the_constraints_too():
    r = results(ref(p50=2.0, p90=2.5), cand("a", "inferior", diff=-0.05, lo=-0.08, hi=-0.02, p50=1.5, p90=2.0))
    rec = recommend(r, [EDGE])
    assert (rec.status, rec.choice) == ("none", None)
    assert rec.why.startswith("No model qualifies: no candidate passes the rule, and the reference does not meet "
                              "the deployment constraints either (Latency SLO missed: 'ref' (p90 2.5 ms")
    assert rec.check("a").blockers == ["inferior", "slo_missed"]


def test_a_candidate_without_a_measurement_or_an_evaluation_does_not_qualify():
    r = results(ref(), cand("unmeasured"), cand("unevaluated", verdict=None, p50=0.1, p90=0.2))
    rec = recommend(r, [EDGE])
    assert rec.check("unmeasured").blockers == ["not_measured"]
    assert rec.check("unevaluated").blockers == ["not_evaluated"]
    assert any("`leanbench run STUDY.yaml` resumes it" in s for s in rec.next_steps)
    nothing = recommend(results(ref(), cand("x", verdict=None)), [EDGE])
    assert nothing.status == "none" and nothing.why.startswith("Nothing to recommend yet")
    assert recommend(StudyResults(), []).why == "No candidate in the results: nothing to recommend."


def test_a_candidate_must_pass_on_every_task(monkeypatch):
    """With several tasks (one place decides them: `task_checks`), one task short of the margin is enough to fail."""
    r = results(ref(), cand("a", p50=0.2, p90=0.3))
    assert recommend(r, [EDGE]).choice == "a"

    def two_tasks(results, c):
        return [TaskCheck(task="sst2", metric="accuracy", verdict="non-inferior", diff=0.0, ci_low=-0.005,
                          ci_high=0.005, margin=0.01),
                TaskCheck(task="imdb", metric="accuracy", verdict="inferior", diff=-0.04, ci_low=-0.06,
                          ci_high=-0.02, margin=0.01)]

    monkeypatch.setattr(rec_mod, "task_checks", two_tasks)
    rec = recommend(r, [EDGE])
    assert rec.status == "keep-reference" and rec.check("a").blockers == ["inferior"]


# ---------------------------------------------------------------------------------------------- records


def test_round_trips_through_the_results_json():
    r = results(ref(), cand("a", tco=0.02, p50=0.2, p90=0.3))
    r.recommendation = recommend(r, [EDGE])
    data = json.loads(json.dumps(r.to_dict()))
    assert data["recommendation"]["choice"] == "a" and data["recommendation"]["status"] == "ship"
    back = StudyResults.from_dict(data)
    assert isinstance(back.recommendation, Recommendation) and back.recommendation == r.recommendation
    assert "recommendation" not in results(ref()).to_dict()  # results written before it: no key


def test_constraints_are_read_off_results_without_a_recommendation():
    raw = json.loads((FIXTURES / "results_digits_full.json").read_text())
    typed = StudyResults.from_dict(raw)
    rec = recommend(typed)
    assert [(c.profile, c.slo_ms, c.slo_percentile) for c in rec.constraints] == [("edge", 0.07, 0.9),
                                                                                   ("server", 5.0, 0.99)]
    assert rec.constraints[0].memory_cap and rec.constraints[0].memory_cap_mb is None  # set, value not recorded
    assert rec.check("student-kd").profiles[0].memory == "fits"
    assert (rec.status, rec.choice, rec.ship) == ("ship", "student-kd", ["student-kd", "teacher-lowrank"])
    assert rec.check("teacher-int8").blockers == ["underpowered", "slo_missed", "not_measured"]
    old = recommend(StudyResults.from_dict(json.loads((FIXTURES / "results_digits.json").read_text())))
    assert old.constraints == [] and old.choice == "student-kd"  # no SLO recorded: the latency decides


def test_constraints_of_a_study():
    from leanbench.study_loader import load_study

    study = load_study(Path(__file__).parents[2] / "studies" / "digits.yaml")
    assert constraints_of(study) == [Constraint(profile="edge", slo_ms=1.0, slo_percentile=0.9, memory_cap_mb=None)]


def test_analyse_attaches_the_recommendation(tmp_path):
    """A real run: the analysis hangs the recommendation on the results, with the study's memory cap."""
    from leanbench.analysis import analyse
    from leanbench.runner.local import run_study
    from leanbench.store import Store
    from leanbench.study_loader import parse_study

    study = {
        "name": "rec", "seed": 0, "task": {"data": "sklearn:iris"}, "reference": "big",
        "candidates": [
            {"name": "big", "model": {"arch": "mlp", "hidden": [64]}, "steps": [{"train": {"epochs": 5}}]},
            {"name": "big-int8", "from": "big", "steps": ["quantize"]},
        ],
        "evaluate": {"bootstrap": 100, "perturbations": "none"},
        "measure": {"runs": 12, "warmup": 1, "rounds": 6, "throughput_runs": 3},
        "deploy": {"profiles": [{"name": "edge", "threads": 1, "batch": 1, "slo_ms": 1000, "memory_cap_mb": 0.001}],
                   "auto_batches": [1]},
    }
    store = Store.open(tmp_path / "lb.db")
    run_study(parse_study(study), store)
    results = analyse(store, "rec")
    rec = results.recommendation
    assert rec is not None and rec.constraints == [Constraint(profile="edge", slo_ms=1000, slo_percentile=0.9,
                                                              memory_cap_mb=0.001)]
    assert rec.status == "none"  # 1 kB: no model fits, not even the reference
    assert "memory_cap" in rec.check("big").blockers and "over the 0.001 MB cap" in rec.why
    assert results.to_dict()["recommendation"]["status"] == "none"
    # the CLI writes it at the top of the report, here with plotly.js from the CDN
    from typer.testing import CliRunner

    from leanbench.cli import app

    out = tmp_path / "rec.html"
    res = CliRunner().invoke(app, ["report", "--store", str(tmp_path / "lb.db"), "--study", "rec", "-o", str(out),
                                   "--plotly", "cdn"])
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert len(page.encode()) < 1_000_000 and 'src="https://cdn.plot.ly/plotly-' in page
    assert page.index('<div class="box box-none"><p class="box-title">No model qualifies yet</p>') < page.index(
        "<h2>Verdicts</h2>")


def test_a_figure_only_some_have_does_not_rank():
    """A candidate whose cost was not priced is ranked on what every contender has, not put last."""
    r = results(ref(), cand("a", p50=0.2, p90=0.3))  # the reference has a TCO, the candidate none
    rec = recommend(r, [EDGE])
    assert rec.choice == "a" and "(p50 latency 0.2 ms vs the reference 0.5 ms)" in rec.why
    bare = recommend(results(ref(tco=None, p50=None, p90=None, size=None), cand("a")), [])
    assert bare.choice == "a" and bare.why.endswith("; the only candidate that qualifies.")
