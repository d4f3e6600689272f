"""Analysis: a pure function of what the store holds, producing the results dict (the JSON contract).

Every figure from a sample carries a CI (percentile bootstrap, seeded from the study seed and the metric,
so the same store always gives the same report). Candidate-vs-reference comparisons are paired: the same
resampled examples for both. Verdicts cover every candidate x metric comparison and, by default, are
Holm-adjusted across all of them (see `leanbench.stats.multiplicity`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np

from leanbench.analysis.common import Loaded, ci_dict, closure, load, seed_for
from leanbench.errors import LeanbenchError
from leanbench.store.db import Store


def candidate_metrics(loaded: Loaded, name: str) -> dict[str, dict[str, float]]:
    """Each metric with its CI: over examples for one seed, over seeds and examples for several."""
    from leanbench.analysis.seeds import seed_metric
    from leanbench.evaluate.metrics import metric_ci

    ev = loaded.cfg["evaluate"]
    runs = loaded.preds[name]
    out = {}
    for m in ev["metrics"]:
        if len(runs) == 1:
            r = runs[0]
            out[m] = ci_dict(metric_ci(m, r["gold"], r["scores"], n_resamples=ev["bootstrap"],
                                       confidence=ev["confidence"], seed=seed_for(loaded.seed, m)))
        else:
            out[m] = seed_metric(loaded, m, runs)
    return out


def comparisons(loaded: Loaded, name: str) -> dict[str, dict[str, Any]]:
    """Candidate minus reference for every metric: paired CI, bootstrap p-values, McNemar, verdict."""
    from leanbench.analysis.seeds import paired_seed_diffs
    from leanbench.evaluate.metrics import get_metric, resampled_values
    from leanbench.stats import mcnemar_exact, orient, percentile_ci, verdict
    from leanbench.stats.equivalence import tost_from_resamples
    from leanbench.stats.multiplicity import comparison_p_values

    ev, dec = loaded.cfg["evaluate"], loaded.cfg["decision"]
    cand, ref = loaded.preds[name], loaded.preds[loaded.reference]
    out = {}
    for m in ev["metrics"]:
        metric = get_metric(m)
        margin = margin_for(dec, m)
        seed = seed_for(loaded.seed, "diff", m)
        if len(cand) == 1 and len(ref) == 1:
            g = cand[0]["gold"]
            value = metric.fn(g, cand[0]["scores"]) - metric.fn(g, ref[0]["scores"])
            diffs = (resampled_values(metric, g, cand[0]["scores"], ev["bootstrap"], seed)
                     - resampled_values(metric, g, ref[0]["scores"], ev["bootstrap"], seed))
            method = "paired bootstrap over examples (percentile)"
        else:
            value, diffs, method = paired_seed_diffs(loaded, metric, cand, ref, seed)
        ci = percentile_ci(value, diffs, ev["confidence"])
        sign = 1.0 if metric.higher_is_better else -1.0
        lo, hi = orient(ci.low, ci.high, metric.higher_is_better)
        row: dict[str, Any] = {
            "metric": m, "diff": float(ci.value), "ci_low": float(ci.low), "ci_high": float(ci.high),
            "method": method, "margin": margin, "verdict_unadjusted": verdict(lo, hi, margin),
            "p_value": None, "p_value_test": None,
            **comparison_p_values(sign * diffs, margin),
        }
        if metric.correct is not None:
            g = cand[0]["gold"]
            correct, ref_correct = metric.correct(g, cand[0]["scores"]), metric.correct(g, ref[0]["scores"])
            # disagreement of the first seeds' runs: the basis of the power figure
            row["discordant"] = float((correct != ref_correct).mean())
            if len(cand) == 1 and len(ref) == 1:  # McNemar pairs one run with one run
                mc = mcnemar_exact(correct, ref_correct)
                row.update({"p_value": float(mc.p_value), "p_value_test": "mcnemar-exact", "mcnemar_b": int(mc.b),
                            "mcnemar_c": int(mc.c)})
        if dec.get("test") == "equivalence" and margin > 0:
            tost = tost_from_resamples(sign * float(ci.value), sign * diffs, margin, dec["alpha"])
            row["equivalence"] = {"equivalent": tost.equivalent, "p_value": tost.p_value,
                                  "ci_low": sign * tost.ci_low if sign > 0 else -tost.ci_high,
                                  "ci_high": sign * tost.ci_high if sign > 0 else -tost.ci_low,
                                  "confidence": tost.confidence, "method": tost.method}
        out[m] = row
    return out


def margin_for(decision: dict, metric: str) -> float:
    """The margin of a metric: `decision.margins[metric]` when given, else `decision.margin`."""
    return float((decision.get("margins") or {}).get(metric, decision["margin"]))


def apply_correction(loaded: Loaded, compared: dict[str, dict[str, dict[str, Any]]]) -> str | None:
    """Sets each comparison's `verdict` (Holm-adjusted across candidate x metric, or unadjusted)."""
    from leanbench.stats.multiplicity import CORRECTION_NOTE, apply_holm_to_verdicts

    dec = loaded.cfg["decision"]
    flat = [(name, m, row) for name, rows in compared.items() for m, row in rows.items()]
    if dec.get("correction", "holm") != "holm" or not flat:
        for _, _, row in flat:
            row["verdict"] = row["verdict_unadjusted"]
        return None
    adjusted = apply_holm_to_verdicts([row for _, _, row in flat], dec["alpha"])
    for (_, _, row), adj in zip(flat, adjusted, strict=True):
        row.update({k: adj[k] for k in adj if k.endswith("_adjusted") or k in ("correction", "level")})
        row["verdict"] = adj["verdict_adjusted"]
    return f"{CORRECTION_NOTE} ({len(flat)} comparisons, one-sided level alpha/2 = {dec['alpha'] / 2:g})"


