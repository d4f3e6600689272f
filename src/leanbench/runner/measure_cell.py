"""The measure cell: size, FLOPs and, per deployment profile, latency percentiles with CIs, throughput with
a CI, energy per query, peak memory against the cap, and the latency SLO."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from leanbench.study import ProfileConfig, Study

AUTO_BATCH_RUNS = 7  # short, but a median over enough runs not to pick a batch by noise


def best_batch(model: Any, X: np.ndarray, threads: int, batches: list[int]) -> tuple[int, list[dict]]:
    """The batch with the highest throughput among `batches` (short runs), and what each gave."""
    from leanbench.measure.latency import measure_throughput

    tried = []
    for b in batches:
        r = measure_throughput(model, X, threads=threads, batch=b, warmup=2, runs=AUTO_BATCH_RUNS)
        tried.append({"batch": b, "per_s": r["per_s"]})
    return max(tried, key=lambda t: t["per_s"])["batch"], tried


def measure_profile(model: Any, X: np.ndarray, profile: ProfileConfig, study: Study, energy: Any) -> dict:
    from leanbench.cost.tco import slo_check
    from leanbench.measure.energy import EnergyMeter
    from leanbench.measure.latency import measure_latency, measure_throughput
    from leanbench.measure.percentiles import latency_percentiles, percentile_with_ci, runs_for_ci

    cfg = study.measure
    auto = None
    batch = profile.batch
    if batch == "auto":
        batch, auto = best_batch(model, X, profile.threads, study.deploy.auto_batches)
    runs = max(cfg.runs, runs_for_ci(profile.slo_percentile, cfg.confidence) or 0)
    lat = measure_latency(model, X, threads=profile.threads, batch=batch, warmup=cfg.warmup, runs=runs)
    samples = lat.pop("samples_ms")
    latency = dict(lat)
    for key, d in latency_percentiles(samples, confidence=cfg.confidence).items():  # "p90_ms" -> "p90_ci"
        latency[key.replace("_ms", "_ci")] = [d["ci_low"], d["ci_high"]]
        latency["ci_method"] = d["method"]
    if X.dtype == object:  # text: also end to end, tokenization inside the timing
        e2e = measure_latency(model, X, threads=profile.threads, batch=batch, warmup=cfg.warmup, runs=runs,
                              include_prepare=True)
        e2e.pop("samples_ms", None)
        latency["end_to_end"] = {k: e2e[k] for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "method")}
    with EnergyMeter(energy) as meter:
        thr = measure_throughput(model, X, threads=profile.threads, batch=batch, warmup=cfg.throughput_warmup,
                                 runs=cfg.throughput_runs)
    rates = thr.pop("per_run_per_s")
    rate_ci = percentile_with_ci(rates, 0.5, cfg.confidence)
    queries = batch * (cfg.throughput_warmup + cfg.throughput_runs)
    reading = meter.reading
    slo = None
    if profile.slo_ms is not None:
        at = percentile_with_ci(samples, profile.slo_percentile, cfg.confidence)
        slo = {**slo_check(at, profile.slo_ms), "slo_ms": profile.slo_ms, "percentile": profile.slo_percentile,
               "latency_ms": at["value"]}
    return {
        "latency": latency,
        "throughput": {**thr, "ci": [rate_ci["ci_low"], rate_ci["ci_high"]], "ci_method": rate_ci["method"]},
        "energy_j_per_query": reading.joules / queries if reading.joules is not None else None,
        "energy_uncertainty": reading.uncertainty_rel, "energy_method": reading.method,
        "batch": batch, "threads": lat["threads"], "auto_batch": auto, "slo": slo,
    }


def measure_candidate(model: Any, X: np.ndarray, artifact: Path, study: Study, energy: Any) -> dict[str, Any]:
    from leanbench.measure.flops import flops_per_example
    from leanbench.measure.memory import peak_memory
    from leanbench.measure.size import model_size

    profiles = {p.name: measure_profile(model, X, p, study, energy) for p in study.deploy.profiles}
    for p in study.deploy.profiles:
        mem = peak_memory(model, X, batch=profiles[p.name]["batch"])
        profiles[p.name]["memory"] = mem
        cap = p.memory_cap_mb
        peak = mem.get("peak_bytes")
        profiles[p.name]["memory_cap_ok"] = None if cap is None or peak is None else peak <= cap * 1e6
    pricing = profiles[study.deploy.pricing_profile]
    return {
        **model_size(model, artifact),
        "flops": flops_per_example(model, X),
        "profiles": profiles,
        # contract fields: latency by profile; throughput and memory of the pricing profile
        "latency": {name: p["latency"] for name, p in profiles.items()},
        "throughput": {**pricing["throughput"], "profile": study.deploy.pricing_profile},
        "memory": pricing["memory"],
    }
