"""The measure cells: size, FLOPs and, per deployment profile, latency percentiles with CIs, throughput with
a CI, energy per query, peak memory against the cap, the latency SLO, and every speed-up with a CI.

All candidates of a study are measured together, in interleaved rounds (``leanbench.measure.interleaved``):
model-only latency, end-to-end latency (text) and throughput each run as one interleaved measurement over
every candidate of the profile, and a candidate's speed-up over the reference comes from per-round medians
paired by round (``leanbench.stats.speedup``). A measurement where too many rounds are disturbed (a robust
outlier rule on round medians) is repeated, a bounded number of times, then marked unreliable.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from leanbench.study import ProfileConfig, Study

AUTO_BATCH_RUNS = 7  # short, but a median over enough runs not to pick a batch by noise


def best_batches(models: dict[str, Any], X: np.ndarray, threads: int, batches: list[int],
                 seed: int = 0) -> dict[str, tuple[int, list[dict]]]:
    """Per model, the batch with the highest throughput among `batches`, and what each gave: every batch
    timed for every model in interleaved rounds (AUTO_BATCH_RUNS rounds of one call), so that a burst of
    load does not pick a batch for one model (the median throughput per batch decides)."""
    from leanbench.measure.interleaved import time_interleaved

    tried: dict[str, list[dict]] = {n: [] for n in models}
    for b in batches:
        timings = time_interleaved(models, X, threads=threads, batch=b, warmup=2, rounds=AUTO_BATCH_RUNS, calls=1,
                                   seed=seed)
        for name, t in timings.items():
            tried[name].append({"batch": b, "per_s": float(b / max(np.median(t.samples_ms) / 1e3, 1e-9))})
    return {n: (max(t, key=lambda r: r["per_s"])["batch"], t) for n, t in tried.items()}


def interleaved(models: dict[str, Any], X: np.ndarray, study: Study, *, threads: int, batch: dict[str, int],
                warmup: int, rounds: int, calls: int, include_prepare: bool = False,
                seed: int = 0) -> dict[str, Any]:
    """One interleaved measurement, repeated while more than `measure.max_disturbed_share` of its rounds are
    disturbed (at most `measure.repeats` times): the timings, the disturbed rounds and the machine's load."""
    from leanbench.measure.interleaved import load_change, machine_load, time_interleaved
    from leanbench.stats.speedup import disturbed_rounds

    cfg = study.measure
    for attempt in range(cfg.repeats + 1):
        before = machine_load()
        timings = time_interleaved(models, X, threads=threads, batch=batch, warmup=warmup, rounds=rounds,
                                   calls=calls, seed=seed + attempt, include_prepare=include_prepare,
                                   protocol=cfg.protocol)
        load = load_change(before, machine_load())
        flags = {n: disturbed_rounds(t.round_medians) for n, t in timings.items()}
        any_round = np.any(np.stack(list(flags.values())), axis=0)
        share = float(any_round.mean())
        if share <= cfg.max_disturbed_share:
            break
    return {"timings": timings, "flags": flags, "disturbed_rounds": int(any_round.sum()), "attempts": attempt + 1,
            "unreliable": share > cfg.max_disturbed_share, "load": load, "confidence": cfg.confidence,
            "min_effect": cfg.min_speedup}


def _protocol(run: dict[str, Any], name: str, rounds: int, calls: int, study: Study) -> dict[str, Any]:
    return {"protocol": study.measure.protocol, "rounds": rounds, "calls_per_round": calls,
            "disturbed_rounds": int(run["flags"][name].sum()), "disturbed_rounds_any": run["disturbed_rounds"],
            "attempts": run["attempts"], "unreliable": run["unreliable"], "load": run["load"]}