def analyse(store: Store, study_name: str | None = None) -> dict[str, Any]:
    """The results dict for one study (the most recently run one when no name is given)."""
    from leanbench.analysis.cost import reconcile_last_run, tco_section
    from leanbench.analysis.extras import integrity_section, robustness_section, slices_section
    from leanbench.evaluate.metrics import get_metric

    loaded = load(store, study_name)
    cfg, info = loaded.cfg, loaded.info
    ev, dec = cfg["evaluate"], cfg["decision"]
    evaluated = [r["name"] for r in loaded.rows if loaded.preds.get(r["name"])]
    notes: list[str] = []
    have_ref = loaded.reference in evaluated
    if not have_ref:
        notes.append(f"The reference '{loaded.reference}' has not been evaluated yet: no comparisons.")
    compared = {n: comparisons(loaded, n) for n in evaluated if have_ref and n != loaded.reference}
    correction = apply_correction(loaded, compared)

    candidates_out = [candidate_entry(loaded, r, compared.get(r["name"])) for r in loaded.rows]
    tco = tco_section(loaded, candidates_out)
    for c in candidates_out:
        if not c["metrics"]:
            notes.append(f"'{c['name']}' has no evaluation yet (an unfinished run?).")
    power = power_section(loaded, compared, notes)
    notes.extend(measured_apart(loaded))
    notes.extend(disturbed_timings(loaded))
    task = info["task"]
    return {
        "study": loaded.name,
        "description": cfg.get("description", ""),
        "reference": loaded.reference,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "manifest": {**(info["run"]["manifest"] if info["run"] else {}),
                     "run_id": info["last_run_id"],
                     "started_at": info["run"]["started_at"] if info["run"] else None,
                     "run_seconds": info["run"]["seconds"] if info["run"] else None},
        "task": {"kind": task.get("kind", "classification"), "source": task["source"],
                 "n_classes": len(task["label_names"]), "label_names": task["label_names"],
                 "meta": task.get("meta", {}), "splits": task["splits"], "evaluated_split": ev["split"]},
        "decision": {"metric": dec["metric"], "margin": dec["margin"], "alpha": dec["alpha"],
                     "confidence": ev["confidence"], "bootstrap": ev["bootstrap"],
                     "higher_is_better": get_metric(dec["metric"]).higher_is_better,
                     "test": dec.get("test", "non-inferiority"), "correction": correction,
                     "seeds": loaded.seeds},
        "power": power,
        "metrics_info": {m: {"higher_is_better": get_metric(m).higher_is_better, "unit": get_metric(m).unit,
                             "description": get_metric(m).description} for m in ev["metrics"]},
        "measurement": cfg.get("measure"),
        "candidates": candidates_out,
        "robustness": robustness_section(loaded),
        "slices": slices_section(loaded),
        "integrity": integrity_section(loaded, notes),
        "tco": tco,
        "cost": {**study_cost(store, loaded.name), "reconcile": reconcile_last_run(loaded)},
        "notes": notes,
    }


