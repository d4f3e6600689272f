"""Analysis: a pure function of what the store holds, producing the results dict (the JSON contract).

Every figure from a sample carries a CI (percentile bootstrap, seeded from the study seed, so the same
store always gives the same report). Candidate-vs-reference comparisons are paired: the same resampled
examples for both.
"""

from __future__ import annotations

import zlib
from datetime import datetime, timezone
from typing import Any

import numpy as np

from leanbench.errors import LeanbenchError
from leanbench.store.db import Store


def _seed(study_seed: int, *parts: str) -> int:
    return (study_seed * 1_000_003 + zlib.crc32("/".join(parts).encode())) % (2**32)


def _ci_dict(ci: Any) -> dict[str, float]:
    return {"value": float(ci.value), "ci_low": float(ci.low), "ci_high": float(ci.high)}


def candidate_metrics(gold: np.ndarray, probs: np.ndarray, metric_names: list[str], *, n_resamples: int,
                      confidence: float, seed: int) -> dict[str, dict[str, float]]:
    """Each metric on the full sample with its percentile-bootstrap CI."""
    from leanbench.evaluate.metrics import metric_ci

    return {name: _ci_dict(metric_ci(name, gold, probs, n_resamples=n_resamples, confidence=confidence,
                                     seed=_seed(seed, name)))
            for name in metric_names}


def compare(gold: np.ndarray, probs: np.ndarray, ref_probs: np.ndarray, metric_name: str, *, margin: float,
            n_resamples: int, confidence: float, seed: int) -> dict[str, Any]:
    """Candidate minus reference on the decision metric: paired-bootstrap CI, McNemar, verdict."""
    from leanbench.evaluate.metrics import get_metric, paired_metric_diff
    from leanbench.stats import mcnemar_exact, orient, verdict

    metric = get_metric(metric_name)
    ci = paired_metric_diff(metric, gold, probs, ref_probs, n_resamples=n_resamples, confidence=confidence,
                            seed=_seed(seed, "diff", metric_name))
    # orient so that positive means "candidate better" before applying the margin
    lo, hi = orient(ci.low, ci.high, metric.higher_is_better)
    out = {"metric": metric_name, "diff": float(ci.value), "ci_low": float(ci.low), "ci_high": float(ci.high),
           "p_value": None, "p_value_test": None, "margin": margin, "verdict": verdict(lo, hi, margin)}
    if metric.correct is not None:  # a share of correct examples: exact McNemar on the discordant pairs
        correct, ref_correct = metric.correct(gold, probs), metric.correct(gold, ref_probs)
        mc = mcnemar_exact(correct, ref_correct)
        out.update({"p_value": float(mc.p_value), "p_value_test": "mcnemar-exact", "mcnemar_b": int(mc.b),
                    "mcnemar_c": int(mc.c), "discordant": float((correct != ref_correct).mean())})
    return out


def _closure(name: str, deps: dict[str, list[str]]) -> list[str]:
    seen: list[str] = []
    stack = [name]
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.append(n)
            stack.extend(deps.get(n, []))
    return seen


def analyse(store: Store, study_name: str | None = None) -> dict[str, Any]:
    """The results dict for one study (the most recently run one when no name is given)."""
    from leanbench.evaluate.metrics import get_metric
    from leanbench.stats import power_note

    names = store.study_names()
    if not names:
        raise LeanbenchError(f"the store {store.path} holds no study yet; run one with `leanbench run`")
    name = study_name or names[-1]
    info = store.study(name)
    if info is None:
        from leanbench.registry import did_you_mean

        raise LeanbenchError(f"no study named '{name}' in {store.path}{did_you_mean(name, names)}; "
                             f"studies: {', '.join(names)}")
    cfg = info["config"]
    ev, dec = cfg["evaluate"], cfg["decision"]
    seed = int(cfg.get("seed", 0))
    rows = store.candidates(name)
    deps = {c["name"]: ([c["from"]] if c.get("from") else [])
            + [s["distill"]["teacher"] for s in c["steps"] if s.get("distill")] for c in cfg["candidates"]}

    evals, builds, measures = {}, {}, {}
    for r in rows:
        builds[r["name"]] = store.cell(r["build_key"])
        e = store.cell(r["eval_key"])
        evals[r["name"]] = store.predictions(r["eval_key"]) if e else None
        measures[r["name"]] = store.cell(r["measure_key"]) if r["measure_key"] else None
    ref_name = cfg["reference"]
    ref = evals.get(ref_name)
    notes: list[str] = []
    if ref is None:
        notes.append(f"The reference '{ref_name}' has not been evaluated yet: no comparisons.")

    ref_latency = _p50(measures.get(ref_name))
    own_seconds = {n: (b["seconds"] if b else None) for n, b in builds.items()}
    candidates_out = []
    for r in rows:
        cname = r["name"]
        candidates_out.append(_candidate(
            r, builds[cname], evals[cname], measures[cname], ref, ref_name, ref_latency, cfg,
            build_seconds_total=_sum_known([own_seconds.get(n) for n in _closure(cname, deps)]),
            seed=seed))

    discordance = [c["vs_reference"]["discordant"] for c in candidates_out
                   if c["vs_reference"] and c["name"] != ref_name and "discordant" in c["vs_reference"]]
    n_eval = len(ref["gold"]) if ref is not None else 0
    power = None
    if n_eval and discordance:
        power = power_note(n_eval, float(np.median(discordance)), dec["margin"], dec["alpha"])
        if power["underpowered"]:
            notes.append(
                f"Inconclusive verdicts here mean that {n_eval} {ev['split']} examples are too few to resolve "
                f"a margin of {_pts(dec['margin'], dec['metric'])} (median disagreement with the reference: "
                f"{np.median(discordance):.1%} of examples), not that the candidates are as good as the "
                "reference. Evaluate on a larger test set to decide.")
    for c in candidates_out:
        if c["vs_reference"] is None and c["name"] != ref_name:
            notes.append(f"'{c['name']}' has no evaluation yet (an unfinished run?).")
    task = info["task"]
    return {
        "study": name,
        "description": cfg.get("description", ""),
        "reference": ref_name,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "manifest": {**(info["run"]["manifest"] if info["run"] else {}),
                     "run_id": info["last_run_id"],
                     "started_at": info["run"]["started_at"] if info["run"] else None,
                     "run_seconds": info["run"]["seconds"] if info["run"] else None},
        "task": {"source": task["source"], "n_classes": len(task["label_names"]),
                 "label_names": task["label_names"], "splits": task["splits"], "evaluated_split": ev["split"]},
        "decision": {"metric": dec["metric"], "margin": dec["margin"], "alpha": dec["alpha"],
                     "confidence": ev["confidence"], "bootstrap": ev["bootstrap"],
                     "higher_is_better": get_metric(dec["metric"]).higher_is_better},
        "power": power,
        "metrics_info": {m: {"higher_is_better": get_metric(m).higher_is_better, "unit": get_metric(m).unit,
                             "description": get_metric(m).description} for m in ev["metrics"]},
        "measurement": cfg.get("measure"),
        "candidates": candidates_out,
        "cost": _study_cost(store, name),
        "notes": notes,
    }


