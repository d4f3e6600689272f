"""Non-inferiority verdicts and the power of a paired accuracy comparison.

Verdict rule (Piaggio et al. 2012, CONSORT extension for non-inferiority trials, fig. 1): the difference
is oriented so that higher is better (candidate - reference; the caller flips the sign for lower-is-better
metrics). With a two-sided (1 - alpha) confidence interval [low, high] of that difference and a margin
Delta >= 0, reading one bound is a one-sided test at level alpha/2:

    superior       low  > 0          (better than the reference)
    non-inferior   low  > -Delta     (worse by less than the margin, or better)
    inferior       high < -Delta     (worse by more than the margin)
    inconclusive   otherwise         (the interval straddles -Delta: the test set cannot tell)

Sample size (normal approximation for paired proportions, e.g. Connor 1987, Biometrics 43:207;
Chow, Shao & Wang, *Sample Size Calculations in Clinical Research*, ch. 4): the per-example difference
d_i in {-1, 0, 1} has variance var = p_disc - true_diff^2, where p_disc = P(the two models disagree on
correctness). A one-sided test at alpha/2 against -Delta has power `power` when

    n = (z_{1-alpha/2} + z_{power})^2 * var / (Delta + true_diff)^2      (rounded up).

An observed p_disc of 0 (the models never disagree) would give n = 0, which says nothing; p_disc is
therefore floored at 1/n (one discordant pair in the sample) wherever n is known, and `required_n_...`
solves for the smallest n that satisfies the formula with that floor.
"""

from __future__ import annotations

import math
from statistics import NormalDist

VERDICTS = ("superior", "non-inferior", "inferior", "inconclusive")
_EPS = 1e-9


def verdict(diff_low: float, diff_high: float, margin: float) -> str:
    """One of VERDICTS for a higher-is-better difference CI [diff_low, diff_high] and margin >= 0."""
    for name, x in (("diff_low", diff_low), ("diff_high", diff_high), ("margin", margin)):
        if not math.isfinite(x):
            raise ValueError(f"verdict: '{name}' must be a finite number, got {x!r}")
    if diff_low > diff_high:
        raise ValueError(f"verdict: diff_low must be <= diff_high, got [{diff_low}, {diff_high}]")
    if margin < 0:
        raise ValueError(f"verdict: margin must be >= 0, got {margin}")
    if diff_low > 0:
        return "superior"
    if diff_low > -margin:
        return "non-inferior"
    if diff_high < -margin:
        return "inferior"
    return "inconclusive"


def orient(low: float, high: float, higher_is_better: bool) -> tuple[float, float]:
    """The CI of a difference turned higher-is-better: unchanged, or (-high, -low) for lower-is-better."""
    return (low, high) if higher_is_better else (-high, -low)


def _z_sum(alpha: float, power: float) -> float:
    """z_{1-alpha/2} + z_{power}."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power!r}")
    z = NormalDist().inv_cdf
    return z(1.0 - alpha / 2.0) + z(power)


def _check_p(p_discordant: float, true_diff: float) -> None:
    if not 0.0 <= p_discordant <= 1.0:
        raise ValueError(f"p_discordant must be in [0, 1], got {p_discordant!r}")
    if abs(true_diff) > p_discordant:
        raise ValueError(
            f"true_diff must satisfy |true_diff| <= p_discordant (a difference needs disagreements), "
            f"got true_diff={true_diff}, p_discordant={p_discordant}"
        )


def _ceil(x: float) -> int:
    """Ceiling that ignores float noise just above an integer."""
    return math.ceil(x - _EPS * max(1.0, abs(x)))


def required_n_noninferiority(
    p_discordant: float, margin: float, alpha: float = 0.05, power: float = 0.8, true_diff: float = 0.0
) -> int:
    """Test examples needed so a paired non-inferiority test at `margin` has the given power.

    Smallest n >= 1 with n >= k * (max(p_disc, 1/n) - true_diff^2), k = (z_{1-alpha/2} + z_power)^2 /
    (margin + true_diff)^2. The 1/n floor makes p_disc = 0 give n = ceil(sqrt(k)) rather than 0.
    """
    _check_p(p_discordant, true_diff)
    if margin + true_diff <= 0:
        raise ValueError(
            f"required_n_noninferiority: margin + true_diff must be > 0 (otherwise no sample size gives "
            f"power), got margin={margin}, true_diff={true_diff}"
        )
    k = _z_sum(alpha, power) ** 2 / (margin + true_diff) ** 2
    t2 = true_diff**2
    from_p = k * (p_discordant - t2)  # n >= k (p - t^2)
    # n >= k (1/n - t^2)  <=>  n^2 + k t^2 n - k >= 0  <=>  n >= the positive root
    from_floor = (-k * t2 + math.sqrt((k * t2) ** 2 + 4.0 * k)) / 2.0
    return max(1, _ceil(from_p), _ceil(from_floor))


def minimum_detectable_margin(
    n: int, p_discordant: float, alpha: float = 0.05, power: float = 0.8, true_diff: float = 0.0
) -> float:
    """The smallest margin that n paired examples test with the given power (inverse of required_n).

    margin = (z_{1-alpha/2} + z_power) * sqrt((max(p_disc, 1/n) - true_diff^2) / n) - true_diff.
    """
    if int(n) != n or n < 1:
        raise ValueError(f"minimum_detectable_margin: n must be an integer >= 1, got {n!r}")
    _check_p(p_discordant, true_diff)
    var = max(p_discordant, 1.0 / n) - true_diff**2
    return _z_sum(alpha, power) * math.sqrt(max(var, 0.0) / n) - true_diff


def power_note(
    n: int, p_discordant: float, margin: float, alpha: float = 0.05, power: float = 0.8
) -> dict[str, object]:
    """What the report says about power, assuming no true difference.

    Keys: n, minimum_detectable_margin, required_n (None when margin is 0: no n suffices), underpowered
    (n < required_n), plus the inputs margin, p_discordant, alpha, power.
    """
    mdm = minimum_detectable_margin(n, p_discordant, alpha, power)
    required = required_n_noninferiority(p_discordant, margin, alpha, power) if margin > 0 else None
    return {
        "n": int(n),
        "minimum_detectable_margin": mdm,
        "required_n": required,
        "underpowered": required is None or n < required,
        "margin": margin,
        "p_discordant": p_discordant,
        "alpha": alpha,
        "power": power,
    }
