"""Multiplicity (Holm vs statsmodels, properties), bootstrap p-values, TOST (vs statsmodels ttost_paired),
two-level seed x example bootstrap (reduction, widening, coverage), seed summaries."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from leanbench.stats import bootstrap_ci, bootstrap_mean_ci, paired_bootstrap_diff, verdict
from leanbench.stats.equivalence import tost_bootstrap, tost_from_ci, tost_from_resamples, tost_paired
from leanbench.stats.hierarchical import (
    paired_seed_example_bootstrap,
    seed_example_bootstrap,
    seed_example_bootstrap_mean,
    seed_summary,
)
from leanbench.stats.multiplicity import (
    apply_holm,
    apply_holm_to_verdicts,
    comparison_p_values,
    holm,
    inferiority_p_bootstrap,
    noninferiority_p_bootstrap,
    superiority_p_bootstrap,
)

P_VALUES = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=30)


# ---------------------------------------------------------------- Holm
@settings(max_examples=15, deadline=None)  # multipletests costs ~0.1 s a call on this machine
@given(P_VALUES, st.sampled_from([0.01, 0.05, 0.1]))
def test_holm_matches_statsmodels(p, alpha):
    adjusted, reject = holm(p, alpha)
    sm_reject, sm_adjusted, _, _ = multipletests(p, alpha=alpha, method="holm")
    np.testing.assert_allclose(adjusted, sm_adjusted, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(reject, sm_reject)


@settings(max_examples=200, deadline=None)
@given(P_VALUES, st.sampled_from([0.01, 0.05, 0.1]))
def test_holm_properties(p, alpha):
    raw = np.asarray(p)
    adjusted, reject = holm(p, alpha)
    assert np.all(adjusted >= raw - 1e-15) and np.all(adjusted <= 1.0)  # adjusted p >= raw p
    assert reject.sum() <= (raw <= alpha).sum()  # never rejects more than unadjusted
    assert not np.any(reject & (raw > alpha))
    order = np.argsort(raw, kind="stable")  # monotone in the raw order
    assert np.all(np.diff(adjusted[order]) >= -1e-15)
    perm = np.random.default_rng(len(p)).permutation(len(p))  # invariant to the order of the family
    np.testing.assert_allclose(holm(raw[perm], alpha)[0], adjusted[perm])


def test_holm_hand_case_and_empty():
    adjusted, reject = holm([0.01, 0.04, 0.03, 0.005], 0.05)
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005=0.02, 3*0.01=0.03, 2*0.03=0.06, max(0.04, 0.06)=0.06
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_array_equal(reject, [True, False, False, True])
    assert holm([], 0.05)[0].size == 0


def test_apply_holm_skips_rows_without_p():
    rows = [{"p_value": 0.01}, {"p_value": None}, {"p_value": 0.02}]
    out = apply_holm(rows, 0.05)
    assert out[1]["p_adjusted"] is None and out[1]["reject"] is False
    assert out[0]["p_adjusted"] == pytest.approx(0.02) and out[2]["p_adjusted"] == pytest.approx(0.02)
    assert rows[0] == {"p_value": 0.01}  # inputs are not mutated
    json.dumps(out)


# ---------------------------------------------------------------- bootstrap p-values
def test_bootstrap_p_values_hand_case():
    d = np.array([-0.2, -0.1, 0.0, 0.1, 0.2])
    assert noninferiority_p_bootstrap(d, 0.05) == pytest.approx(3 / 6)  # 1 + #{d <= -0.05} = 1 + 2
    assert superiority_p_bootstrap(d) == pytest.approx(4 / 6)  # 1 + #{d <= 0} = 1 + 3
    assert inferiority_p_bootstrap(d, 0.05) == pytest.approx(4 / 6)  # 1 + #{d >= -0.05} = 1 + 3
    assert noninferiority_p_bootstrap(np.full(999, 0.5), 0.01) == pytest.approx(1 / 1000)
    with pytest.raises(ValueError, match="margin"):
        noninferiority_p_bootstrap(d, -0.1)
    with pytest.raises(ValueError, match="finite"):
        superiority_p_bootstrap(np.array([np.nan]))


def test_single_comparison_verdict_agrees_with_the_ci_verdict():
    rng = np.random.default_rng(0)
    checked = 0
    for k in range(60):
        d = rng.normal(rng.uniform(-0.05, 0.05), 0.015, size=1999)
        low, high = np.quantile(d, [0.025, 0.975])
        margin = 0.02
        if min(abs(low + margin), abs(high + margin), abs(low)) < 0.002:
            continue  # too close to a boundary for percentile-vs-count rounding to be comparable
        row = apply_holm_to_verdicts([{"name": f"c{k}", **comparison_p_values(d, margin)}], 0.05)[0]
        assert row["verdict_adjusted"] == verdict(low, high, margin), (low, high)
        checked += 1
    assert checked > 30


def test_holm_verdicts_are_never_stronger_than_unadjusted():
    rng = np.random.default_rng(1)
    rows = [{"name": f"c{k}", **comparison_p_values(rng.normal(mu, 0.01, 999), 0.01)}
            for k, mu in enumerate([0.003, -0.002, 0.05, -0.05, 0.0])]
    single = [apply_holm_to_verdicts([r], 0.05)[0]["verdict_adjusted"] for r in rows]
    family = [r["verdict_adjusted"] for r in apply_holm_to_verdicts(rows, 0.05)]
    strength = {"superior": 2, "non-inferior": 1, "inconclusive": 0, "inferior": 0}
    assert all(strength[f] <= strength[s] for f, s in zip(family, single, strict=True))
    out = apply_holm_to_verdicts(rows, 0.05)
    assert all(r["correction"] == "holm" and r["level"] == 0.025 for r in out)
    assert out[2]["verdict_adjusted"] == "superior" and out[3]["verdict_adjusted"] == "inferior"


# ---------------------------------------------------------------- TOST
@pytest.mark.parametrize(("shift", "margin"), [(0.0, 0.3), (0.1, 0.3), (0.25, 0.3), (-0.4, 0.3), (0.05, 0.1)])
def test_tost_paired_t_matches_statsmodels(shift, margin):
    rng = np.random.default_rng(11)
    a = rng.normal(0, 1, 120)
    b = a - shift + rng.normal(0, 0.5, 120)
    mine = tost_paired(a, b, margin, 0.05)
    p, lower, upper = ttost_paired(a, b, -margin, margin)
    assert mine.p_value == pytest.approx(p, rel=1e-9, abs=1e-14)
    assert mine.p_lower == pytest.approx(lower[1], rel=1e-9, abs=1e-14)
    assert mine.p_upper == pytest.approx(upper[1], rel=1e-9, abs=1e-14)
    assert mine.equivalent == (p <= 0.05)
    assert mine.equivalent == tost_from_ci(mine.ci_low, mine.ci_high, margin)  # CI duality


def test_tost_z_is_close_to_t_for_large_n_and_hand_cases():
    rng = np.random.default_rng(3)
    a = (rng.random(5000) < 0.9).astype(float)  # per-example correctness, accuracy
    b = a.copy()
    flip = rng.random(5000) < 0.04
    b[flip] = 1 - b[flip]
    t, z = tost_paired(a, b, 0.01, dist="t"), tost_paired(a, b, 0.01, dist="z")
    assert z.p_value == pytest.approx(t.p_value, abs=2e-3)
    same = tost_paired(np.ones(10), np.ones(10), 0.01)  # sd 0, difference 0: exactly equivalent
    assert same.equivalent and same.p_value == 0.0 and same.ci_low == same.ci_high == 0.0
    off = tost_paired(np.ones(10), np.zeros(10), 0.5)  # sd 0, difference 1 > margin
    assert not off.equivalent and off.p_value == 1.0
    assert tost_from_ci(-0.01, 0.02, 0.03) and not tost_from_ci(-0.04, 0.0, 0.03)
    with pytest.raises(ValueError, match="margin"):
        tost_paired(a, b, 0.0)


def test_tost_bootstrap_agrees_with_t_and_with_the_paired_bootstrap_ci():
    rng = np.random.default_rng(5)
    a = rng.normal(0, 1, 400)
    b = a - 0.02 + rng.normal(0, 0.3, 400)
    res = tost_bootstrap(lambda i: a[i].mean(), lambda i: b[i].mean(), 400, margin=0.05, alpha=0.05,
                         n_resamples=2000, seed=1)
    t = tost_paired(a, b, 0.05, 0.05)
    assert res.p_value == pytest.approx(t.p_value, abs=0.03)
    ci = paired_bootstrap_diff(lambda i: a[i].mean(), lambda i: b[i].mean(), 400, n_resamples=2000,
                               confidence=0.9, seed=1)
    assert (res.ci_low, res.ci_high, res.diff) == pytest.approx((ci.low, ci.high, ci.value))
    assert res.confidence == pytest.approx(0.9)
    from_resamples = tost_from_resamples(0.0, np.array([-0.2, 0.0, 0.2]), margin=0.1)
    assert from_resamples.p_lower == pytest.approx(2 / 4) and from_resamples.p_upper == pytest.approx(2 / 4)
    assert not from_resamples.equivalent
    assert set(res.as_dict()) >= {"equivalent", "ci_low", "ci_high", "p_value"}


# ---------------------------------------------------------------- two-level bootstrap
def test_one_seed_reduces_to_the_ordinary_bootstrap():
    rng = np.random.default_rng(0)
    v = (rng.random(250) < 0.7).astype(float)
    two = seed_example_bootstrap(lambda s, idx: v[idx].mean(), 1, 250, n_resamples=300, seed=4)
    one = bootstrap_ci(lambda idx: v[idx].mean(), 250, n_resamples=300, seed=4)
    assert (two.value, two.low, two.high) == (one.value, one.low, one.high)
    fast = seed_example_bootstrap_mean(v[None, :], n_resamples=300, seed=4)
    ref = bootstrap_mean_ci(v, n_resamples=300, seed=4)
    assert (fast.low, fast.high) == pytest.approx((ref.low, ref.high))


def test_scalar_and_batched_statistics_give_the_same_interval():
    v = np.random.default_rng(1).random((3, 80))
    scalar = seed_example_bootstrap(lambda s, idx: v[s][idx].mean(), 3, 80, n_resamples=200, seed=2)
    batched = seed_example_bootstrap(lambda s, idx: v[s][idx].mean(axis=1), 3, 80, n_resamples=200, seed=2,
                                     batched=True)
    assert (scalar.low, scalar.high) == pytest.approx((batched.low, batched.high))
    assert scalar.value == pytest.approx(v.mean())


def test_seed_variance_widens_the_interval():
    u = np.random.default_rng(2).random(300)  # shared example difficulty
    quiet = np.tile(u < 0.8, (5, 1)).astype(float)  # five seeds that agree on every example
    noisy = np.stack([u < p for p in (0.6, 0.7, 0.8, 0.9, 0.95)]).astype(float)  # seeds that differ
    q = seed_example_bootstrap_mean(quiet, n_resamples=500, seed=0)
    n = seed_example_bootstrap_mean(noisy, n_resamples=500, seed=0)
    assert (n.high - n.low) > 1.5 * (q.high - q.low)
    one = bootstrap_mean_ci(quiet[0], n_resamples=500, seed=0)
    assert (q.low, q.high) == pytest.approx((one.low, one.high))  # identical seeds: no extra width


def _simulate(k: int, n: int, sd_seed: float, rng: np.random.Generator) -> np.ndarray:
    example = rng.normal(0.0, 1.0, n)
    offset = rng.normal(0.0, sd_seed, k)
    p = 1.0 / (1.0 + np.exp(-(1.5 + example[None, :] + offset[:, None])))
    return (rng.random((k, n)) < p).astype(float)


def test_coverage_of_the_two_level_interval_in_a_small_simulation():
    big = np.random.default_rng(99)  # the population mean over examples and seeds
    logits = 1.5 + big.normal(0, 1, 400_000) + big.normal(0, 0.5, 400_000)
    truth = float(np.mean(1.0 / (1.0 + np.exp(-logits))))
    hits_two, hits_naive, sims = 0, 0, 120
    for i in range(sims):
        vals = _simulate(6, 150, 0.5, np.random.default_rng(1000 + i))
        two = seed_example_bootstrap_mean(vals, n_resamples=300, seed=i)
        naive = bootstrap_mean_ci(vals.mean(axis=0), n_resamples=300, seed=i)  # examples only
        hits_two += two.low <= truth <= two.high
        hits_naive += naive.low <= truth <= naive.high
    assert hits_two / sims >= 0.87
    assert hits_two > hits_naive  # ignoring seed variance under-covers


def test_paired_seed_example_bootstrap():
    rng = np.random.default_rng(6)
    ref = (rng.random((3, 200)) < 0.8).astype(float)
    def ref_stat(s, i):
        return ref[s][i].mean()

    def cand_stat(s, i):
        return cand[s][i].mean()

    same = paired_seed_example_bootstrap(ref_stat, ref_stat, 3, 3, 200, n_resamples=200)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)  # paired seeds and examples cancel exactly
    cand = ref.copy()
    cand[:, :20] = 0.0  # the candidate loses every one of the first 20 examples
    diff = paired_seed_example_bootstrap(cand_stat, ref_stat, 3, 3, 200, n_resamples=400, seed=1)
    assert diff.value == pytest.approx(cand.mean() - ref.mean())
    assert diff.high < 0 and diff.contains(diff.value)
    # one seed each: the ordinary paired bootstrap
    one = paired_seed_example_bootstrap(cand_stat, ref_stat, 1, 1, 200, n_resamples=300, seed=2)
    plain = paired_bootstrap_diff(lambda i: cand[0][i].mean(), lambda i: ref[0][i].mean(), 200,
                                  n_resamples=300, seed=2)
    assert (one.low, one.high) == pytest.approx((plain.low, plain.high))
    # a one-seed reference against a three-seed candidate: seeds resampled independently
    mixed = paired_seed_example_bootstrap(cand_stat, lambda s, i: ref[0][i].mean(), 3, 1, 200,
                                          n_resamples=200)
    assert mixed.low <= mixed.value <= mixed.high
    with pytest.raises(ValueError, match="same number of seeds"):
        paired_seed_example_bootstrap(lambda s, i: 0.0, lambda s, i: 0.0, 3, 1, 10, paired_seeds=True)


def test_seed_summary():
    v = [0.81, 0.84, 0.79, 0.86]
    s = seed_summary(v)
    assert s["mean"] == pytest.approx(statistics.mean(v)) and s["std"] == pytest.approx(statistics.stdev(v))
    assert (s["min"], s["max"], s["n"]) == (0.79, 0.86, 4)
    assert seed_summary([0.5])["std"] is None
    with pytest.raises(ValueError):
        seed_summary([])
    json.dumps(s)


def test_percentile_ci_of_two_level_resamples_contains_point_for_symmetric_case():
    v = np.tile((np.arange(100) % 2).astype(float), (4, 1))  # accuracy exactly 0.5 on every seed
    ci = seed_example_bootstrap_mean(v, n_resamples=400)
    assert ci.value == 0.5 and ci.contains(0.5) and ci.method == "seed-example-bootstrap"
