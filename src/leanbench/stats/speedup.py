"""Speed-ups from interleaved timing rounds: a paired ratio with a distribution-free CI, and rounds a
neighbour disturbed.

In round ``i`` every candidate runs one short block of timed calls (in a shuffled order), so a burst of
load or a drift of the machine's speed hits every candidate of that round alike. The speed-up of a
candidate over the reference is estimated from the per-round medians, paired by round::

    d_i = log(ref_i) - log(cand_i),   speed-up = exp(median(d_i))

with the distribution-free CI of the median of the ``d_i`` (order statistics of Binomial(R, 1/2); Conover,
*Practical Nonparametric Statistics*, 3rd ed., 1999, sec. 3.2), exponentiated. The median of paired
log-ratios needs no assumption on the latency distribution, and a few disturbed rounds move it little.
"Faster" is claimed only when the interval lies above ``1 + min_effect``. With ``min_effect`` 0 a 1-3%
difference can be "significant" and still meaningless: on this machine an identical deep copy of a model,
timed interleaved with it, measured 1.02-1.03x [1.01, 1.04] "faster" in three seeds (memory placement), so
leanbench claims a speed-up only beyond 5% by default (``measure.min_speedup``).

A round is flagged as disturbed for a candidate when its median is above ``median + k * MAD`` of that
candidate's round medians (MAD scaled by 1.4826 to estimate the standard deviation under normality; k = 5
by default), a robust outlier rule that a burst of other work on the machine trips and ordinary jitter does
not.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from leanbench.measure.percentiles import percentile_with_ci

MAD_SCALE = 1.4826  # MAD -> standard deviation of a normal distribution
DISTURBED_K = 5.0


def round_medians(samples_ms: Any) -> np.ndarray:
    """Per-round medians of a (rounds, calls) array of timings."""
    return np.median(np.asarray(samples_ms, dtype=np.float64), axis=1)


def disturbed_rounds(medians: Any, k: float = DISTURBED_K) -> np.ndarray:
    """Boolean mask of rounds whose median is above ``median + k * MAD`` of the round medians. A MAD of 0
    (identical rounds) flags only rounds above the median by more than 1%."""
    m = np.asarray(medians, dtype=np.float64)
    centre = float(np.median(m))
    mad = MAD_SCALE * float(np.median(np.abs(m - centre)))
    return m > centre + max(k * mad, 0.01 * centre)


def paired_speedup(reference_medians: Any, candidate_medians: Any, confidence: float = 0.95,
                   min_effect: float = 0.0) -> dict[str, Any]:
    """Speed-up of a candidate over the reference (> 1: the candidate is faster) from per-round medians
    taken in the same rounds: ``{value, ci_low, ci_high, rounds, faster, slower, min_effect, method}``. A bound
    the rounds cannot give (too few) is None; ``faster`` is True only when the whole interval is above
    ``1 + min_effect``, ``slower`` only when it is below ``1 / (1 + min_effect)`` (``min_effect`` 0: when
    the interval excludes 1)."""
    ref = np.asarray(reference_medians, dtype=np.float64)
    cand = np.asarray(candidate_medians, dtype=np.float64)
    if ref.shape != cand.shape or ref.ndim != 1 or len(ref) == 0:
        raise ValueError(f"paired_speedup: need per-round medians of equal length, got {ref.shape} and {cand.shape}")
    d = np.log(ref) - np.log(cand)
    ci = percentile_with_ci(d, 0.5, confidence)
    low = None if ci["ci_low"] is None else math.exp(ci["ci_low"])
    high = None if ci["ci_high"] is None else math.exp(ci["ci_high"])
    return {"value": math.exp(float(np.median(d))), "ci_low": low, "ci_high": high, "rounds": len(d),
            "faster": low is not None and low > 1.0 + min_effect,
            "slower": high is not None and high < 1.0 / (1.0 + min_effect),
            "confidence": confidence, "min_effect": min_effect,
            "method": "exp(median of per-round log(ref / candidate) medians), distribution-free CI of the median"}


def speedup_words(s: dict[str, Any] | None) -> str:
    """"2.9x [2.7, 3.1] faster", "no measurable difference (1.02x [0.97, 1.08])"."""
    if not s:
        return "not measured"
    lo = "?" if s.get("ci_low") is None else f"{s['ci_low']:.2f}"
    hi = "?" if s.get("ci_high") is None else f"{s['ci_high']:.2f}"
    figure = f"{s['value']:.2f}x [{lo}, {hi}]"
    if s.get("faster"):
        return f"{figure} faster"
    if s.get("slower"):
        return f"{figure} slower"
    if s.get("min_effect"):
        return f"no difference beyond ±{100 * s['min_effect']:.0f}% ({figure})"
    return f"no measurable difference ({figure})"
