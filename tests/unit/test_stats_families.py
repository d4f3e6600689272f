"""Verdict families: the decision metric is the primary family (Holm across candidates, it gives the verdict),
the other metrics a secondary family (their own Holm, never changing a verdict); adjusted p-values against
statsmodels; why an inconclusive verdict is one; the user's case (a candidate clearly worse than the margin on
accuracy, read "inconclusive" when Holm ran over every candidate x metric)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from leanbench.analysis.common import Loaded
from leanbench.analysis.core import apply_correction, comparisons, inconclusive_notes, verdict_families
from leanbench.analysis.stored import Predictions
from leanbench.stats.multiplicity import (
    BECAUSE_MULTIPLICITY,
    BECAUSE_POWER,
    BECAUSE_STRADDLES,
    PRIMARY,
    SECONDARY,
    VERDICT_FAMILIES,
    apply_holm_by_family,
    apply_holm_to_verdicts,
    comparison_p_values,
    inconclusive_reason,
)
from leanbench.study_loader import parse_study

METRICS = ["accuracy", "macro_f1", "nll", "ece"]


# ---------------------------------------------------------------------------------------------- Holm by family


@pytest.mark.parametrize("seed", range(3))
def test_holm_by_family_matches_statsmodels_within_each_family(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 25))
    rows = [{"p_noninferiority": float(a), "p_superiority": float(b), "p_inferiority": float(c), "family": fam}
            for a, b, c, fam in zip(rng.uniform(0, 0.2, n) ** 2, rng.uniform(0, 1, n), rng.uniform(0, 0.1, n),
                                    rng.choice([PRIMARY, SECONDARY], n), strict=True)]
    out = apply_holm_by_family(rows, 0.05)
    for fam in (PRIMARY, SECONDARY):
        members = [i for i, r in enumerate(rows) if r["family"] == fam]
        if not members:
            continue
        for kind in VERDICT_FAMILIES:
            raw = [rows[i][kind] for i in members]
            reject, adjusted, _, _ = multipletests(raw, alpha=0.025, method="holm")  # level alpha / 2
            np.testing.assert_allclose([out[i][f"{kind}_adjusted"] for i in members], adjusted, rtol=1e-12,
                                       atol=1e-15)
            assert [out[i][f"{kind}_adjusted"] <= 0.025 for i in members] == list(reject)
        assert all(out[i]["family_size"] == len(members) and out[i]["family"] == fam for i in members)
    assert [r["family"] for r in out] == [r["family"] for r in rows]  # input order kept


def test_a_family_is_adjusted_apart_from_the_other():
    primary = {"p_noninferiority": 0.9, "p_superiority": 0.99, "p_inferiority": 0.02, "family": PRIMARY}
    noise = {"p_noninferiority": 0.5, "p_superiority": 0.5, "p_inferiority": 0.5, "family": SECONDARY}
    alone = apply_holm_by_family([primary, noise, noise, noise], 0.05)
    assert alone[0]["p_inferiority_adjusted"] == pytest.approx(0.02)  # one comparison in its family: unchanged
    assert alone[0]["verdict_adjusted"] == "inferior"
    together = apply_holm_to_verdicts([primary, noise, noise, noise], 0.05)  # the old single family
    assert together[0]["p_inferiority_adjusted"] == pytest.approx(0.08)
    assert together[0]["verdict_adjusted"] == "inconclusive"


@pytest.mark.parametrize(("verdict", "unadjusted", "low", "high", "margin", "expected"), [
    ("inferior", "inferior", -0.04, -0.011, 0.01, None),
    ("inconclusive", "inferior", -0.040, -0.011, 0.01, BECAUSE_MULTIPLICITY),
    ("inconclusive", "non-inferior", -0.006, 0.015, 0.01, BECAUSE_MULTIPLICITY),
    ("inconclusive", "inconclusive", -0.030, 0.010, 0.01, BECAUSE_POWER),  # 4 pt wide against a 1-pt margin
    ("inconclusive", "inconclusive", -0.016, -0.004, 0.01, BECAUSE_STRADDLES),  # 1.2 pt wide, around -1 pt
    ("inconclusive", "inconclusive", -0.002, 0.003, 0.0, BECAUSE_STRADDLES),  # no margin: never "power"
])
def test_inconclusive_reason(verdict, unadjusted, low, high, margin, expected):
    assert inconclusive_reason(verdict, unadjusted, low, high, margin) == expected


# ---------------------------------------------------------------------------------------------- the user's case


def _loaded(correction: str = "holm", good: int = 0) -> Loaded:
    """One reference and 'tfidf', 2.7 points worse on 1,000 paired examples (42 examples only the reference
    gets right, 15 only tfidf: 95% CI about [-4.2, -1.2] points, as the user's -2.5 [-4.0, -1.1]), against a
    1-point margin, four metrics; plus `good` candidates exactly as accurate as the reference."""
    n = 1000
    rng = np.random.default_rng(7)
    gold = rng.integers(0, 2, n)
    ref_ok = np.ones(n, bool)
    ref_ok[800 + 42 + 15:] = False  # 143 both wrong
    cand_ok = ref_ok.copy()
    cand_ok[800:842] = False  # only the reference right
    ref_ok[842:857], cand_ok[842:857] = False, True  # only tfidf right

    def scores(ok: np.ndarray) -> np.ndarray:
        conf = rng.uniform(0.6, 0.95, n)
        top = np.where(ok, gold, 1 - gold)
        out = np.empty((n, 2))
        out[np.arange(n), top], out[np.arange(n), 1 - top] = conf, 1 - conf
        return out

    def run(ok: np.ndarray) -> list[Predictions]:
        s = scores(ok)
        return [Predictions(ids=np.arange(n).astype(str), gold=gold, pred=s.argmax(1), scores=s)]

    study = parse_study({
        "name": "users-case", "task": {"data": "sklearn:digits"}, "reference": "ref",
        "candidates": [{"name": "ref", "model": {"arch": "mlp"}, "steps": ["train"]},
                       {"name": "tfidf", "model": {"arch": "mlp"}, "steps": ["train"]},
                       *({"name": f"good{i}", "model": {"arch": "mlp"}, "steps": ["train"]} for i in range(good))],
        "evaluate": {"metrics": METRICS, "bootstrap": 2000},
        "decision": {"metric": "accuracy", "margin": 0.01, "alpha": 0.05, "correction": correction}})
    preds = {"ref": run(ref_ok), "tfidf": run(cand_ok), **{f"good{i}": run(ref_ok) for i in range(good)}}
    return Loaded(store=None, name="users-case", info=SimpleNamespace(study=study), rows=[], seeds=[0],
                  preds=preds)


def _compared(loaded: Loaded) -> dict:
    return {name: comparisons(loaded, name) for name in loaded.preds if name != "ref"}


def test_the_users_case_is_inferior_on_the_primary_family():
    loaded = _loaded()
    compared = _compared(loaded)
    acc = compared["tfidf"]["accuracy"]
    assert acc.diff == pytest.approx(-0.027)
    assert acc.ci_low == pytest.approx(-0.042, abs=0.003) and acc.ci_high == pytest.approx(-0.012, abs=0.002)
    assert acc.ci_high < -0.01 - 0.001 and acc.verdict_unadjusted == "inferior"  # clearly beyond the margin
    flat = [row for rows in compared.values() for row in rows.values()]
    # before: one Holm family over every candidate x metric (4 comparisons) -> inconclusive
    before = apply_holm_to_verdicts([{k: getattr(r, k) for k in VERDICT_FAMILIES} for r in flat], 0.05)
    assert before[METRICS.index("accuracy")]["verdict_adjusted"] == "inconclusive"
    # now: accuracy alone is the primary family -> inferior; the secondary metrics do not touch it
    text = apply_correction(loaded, compared)
    assert acc.verdict == "inferior" and acc.family == PRIMARY and acc.family_size == 1
    assert acc.inconclusive_because is None
    assert acc.p_inferiority_adjusted == pytest.approx(acc.p_inferiority)  # a family of one: unadjusted
    assert {compared["tfidf"][m].family for m in METRICS[1:]} == {SECONDARY}
    assert all(compared["tfidf"][m].family_size == 3 for m in METRICS[1:])
    assert "primary: 1 comparison on accuracy; secondary: 3 on macro_f1, nll, ece" in text
    families = verdict_families(loaded, compared)
    assert families[PRIMARY].to_dict() == {"metrics": ["accuracy"], "comparisons": 1, "decides": True}
    assert families[SECONDARY].to_dict() == {"metrics": METRICS[1:], "comparisons": 3, "decides": False}
    assert not any("tfidf" in n for n in inconclusive_notes(loaded, compared, None))


def test_secondary_verdicts_never_change_the_verdict():
    loaded = _loaded()
    compared = _compared(loaded)
    apply_correction(loaded, compared)
    verdict = compared["tfidf"]["accuracy"].verdict
    for row in compared["tfidf"].values():  # the secondary family's p-values made as strong as can be
        if row.metric != "accuracy":
            row.p_noninferiority, row.p_superiority, row.p_inferiority = 1e-6, 1e-6, 1.0
    apply_correction(loaded, compared)
    assert compared["tfidf"]["accuracy"].verdict == verdict
    assert {compared["tfidf"][m].verdict for m in METRICS[1:]} == {"superior"}


def test_still_inconclusive_among_many_candidates_and_the_note_says_it_is_the_correction():
    """With four more candidates in the primary family Holm holds tfidf back: the note and the JSON say it is
    the multiplicity correction, not the test set."""
    loaded = _loaded(good=4)
    compared = _compared(loaded)
    apply_correction(loaded, compared)
    acc = compared["tfidf"]["accuracy"]
    assert acc.family_size == 5 and acc.verdict == "inconclusive" and acc.verdict_unadjusted == "inferior"
    assert acc.inconclusive_because == BECAUSE_MULTIPLICITY
    assert acc.to_dict()["inconclusive_because"] == "multiplicity"
    for metric, size in (("accuracy", 5), ("nll", 15)):  # each family against statsmodels' Holm
        family = [rows[m] for rows in compared.values() for m in rows if (m == "accuracy") == (metric == "accuracy")]
        assert len(family) == size and all(r.family_size == size for r in family)
        for kind in VERDICT_FAMILIES:
            _, adjusted, _, _ = multipletests([getattr(r, kind) for r in family], alpha=0.025, method="holm")
            np.testing.assert_allclose([getattr(r, f"{kind}_adjusted") for r in family], adjusted, rtol=1e-12)
    notes = inconclusive_notes(loaded, compared, None)
    assert len(notes) == 1 and notes[0].startswith("Inconclusive because of the multiplicity correction, not "
                                                   "because of the test set: 'tfidf' (inferior before it")
    assert "Holm across the 5 candidates compared on accuracy" in notes[0]
    assert "too small" not in notes[0]


def test_correction_none_keeps_working():
    loaded = _loaded(correction="none", good=4)
    compared = _compared(loaded)
    assert apply_correction(loaded, compared) is None
    acc = compared["tfidf"]["accuracy"]
    assert acc.verdict == acc.verdict_unadjusted == "inferior" and acc.family == PRIMARY
    assert acc.p_inferiority_adjusted is None and acc.correction is None
    assert "p_inferiority_adjusted" not in acc.to_dict() and acc.to_dict()["family"] == "primary"


def test_power_and_straddle_reasons_in_the_notes():
    loaded = _loaded()
    compared = _compared(loaded)
    apply_correction(loaded, compared)
    acc = compared["tfidf"]["accuracy"]
    acc.verdict, acc.verdict_unadjusted = "inconclusive", "inconclusive"
    acc.ci_low, acc.ci_high, acc.inconclusive_because = -0.04, 0.01, BECAUSE_POWER
    power = SimpleNamespace(n=1000, minimum_detectable_margin=0.022, required_n=4321)
    notes = inconclusive_notes(loaded, compared, power)
    assert notes[0].startswith("Inconclusive because the test set is too small for the margin: 'tfidf' "
                               "(-2.7 points [-4.0, +1.0])")
    assert "1000 test examples resolve about 2.2 points; about 4,321 would be needed" in notes[0]
    acc.ci_low, acc.ci_high, acc.inconclusive_because = -0.015, -0.005, BECAUSE_STRADDLES
    notes = inconclusive_notes(loaded, compared, power)
    assert notes[0].startswith("Inconclusive because the CI straddles the margin: 'tfidf'")


def test_comparison_p_values_feed_the_families_unchanged():
    d = np.random.default_rng(3).normal(-0.025, 0.0074, 1999)
    p = comparison_p_values(d, 0.01)
    out = apply_holm_by_family([{**p, "family": PRIMARY}], 0.05)[0]
    assert out["verdict_adjusted"] == "inferior" and out["family_size"] == 1
