"""The bill: build cost per candidate (its own cells and everything it was derived from, each counted once),
serving cost at the study's traffic, total cost of ownership and break-even against the reference, and the
reconciliation of the ledger with the measured run time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leanbench.analysis.common import Loaded, closure
from leanbench.analysis.results import (
    BreakEven,
    BreakEvenGroup,
    BuildLedger,
    BuildPhase,
    CandidateCost,
    CandidateResult,
    Interval,
    Prices,
    Reconcile,
    Serving,
    Tco,
    Traffic,
)


def _entries(loaded: Loaded) -> list[tuple[dict, Any]]:
    from leanbench.cost.ledger import LedgerEntry, aggregate_short_windows, price

    c = loaded.study.cost
    rows = loaded.store.ledger(loaded.name)
    entries = [LedgerEntry.from_row(r) for r in rows]
    priced = price(aggregate_short_windows(entries), c.usd_per_hour, c.usd_per_kwh, c.co2_kg_per_kwh)
    return list(zip(rows, priced, strict=True))


def _build_cells(loaded: Loaded) -> dict[str, set[str]]:
    return {r.name: set(r.cells.build.values()) for r in loaded.rows}


@dataclass
class BuildCost:
    """What building a candidate took, from the ledger: time (all of it, and its own cells), FLOPs, and the
    energy, money and CO2 of it and everything it derives from."""

    seconds: float
    seconds_own: float  # this candidate's own cells, every seed
    flops: float
    ledger: BuildLedger


def build_costs(loaded: Loaded, entries: list[tuple[dict, Any]]) -> dict[str, BuildCost]:
    """Per candidate: seconds, kWh, USD, CO2 and FLOPs of building it and everything it derives from."""
    cells = _build_cells(loaded)
    out = {}
    for name in cells:
        keys = set().union(*(cells.get(n, set()) for n in closure(name, loaded.deps)))
        mine = [(row, e) for row, e in entries if row["cell_key"] in keys and row["phase"].startswith(
            ("build:", "sweep:", "teacher-logits", "calibration"))]
        by_phase: dict[str, BuildPhase] = {}
        for _, e in mine:
            p = by_phase.setdefault(e.phase, BuildPhase(seconds=0.0, kwh=0.0, usd=0.0))
            p.seconds += e.seconds
            p.kwh += e.kwh or 0.0
            p.usd += e.usd or 0.0
        own = [e for row, e in mine if row["cell_key"] in cells.get(name, set())]
        methods = sorted({e.energy_method for _, e in mine if e.energy_method})
        out[name] = BuildCost(
            seconds=sum(e.seconds for _, e in mine),
            seconds_own=sum(e.seconds for e in own),
            flops=sum(e.flops or 0.0 for _, e in mine),
            ledger=BuildLedger(
                build_kwh=sum(e.kwh or 0.0 for _, e in mine),
                build_usd=sum(e.usd or 0.0 for _, e in mine),
                build_co2_kg=sum(e.co2_kg or 0.0 for _, e in mine),
                build_by_phase=by_phase,
                energy_method=methods[0] if len(methods) == 1 else ("; ".join(methods) or None),
                energy_uncertainty=max((e.energy_uncertainty or 0.0 for _, e in mine), default=0.0),
                seeds_built=len(loaded.seeds_of[name] if name in loaded.seeds_of else loaded.seeds)))
    return out


def lm_rate(serving: dict[str, Any] | None, prof: Any) -> dict[str, Any] | None:
    """An LLM's queries per second and energy per query from its serving figures on the pricing profile
    (`cost.tco.lm_queries_per_s`): at the largest batch measured, a query = the decode prompt + the new tokens;
    the power is the one measured in the profile's energy window (joules / its wall seconds)."""
    from leanbench.cost.tco import LM_METHOD, lm_energy_kwh_per_query, lm_queries_per_s

    if not serving or not serving.get("batches"):
        return None
    settings = serving.get("settings", {})
    b = max(serving["batches"], key=int)
    figs = serving["batches"][b]
    L, n = int(settings.get("decode_prompt", 0)), int(settings.get("new_tokens", 0))
    pre, dec = figs.get("prefill", {}).get(str(L), {}).get("tok_per_s"), figs.get("decode", {}).get("tok_per_s")
    if not (pre and dec and L and n):
        return None

    def iv(fig: dict[str, Any]) -> dict[str, float]:
        v = fig["value"]
        return {"value": v, "low": fig.get("ci_low") or v, "high": fig.get("ci_high") or v}

    qps = lm_queries_per_s(iv(pre), iv(dec), L, n)
    window = prof.extra.get("energy") or {}
    joules = (prof.energy_j_per_query or 0.0) * (window.get("queries") or 0)
    watts = joules / window["wall_s"] if window.get("wall_s") else 0.0
    return {"queries_per_s": qps.to_dict(), "energy_kwh_per_query": lm_energy_kwh_per_query(watts, qps).to_dict(),
            "basis": f"{LM_METHOD}; here b = {b}, L = {L}, N = {n}, {watts:.3g} W"}


