"""The measure cells: size, FLOPs and, per deployment profile, latency percentiles with CIs, throughput with
a CI, energy per query, peak memory against the cap, the latency SLO, and every speed-up with a CI.

All candidates of a study are measured together, in interleaved rounds (``leanbench.measure.interleaved``):
model-only latency, end-to-end latency (text) and throughput each run as one interleaved measurement over
every candidate of the profile, and a candidate's speed-up over the reference comes from per-round medians
paired by round (``leanbench.stats.speedup``). A measurement where too many rounds are disturbed (a robust
outlier rule on round medians) is repeated, a bounded number of times, then marked unreliable.

Energy per query comes from a window of each candidate's own timed calls (``measure.latency.measure_energy``),
attributed to the candidate: its own CPU time, and its own memory (weights + peak activations at its batch,
``measure.memory.own_memory_bytes``) rather than the process's resident set, which holds every model loaded.
Progress (profile, phase, rounds done of total, time left) goes to a ``runner.progress.MeasureProgress``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from leanbench.runner.progress import MeasureProgress
from leanbench.study import ProfileConfig, Study

AUTO_BATCH_RUNS = 7  # short, but a median over enough runs not to pick a batch by noise


def best_batches(models: dict[str, Any], X: np.ndarray, threads: int, batches: list[int],
                 seed: int = 0, progress: MeasureProgress | None = None) -> dict[str, tuple[int, list[dict]]]:
    """Per model, the batch with the highest throughput among `batches`, and what each gave: every batch
    timed for every model in interleaved rounds (AUTO_BATCH_RUNS rounds of one call), so that a burst of
    load does not pick a batch for one model (the median throughput per batch decides)."""
    from leanbench.measure.interleaved import time_interleaved

    tried: dict[str, list[dict]] = {n: [] for n in models}
    for i, b in enumerate(batches):
        on_round = None if progress is None else (
            lambda done, total, i=i: progress.advance(i * total + done, len(batches) * total))
        timings = time_interleaved(models, X, threads=threads, batch=b, warmup=2, rounds=AUTO_BATCH_RUNS, calls=1,
                                   seed=seed, on_round=on_round)
        for name, t in timings.items():
            tried[name].append({"batch": b, "per_s": float(b / max(np.median(t.samples_ms) / 1e3, 1e-9))})
    return {n: (max(t, key=lambda r: r["per_s"])["batch"], t) for n, t in tried.items()}


def interleaved(models: dict[str, Any], X: np.ndarray, study: Study, *, threads: int, batch: dict[str, int],
                warmup: int, rounds: int, calls: int, include_prepare: bool = False,
                seed: int = 0, progress: MeasureProgress | None = None) -> dict[str, Any]:
    """One interleaved measurement, repeated while more than `measure.max_disturbed_share` of its rounds are
    disturbed (at most `measure.repeats` times): the timings, the disturbed rounds and the machine's load."""
    from leanbench.measure.interleaved import load_change, machine_load, time_interleaved
    from leanbench.stats.speedup import disturbed_rounds

    cfg = study.measure
    for attempt in range(cfg.repeats + 1):
        if attempt and progress is not None:
            progress.repeat()
        before = machine_load()
        timings = time_interleaved(models, X, threads=threads, batch=batch, warmup=warmup, rounds=rounds,
                                   calls=calls, seed=seed + attempt, include_prepare=include_prepare,
                                   protocol=cfg.protocol, on_round=progress.advance if progress else None)
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


def _latency_calls(profile: ProfileConfig, study: Study) -> int:
    """Timed calls per candidate and round of the latency measurements."""
    from leanbench.measure.percentiles import runs_for_ci

    cfg = study.measure
    runs = max(cfg.runs, runs_for_ci(profile.slo_percentile, cfg.confidence) or 0)
    return math.ceil(runs / cfg.rounds)


