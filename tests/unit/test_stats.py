"""Bootstrap CIs against scipy, McNemar against statsmodels/scipy, Holm, verdicts and power."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from leanbench.stats import (
    CI,
    bootstrap_ci,
    bootstrap_indices,
    bootstrap_mean_ci,
    holm_adjust,
    iter_bootstrap_indices,
    mcnemar_exact,
    minimum_detectable_margin,
    orient,
    paired_bootstrap_diff,
    paired_bootstrap_mean_diff,
    percentile_ci,
    power_note,
    required_n_noninferiority,
    verdict,
)

# ---------------------------------------------------------------- bootstrap


def test_indices_are_deterministic_in_range_and_chunkable():
    idx = bootstrap_indices(37, 50, seed=4)
    assert idx.shape == (50, 37) and idx.min() >= 0 and idx.max() < 37
    np.testing.assert_array_equal(idx, bootstrap_indices(37, 50, seed=4))
    assert not np.array_equal(idx, bootstrap_indices(37, 50, seed=5))
    chunks = list(iter_bootstrap_indices(37, 50, seed=4, max_elements=37 * 7))
    assert [len(c) for c in chunks] == [7] * 7 + [1]
    np.testing.assert_array_equal(np.concatenate(chunks), idx)


@pytest.mark.parametrize(
    "data",
    [
        np.random.default_rng(11).binomial(1, 0.8, 300).astype(float),  # accuracy-like
        np.random.default_rng(12).normal(0.5, 0.3, 300),
    ],
    ids=["bernoulli", "normal"],
)
def test_mean_ci_agrees_with_scipy_percentile_bootstrap(data):
    ours = bootstrap_ci(lambda i: data[i].mean(), len(data), n_resamples=5000, seed=0)
    theirs = sps.bootstrap(
        (data,), np.mean, n_resamples=5000, confidence_level=0.95, method="percentile",
        rng=np.random.default_rng(1),
    ).confidence_interval
    assert ours.value == pytest.approx(data.mean())
    assert ours.low == pytest.approx(theirs.low, abs=0.01)
    assert ours.high == pytest.approx(theirs.high, abs=0.01)
    assert ours.method == "percentile" and ours.confidence == 0.95


def test_fast_mean_path_equals_generic_path():
    data = np.random.default_rng(2).binomial(1, 0.7, 150).astype(float)
    generic = bootstrap_ci(lambda i: data[i].mean(), 150, n_resamples=400, confidence=0.9, seed=3)
    fast = bootstrap_mean_ci(data, n_resamples=400, confidence=0.9, seed=3)
    assert fast == generic


def test_same_seed_same_ci_other_seed_other_ci():
    data = np.random.default_rng(3).normal(size=100)
    a = bootstrap_mean_ci(data, n_resamples=300, seed=7)
    assert a == bootstrap_mean_ci(data, n_resamples=300, seed=7)
    assert a != bootstrap_mean_ci(data, n_resamples=300, seed=8)


def test_higher_confidence_gives_wider_interval():
    data = np.random.default_rng(4).normal(size=200)
    narrow = bootstrap_mean_ci(data, n_resamples=1000, confidence=0.8)
    wide = bootstrap_mean_ci(data, n_resamples=1000, confidence=0.99)
    assert wide.low < narrow.low < narrow.high < wide.high


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 1), min_size=1, max_size=200),
    st.integers(0, 2**32 - 1),
    st.sampled_from([0.5, 0.9, 0.95, 0.99]),
)
def test_ci_contains_point_estimate_for_accuracy_like_data(values, seed, confidence):
    data = np.array(values, dtype=float)
    ci = bootstrap_mean_ci(data, n_resamples=200, confidence=confidence, seed=seed)
    assert ci.low <= ci.value <= ci.high
    assert data.min() <= ci.low and ci.high <= data.max()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=50), st.integers(0, 1000))
def test_ci_is_ordered_and_within_data_range(values, seed):
    data = np.array(values)
    ci = bootstrap_mean_ci(data, n_resamples=100, seed=seed)
    tol = 1e-9 * (1.0 + np.abs(data).max())
    assert data.min() - tol <= ci.low <= ci.high <= data.max() + tol


def correlated_pair(seed: int, n: int, p_a: float = 0.85, flip: float = 0.1):
    """Correctness of A and of B, where B is A with a share `flip` of examples flipped."""
    rng = np.random.default_rng(seed)
    a = rng.random(n) < p_a
    b = np.where(rng.random(n) < flip, ~a, a)
    return a.astype(float), b.astype(float)


def test_paired_diff_of_identical_arrays_is_exactly_zero():
    a, _ = correlated_pair(0, 120)
    assert paired_bootstrap_mean_diff(a, a, n_resamples=200) == CI(0.0, 0.0, 0.0, 0.95, "percentile")
    generic = paired_bootstrap_diff(lambda i: a[i].mean(), lambda i: a[i].mean(), 120, n_resamples=200)
    assert (generic.value, generic.low, generic.high) == (0.0, 0.0, 0.0)


def test_paired_generic_and_fast_paths_agree():
    a, b = correlated_pair(1, 250)
    fast = paired_bootstrap_mean_diff(a, b, n_resamples=500, seed=9)
    generic = paired_bootstrap_diff(
        lambda i: a[i].mean(), lambda i: b[i].mean(), 250, n_resamples=500, seed=9
    )
    assert generic.value == pytest.approx(fast.value, abs=1e-12)
    assert (generic.low, generic.high) == pytest.approx((fast.low, fast.high), abs=1e-12)


def test_paired_diff_is_invariant_to_joint_permutation():
    a, b = correlated_pair(2, 400)
    perm = np.random.default_rng(5).permutation(400)
    ci = paired_bootstrap_mean_diff(a, b, n_resamples=5000, seed=0)
    ci_perm = paired_bootstrap_mean_diff(a[perm], b[perm], n_resamples=5000, seed=0)
    assert ci_perm.value == pytest.approx(ci.value, abs=1e-12)  # same data, same estimate
    assert ci_perm.low == pytest.approx(ci.low, abs=0.01)  # same distribution, other resamples
    assert ci_perm.high == pytest.approx(ci.high, abs=0.01)


def test_pairing_narrows_the_interval_for_correlated_systems():
    a, b = correlated_pair(3, 400, flip=0.05)
    paired = paired_bootstrap_mean_diff(a, b, n_resamples=2000)
    ca = bootstrap_mean_ci(a, n_resamples=2000, seed=1)
    cb = bootstrap_mean_ci(b, n_resamples=2000, seed=2)
    unpaired_width = math.hypot(ca.high - ca.low, cb.high - cb.low)
    assert paired.high - paired.low < 0.5 * unpaired_width


def test_percentile_ci_uses_linear_quantiles():
    samples = np.arange(101, dtype=float)  # quantile q is exactly 100 q
    ci = percentile_ci(50.0, samples, 0.9)
    assert (ci.low, ci.high) == pytest.approx((5.0, 95.0))
    assert ci.as_dict() == {"value": 50.0, "ci_low": ci.low, "ci_high": ci.high}


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: bootstrap_indices(0, 10, 0), "n must be an integer >= 1, got 0"),
        (lambda: bootstrap_mean_ci(np.ones(3), n_resamples=0), "n_resamples must be an integer >= 1, got 0"),
        (lambda: bootstrap_mean_ci(np.ones(3), confidence=95), r"confidence must be in \(0, 1\), got 95"),
        (lambda: bootstrap_mean_ci(np.ones((2, 2))), r"1-d array, got shape \(2, 2\)"),
        (lambda: paired_bootstrap_mean_diff(np.ones(3), np.ones(4)), r"same shape, got \(3,\) and \(4,\)"),
    ],
)
def test_bootstrap_argument_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---------------------------------------------------------------- McNemar and Holm


def arrays_from_table(both: int, b: int, c: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-example correctness with the given 2x2 counts, shuffled."""
    a = np.array([1] * both + [1] * b + [0] * c + [0] * neither, dtype=bool)
    bb = np.array([1] * both + [0] * b + [1] * c + [0] * neither, dtype=bool)
    perm = np.random.default_rng(both + 7 * b + 13 * c).permutation(a.size)
    return a[perm], bb[perm]


