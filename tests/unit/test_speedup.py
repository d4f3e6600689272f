"""Interleaved timing and the speed-up CI: why blocks mislead under a neighbour, and rounds do not."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy import stats

from leanbench.measure.interleaved import load_change, machine_load, time_interleaved
from leanbench.stats.speedup import disturbed_rounds, paired_speedup, speedup_words


def test_paired_speedup_is_the_median_log_ratio_with_scipys_quantile_ci():
    rng = np.random.default_rng(0)
    ref = 2.0 * np.exp(rng.normal(0, 0.05, 20))
    cand = 1.0 * np.exp(rng.normal(0, 0.05, 20))
    s = paired_speedup(ref, cand)
    d = np.log(ref) - np.log(cand)
    assert s["value"] == pytest.approx(math.exp(np.median(d)))
    ci = stats.quantile_test(d, q=np.median(d), p=0.5).confidence_interval(0.95)  # scipy's order statistics
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((math.exp(ci.low), math.exp(ci.high)))
    assert s["faster"] and not s["slower"] and s["rounds"] == 20
    assert speedup_words(s).endswith("faster") and speedup_words(s).startswith(f"{s['value']:.2f}x [")


def test_equal_models_give_no_measurable_difference():
    rng = np.random.default_rng(1)
    base = np.exp(rng.normal(0, 0.1, 30))
    s = paired_speedup(base * np.exp(rng.normal(0, 0.02, 30)), base * np.exp(rng.normal(0, 0.02, 30)))
    assert s["ci_low"] < 1 < s["ci_high"] and not s["faster"] and not s["slower"]
    assert speedup_words(s).startswith("no measurable difference (")


def test_too_few_rounds_leave_a_bound_open():
    s = paired_speedup([2.0, 2.1, 1.9], [1.0, 1.0, 1.1])
    assert s["ci_low"] is None and s["ci_high"] is None and not s["faster"]


def test_a_burst_is_flagged_and_moves_the_paired_ratio_little():
    rng = np.random.default_rng(2)
    drift = np.linspace(1.0, 1.3, 20)  # the machine slows down over the measurement
    ref = drift * np.exp(rng.normal(0, 0.02, 20))
    cand = drift * np.exp(rng.normal(0, 0.02, 20))
    cand[7] *= 3.0  # a neighbour burst during one of the candidate's blocks
    assert list(np.flatnonzero(disturbed_rounds(cand))) == [7]
    assert not disturbed_rounds(ref).any()
    s = paired_speedup(ref, cand)
    assert abs(s["value"] - 1) < 0.05 and s["ci_low"] < 1 < s["ci_high"]
    # the block protocol: the reference's block ran in the fast first half, the candidate's in the slow second
    blocks = np.median(ref[:10]) / np.median(cand[10:])
    assert blocks < 0.9  # a "slow-down" of over 10% that is only drift


class Sleeper:
    """A model whose forward busy-waits `ms` of wall time."""

    adapter_name = "sleeper"

    def __init__(self, ms: float):
        self.ms = ms

    def prepare(self, X: np.ndarray) -> np.ndarray:
        return X

    def forward(self, inputs: np.ndarray) -> None:
        end = time.perf_counter() + self.ms / 1e3
        while time.perf_counter() < end:
            pass


def test_interleaved_rounds_shuffle_the_order_and_time_every_model():
    X = np.zeros((4, 2))
    t = time_interleaved({"slow": Sleeper(0.4), "fast": Sleeper(0.1), "same": Sleeper(0.1)}, X,
                         warmup=1, rounds=12, calls=3, seed=5)
    assert {k: v.samples_ms.shape for k, v in t.items()} == {"slow": (12, 3), "fast": (12, 3), "same": (12, 3)}
    assert len({tuple(t[n].positions[r] for n in t) for r in range(12)}) > 1  # the order changes by round
    s = paired_speedup(t["slow"].round_medians, t["fast"].round_medians)
    assert s["faster"] and 2.5 < s["value"] < 5.0
    again = time_interleaved({"slow": Sleeper(0.4), "fast": Sleeper(0.1), "same": Sleeper(0.1)}, X,
                             warmup=1, rounds=12, calls=3, seed=5)
    assert [again[n].positions for n in again] == [t[n].positions for n in t]  # seeded order
    blocks = time_interleaved({"a": Sleeper(0.1), "b": Sleeper(0.1)}, X, warmup=0, rounds=4, calls=2,
                              protocol="blocks")
    assert blocks["a"].positions == [0] * 4


def test_bad_protocol_settings_are_config_errors():
    from leanbench.errors import ConfigError

    with pytest.raises(ConfigError, match="measure.rounds: must be an integer >= 1, got 0"):
        time_interleaved({"a": Sleeper(0.01)}, np.zeros((1, 1)), rounds=0)
    with pytest.raises(ConfigError, match="measure.protocol"):
        time_interleaved({"a": Sleeper(0.01)}, np.zeros((1, 1)), protocol="random")


def test_machine_load_is_read_and_compared():
    before, after = machine_load(), machine_load()
    change = load_change(before, after)
    assert change["loadavg_1m_before"] is None or change["loadavg_1m_before"] >= 0
    assert change["steal_share"] is None or 0 <= change["steal_share"] <= 1


def test_a_speedup_is_claimed_only_beyond_the_minimum_effect():
    rng = np.random.default_rng(3)
    ref = 1.02 * np.exp(rng.normal(0, 0.005, 20))  # identical models differ by ~2% from memory placement
    cand = np.exp(rng.normal(0, 0.005, 20))
    plain, practical = paired_speedup(ref, cand), paired_speedup(ref, cand, min_effect=0.05)
    assert plain["faster"] and plain["ci_low"] > 1.0
    assert not practical["faster"] and not practical["slower"] and practical["min_effect"] == 0.05
    assert speedup_words(practical).startswith("no difference beyond ±5% (1.02x [")
    assert paired_speedup(cand, ref, min_effect=0.05)["slower"] is False
    assert paired_speedup(ref * 2, cand, min_effect=0.05)["faster"]