def plan_progress(progress: MeasureProgress, models: dict[str, Any], X: np.ndarray, study: Study) -> None:
    """The phases of `measure_group`, with their rounds and the examples one round runs (for the time left)."""
    cfg, deploy, n = study.measure, study.deploy, len(models)
    for p in deploy.profiles:
        b = max(deploy.auto_batches) if p.batch == "auto" else p.batch  # auto: a guess until chosen (rescaled)
        if p.batch == "auto":
            progress.plan(p.name, "auto batch", len(deploy.auto_batches) * AUTO_BATCH_RUNS,
                          n * sum(deploy.auto_batches) / len(deploy.auto_batches))
        calls = _latency_calls(p, study)
        progress.plan(p.name, "latency", cfg.rounds, n * calls * b)
        if X.dtype == object:
            progress.plan(p.name, "end to end", cfg.rounds, n * calls * b)
        progress.plan(p.name, "throughput", cfg.throughput_runs, n * b)
        progress.plan(p.name, "memory", n, 3 * b, label="candidate")
        progress.plan(p.name, "energy", n, cfg.throughput_runs * b, label="candidate")
        serving = _serving_models(models, study)
        if serving:  # examples per round: a rough weight (tokens generated, each a forward)
            s = cfg.serving
            per_round = len(serving) * sum(s.batches) * (s.new_tokens + len(s.prompt_lengths))
            progress.plan(p.name, "serving", s.rounds, per_round)


def measure_profile_group(models: dict[str, Any], X: np.ndarray, profile: ProfileConfig, study: Study,
                          energy: Any, reference: str, sizes: dict[str, int] | None = None,
                          progress: MeasureProgress | None = None) -> dict[str, dict[str, Any]]:
    """Every candidate of one profile, measured together: name -> the profile's figures for that candidate.
    `sizes` (serialized bytes) stand in for the weights of a model without a torch module in its energy. On a
    `device: cuda` profile every model is on the GPU for the whole profile (``models.device.on_device``: moved
    back after; validation has made sure each can move) and each figure says so (`device`)."""
    from leanbench.models.device import on_device

    with on_device(models, profile.device):
        out = _measure_profile_group(models, X, profile, study, energy, reference, sizes, progress)
    for figures in out.values():
        figures["device"] = profile.device
    return out


def _measure_profile_group(models: dict[str, Any], X: np.ndarray, profile: ProfileConfig, study: Study,
                           energy: Any, reference: str, sizes: dict[str, int] | None = None,
                           progress: MeasureProgress | None = None) -> dict[str, dict[str, Any]]:
    from leanbench.cost.tco import slo_check
    from leanbench.measure.latency import END_TO_END_METHOD, LATENCY_METHOD, measure_energy
    from leanbench.measure.memory import own_memory_bytes, peak_memory
    from leanbench.measure.percentiles import latency_percentiles, percentile_with_ci

    cfg = study.measure
    prog = progress if progress is not None else MeasureProgress()
    auto: dict[str, Any] = {}
    if profile.batch == "auto":
        prog.start(profile.name, "auto batch")
        chosen = best_batches(models, X, profile.threads, study.deploy.auto_batches, progress=prog)
        batch = {n: chosen[n][0] for n in models}
        auto = {n: chosen[n][1] for n in models}
        prog.rescale(profile.name, sum(batch.values()) / (len(models) * max(study.deploy.auto_batches)))
    else:
        batch = dict.fromkeys(models, profile.batch)
    calls = _latency_calls(profile, study)
    prog.start(profile.name, "latency")
    lat = interleaved(models, X, study, threads=profile.threads, batch=batch, warmup=cfg.warmup,
                      rounds=cfg.rounds, calls=calls, progress=prog)
    e2e = None
    if X.dtype == object:  # text: also end to end, tokenization inside the timing
        prog.start(profile.name, "end to end")
        e2e = interleaved(models, X, study, threads=profile.threads, batch=batch, warmup=cfg.warmup,
                          rounds=cfg.rounds, calls=calls, include_prepare=True, progress=prog)
    # throughput: one call of the profile's batch per candidate per round
    prog.start(profile.name, "throughput")
    thr = interleaved(models, X, study, threads=profile.threads, batch=batch, warmup=cfg.throughput_warmup,
                      rounds=cfg.throughput_runs, calls=1, progress=prog)
    # memory, then energy: each candidate's own (weights + peak activations at its batch; its own calls)
    prog.start(profile.name, "memory")
    memory: dict[str, dict[str, Any]] = {}
    for i, (name, model) in enumerate(models.items()):
        memory[name] = peak_memory(model, X, batch=batch[name])
        prog.advance(i + 1, len(models))
    prog.start(profile.name, "energy")
    spent: dict[str, dict[str, Any]] = {}
    for i, (name, model) in enumerate(models.items()):
        own, how = own_memory_bytes(memory[name], (sizes or {}).get(name))
        spent[name] = {**measure_energy(model, X, threads=profile.threads, batch=batch[name],
                                        warmup=cfg.throughput_warmup, runs=cfg.throughput_runs, memory_bytes=own,
                                        energy=energy), "memory_method": how}
        prog.advance(i + 1, len(models))
    serving = measure_serving_group(models, X, profile, study, sizes, prog)
    speed = _speedups(lat, reference, batch)
    thr_speed = _speedups(thr, reference, batch)
    out: dict[str, dict[str, Any]] = {}
    for name in models:
        samples = lat["timings"][name].samples_ms.ravel()
        p50, p90, p99 = np.percentile(samples, [50, 90, 99], method="linear")
        latency: dict[str, Any] = {
            "p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99), "mean_ms": float(samples.mean()),
            "std_ms": float(samples.std(ddof=1)) if samples.size > 1 else 0.0, "min_ms": float(samples.min()),
            "threads": lat["timings"][name].threads, "batch": batch[name], "warmup": cfg.warmup,
            "runs": int(samples.size), "method": LATENCY_METHOD,
            **_protocol(lat, name, cfg.rounds, calls, study),
            # per-round medians (ms per call, in round order): the speed-up over any other candidate of the
            # group is derived from them, paired by round, at analysis time (analysis/speed.py)
            "round_medians": [float(x) for x in lat["timings"][name].round_medians]}
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
        e = spent[name]  # energy: a window of its own calls (joules cannot be split by round)
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
            "energy_j_per_query": e["j_per_query"], "energy_uncertainty": e["uncertainty"],
            "energy_method": e["method"],
            "energy": {k: e[k] for k in ("queries", "calls", "batch", "threads", "wall_s", "cpu_s", "memory_gb",
                                         "memory_method", "too_short", "detail")},
            "batch": batch[name], "threads": latency["threads"], "auto_batch": auto.get(name), "slo": slo,
            "memory": memory[name],
        }
        if name in serving:
            out[name]["serving"] = serving[name]
    return out


