"""The bill: build cost per candidate (its own cells and everything it was derived from, each counted once),
serving cost at the study's traffic, total cost of ownership and break-even against the reference, and the
reconciliation of the ledger with the measured run time."""

from __future__ import annotations

from typing import Any

from leanbench.analysis.common import Loaded, closure


def _entries(loaded: Loaded) -> list[Any]:
    from leanbench.cost.ledger import LedgerEntry, aggregate_short_windows, price

    c = loaded.cfg.get("cost") or {}
    rows = loaded.store.ledger(loaded.name)
    entries = [LedgerEntry.from_row(r) for r in rows]
    priced = price(aggregate_short_windows(entries), c.get("usd_per_hour", 0.10), c.get("usd_per_kwh", 0.15),
                   c.get("co2_kg_per_kwh", 0.4))
    return list(zip(rows, priced, strict=True))


def _build_cells(loaded: Loaded) -> dict[str, set[str]]:
    return {r["name"]: set(r["cells"]["build"].values()) for r in loaded.rows}


def build_costs(loaded: Loaded, entries: list[tuple[dict, Any]]) -> dict[str, dict[str, Any]]:
    """Per candidate: seconds, kWh, USD, CO2 and FLOPs of building it and everything it derives from."""
    cells = _build_cells(loaded)
    out = {}
    for name in cells:
        keys = set().union(*(cells.get(n, set()) for n in closure(name, loaded.deps)))
        mine = [(row, e) for row, e in entries if row["cell_key"] in keys and row["phase"].startswith(
            ("build:", "sweep:", "teacher-logits", "calibration"))]
        by_phase: dict[str, dict[str, float]] = {}
        for _, e in mine:
            p = by_phase.setdefault(e.phase, {"seconds": 0.0, "kwh": 0.0, "usd": 0.0})
            p["seconds"] += e.seconds
            p["kwh"] += e.kwh or 0.0
            p["usd"] += e.usd or 0.0
        own = [e for row, e in mine if row["cell_key"] in cells.get(name, set())]
        methods = sorted({e.energy_method for _, e in mine if e.energy_method})
        unc = max((e.energy_uncertainty or 0.0 for _, e in mine), default=0.0)
        out[name] = {
            "build_seconds": sum(e.seconds for _, e in mine),
            "build_seconds_own": sum(e.seconds for e in own),  # this candidate's own cells, every seed
            "build_kwh": sum(e.kwh or 0.0 for _, e in mine),
            "build_usd": sum(e.usd or 0.0 for _, e in mine),
            "build_co2_kg": sum(e.co2_kg or 0.0 for _, e in mine),
            "build_flops": sum(e.flops or 0.0 for _, e in mine),
            "build_by_phase": by_phase,
            "energy_method": methods[0] if len(methods) == 1 else ("; ".join(methods) or None),
            "energy_uncertainty": unc,
            "seeds_built": len(loaded.seeds_of.get(name, loaded.seeds)),
        }
    return out


def tco_section(loaded: Loaded, candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Fills each candidate's `cost` with serving and total cost and its break-even vs the reference."""
    from leanbench.cost.tco import break_even_queries, tco

    entries = _entries(loaded)
    builds = build_costs(loaded, entries)
    dep = loaded.cfg.get("deploy") or {}
    price = loaded.cfg.get("cost") or {}
    profiles = [p["name"] for p in dep.get("profiles") or []]
    profile = dep.get("tco_profile") or ("server" if "server" in profiles else (profiles or [None])[0])
    traffic = dep.get("traffic") or {"queries_per_day": 100_000, "horizon_days": 365}
    results: dict[str, dict] = {}
    for c in candidates:
        b = builds.get(c["name"], {})
        c["cost"].update({k: v for k, v in b.items() if k != "build_seconds"})
        if b:
            c["cost"]["build_seconds"] = b["build_seconds"]
        prof = ((loaded.measures.get(c["name"]) or {}).get("result") or {}).get("profiles", {}).get(profile)
        if not prof or not prof["throughput"].get("per_s"):
            continue
        thr = prof["throughput"]
        lo, hi = (thr.get("ci") or [None, None])
        kwh_q = (prof["energy_j_per_query"] or 0.0) / 3.6e6
        unc = b.get("energy_uncertainty", 0.0) or 0.0
        result = tco(queries_per_day=traffic["queries_per_day"], horizon_days=traffic["horizon_days"],
                     throughput_per_s={"value": thr["per_s"], "low": lo or thr["per_s"],
                                       "high": hi or thr["per_s"]},
                     hardware_usd_per_hour=price.get("usd_per_hour", 0.10),
                     energy_kwh_per_query=kwh_q, energy_uncertainty_rel=prof.get("energy_uncertainty") or 0.0,
                     usd_per_kwh=price.get("usd_per_kwh", 0.15), co2_kg_per_kwh=price.get("co2_kg_per_kwh", 0.4),
                     build_usd={"value": b.get("build_usd", 0.0), "low": b.get("build_usd", 0.0) * (1 - unc),
                                "high": b.get("build_usd", 0.0) * (1 + unc)},
                     build_kwh={"value": b.get("build_kwh", 0.0), "low": b.get("build_kwh", 0.0) * (1 - unc),
                                "high": b.get("build_kwh", 0.0) * (1 + unc)},
                     utilisation=price.get("utilisation", 1.0))
        results[c["name"]] = result
        c["cost"].update({"serve_usd_per_million": result["serve_usd_per_million"], "tco_usd": result["tco_usd"],
                          "tco_kwh": result["tco_kwh"], "tco_co2_kg": result["co2_kg"],
                          "keeps_up": result["keeps_up"], "profile": profile})
    ref = results.get(loaded.reference)
    for c in candidates:
        r = results.get(c["name"])
        if r is None or ref is None or c["name"] == loaded.reference:
            continue
        be = break_even_queries({"build_usd": r["build_usd"], "serve_usd_per_query": r["serve_usd_per_query"]},
                                {"build_usd": ref["build_usd"], "serve_usd_per_query": ref["serve_usd_per_query"]})
        c["cost"]["break_even"] = be
        c["cost"]["break_even_queries"] = be["queries"]
    if not results:
        return None
    return {"profile": profile, "traffic": traffic,
            "prices": {k: price.get(k) for k in ("usd_per_hour", "usd_per_kwh", "co2_kg_per_kwh", "utilisation")},
            "method": next(iter(results.values()))["method"]}


def reconcile_last_run(loaded: Loaded) -> dict[str, Any] | None:
    """Sum of the last run's ledger entries against its measured wall time (5% tolerance)."""
    from leanbench.cost.ledger import LedgerEntry, reconcile

    run = loaded.info.get("run")
    if not run or not run.get("seconds"):
        return None
    rows = [r for r in loaded.store.ledger(loaded.name) if r["run_id"] == run["id"]]
    return reconcile([LedgerEntry.from_row(r) for r in rows], run["seconds"])