def candidate_entry(loaded: Loaded, row: dict, compared: dict[str, dict] | None) -> dict[str, Any]:
    from leanbench.analysis.seeds import seed_spread

    name, dec = row["name"], loaded.cfg["decision"]
    build, measure = loaded.builds.get(name), loaded.measures.get(name)
    own = {n: (loaded.builds[n]["seconds"] if loaded.builds.get(n) else None) for n in loaded.builds}
    out: dict[str, Any] = {
        "name": name, "from": row["from_"], "steps": row["steps"],
        "describe": build["result"].get("describe") if build else None,
        "build_info": build["result"].get("steps") if build else None,
        "params": None, "nonzero_params": None, "size_bytes": None,
        "flops_per_example": None, "flops_method": None,
        "metrics": {}, "vs_reference": None, "comparisons": None, "seeds": None, "latency": {},
        "speedup_vs_reference": None, "throughput_per_s": None, "throughput": None, "profiles": None,
        "peak_memory_bytes": None, "memory": None,
        "cost": {"build_seconds": _sum_known([own.get(n) for n in closure(name, loaded.deps)]),
                 "build_seconds_own": build["seconds"] if build else None,
                 "build_flops": build["flops"] if build else None},
    }
    if loaded.preds.get(name):
        out["metrics"] = candidate_metrics(loaded, name)
        out["n_evaluated"] = len(loaded.preds[name][0]["gold"])
        out["seeds"] = seed_spread(loaded, name)
        if name == loaded.reference:
            out["vs_reference"] = {"metric": dec["metric"], "diff": 0.0, "ci_low": 0.0, "ci_high": 0.0,
                                   "p_value": None, "margin": dec["margin"], "verdict": "reference"}
        elif compared is not None:
            out["comparisons"] = compared
            out["vs_reference"] = compared[dec["metric"]]
    if measure is not None:
        m = measure["result"]
        out.update({
            "params": m.get("params"), "nonzero_params": m.get("nonzero_params"), "size_bytes": m.get("size_bytes"),
            "flops_per_example": (m.get("flops") or {}).get("flops"),
            "flops_method": (m.get("flops") or {}).get("method"),
            "latency": _normalised(m.get("latency") or {}, m.get("reference_score")),
            "throughput_per_s": (m.get("throughput") or {}).get("per_s"),
            "throughput": {k: v for k, v in (m.get("throughput") or {}).items() if k != "per_s"},
            "peak_memory_bytes": (m.get("memory") or {}).get("peak_bytes"),
            "memory": m.get("memory"),
            "profiles": {name: _profile_summary(p) for name, p in (m.get("profiles") or {}).items()},
        })
        p50, ref_p50 = _p50(measure), _p50(loaded.measures.get(loaded.reference))
        if p50 and ref_p50:
            out["speedup_vs_reference"] = ref_p50 / p50
    return out


def measured_apart(loaded: Loaded) -> list[str]:
    """One note per candidate whose latencies come from another run than the reference's: its speed-up is
    then not side by side (a run measures every candidate again when any is new, so this happens only when
    another study sharing the cells, or an interrupted run, measured some of them later)."""
    ref = loaded.measures.get(loaded.reference)
    if ref is None:
        return []
    apart = [n for n, m in loaded.measures.items() if m is not None and m["run_id"] != ref["run_id"]]
    if not apart:
        return []
    return [f"Not measured side by side: {', '.join(repr(n) for n in apart)} measured in another run than the "
            f"reference (run {ref['run_id']}), so their speed-ups compare latencies from different machine states; "
            "run the study again to measure every candidate together."]


DISTURBED_FACTOR = 1.25  # model-only above end to end by more than this: not noise in the tokenizer's favour


