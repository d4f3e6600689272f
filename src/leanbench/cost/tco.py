"""Total cost of ownership of serving a candidate, break-even against the reference, latency SLOs.

Every figure is a :class:`Interval` ``(value, low, high)``. Inputs with uncertainty: the measured
throughput (its CI) and the energy per query (a relative uncertainty). Each output is a monotone
function of each uncertain input (cost falls as throughput rises and rises with energy), and the two
are varied independently, so the bounds are the function at the corners: e.g.
``serve_usd.high = f(throughput.low, energy.high)``. That interval contains every value the inputs'
intervals allow (it is not itself a confidence interval of stated level; with a 95 % throughput CI it
covers at least when both input intervals do).

TCO model over a horizon (``queries = queries_per_day * horizon_days``)::

    busy_hours     = queries / throughput_per_s / 3600
    paid_hours     = busy_hours / utilisation              (utilisation 1: paid only while serving)
    hardware_usd   = paid_hours * hardware_usd_per_hour
    serve_kwh      = queries * energy_kwh_per_query
    serve_usd      = hardware_usd + serve_kwh * usd_per_kwh
    tco_usd        = build_usd + serve_usd
    co2_kg         = (build_kwh + serve_kwh) * co2_kg_per_kwh
    serve_usd_per_million = serve_usd / queries * 1e6

Money is computed in floats and rounded to cents only for presentation (:func:`cents`).

Break-even (:func:`break_even_queries`): with build costs ``b`` and serving costs per query ``s``,
the candidate's total cost after ``Q`` queries is ``b_c + s_c Q`` and the reference's ``b_r + s_r Q``.
With ``extra_build = b_c - b_r`` and ``saving = s_r - s_c`` per query:

* ``after``: ``extra_build > 0`` and ``saving > 0``: the extra build cost is paid back after
  ``Q = extra_build / saving`` queries; the candidate is cheaper beyond it.
* ``immediately``: ``extra_build <= 0`` and ``saving >= 0``, not both 0: cheaper from the first query.
* ``until``: ``extra_build < 0`` and ``saving < 0``: cheaper to build, dearer to serve: cheaper only up
  to ``Q = extra_build / saving`` queries, dearer after.
* ``never``: ``extra_build >= 0`` and ``saving <= 0``, not both 0: never cheaper.
* ``equal``: both 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leanbench.errors import LeanbenchError


@dataclass(frozen=True)
class Interval:
    """A value with bounds ``low <= value <= high``."""

    value: float
    low: float
    high: float

    def __post_init__(self) -> None:
        if not (self.low <= self.value <= self.high):
            raise LeanbenchError(f"interval: need low <= value <= high, got {self.low!r}, {self.value!r}, "
                                 f"{self.high!r}")

    @classmethod
    def of(cls, x: Any, name: str = "value") -> Interval:
        """An Interval from a number (no uncertainty), an Interval, a mapping with ``value`` and
        ``low``/``high`` (or ``ci_low``/``ci_high``), or a ``(value, low, high)`` tuple."""
        if isinstance(x, Interval):
            return x
        if isinstance(x, Mapping):
            low, high = x.get("low", x.get("ci_low")), x.get("high", x.get("ci_high"))
            v = x.get("value")
            low, high = v if low is None else low, v if high is None else high
            return cls(_num(v, name), _num(low, name), _num(high, name))
        if isinstance(x, (tuple, list)) and len(x) == 3:
            return cls(*(_num(v, name) for v in x))
        return cls(_num(x, name), _num(x, name), _num(x, name))

    @classmethod
    def relative(cls, value: float, uncertainty_rel: float) -> Interval:
        """``value * (1 -/+ uncertainty_rel)``."""
        if not 0 <= uncertainty_rel < 1:
            raise LeanbenchError(f"uncertainty_rel must be in [0, 1), got {uncertainty_rel!r}")
        return cls(value, value * (1 - uncertainty_rel), value * (1 + uncertainty_rel))

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


def _num(v: Any, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        raise LeanbenchError(f"{name}: must be a number, got {v!r}")
    return float(v)


def _positive(name: str, x: Interval) -> None:
    if x.low <= 0 or not math.isfinite(x.high):
        raise LeanbenchError(f"{name}: must be > 0 and finite, got {x.to_dict()}")


def _non_negative(**values: float) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise LeanbenchError(f"{name}: must be a finite number >= 0, got {v!r}")


def cents(x: float) -> float:
    """Rounds money to cents for presentation (never used inside a computation)."""
    return round(x, 2)


def energy_interval(kwh: float | Interval | Mapping, uncertainty_rel: float | None = None) -> Interval:
    """Energy per query as an Interval: from ``kwh`` with ``uncertainty_rel``, or an interval as given."""
    if uncertainty_rel is not None:
        return Interval.relative(_num(kwh, "energy_kwh_per_query"), uncertainty_rel)
    return Interval.of(kwh, "energy_kwh_per_query")


# --------------------------------------------------------------------------- TCO
def energy_per_query(joules: float, queries: int, uncertainty_rel: float = 0.0) -> Interval:
    """kWh per query from the energy of a window that served ``queries`` queries (e.g. an
    :class:`~leanbench.measure.energy.EnergyReading` over the throughput runs), with its relative bounds."""
    _non_negative(joules=joules)
    if isinstance(queries, bool) or not isinstance(queries, int) or queries < 1:
        raise LeanbenchError(f"energy_per_query: queries must be an integer >= 1, got {queries!r}")
    return Interval.relative(joules / 3.6e6 / queries, uncertainty_rel)


def tco(*, queries_per_day: float, horizon_days: float, throughput_per_s: float | Interval | Mapping,
        hardware_usd_per_hour: float, energy_kwh_per_query: float | Interval | Mapping,
        energy_uncertainty_rel: float | None = None, usd_per_kwh: float = 0.0, co2_kg_per_kwh: float = 0.0,
        build_usd: float | Interval | Mapping = 0.0, build_kwh: float | Interval | Mapping = 0.0,
        utilisation: float = 1.0) -> dict[str, Any]:
    """Serving cost, energy and CO2 over the horizon plus the build cost (formulas in the module docstring).

    ``throughput_per_s`` is the measured examples per second (with its CI as ``low``/``high``);
    ``energy_kwh_per_query`` the energy per query, with ``energy_uncertainty_rel`` or as an interval.
    Each output is ``{"value", "low", "high"}``.
    """
    _non_negative(queries_per_day=queries_per_day, horizon_days=horizon_days,
                  hardware_usd_per_hour=hardware_usd_per_hour, usd_per_kwh=usd_per_kwh,
                  co2_kg_per_kwh=co2_kg_per_kwh)
    if not 0 < utilisation <= 1:
        raise LeanbenchError(f"utilisation: must be in (0, 1], got {utilisation!r}")
    thr = Interval.of(throughput_per_s, "throughput_per_s")
    _positive("throughput_per_s", thr)
    e_q = energy_interval(energy_kwh_per_query, energy_uncertainty_rel)
    b_usd, b_kwh = Interval.of(build_usd, "build_usd"), Interval.of(build_kwh, "build_kwh")
    queries = queries_per_day * horizon_days

    def at(t: float, e: float, bu: float, bk: float) -> dict[str, float]:
        busy_hours = queries / t / 3600
        hardware = busy_hours / utilisation * hardware_usd_per_hour
        serve_kwh = queries * e
        serve_usd = hardware + serve_kwh * usd_per_kwh
        per_query = hardware_usd_per_hour / utilisation / (t * 3600) + e * usd_per_kwh
        return {"busy_hours": busy_hours, "hardware_usd": hardware, "serve_kwh": serve_kwh,
                "serve_usd": serve_usd, "serve_usd_per_query": per_query,
                "serve_usd_per_million": per_query * 1e6, "tco_usd": bu + serve_usd,
                "tco_kwh": bk + serve_kwh, "co2_kg": (bk + serve_kwh) * co2_kg_per_kwh,
                "serve_co2_kg": serve_kwh * co2_kg_per_kwh}

    point = at(thr.value, e_q.value, b_usd.value, b_kwh.value)
    low = at(thr.high, e_q.low, b_usd.low, b_kwh.low)  # every output falls as throughput rises
    high = at(thr.low, e_q.high, b_usd.high, b_kwh.high)
    out: dict[str, Any] = {k: Interval(point[k], low[k], high[k]).to_dict() for k in point}
    load = queries_per_day / 86400
    out.update({
        "queries": queries, "queries_per_day": queries_per_day, "horizon_days": horizon_days,
        "build_usd": b_usd.to_dict(), "build_kwh": b_kwh.to_dict(),
        "throughput_per_s": thr.to_dict(), "energy_kwh_per_query": e_q.to_dict(),
        "hardware_usd_per_hour": hardware_usd_per_hour, "usd_per_kwh": usd_per_kwh,
        "co2_kg_per_kwh": co2_kg_per_kwh, "utilisation": utilisation,
        "mean_load_fraction": Interval(load / thr.value, load / thr.high, load / thr.low).to_dict(),
        "keeps_up": load <= thr.low,
        "method": "busy-hours model: hardware paid per hour of serving / utilisation; "
                  "bounds at the corners of the throughput CI and energy uncertainty",
    })
    return out


def serve_usd_per_million(throughput_per_s: float, hardware_usd_per_hour: float,
                          energy_kwh_per_query: float = 0.0, usd_per_kwh: float = 0.0,
                          utilisation: float = 1.0) -> float:
    """Serving cost of one million queries: ``1e6 * (usd_per_hour / utilisation / (3600 * throughput)
    + energy_kwh_per_query * usd_per_kwh)``."""
    _non_negative(hardware_usd_per_hour=hardware_usd_per_hour, energy_kwh_per_query=energy_kwh_per_query,
                  usd_per_kwh=usd_per_kwh)
    _positive("throughput_per_s", Interval.of(throughput_per_s, "throughput_per_s"))
    return 1e6 * (hardware_usd_per_hour / utilisation / (3600 * throughput_per_s)
                  + energy_kwh_per_query * usd_per_kwh)


# --------------------------------------------------------------------------- LLM serving
LM_METHOD = ("LLM: a query is a prompt of L tokens and N new tokens at batch b: queries/s = 1 / (L / prefill tok/s "
             "+ (N - 1) / decode tok/s) (rates per batch, from the serving figures; bounds from their CIs); energy "
             "per query = the measured power x seconds per query")


def lm_queries_per_s(prefill_tok_s: float | Interval | Mapping, decode_tok_s: float | Interval | Mapping,
                     prompt_tokens: int, new_tokens: int) -> Interval:
    """Queries per second of an LLM from its serving figures at one batch (``LM_METHOD``): each query's prompt
    goes through prefill, its first new token comes with it, the other ``new_tokens - 1`` from decode steps.
    Both rates are tokens per second over the whole batch; the rate rises with each, so the bounds are the
    function at the rates' bounds."""
    if isinstance(prompt_tokens, bool) or not isinstance(prompt_tokens, int) or prompt_tokens < 1:
        raise LeanbenchError(f"prompt_tokens: must be an integer >= 1, got {prompt_tokens!r}")
    if isinstance(new_tokens, bool) or not isinstance(new_tokens, int) or new_tokens < 1:
        raise LeanbenchError(f"new_tokens: must be an integer >= 1, got {new_tokens!r}")
    pre, dec = Interval.of(prefill_tok_s, "prefill_tok_s"), Interval.of(decode_tok_s, "decode_tok_s")
    _positive("prefill_tok_s", pre)
    _positive("decode_tok_s", dec)

    def rate(p: float, d: float) -> float:
        return 1.0 / (prompt_tokens / p + (new_tokens - 1) / d)

    return Interval(rate(pre.value, dec.value), rate(pre.low, dec.low), rate(pre.high, dec.high))