@pytest.mark.parametrize(
    "both,b,c,neither",
    [(10, 5, 3, 12), (50, 0, 7, 3), (200, 40, 25, 10), (5, 1, 0, 5), (30, 12, 12, 1), (900, 3, 17, 80)],
)
def test_mcnemar_matches_statsmodels_and_binomtest(both, b, c, neither):
    a, bb = arrays_from_table(both, b, c, neither)
    result = mcnemar_exact(a, bb)
    assert (result.b, result.c) == (b, c)
    expected = mcnemar(np.array([[both, b], [c, neither]]), exact=True).pvalue
    assert result.p_value == pytest.approx(expected, rel=1e-12)
    assert result.p_value == pytest.approx(sps.binomtest(b, b + c, 0.5).pvalue, rel=1e-9)


def test_mcnemar_without_discordant_pairs_has_p_one():
    a = np.array([True, False, True])
    assert mcnemar_exact(a, a) == mcnemar_exact(a.astype(int), a.astype(int))
    assert mcnemar_exact(a, a).p_value == 1.0


def test_mcnemar_input_errors():
    with pytest.raises(ValueError, match="same length, got 3 and 2"):
        mcnemar_exact(np.array([1, 0, 1]), np.array([1, 0]))
    with pytest.raises(ValueError, match="booleans or 0/1"):
        mcnemar_exact(np.array([1, 2]), np.array([1, 0]))