def _candidate(row: dict, build: dict | None, ev: dict | None, measure: dict | None, ref: dict | None,
               ref_name: str, ref_latency: float | None, cfg: dict, *, build_seconds_total: float | None,
               seed: int) -> dict[str, Any]:
    e, dec = cfg["evaluate"], cfg["decision"]
    name = row["name"]
    out: dict[str, Any] = {
        "name": name, "from": row["from_"], "steps": row["steps"],
        "describe": build["result"].get("describe") if build else None,
        "build_info": build["result"].get("steps") if build else None,
        "params": None, "nonzero_params": None, "size_bytes": None,
        "flops_per_example": None, "flops_method": None,
        "metrics": {}, "vs_reference": None, "latency": {}, "speedup_vs_reference": None,
        "throughput_per_s": None, "throughput": None, "peak_memory_bytes": None, "memory": None,
        "cost": {"build_seconds": build_seconds_total,
                 "build_seconds_own": build["seconds"] if build else None,
                 "build_flops": build["flops"] if build else None},
    }
    if ev is not None and len(ev["gold"]):
        out["metrics"] = candidate_metrics(ev["gold"], ev["scores"], e["metrics"], n_resamples=e["bootstrap"],
                                           confidence=e["confidence"], seed=seed)
        out["n_evaluated"] = len(ev["gold"])
        if name == ref_name:
            out["vs_reference"] = {"metric": dec["metric"], "diff": 0.0, "ci_low": 0.0, "ci_high": 0.0,
                                   "p_value": None, "margin": dec["margin"], "verdict": "reference",
                                   "discordant": 0.0}
        elif ref is not None:
            if not np.array_equal(ev["ids"], ref["ids"]):
                raise LeanbenchError(f"'{name}' and the reference were evaluated on different examples")
            out["vs_reference"] = compare(ev["gold"], ev["scores"], ref["scores"], dec["metric"],
                                          margin=dec["margin"], n_resamples=e["bootstrap"],
                                          confidence=e["confidence"], seed=seed)
    if measure is not None:
        m = measure["result"]
        lat = m.get("latency") or {}
        out.update({
            "params": m.get("params"), "nonzero_params": m.get("nonzero_params"), "size_bytes": m.get("size_bytes"),
            "flops_per_example": (m.get("flops") or {}).get("flops"),
            "flops_method": (m.get("flops") or {}).get("method"),
            "latency": lat,
            "throughput_per_s": (m.get("throughput") or {}).get("per_s"),
            "throughput": {k: v for k, v in (m.get("throughput") or {}).items() if k != "per_s"},
            "peak_memory_bytes": (m.get("memory") or {}).get("peak_bytes"),
            "memory": m.get("memory"),
        })
        p50 = _p50(measure)
        if p50 and ref_latency:
            out["speedup_vs_reference"] = ref_latency / p50
    return out


def _p50(measure: dict | None) -> float | None:
    if not measure:
        return None
    return ((measure["result"].get("latency") or {}).get("edge") or {}).get("p50_ms")


def _sum_known(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(sum(known)) if known else None


def _pts(x: float, metric: str) -> str:
    return f"{x * 100:.1f} points" if metric in ("accuracy", "macro_f1", "ece") else f"{x:.3g}"


def _study_cost(store: Store, study: str) -> dict[str, Any]:
    """Ledger totals by phase (all runs of the study that produced the current cells)."""
    by_phase: dict[str, dict[str, float]] = {}
    for e in store.ledger(study):
        p = by_phase.setdefault(e["phase"], {"seconds": 0.0, "cpu_seconds": 0.0, "flops": 0.0, "entries": 0})
        p["seconds"] += e["seconds"]
        p["cpu_seconds"] += e["cpu_seconds"]
        p["flops"] += e["flops"] or 0.0
        p["entries"] += 1
    return {"by_phase": by_phase, "seconds": sum(p["seconds"] for p in by_phase.values())}