def lm_energy_kwh_per_query(watts: float, queries_per_s: float | Interval | Mapping) -> Interval:
    """kWh per LLM query at a measured power: ``watts / queries_per_s / 3.6e6`` (bounds from the rate's)."""
    _non_negative(watts=watts)
    q = Interval.of(queries_per_s, "queries_per_s")
    _positive("queries_per_s", q)
    return Interval(watts / q.value / 3.6e6, watts / q.high / 3.6e6, watts / q.low / 3.6e6)


# --------------------------------------------------------------------------- break-even
def break_even(build_c: float, serve_c: float, build_r: float, serve_r: float) -> dict[str, Any]:
    """Break-even of a candidate against the reference from build costs and serving costs per query.

    Returns ``{"status", "queries", "extra_build_usd", "saving_per_query_usd"}`` with ``status`` one of
    ``after | immediately | until | never | equal`` (defined in the module docstring) and ``queries``
    the crossing point for ``after``/``until``, 0 for ``immediately``, None otherwise.
    """
    extra, saving = build_c - build_r, serve_r - serve_c
    if extra == 0 and saving == 0:
        status, q = "equal", None
    elif extra <= 0 and saving >= 0:
        status, q = "immediately", 0.0
    elif extra > 0 and saving > 0:
        status, q = "after", extra / saving
    elif extra < 0 and saving < 0:
        status, q = "until", extra / saving
    else:
        status, q = "never", None
    return {"status": status, "queries": q, "extra_build_usd": extra, "saving_per_query_usd": saving}