def disturbed_timings(loaded: Loaded) -> list[str]:
    """One note naming the candidates whose model-only latency percentile is above the end-to-end one by more
    than DISTURBED_FACTOR. End to end times the same forward pass plus tokenization, so this can only come from
    something else taking the CPU while the model-only runs were timed."""
    found = []
    for name, m in loaded.measures.items():
        for profile, lat in ((m or {}).get("result", {}).get("latency") or {}).items():
            whole = lat.get("end_to_end") or {}
            for q in ("p50_ms", "p90_ms", "p99_ms"):
                model, e2e = lat.get(q), whole.get(q)
                if model is not None and e2e and model > DISTURBED_FACTOR * e2e:
                    found.append(f"'{name}' ({profile}: model-only {q[:3]} {model:.3g} ms, end to end {e2e:.3g} ms)")
                    break
    if not found:
        return []
    return [f"Disturbed timing: {'; '.join(found)}. End to end includes the same forward pass, so the "
            "model-only figures were slowed by something else running; read those latencies with care, and "
            "measure again alone (a changed `measure` setting re-measures every candidate)."]


def power_section(loaded: Loaded, compared: dict, notes: list[str]) -> dict | None:
    """Minimum detectable margin and the test-set size the margin needs (paired, decision metric)."""
    from leanbench.stats import power_note

    dec, ev = loaded.cfg["decision"], loaded.cfg["evaluate"]
    discordance = [rows[dec["metric"]]["discordant"] for rows in compared.values()
                   if "discordant" in rows[dec["metric"]]]
    ref = loaded.preds.get(loaded.reference)
    if not ref or not discordance:
        return None
    n = len(ref[0]["gold"])
    power = power_note(n, float(np.median(discordance)), dec["margin"], dec["alpha"])
    if power["underpowered"]:
        notes.append(
            f"Inconclusive verdicts here mean that {n} {ev['split']} examples are too few to resolve "
            f"a margin of {_pts(dec['margin'], dec['metric'])} (median disagreement with the reference: "
            f"{np.median(discordance):.1%} of examples), not that the candidates are as good as the "
            "reference. Evaluate on a larger test set to decide.")
    return power


REFERENCE_GFLOPS = 100.0  # a nominal reference machine on the manifest's matmul micro-benchmark


def _normalised(latency: dict, ref: dict | None) -> dict:
    """Adds `normalised_ms` to each profile: p50 scaled to a nominal machine scoring REFERENCE_GFLOPS on the
    fixed matmul benchmark scored when the latencies were taken (latency x machine score / reference score),
    so that studies run on different machines can be put on one scale."""
    from leanbench.measure.reference_bench import normalise_latency

    score = (ref or {}).get("score")
    if not score:
        return latency
    return {name: {**lat, "normalised_ms": normalise_latency(lat["p50_ms"], score, REFERENCE_GFLOPS)}
            for name, lat in latency.items()}


def _profile_summary(p: dict) -> dict[str, Any]:
    thr = p.get("throughput") or {}
    return {"throughput_per_s": thr.get("per_s"), "throughput_ci": thr.get("ci"), "batch": p.get("batch"),
            "threads": p.get("threads"), "auto_batch": p.get("auto_batch"),
            "energy_j_per_query": p.get("energy_j_per_query"), "energy_method": p.get("energy_method"),
            "energy_uncertainty": p.get("energy_uncertainty"), "memory_cap_ok": p.get("memory_cap_ok"),
            "peak_memory_bytes": (p.get("memory") or {}).get("peak_bytes"), "slo": p.get("slo")}


def _p50(measure: dict | None) -> float | None:
    """Median latency of the first profile (edge by default): the speed-up's basis."""
    if not measure:
        return None
    latency = measure["result"].get("latency") or {}
    first = latency.get("edge") or next(iter(latency.values()), {})
    return first.get("p50_ms")


def _sum_known(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(sum(known)) if known else None


def _pts(x: float, metric: str) -> str:
    return f"{x * 100:.1f} points" if metric in ("accuracy", "macro_f1", "ece", "acc", "acc_norm") else f"{x:.3g}"


def study_cost(store: Store, study: str) -> dict[str, Any]:
    """Ledger totals by phase (all runs of the study)."""
    by_phase: dict[str, dict[str, float]] = {}
    for e in store.ledger(study):
        p = by_phase.setdefault(e["phase"], {"seconds": 0.0, "cpu_seconds": 0.0, "flops": 0.0, "entries": 0})
        p["seconds"] += e["seconds"]
        p["cpu_seconds"] += e["cpu_seconds"]
        p["flops"] += e["flops"] or 0.0
        p["entries"] += 1
    return {"by_phase": by_phase, "seconds": sum(p["seconds"] for p in by_phase.values())}


__all__ = ["LeanbenchError", "analyse"]
