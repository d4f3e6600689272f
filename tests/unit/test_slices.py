"""Slices: builders, the per-slice comparison and its slice-specific degradation test."""

from __future__ import annotations

import numpy as np
import pytest

from leanbench.errors import LeanbenchError
from leanbench.evaluate.metrics import get_metric, paired_metric_diff
from leanbench.evaluate.slices import (
    MIN_SLICE_N,
    Slice,
    keyword_slices,
    label_slices,
    length_slices,
    paired_resampled_diffs,
    regex_slices,
    slice_report,
)
from leanbench.stats.bootstrap import percentile_ci
from leanbench.stats.multiplicity import apply_holm

TEXTS = np.array(["Not bad at all", "nothing to see", "it does n't work", "never again , no", "a fine film",
                  "NOT   GOOD", "notable"], dtype=object)


# ---------------------------------------------------------------- builders
def test_label_slices():
    y = np.array([0, 1, 1, 2, 1])
    sl = label_slices(y, ["neg", "pos", "neutral", "unused"])
    assert [s.name for s in sl] == ["label=neg", "label=pos", "label=neutral"]
    assert [s.n for s in sl] == [1, 3, 1]
    np.testing.assert_array_equal(sl[1].mask, y == 1)


def test_length_slices_partition_by_word_count_quantiles():
    X = np.array([" ".join(["w"] * k) for k in range(1, 41)], dtype=object)
    sl = length_slices(X, 4)
    assert len(sl) == 4 and all(s.kind == "length" for s in sl)
    total = np.sum([s.mask for s in sl], axis=0)
    np.testing.assert_array_equal(total, np.ones(40))  # a partition
    assert [s.n for s in sl] == [10, 10, 10, 10]
    assert sl[0].name == "length 1-10 words" and sl[-1].name == "length 31-40 words"


def test_length_slices_with_ties_and_non_text():
    X = np.array(["a b"] * 30 + ["a b c d e f"] * 10, dtype=object)
    sl = length_slices(X, 4)
    assert [s.name for s in sl] == ["length 2 words", "length 6 words"]
    assert length_slices(np.zeros((5, 3), dtype=np.float32)) == []
    assert length_slices(np.zeros((5, 1, 8, 8), dtype=np.float32)) == []


def test_keyword_slices_whole_word_case_insensitive_and_phrases():
    sl = keyword_slices(TEXTS, {"negation": ["not", "n't", "never", "no"], "phrase": ["not good"]})
    np.testing.assert_array_equal(sl[0].mask, [True, False, True, True, False, True, False])
    np.testing.assert_array_equal(sl[1].mask, [False, False, False, False, False, True, False])
    with pytest.raises(LeanbenchError, match="expected a non-empty list of words"):
        keyword_slices(TEXTS, {"neg": "not"})
    with pytest.raises(LeanbenchError, match="need text inputs"):
        keyword_slices(np.zeros((3, 2)), {"neg": ["not"]})


def test_regex_slices():
    sl = regex_slices(TEXTS, {"questionless": r"^[a-z]", "caps": r"(?i)^not\b"})
    np.testing.assert_array_equal(sl[0].mask, [False, True, True, True, True, False, True])
    np.testing.assert_array_equal(sl[1].mask, [True, False, False, False, False, True, False])
    with pytest.raises(LeanbenchError, match="regex slice 'bad': invalid regular expression"):
        regex_slices(TEXTS, {"bad": "(unclosed"})


# ---------------------------------------------------------------- slice_report
def _probs(y: np.ndarray, correct: np.ndarray, conf: float = 0.8) -> np.ndarray:
    n = y.size
    pred = np.where(correct, y, 1 - y)
    p = np.full((n, 2), 1.0 - conf)
    p[np.arange(n), pred] = conf
    return p


def _scenario(seed: int = 0, n: int = 1500):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    planted = rng.random(n) < 0.2
    ref_correct = rng.random(n) < 0.9
    cand_correct = ref_correct.copy()
    cand_correct[planted & (rng.random(n) < 0.2)] = False  # the candidate loses ~18 points on the slice only
    other = rng.random(n) < 0.3
    return y, _probs(y, cand_correct), _probs(y, ref_correct), planted, other