def break_even_queries(cand: Mapping[str, Any], ref: Mapping[str, Any]) -> dict[str, Any]:
    """Break-even between two :func:`tco` results (or mappings with ``build_usd`` and
    ``serve_usd_per_query``, each a number or interval).

    Adds ``low``/``high``: the break-even volume at the corners most and least favourable to the
    candidate (the two results' uncertainties taken as independent); ``high`` None means the candidate
    may never pay back within those bounds.
    """
    bc, br = Interval.of(cand["build_usd"], "build_usd"), Interval.of(ref["build_usd"], "build_usd")
    sc = Interval.of(cand["serve_usd_per_query"], "serve_usd_per_query")
    sr = Interval.of(ref["serve_usd_per_query"], "serve_usd_per_query")
    out = break_even(bc.value, sc.value, br.value, sr.value)
    best = break_even(bc.low, sc.low, br.high, sr.high)
    worst = break_even(bc.high, sc.high, br.low, sr.low)
    out["low"] = _earliest(best)
    out["high"] = _earliest(worst)
    out["status_range"] = sorted({best["status"], out["status"], worst["status"]})
    return out


def _earliest(be: Mapping[str, Any]) -> float | None:
    """Queries after which the candidate is cheaper for good (None: never is, in this scenario)."""
    return be["queries"] if be["status"] == "after" else (0.0 if be["status"] == "immediately" else None)