def tco_section(loaded: Loaded, candidates: list[CandidateResult]) -> Tco | None:
    """Fills each candidate's `cost` with serving and total cost and its break-even vs the reference."""
    from leanbench.cost.tco import break_even_queries, tco

    entries = _entries(loaded)
    builds = build_costs(loaded, entries)
    deploy, price = loaded.study.deploy, loaded.study.cost
    profile = deploy.pricing_profile
    traffic = deploy.traffic
    results: dict[str, dict[str, Any]] = {}
    for c in candidates:
        cost = c.cost if c.cost is not None else CandidateCost()
        c.cost = cost
        b = builds.get(c.name)
        if b is not None:
            cost.build_seconds, cost.build_seconds_own, cost.build_flops = b.seconds, b.seconds_own, b.flops
            cost.ledger = b.ledger
        measure = loaded.measures.get(c.name)
        prof = (measure.result.profiles or {}).get(profile) if measure is not None else None
        thr = prof.throughput if prof is not None else None
        if thr is None or not thr.per_s:
            continue
        lo, hi = (thr.ci or [None, None])
        rate: Any = {"value": thr.per_s, "low": lo or thr.per_s, "high": hi or thr.per_s}
        kwh_q: Any = (prof.energy_j_per_query or 0.0) / 3.6e6
        lm = lm_rate((c.serving or {}).get(profile), prof)  # an LLM: a query is a generation
        if lm is not None:
            rate, kwh_q = lm["queries_per_s"], lm["energy_kwh_per_query"]
        unc = b.ledger.energy_uncertainty or 0.0 if b is not None else 0.0
        build_usd = b.ledger.build_usd if b is not None else 0.0
        build_kwh = b.ledger.build_kwh if b is not None else 0.0
        result = tco(queries_per_day=traffic.queries_per_day, horizon_days=traffic.horizon_days,
                     throughput_per_s=rate,
                     hardware_usd_per_hour=price.usd_per_hour,
                     energy_kwh_per_query=kwh_q,
                     energy_uncertainty_rel=None if lm is not None else prof.energy_uncertainty or 0.0,
                     usd_per_kwh=price.usd_per_kwh, co2_kg_per_kwh=price.co2_kg_per_kwh,
                     build_usd={"value": build_usd, "low": build_usd * (1 - unc), "high": build_usd * (1 + unc)},
                     build_kwh={"value": build_kwh, "low": build_kwh * (1 - unc), "high": build_kwh * (1 + unc)},
                     utilisation=price.utilisation)
        results[c.name] = result
        cost.serving = Serving(serve_usd_per_million=Interval.from_dict(result["serve_usd_per_million"]),
                               tco_usd=Interval.from_dict(result["tco_usd"]),
                               tco_kwh=Interval.from_dict(result["tco_kwh"]),
                               tco_co2_kg=Interval.from_dict(result["co2_kg"]),
                               keeps_up=result["keeps_up"], profile=profile)
        if lm is not None:
            cost.serving.extra["basis"] = lm["basis"]
    ref = results.get(loaded.reference)
    for c in candidates:
        r = results.get(c.name)
        if r is None or ref is None or c.name == loaded.reference or c.cost is None:
            continue
        be = break_even_queries({"build_usd": r["build_usd"], "serve_usd_per_query": r["serve_usd_per_query"]},
                                {"build_usd": ref["build_usd"], "serve_usd_per_query": ref["serve_usd_per_query"]})
        c.cost.break_even = BreakEvenGroup(break_even=BreakEven.from_dict(be), break_even_queries=be["queries"])
    if not results:
        return None
    return Tco(profile=profile,
               traffic=Traffic(queries_per_day=traffic.queries_per_day, horizon_days=traffic.horizon_days),
               prices=Prices(usd_per_hour=price.usd_per_hour, usd_per_kwh=price.usd_per_kwh,
                             co2_kg_per_kwh=price.co2_kg_per_kwh, utilisation=price.utilisation),
               method=next(iter(results.values()))["method"])


def reconcile_last_run(loaded: Loaded) -> Reconcile | None:
    """Sum of the last run's ledger entries against its measured wall time (5% tolerance)."""
    from leanbench.cost.ledger import LedgerEntry, reconcile

    run = loaded.info.run
    if run is None or not run.seconds:
        return None
    rows = [r for r in loaded.store.ledger(loaded.name) if r["run_id"] == run.id]
    return Reconcile.from_dict(reconcile([LedgerEntry.from_row(r) for r in rows], run.seconds))