def _speedups(run: dict[str, Any], reference: str, batch: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Per candidate: the reference's per-round medians over its own, paired by round (> 1: faster), per
    example (a call's time over its batch), so candidates at different `auto` batches compare by the time
    each spends on one example."""
    from leanbench.stats.speedup import paired_speedup

    ref = run["timings"][reference].round_medians / batch[reference]
    out = {}
    for name, t in run["timings"].items():
        s = paired_speedup(ref, t.round_medians / batch[name], confidence=run["confidence"],
                           min_effect=run["min_effect"])
        either = run["flags"][name] | run["flags"][reference]
        out[name] = {**s, "disturbed_rounds": int(either.sum())}
    return out


def measure_profile_group(models: dict[str, Any], X: np.ndarray, profile: ProfileConfig, study: Study,
                          energy: Any, reference: str) -> dict[str, dict[str, Any]]:
    """Every candidate of one profile, measured together: name -> the profile's figures for that candidate."""
    from leanbench.cost.tco import slo_check
    from leanbench.measure.energy import EnergyMeter
    from leanbench.measure.latency import END_TO_END_METHOD, LATENCY_METHOD, measure_throughput
    from leanbench.measure.percentiles import latency_percentiles, percentile_with_ci, runs_for_ci

    cfg = study.measure
    auto: dict[str, Any] = {}
    if profile.batch == "auto":
        chosen = best_batches(models, X, profile.threads, study.deploy.auto_batches)
        batch = {n: chosen[n][0] for n in models}
        auto = {n: chosen[n][1] for n in models}
    else:
        batch = dict.fromkeys(models, profile.batch)
    runs = max(cfg.runs, runs_for_ci(profile.slo_percentile, cfg.confidence) or 0)
    calls = math.ceil(runs / cfg.rounds)
    lat = interleaved(models, X, study, threads=profile.threads, batch=batch, warmup=cfg.warmup,
                      rounds=cfg.rounds, calls=calls)
    e2e = None
    if X.dtype == object:  # text: also end to end, tokenization inside the timing
        e2e = interleaved(models, X, study, threads=profile.threads, batch=batch, warmup=cfg.warmup,
                          rounds=cfg.rounds, calls=calls, include_prepare=True)
    # throughput: one call of the profile's batch per candidate per round
    thr = interleaved(models, X, study, threads=profile.threads, batch=batch, warmup=cfg.throughput_warmup,
                      rounds=cfg.throughput_runs, calls=1)
    speed = _speedups(lat, reference, batch)
    thr_speed = _speedups(thr, reference, batch)
    out: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        samples = lat["timings"][name].samples_ms.ravel()
        p50, p90, p99 = np.percentile(samples, [50, 90, 99], method="linear")
        latency: dict[str, Any] = {
            "p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99), "mean_ms": float(samples.mean()),
            "std_ms": float(samples.std(ddof=1)) if samples.size > 1 else 0.0, "min_ms": float(samples.min()),
            "threads": lat["timings"][name].threads, "batch": batch[name], "warmup": cfg.warmup,
            "runs": int(samples.size), "method": LATENCY_METHOD,
            **_protocol(lat, name, cfg.rounds, calls, study)}
        for key, d in latency_percentiles(samples, confidence=cfg.confidence).items():  # "p90_ms" -> "p90_ci"
            latency[key.replace("_ms", "_ci")] = [d["ci_low"], d["ci_high"]]
            latency["ci_method"] = d["method"]
        if e2e is not None:
            s = e2e["timings"][name].samples_ms.ravel()
            q50, q90, q99 = np.percentile(s, [50, 90, 99], method="linear")
            latency["end_to_end"] = {"p50_ms": float(q50), "p90_ms": float(q90), "p99_ms": float(q99),
                                     "mean_ms": float(s.mean()), "method": END_TO_END_METHOD,
                                     **_protocol(e2e, name, cfg.rounds, calls, study)}
        rates = batch[name] / np.maximum(thr["timings"][name].samples_ms.ravel() / 1e3, 1e-9)
        rate_ci = percentile_with_ci(rates, 0.5, cfg.confidence)
        with EnergyMeter(energy) as meter:  # energy: a short block of its own (joules cannot be split by round)
            measure_throughput(model, X, threads=profile.threads, batch=batch[name],
                               warmup=cfg.throughput_warmup, runs=cfg.throughput_runs)
        queries = batch[name] * (cfg.throughput_warmup + cfg.throughput_runs)
        reading = meter.reading
        slo = None
        if profile.slo_ms is not None:
            at = percentile_with_ci(samples, profile.slo_percentile, cfg.confidence)
            slo = {**slo_check(at, profile.slo_ms), "slo_ms": profile.slo_ms,
                   "percentile": profile.slo_percentile, "latency_ms": at["value"]}
        out[name] = {
            "latency": latency,
            "throughput": {"per_s": float(np.median(rates)), "threads": latency["threads"], "batch": batch[name],
                           "warmup": cfg.throughput_warmup, "runs": int(rates.size),
                           "p50_batch_ms": float(np.median(thr["timings"][name].samples_ms)),
                           "method": LATENCY_METHOD, "ci": [rate_ci["ci_low"], rate_ci["ci_high"]],
                           "ci_method": rate_ci["method"], **_protocol(thr, name, cfg.throughput_runs, 1, study)},
            "speedup": speed[name], "throughput_ratio": thr_speed[name],
            "energy_j_per_query": reading.joules / queries if reading.joules is not None else None,
            "energy_uncertainty": reading.uncertainty_rel, "energy_method": reading.method,
            "batch": batch[name], "threads": latency["threads"], "auto_batch": auto.get(name), "slo": slo,
        }
    return out


def measure_group(models: dict[str, Any], artifacts: dict[str, Path], X: np.ndarray, study: Study, energy: Any,
                  reference: str) -> dict[str, dict[str, Any]]:
    """Every candidate measured together (name -> its measure-cell result): per profile, interleaved."""
    from leanbench.measure.flops import flops_per_example
    from leanbench.measure.memory import peak_memory
    from leanbench.measure.size import model_size

    by_profile = {p.name: measure_profile_group(models, X, p, study, energy, reference)
                  for p in study.deploy.profiles}
    out = {}
    for name, model in models.items():
        profiles = {p: by_profile[p][name] for p in by_profile}
        for p in study.deploy.profiles:
            mem = peak_memory(model, X, batch=profiles[p.name]["batch"])
            profiles[p.name]["memory"] = mem
            cap = p.memory_cap_mb
            peak = mem.get("peak_bytes")
            profiles[p.name]["memory_cap_ok"] = None if cap is None or peak is None else peak <= cap * 1e6
        pricing = profiles[study.deploy.pricing_profile]
        out[name] = {
            **model_size(model, artifacts[name]),
            "flops": flops_per_example(model, X),
            "profiles": profiles,
            # contract fields: latency by profile; throughput and memory of the pricing profile
            "latency": {p: profiles[p]["latency"] for p in profiles},
            "throughput": {**pricing["throughput"], "profile": study.deploy.pricing_profile},
            "memory": pricing["memory"],
            # speed-ups over the reference with their CIs, measured side by side (interleaved rounds)
            "speedup": {p: profiles[p]["speedup"] for p in profiles},
            "throughput_ratio": {p: profiles[p]["throughput_ratio"] for p in profiles},
            "measured_with": sorted(models),
        }
    return out