def test_holm_matches_statsmodels():
    p = np.array([0.01, 0.04, 0.03, 0.5, 0.005, 0.04])
    np.testing.assert_allclose(holm_adjust(p), multipletests(p, method="holm")[1], rtol=1e-12)
    assert holm_adjust(np.array([])).size == 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm_adjust(np.array([0.1, 1.2]))


# ---------------------------------------------------------------- verdict


@pytest.mark.parametrize(
    "low,high,margin,expected",
    [
        (0.001, 0.03, 0.01, "superior"),
        (-0.009, 0.02, 0.01, "non-inferior"),
        (-0.009, -0.001, 0.01, "non-inferior"),  # worse, but by less than the margin
        (-0.01, 0.02, 0.01, "inconclusive"),  # the bound touches -margin: not shown
        (-0.05, -0.011, 0.01, "inferior"),
        (-0.05, 0.05, 0.01, "inconclusive"),
        (0.0, 0.0, 0.0, "inconclusive"),
        (0.0, 0.1, 0.01, "non-inferior"),
    ],
)
def test_verdict_rule(low, high, margin, expected):
    assert verdict(low, high, margin) == expected


def test_orient_flips_lower_is_better_differences():
    assert orient(-0.2, 0.1, higher_is_better=True) == (-0.2, 0.1)
    # candidate NLL minus reference NLL in [-0.2, 0.1] -> improvement in [-0.1, 0.2]
    assert orient(-0.2, 0.1, higher_is_better=False) == (-0.1, 0.2)


@pytest.mark.parametrize(
    "args,message",
    [((0.1, 0.0, 0.01), "diff_low must be <= diff_high"), ((0.0, 0.1, -0.01), "margin must be >= 0"),
     ((math.nan, 0.1, 0.01), "'diff_low' must be a finite number")],
)
def test_verdict_errors(args, message):
    with pytest.raises(ValueError, match=message):
        verdict(*args)


# ---------------------------------------------------------------- power and sample size


def test_required_n_hand_computed():
    # z_0.975 = 1.959964, z_0.8 = 0.841621: (2.801585)^2 = 7.848879
    assert required_n_noninferiority(0.1, 0.02) == 1963  # 7.848879 * 0.1 / 0.02^2 = 1962.2
    assert required_n_noninferiority(0.1, 0.02, true_diff=0.01) == 872  # * 0.0999 / 0.03^2 = 871.2
    # z_0.95 = 1.644854, z_0.9 = 1.281552: (2.926405)^2 * 0.2 / 0.05^2 = 685.1
    assert required_n_noninferiority(0.2, 0.05, alpha=0.1, power=0.9) == 686


