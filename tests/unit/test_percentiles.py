"""Latency percentiles with CIs, runs needed (MLPerf), and the reference micro-benchmark."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from leanbench.errors import LeanbenchError
from leanbench.measure.percentiles import (
    early_stopping_estimate,
    early_stopping_min_runs,
    latency_percentiles,
    min_runs_for_percentile,
    order_statistic_ranks,
    percentile_with_ci,
    runs_for_ci,
)
from leanbench.measure.reference_bench import (
    matmul_flops,
    normalise_latency,
    numpy_matmul_score,
    reference_score,
    torch_matmul_score,
)


def latencies(n: int, seed: int = 0) -> np.ndarray:
    """Right-skewed, like real latencies: 1 ms plus a lognormal tail."""
    return 1.0 + np.random.default_rng(seed).lognormal(-1.0, 0.6, size=n)


# --------------------------------------------------------------------------- percentile CI
@pytest.mark.parametrize("p", [0.5, 0.9, 0.99])
def test_ci_contains_the_sample_percentile(p):
    x = latencies(2000)
    r = percentile_with_ci(x, p, 0.95)
    assert r["value"] == pytest.approx(np.percentile(x, 100 * p))
    assert r["ci_low"] <= r["value"] <= r["ci_high"]
    assert r["n"] == 2000 and "order-statistic" in r["method"]


@pytest.mark.parametrize(("n", "p", "conf"),
                         [(50, 0.5, 0.95), (200, 0.9, 0.95), (1000, 0.99, 0.9), (400, 0.9, 0.99)])
def test_ci_matches_scipy_quantile_test(n, p, conf):
    x = latencies(n, seed=n)
    r = percentile_with_ci(x, p, conf)
    ci = stats.quantile_test(x, q=float(np.median(x)), p=p).confidence_interval(conf)
    # same order statistics as scipy (whose interval this module only widens to contain the point value)
    assert r["ci_low"] == pytest.approx(min(ci.low, r["value"]))
    assert r["ci_high"] == pytest.approx(max(ci.high, r["value"]))


def test_ci_narrows_with_more_samples():
    widths = []
    for n in (100, 1000, 10000):
        r = percentile_with_ci(latencies(n, seed=1), 0.9, 0.95)
        widths.append(r["ci_high"] - r["ci_low"])
    assert widths[0] > widths[1] > widths[2]


def test_distribution_free_coverage_by_simulation():
    # 2,000 samples of 60 exponential latencies: the 90 % CI of the p90 must cover the true p90 (-ln 0.1)
    # in at least 90 % of them (up to simulation error: 3 SE = 3 * sqrt(0.9 * 0.1 / 2000) = 0.02)
    n, p, conf, reps = 60, 0.9, 0.9, 2000
    x = np.sort(np.random.default_rng(7).exponential(size=(reps, n)), axis=1)
    lo, hi = order_statistic_ranks(n, p, conf)
    truth = -math.log(1 - p)
    covered = (x[:, lo - 1] <= truth) & (truth <= x[:, hi - 1])
    exact = stats.binom.cdf(hi - 1, n, p) - stats.binom.cdf(lo - 1, n, p)  # the guaranteed coverage
    assert exact >= conf
    assert covered.mean() >= conf - 0.02
    assert abs(covered.mean() - exact) < 0.03


def test_too_few_runs_leave_the_upper_bound_open():
    r = percentile_with_ci(latencies(200), 0.99, 0.95)
    assert r["ci_high"] is None and r["ci_low"] is not None
    assert r["runs_needed"] == runs_for_ci(0.99, 0.95)
    assert r["runs_needed"] == 368


def test_runs_for_ci_is_the_smallest_n_with_both_bounds():
    for p, conf in ((0.9, 0.95), (0.99, 0.95), (0.5, 0.99)):
        n = runs_for_ci(p, conf)
        lo, hi = order_statistic_ranks(n, p, conf)
        assert 1 <= lo and hi <= n
        lo, hi = order_statistic_ranks(n - 1, p, conf)
        assert lo < 1 or hi > n - 1


def test_bootstrap_method_agrees_roughly_with_the_binomial_one():
    x = latencies(3000)
    b = percentile_with_ci(x, 0.9, 0.95, method="bootstrap", n_resamples=500, seed=3)
    e = percentile_with_ci(x, 0.9, 0.95)
    assert b["ci_low"] <= b["value"] <= b["ci_high"]
    width = e["ci_high"] - e["ci_low"]
    assert abs(b["ci_low"] - e["ci_low"]) < width and abs(b["ci_high"] - e["ci_high"]) < width
    assert percentile_with_ci(x, 0.9, 0.95, method="bootstrap", n_resamples=500, seed=3) == b


def test_latency_percentiles_keys_and_errors():
    out = latency_percentiles(latencies(500))
    assert list(out) == ["p50_ms", "p90_ms", "p99_ms"]
    with pytest.raises(LeanbenchError, match="strictly between 0 and 1"):
        percentile_with_ci([1.0, 2.0], 90)
    with pytest.raises(LeanbenchError, match="no latency samples"):
        percentile_with_ci([], 0.9)
    with pytest.raises(LeanbenchError, match="method must be"):
        percentile_with_ci([1.0, 2.0], 0.9, method="normal")


# --------------------------------------------------------------------------- MLPerf run counts
def test_min_runs_reproduces_the_mlperf_rules_table():
    # MLPerf Inference rules, appendix "Number of Queries": 99 % confidence, margin (1 - p) / 20
    assert min_runs_for_percentile(0.90) == 23_886
    assert min_runs_for_percentile(0.99) == 262_742
    # the formula by hand: z = 2.5758, 2.5758^2 * 0.9 * 0.1 / 0.01^2 = 5,971.4 -> 5,972
    assert min_runs_for_percentile(0.9, tolerance=0.01) == math.ceil(stats.norm.ppf(0.005) ** 2 * 0.09 / 1e-4)
    assert min_runs_for_percentile(0.9, 0.01, confidence=0.95) < min_runs_for_percentile(0.9, 0.01, 0.99)


def test_early_stopping_matches_mlperf_loadgen():
    # loadgen summaries for single stream: "Processed at least 64 queries (2048). Would discard 172 highest
    # latency queries." (p90, 99 % confidence, tolerance 0)
    assert early_stopping_min_runs(0.9) == 64
    x = latencies(2048)
    r = early_stopping_estimate(x, 0.9)
    assert r["discarded"] == 172
    assert r["value"] == np.sort(x)[2048 - 173]
    assert r["value"] >= np.percentile(x, 90)  # a conservative (upper) estimate
    assert early_stopping_estimate(x[:63], 0.9)["value"] is None


# --------------------------------------------------------------------------- reference micro-benchmark
@pytest.mark.parametrize("score_fn", [torch_matmul_score, numpy_matmul_score])
def test_reference_score_is_positive_and_consistent(score_fn):
    r = score_fn(n=64, repeats=5, warmup=1)
    assert math.isfinite(r["score"]) and r["score"] > 0
    assert r["threads"] == 1 and r["flops_per_op"] == 2 * 64**3 == matmul_flops(64)
    assert r["score"] == pytest.approx(r["flops_per_op"] / (r["ms_per_op"] / 1e3) / 1e9)


def test_reference_score_is_stable_ish():
    a, b = (reference_score("numpy", n=128, repeats=20)["score"] for _ in range(2))
    assert 0.2 < a / b < 5  # same machine, same workload: same order of magnitude even on a busy box
    with pytest.raises(LeanbenchError, match="backend"):
        reference_score("jax")


def test_normalise_latency_arithmetic():
    # this machine scores 50 GFLOP/s, the reference 100: 10 ms here = 5 ms on the (twice as fast) reference
    assert normalise_latency(10.0, machine_score=50.0, reference_score=100.0) == pytest.approx(5.0)
    assert normalise_latency(10.0, 200.0, 100.0) == pytest.approx(20.0)
    assert normalise_latency(3.0, 80.0, 80.0) == 3.0
    with pytest.raises(LeanbenchError, match="machine_score must be a finite number > 0"):
        normalise_latency(1.0, 0.0, 10.0)
