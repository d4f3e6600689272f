"""Metrics against scikit-learn and a loop ECE; the batched (resampled) path against the plain one."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score, log_loss

from leanbench.errors import LeanbenchError
from leanbench.evaluate.metrics import (
    METRICS,
    check_inputs,
    get_metric,
    metric_ci,
    paired_metric_diff,
    predictions_from_probs,
)
from leanbench.stats import bootstrap_ci, bootstrap_indices, paired_bootstrap_mean_diff


def random_case(seed: int, n: int, n_classes: int, concentration: float = 1.0):
    """Labels and Dirichlet probabilities that agree with the labels more often than chance."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    alpha = np.full((n, n_classes), concentration)
    alpha[np.arange(n), y] += 2.0 * concentration
    gamma = rng.gamma(alpha)  # row-normalised gammas are Dirichlet(alpha) draws
    return y, gamma / gamma.sum(axis=1, keepdims=True)


def ece_loop(y: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """Guo et al. 2017 eq. 3 written as the straightforward loop over bins (lo, hi], 0 in the first bin."""
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    total = 0.0
    for b in range(n_bins):
        lo, hi = edges[b], edges[b + 1]
        in_bin = (conf > lo) & (conf <= hi) if b > 0 else (conf >= lo) & (conf <= hi)
        if in_bin.any():
            acc = np.mean(pred[in_bin] == y[in_bin])
            total += in_bin.sum() / len(y) * abs(acc - conf[in_bin].mean())
    return total


CASES = [(0, 200, 2), (1, 57, 3), (2, 500, 10), (3, 12, 7), (4, 1, 4)]


@pytest.mark.parametrize("seed,n,c", CASES)
def test_accuracy_nll_match_sklearn(seed, n, c):
    y, p = random_case(seed, n, c)
    assert get_metric("accuracy")(y, p) == pytest.approx(accuracy_score(y, p.argmax(1)), abs=1e-15)
    expected = log_loss(y, p, labels=np.arange(c))
    assert get_metric("nll")(y, p) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("seed,n,c", CASES)
def test_macro_f1_matches_sklearn(seed, n, c):
    # small n with many classes leaves classes absent from y_true and/or y_pred
    y, p = random_case(seed, n, c, concentration=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = f1_score(y, p.argmax(1), average="macro")
    assert get_metric("macro_f1")(y, p) == pytest.approx(expected, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda c: st.lists(st.tuples(st.integers(0, c - 1), st.integers(0, c - 1)), min_size=1, max_size=40)
        .map(lambda pairs: (c, pairs))
    )
)
def test_macro_f1_matches_sklearn_property(case):
    n_classes, pairs = case
    y, pred = np.array(pairs).T
    probs = np.eye(n_classes)[pred] * 0.9 + 0.1 / n_classes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = f1_score(y, pred, average="macro")
    assert get_metric("macro_f1")(y, probs) == pytest.approx(expected, abs=1e-12)


def test_nll_clips_zero_probability_like_log_loss():
    y = np.array([0, 1])
    p = np.array([[1.0, 0.0], [1.0, 0.0]])  # second example: gold probability 0
    assert get_metric("nll")(y, p) == pytest.approx(-np.log(1e-15) / 2, rel=1e-12)
    assert np.isfinite(get_metric("nll")(y, p))


@pytest.mark.parametrize("seed,n,c", CASES)
def test_ece_matches_loop(seed, n, c):
    y, p = random_case(seed, n, c)
    assert get_metric("ece")(y, p) == pytest.approx(ece_loop(y, p), abs=1e-12)


def test_ece_bin_edges_are_lo_exclusive_hi_inclusive():
    edges = np.linspace(0.0, 1.0, 16)
    tops = np.array([edges[8], edges[9], edges[9] + 1e-9, edges[14], 1.0, edges[8] - 1e-9])
    p = np.stack([tops, 1.0 - tops], axis=1)  # top class 0 (all tops >= 0.5)
    y = np.array([0, 1, 0, 1, 0, 1])
    assert get_metric("ece")(y, p) == pytest.approx(ece_loop(y, p), abs=1e-12)


def test_ece_zero_when_calibrated_and_one_when_confidently_wrong():
    y = np.array([0, 1, 0, 1])
    sure_right = np.eye(2)[y]
    assert get_metric("ece")(y, sure_right) == 0.0
    assert get_metric("ece")(y, np.eye(2)[1 - y]) == 1.0
    # half right at confidence 0.5 is perfectly calibrated
    half = np.full((4, 2), 0.5)
    assert get_metric("ece")(np.array([0, 0, 1, 1]), half) == pytest.approx(0.0)


@pytest.mark.parametrize("name", ["accuracy", "macro_f1", "nll", "ece"])
def test_resampled_equals_plain_metric_on_each_row(name):
    metric = get_metric(name)
    y, p = random_case(7, 80, 5, concentration=0.5)
    idx = bootstrap_indices(80, 25, seed=3)
    expected = [metric.fn(y[row], p[row]) for row in idx]
    np.testing.assert_allclose(metric.resampled(y, p, idx), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["accuracy", "macro_f1", "nll", "ece"])
def test_metric_ci_equals_generic_bootstrap(name):
    metric = get_metric(name)
    y, p = random_case(8, 120, 3)
    fast = metric_ci(name, y, p, n_resamples=200, seed=5)
    slow = bootstrap_ci(lambda i: metric.fn(y[i], p[i]), len(y), n_resamples=200, seed=5)
    assert fast.value == slow.value
    assert fast.low == pytest.approx(slow.low, abs=1e-12)
    assert fast.high == pytest.approx(slow.high, abs=1e-12)
    assert fast.low <= fast.value <= fast.high


def test_paired_metric_diff():
    y, pa = random_case(9, 300, 4)
    _, pb = random_case(10, 300, 4)
    same = paired_metric_diff("macro_f1", y, pa, pa, n_resamples=100)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)
    ci = paired_metric_diff("accuracy", y, pa, pb, n_resamples=300, seed=2)
    correct_a, correct_b = (pa.argmax(1) == y).astype(float), (pb.argmax(1) == y).astype(float)
    ref = paired_bootstrap_mean_diff(correct_a, correct_b, n_resamples=300, seed=2)
    assert ci.value == pytest.approx(ref.value)
    assert (ci.low, ci.high) == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_registry_matches_study_schema_and_directions():
    from leanbench.study import METRICS as STUDY_METRICS

    classification = [n for n in METRICS if get_metric(n).task == "classification"]  # other kinds register more
    assert set(classification) == set(STUDY_METRICS)
    assert {n: get_metric(n).higher_is_better for n in classification} == {
        "accuracy": True, "macro_f1": True, "nll": False, "ece": False,
    }
    for name in classification:
        metric = get_metric(name)
        assert metric.name == name and metric.unit and metric.description


def test_unknown_metric_suggests_a_name():
    with pytest.raises(LeanbenchError, match="did you mean 'accuracy'"):
        get_metric("acuracy")


def test_predictions_from_probs_breaks_ties_to_first_class():
    probs = np.array([[0.4, 0.4, 0.2], [0.1, 0.45, 0.45], [0.2, 0.3, 0.5]])
    np.testing.assert_array_equal(predictions_from_probs(probs), [0, 1, 2])


@pytest.mark.parametrize(
    "y,probs,message",
    [
        (np.array([0, 3]), np.full((2, 3), 1 / 3), r"in \[0, 3\).*from 0 to 3"),
        (np.array([0, 1, 1]), np.full((2, 3), 1 / 3), r"got y_true \(3,\) and probs \(2, 3\)"),
        (np.array([0.0, 1.0]), np.full((2, 3), 1 / 3), "integer class ids"),
        (np.array([], dtype=int), np.zeros((0, 3)), "N >= 1"),
    ],
)
def test_check_inputs_says_what_is_wrong(y, probs, message):
    with pytest.raises(ValueError, match=message):
        check_inputs(y, probs)