def test_minimum_detectable_margin_hand_computed():
    z = sps.norm.ppf(0.975) + sps.norm.ppf(0.8)
    assert minimum_detectable_margin(1000, 0.1) == pytest.approx(z * math.sqrt(0.1 / 1000), rel=1e-12)
    # p_discordant = 0 is floored at 1/n: margin = z / n
    assert minimum_detectable_margin(500, 0.0) == pytest.approx(z / 500, rel=1e-12)


@pytest.mark.parametrize("n", [1, 7, 50, 333, 1000, 20000])
@pytest.mark.parametrize("p", [0.0, 0.003, 0.05, 0.3, 1.0])
def test_required_n_inverts_minimum_detectable_margin(n, p):
    assert required_n_noninferiority(p, minimum_detectable_margin(n, p)) == n


@pytest.mark.parametrize("n", [40, 600, 5000])
def test_inverse_holds_with_a_true_difference(n):
    p, t = 0.2, 0.03
    assert required_n_noninferiority(p, minimum_detectable_margin(n, p, true_diff=t), true_diff=t) == n


def test_required_n_monotonicity():
    base = required_n_noninferiority(0.1, 0.02)
    assert required_n_noninferiority(0.1, 0.03) < base  # wider margin, fewer examples
    assert required_n_noninferiority(0.2, 0.02) > base  # more disagreement, more examples
    assert required_n_noninferiority(0.1, 0.02, power=0.9) > base
    assert required_n_noninferiority(0.1, 0.02, alpha=0.01) > base
    assert required_n_noninferiority(0.1, 0.02, true_diff=0.01) < base  # a better candidate is easier
    margins = [minimum_detectable_margin(n, 0.1) for n in (10, 100, 1000, 10000)]
    assert margins == sorted(margins, reverse=True)


def test_required_n_with_no_discordance_uses_the_floor():
    z = sps.norm.ppf(0.975) + sps.norm.ppf(0.8)
    assert required_n_noninferiority(0.0, 0.01) == math.ceil(z / 0.01)  # n = sqrt(k) solves n = k / n
    assert required_n_noninferiority(0.0, 0.01) >= 1


def test_formula_gives_the_stated_power_in_simulation():
    """Simulate paired Wald non-inferiority tests at the required n: rejection rate ~ 80 %."""
    p_disc, margin = 0.2, 0.05
    n = required_n_noninferiority(p_disc, margin)
    counts = np.random.default_rng(0).multinomial(n, [p_disc / 2, 1 - p_disc, p_disc / 2], size=20000)
    mean = (counts[:, 0] - counts[:, 2]) / n
    var = (counts[:, 0] + counts[:, 2]) / n - mean**2
    low = mean - sps.norm.ppf(0.975) * np.sqrt(var / n)
    assert np.mean(low > -margin) == pytest.approx(0.8, abs=0.02)


def test_power_note():
    note = power_note(500, 0.1, 0.02)
    assert note["underpowered"] is True and note["required_n"] == 1963 and note["n"] == 500
    assert note["minimum_detectable_margin"] == pytest.approx(minimum_detectable_margin(500, 0.1))
    assert note["minimum_detectable_margin"] > 0.02
    enough = power_note(2000, 0.1, 0.02)
    assert enough["underpowered"] is False and enough["minimum_detectable_margin"] <= 0.02
    zero = power_note(500, 0.1, 0.0)
    assert zero["required_n"] is None and zero["underpowered"] is True


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: required_n_noninferiority(0.1, 0.0), "margin \\+ true_diff must be > 0"),
        (lambda: required_n_noninferiority(1.5, 0.01), r"p_discordant must be in \[0, 1\], got 1.5"),
        (lambda: required_n_noninferiority(0.01, 0.01, true_diff=0.05), r"\|true_diff\| <= p_discordant"),
        (lambda: required_n_noninferiority(0.1, 0.01, alpha=0.0), r"alpha must be in \(0, 1\)"),
        (lambda: minimum_detectable_margin(0, 0.1), "n must be an integer >= 1, got 0"),
    ],
)
def test_power_argument_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