def cost_at(queries: float, build_usd: float, serve_usd_per_query: float) -> float:
    """Cumulative cost after ``queries`` queries: ``build_usd + serve_usd_per_query * queries`` (the
    break-even plot's lines)."""
    return build_usd + serve_usd_per_query * queries


# --------------------------------------------------------------------------- SLO
def slo_check(latency_ms: float | Interval | Mapping, slo_ms: float) -> dict[str, Any]:
    """Whether a latency percentile meets a service-level objective, given its CI.

    ``meets`` is True when the whole CI is at or below the SLO, False when the whole CI is above it,
    and None (``status: uncertain``) when the CI straddles it. A mapping may carry ``ci_high`` None (a
    CI too wide to bound, see :mod:`leanbench.measure.percentiles`): then the SLO cannot be shown met.
    """
    _non_negative(slo_ms=slo_ms)
    if isinstance(latency_ms, Mapping):
        value = _num(latency_ms.get("value"), "latency_ms")
        low = latency_ms.get("ci_low", latency_ms.get("low"))
        high = latency_ms.get("ci_high", latency_ms.get("high"))
    else:
        iv = Interval.of(latency_ms, "latency_ms")
        value, low, high = iv.value, iv.low, iv.high
    if low is not None and low > slo_ms:
        meets, status = False, "misses"
    elif high is not None and high <= slo_ms:
        meets, status = True, "meets"
    else:
        meets, status = None, "uncertain"
    return {"meets": meets, "status": status, "slo_ms": slo_ms, "latency_ms": value, "ci_low": low,
            "ci_high": high, "headroom_ms": slo_ms - value}