def _serving_models(models: dict[str, Any], study: Study) -> dict[str, Any]:
    """The candidates the LLM serving figures apply to: those that generate, when `measure.serving` is on."""
    from leanbench.measure.serving import generates

    return {n: m for n, m in models.items() if generates(m)} if study.measure.serving.enabled else {}


def measure_serving_group(models: dict[str, Any], X: np.ndarray, profile: ProfileConfig, study: Study,
                          sizes: dict[str, int] | None, progress: MeasureProgress) -> dict[str, dict[str, Any]]:
    """The LLM serving figures (prefill, TTFT, decode, TPOT, memory with the KV cache) of every candidate that
    generates, measured together in interleaved rounds at the profile's threads (`measure.serving`)."""
    from leanbench.measure.serving import measure_serving

    serving = _serving_models(models, study)
    if not serving:
        return {}
    progress.start(profile.name, "serving")
    return measure_serving(serving, X, study.measure.serving, threads=profile.threads, sizes=sizes,
                           confidence=study.measure.confidence, on_round=progress.advance)


def measure_group(models: dict[str, Any], artifacts: dict[str, Path], X: np.ndarray, study: Study, energy: Any,
                  reference: str, progress: Callable[[int, int, str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Every candidate measured together (name -> its measure-cell result): per profile, interleaved.
    `progress(done, total, info)` (a reporter's `step_progress`) hears of every round."""
    from leanbench.measure.flops import flops_per_example
    from leanbench.measure.size import model_size

    sizes = {name: model_size(model, artifacts[name]) for name, model in models.items()}
    prog = MeasureProgress(progress)
    plan_progress(prog, models, X, study)
    by_profile = {p.name: measure_profile_group(models, X, p, study, energy, reference,
                                                {n: s["size_bytes"] for n, s in sizes.items()}, prog)
                  for p in study.deploy.profiles}
    out = {}
    for name, model in models.items():
        profiles = {p: by_profile[p][name] for p in by_profile}
        for p in study.deploy.profiles:
            mem = profiles[p.name]["memory"]
            cap = p.memory_cap_mb
            peak = mem.get("peak_bytes")
            profiles[p.name]["memory_cap_ok"] = None if cap is None or peak is None else peak <= cap * 1e6
        pricing = profiles[study.deploy.pricing_profile]
        out[name] = {
            **sizes[name],
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