def test_planted_slice_degradation_is_flagged_and_others_are_not():
    y, pc, pr, planted, other = _scenario()
    slices = [Slice("planted", planted), Slice("other", other), *label_slices(y, ["neg", "pos"]),
              Slice("tiny", np.arange(y.size) < 5)]
    rows = {r["slice"]: r for r in slice_report(y, pc, pr, slices, "accuracy", margin=0.02, n_resamples=500,
                                                seed=1)}
    assert rows["planted"]["flagged"] and rows["planted"]["p_adjusted"] < 0.025
    assert not rows["other"]["flagged"] and not rows["label=neg"]["flagged"]
    tiny = rows["tiny"]
    assert tiny["n"] == 5 < MIN_SLICE_N and tiny["p_value"] is None and not tiny["flagged"]
    assert "not tested" in tiny["note"] and tiny["candidate"] is not None  # shown with its CI
    # point values are the plain metric on the slice
    acc = get_metric("accuracy")
    r = rows["planted"]
    assert r["candidate"]["value"] == pytest.approx(acc(y[planted], pc[planted]))
    assert r["diff"]["value"] == pytest.approx(acc(y[planted], pc[planted]) - acc(y[planted], pr[planted]))
    assert r["overall_diff"] == pytest.approx(acc(y, pc) - acc(y, pr))
    assert r["excess"]["value"] == pytest.approx(r["diff"]["value"] - r["overall_diff"])
    for row in rows.values():
        for key in ("candidate", "reference", "diff", "excess"):
            assert row[key]["ci_low"] <= row[key]["ci_high"]


def test_identical_models_have_no_difference_and_no_flag():
    y, pc, _, planted, other = _scenario(seed=2)
    slices = [Slice("a", planted), Slice("b", other)]
    rows = slice_report(y, pc, pc.copy(), slices, "macro_f1", n_resamples=200)
    for r in rows:
        assert r["diff"] == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}
        assert r["p_value"] == pytest.approx(1.0) and not r["flagged"]


def test_lower_is_better_metric_is_oriented():
    y, pc, pr, planted, _ = _scenario(seed=3)
    # nll: the candidate's wrong answers on the slice raise its loss there
    rows = slice_report(y, pc, pr, [Slice("planted", planted)], "nll", margin=0.0, n_resamples=300)
    r = rows[0]
    assert r["diff"]["value"] > 0  # raw nll difference: candidate worse = larger
    assert r["excess"]["value"] < 0  # oriented: negative = loses more on the slice
    assert r["flagged"]


def test_report_is_invariant_to_example_order_in_its_point_values():
    y, pc, pr, planted, _ = _scenario(seed=4, n=400)
    perm = np.random.default_rng(0).permutation(y.size)
    a = slice_report(y, pc, pr, [Slice("s", planted)], "accuracy", n_resamples=100)[0]
    b = slice_report(y[perm], pc[perm], pr[perm], [Slice("s", planted[perm])], "accuracy", n_resamples=100)[0]
    for key in ("candidate", "reference", "diff", "excess"):
        assert a[key]["value"] == pytest.approx(b[key]["value"])


def test_null_slices_are_rarely_flagged():
    rng = np.random.default_rng(7)
    n = 800
    y = rng.integers(0, 2, n)
    pc, pr = _probs(y, rng.random(n) < 0.85), _probs(y, rng.random(n) < 0.85)
    slices = [Slice(f"s{k}", rng.random(n) < 0.25) for k in range(12)]
    rows = slice_report(y, pc, pr, slices, "accuracy", margin=0.0, n_resamples=300, seed=3)
    assert sum(r["flagged"] for r in rows) <= 1
    raw = np.array([r["p_value"] for r in rows])
    assert np.all(np.array([r["p_adjusted"] for r in rows]) >= raw - 1e-12)


def test_holm_across_candidates_by_concatenating_rows():
    y, pc, pr, planted, other = _scenario(seed=5)
    slices = [Slice("planted", planted), Slice("other", other)]
    rows = [dict(r, candidate_name=c) for c, p in (("a", pc), ("b", pr.copy()))
            for r in slice_report(y, p, pr, slices, "accuracy", n_resamples=300)]
    adjusted = apply_holm(rows, 0.025, p_key="p_value", adjusted_key="p_adjusted", reject_key="flagged")
    assert len(adjusted) == 4
    assert [r["flagged"] for r in adjusted] == [True, False, False, False]


def test_empty_slice_and_bad_mask():
    y, pc, pr, _, _ = _scenario(n=100)
    rows = slice_report(y, pc, pr, [Slice("none", np.zeros(100, dtype=bool))], "accuracy", n_resamples=50)
    assert rows[0]["n"] == 0 and rows[0]["note"] == "empty slice" and not rows[0]["flagged"]
    with pytest.raises(ValueError, match="mask of shape"):
        slice_report(y, pc, pr, [Slice("bad", np.zeros(99, dtype=bool))], "accuracy", n_resamples=50)


def test_paired_resampled_diffs_match_paired_metric_diff():
    y, pc, pr, _, _ = _scenario(n=300)
    for name in ("accuracy", "ece"):
        value, diffs = paired_resampled_diffs(name, y, pc, pr, n_resamples=400, seed=9)
        ci = paired_metric_diff(name, y, pc, pr, n_resamples=400, seed=9)
        mine = percentile_ci(value, diffs, 0.95)
        assert (mine.value, mine.low, mine.high) == pytest.approx((ci.value, ci.low, ci.high))
