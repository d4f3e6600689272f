"""Analysis: a pure function of what the store holds, producing the typed results (`StudyResults`, whose
`to_dict()` is the JSON contract).

Every figure from a sample carries a CI (percentile bootstrap, seeded from the study seed and the metric,
so the same store always gives the same report). Candidate-vs-reference comparisons are paired: the same
resampled examples for both. Every candidate x metric comparison gets a verdict; the decision metric's
comparisons (one per candidate) are the primary family, whose verdicts are the candidates' verdicts, the other
metrics' the secondary family, reported beside them. By default each family is Holm-adjusted on its own
(see `leanbench.stats.multiplicity`), and an inconclusive verdict says why it is one.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any

import numpy as np

from leanbench.analysis.common import Loaded, ci_value, closure, load, seed_for
from leanbench.analysis.results import (
    CandidateCost,
    CandidateResult,
    Comparison,
    DecisionInfo,
    Equivalence,
    FailedCell,
    Latency,
    MetricInfo,
    MetricValue,
    PhaseTotals,
    Power,
    ProfileResult,
    ReferenceScore,
    StudyCost,
    StudyResults,
    TaskInfo,
    Throughput,
    VerdictFamily,
)
from leanbench.analysis.stored import CandidateRow, MeasureCell, MeasuredProfile
from leanbench.errors import LeanbenchError
from leanbench.store.db import Store


def candidate_metrics(loaded: Loaded, name: str) -> dict[str, MetricValue]:
    """Each metric with its CI: over examples for one seed, over seeds and examples for several."""
    from leanbench.analysis.seeds import seed_metric
    from leanbench.evaluate.metrics import metric_ci

    ev = loaded.study.evaluate
    runs = loaded.preds[name]
    out = {}
    for m in ev.metrics:
        if len(runs) == 1:
            r = runs[0]
            out[m] = ci_value(metric_ci(m, r.gold, r.scores, n_resamples=ev.bootstrap, confidence=ev.confidence,
                                        seed=seed_for(loaded.seed, m)))
        else:
            out[m] = seed_metric(loaded, m, runs)
    return out


def comparisons(loaded: Loaded, name: str) -> dict[str, Comparison]:
    """Candidate minus reference for every metric: paired CI, bootstrap p-values, McNemar, verdict."""
    from leanbench.analysis.seeds import paired_seed_diffs
    from leanbench.evaluate.metrics import get_metric, resampled_values
    from leanbench.stats import mcnemar_exact, orient, percentile_ci, verdict
    from leanbench.stats.equivalence import tost_from_resamples
    from leanbench.stats.multiplicity import comparison_p_values

    ev, dec = loaded.study.evaluate, loaded.study.decision
    cand, ref = loaded.preds[name], loaded.preds[loaded.reference]
    margin = float(dec.margin)
    out = {}
    for m in ev.metrics:
        metric = get_metric(m)
        seed = seed_for(loaded.seed, "diff", m)
        if len(cand) == 1 and len(ref) == 1:
            g = cand[0].gold
            value = metric.fn(g, cand[0].scores) - metric.fn(g, ref[0].scores)
            diffs = (resampled_values(metric, g, cand[0].scores, ev.bootstrap, seed)
                     - resampled_values(metric, g, ref[0].scores, ev.bootstrap, seed))
            method = "paired bootstrap over examples (percentile)"
        else:
            value, diffs, method = paired_seed_diffs(loaded, metric, cand, ref, seed)
        ci = percentile_ci(value, diffs, ev.confidence)
        sign = 1.0 if metric.higher_is_better else -1.0
        lo, hi = orient(ci.low, ci.high, metric.higher_is_better)
        p = comparison_p_values(sign * diffs, margin)
        row = Comparison(metric=m, diff=float(ci.value), ci_low=float(ci.low), ci_high=float(ci.high),
                         method=method, margin=margin, verdict_unadjusted=verdict(lo, hi, margin),
                         p_noninferiority=p["p_noninferiority"], p_superiority=p["p_superiority"],
                         p_inferiority=p["p_inferiority"])
        if metric.correct is not None:
            g = cand[0].gold
            correct, ref_correct = metric.correct(g, cand[0].scores), metric.correct(g, ref[0].scores)
            # disagreement of the first seeds' runs: the basis of the power figure
            row.discordant = float((correct != ref_correct).mean())
            if len(cand) == 1 and len(ref) == 1:  # McNemar pairs one run with one run
                mc = mcnemar_exact(correct, ref_correct)
                row.p_value, row.p_value_test = float(mc.p_value), "mcnemar-exact"
                row.mcnemar_b, row.mcnemar_c = int(mc.b), int(mc.c)
        if dec.test == "equivalence" and margin > 0:
            tost = tost_from_resamples(sign * float(ci.value), sign * diffs, margin, dec.alpha)
            row.equivalence = Equivalence(equivalent=tost.equivalent, p_value=tost.p_value,
                                          ci_low=sign * tost.ci_low if sign > 0 else -tost.ci_high,
                                          ci_high=sign * tost.ci_high if sign > 0 else -tost.ci_low,
                                          confidence=tost.confidence, method=tost.method)
        out[m] = row
    return out


def _families(loaded: Loaded, compared: dict[str, dict[str, Comparison]]) -> dict[str, list[Comparison]]:
    """The comparisons by family: the decision metric's (one per candidate) are the primary family, every other
    metric's the secondary one."""
    from leanbench.stats.multiplicity import PRIMARY, SECONDARY

    metric = loaded.study.decision.metric
    flat = [row for rows in compared.values() for row in rows.values()]
    return {PRIMARY: [r for r in flat if r.metric == metric], SECONDARY: [r for r in flat if r.metric != metric]}


def verdict_families(loaded: Loaded, compared: dict[str, dict[str, Comparison]]) -> dict[str, VerdictFamily] | None:
    """What each family holds (metrics, number of comparisons) and which one decides; None with no comparison."""
    from leanbench.stats.multiplicity import PRIMARY

    families = _families(loaded, compared)
    if not any(families.values()):
        return None
    return {name: VerdictFamily(metrics=list(dict.fromkeys(str(r.metric) for r in rows)), comparisons=len(rows),
                                decides=name == PRIMARY)
            for name, rows in families.items() if rows}


def apply_correction(loaded: Loaded, compared: dict[str, dict[str, Comparison]]) -> str | None:
    """Sets each comparison's `family`, `verdict` and `inconclusive_because`. With `decision.correction: holm`
    each family is Holm-adjusted on its own: the primary one (the decision metric across candidates) gives the
    verdicts, the secondary one (the other metrics) is reported and never changes a verdict; with `none` every
    verdict is the unadjusted one. Returns the correction's description (None: no correction)."""
    from leanbench.analysis.verdicts import decide_verdicts
    from leanbench.stats.multiplicity import CORRECTION_NOTE, PRIMARY

    dec = loaded.study.decision
    families = _families(loaded, compared)
    flat = [row for rows in families.values() for row in rows]
    for name, rows in families.items():
        for row in rows:
            row.family, row.family_size = name, len(rows)
    holm = decide_verdicts(flat, dec.correction, dec.alpha)
    if not holm:
        return None
    primary = families[PRIMARY]
    secondary = [r for name, rows in families.items() if name != PRIMARY for r in rows]
    others = list(dict.fromkeys(str(r.metric) for r in secondary))
    text = f"{CORRECTION_NOTE} (primary: {len(primary)} comparison{'s' if len(primary) != 1 else ''} on {dec.metric}"
    text += f"; secondary: {len(secondary)} on {', '.join(others)}" if secondary else ""
    return f"{text}; one-sided level alpha/2 = {dec.alpha / 2:g})"


def inconclusive_notes(loaded: Loaded, compared: dict[str, dict[str, Comparison]], power: Power | None) -> list[str]:
    """One note per reason that makes a verdict (the decision metric's) inconclusive, naming its candidates:
    the multiplicity correction (decided before it), a test set too small for the margin (a CI at least twice
    the margin wide), or a CI that straddles the margin (narrow enough, but the difference is close to it)."""
    from leanbench.stats.multiplicity import BECAUSE_MULTIPLICITY, BECAUSE_POWER, BECAUSE_STRADDLES

    dec, ev = loaded.study.decision, loaded.study.evaluate
    found: dict[str, list[tuple[str, Comparison]]] = {}
    for name, rows in compared.items():
        row = rows.get(dec.metric)
        if row is not None and row.inconclusive_because is not None:
            found.setdefault(row.inconclusive_because, []).append((name, row))
    notes = []
    margin = _pts(dec.margin, dec.metric)
    if BECAUSE_MULTIPLICITY in found:
        items, floor = [], []
        for name, row in found[BECAUSE_MULTIPLICITY]:
            kind = "inferiority" if row.verdict_unadjusted == "inferior" else "non-inferiority"
            raw, adj = getattr(row, f"p_{kind.replace('-', '')}"), getattr(row, f"p_{kind.replace('-', '')}_adjusted")
            items.append(f"'{name}' ({row.verdict_unadjusted} before it, {_diff(row, dec.metric)}; p {kind} "
                         f"{_p(raw)} -> {_p(adj)} after Holm, above the one-sided level {row.level:g})")
            if raw is not None and abs(raw - 1.0 / (ev.bootstrap + 1)) < 1e-12:
                floor.append(f"'{name}'")
        k = found[BECAUSE_MULTIPLICITY][0][1].family_size
        text = (f"Inconclusive because of the multiplicity correction, not because of the test set: "
                f"{'; '.join(items)}. Holm across the {k} candidates compared on {dec.metric} (the primary "
                "family) holds back what a single comparison would decide.")
        if floor:
            text += (f" The raw p of {', '.join(floor)} is the smallest {ev.bootstrap} bootstrap resamples can give "
                     f"(1/(B + 1)): more resamples (`evaluate.bootstrap`) can let the correction pass.")
        notes.append(text)
    if BECAUSE_POWER in found:
        items = [f"'{name}' ({_diff(row, dec.metric)})" for name, row in found[BECAUSE_POWER]]
        seeds = " or seeds" if len(loaded.seeds) > 1 else ""
        text = (f"Inconclusive because the test set is too small for the margin: {', '.join(items)}: each CI is at "
                f"least twice the margin wide, so even a candidate exactly as good as the reference could not be "
                f"shown within a margin of {margin} (too few examples{seeds}).")
        if power is not None and power.n is not None and power.minimum_detectable_margin is not None:
            text += (f" {power.n} {ev.split} examples resolve about "
                     f"{_pts(power.minimum_detectable_margin, dec.metric)}")
            text += f"; about {power.required_n:,} would be needed." if power.required_n else "."
        text += " This does not mean that these candidates are as good as the reference."
        notes.append(text)
    if BECAUSE_STRADDLES in found:
        items = [f"'{name}' ({_diff(row, dec.metric)})" for name, row in found[BECAUSE_STRADDLES]]
        notes.append(f"Inconclusive because the CI straddles the margin: {', '.join(items)}: the interval is "
                     f"narrow enough to resolve a margin of {margin}, but the difference lies close to the margin "
                     "itself; only a larger test set, narrowing the interval, can decide.")
    return notes


def _diff(row: Comparison, metric: str) -> str:
    """"-2.5 points [-4.0, -1.1]" (fractions) or "+0.031 [0.012, 0.050]"."""
    if _is_points(metric):
        return f"{row.diff * 100:+.1f} points [{row.ci_low * 100:+.1f}, {row.ci_high * 100:+.1f}]"
    return f"{row.diff:+.3g} [{row.ci_low:+.3g}, {row.ci_high:+.3g}]"


def _p(p: float | None) -> str:
    return "?" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def analyse(store: Store, study_name: str | None = None) -> StudyResults:
    """The results of one study (the most recently run one when no name is given); a study of several tasks
    is each task's analysis with the verdicts corrected across tasks, and a cross-task summary
    (`analysis/multitask.py`)."""
    loaded = load(store, study_name)
    if loaded.study.tasks is not None:
        from leanbench.analysis.multitask import analyse_tasks

        return analyse_tasks(store, loaded, analyse_loaded, compare_candidates)
    return analyse_loaded(store, loaded)


def compare_candidates(loaded: Loaded) -> dict[str, dict[str, Comparison]]:
    """Every evaluated candidate (not the reference) against the reference, per metric, before any correction;
    empty while the reference has not been evaluated."""
    evaluated = [r.name for r in loaded.rows if loaded.preds[r.name]]
    if loaded.reference not in evaluated:
        return {}
    return {n: comparisons(loaded, n) for n in evaluated if n != loaded.reference}


def analyse_loaded(store: Store, loaded: Loaded,
                   corrected: tuple[dict[str, dict[str, Comparison]], str | None] | None = None) -> StudyResults:
    """The results of one loaded study. `corrected`: its comparisons (`compare_candidates`) already adjusted for
    multiplicity with others (a study of several tasks), and the correction's description."""
    from leanbench.analysis.cost import reconcile_last_run, tco_section
    from leanbench.analysis.recommendation import constraints_of, recommend
    from leanbench.analysis.rigor import integrity_section, robustness_section, slices_section
    from leanbench.evaluate.metrics import get_metric

    study, info = loaded.study, loaded.info
    ev, dec = study.evaluate, study.decision
    evaluated = [r.name for r in loaded.rows if loaded.preds[r.name]]
    notes: list[str] = []
    have_ref = loaded.reference in evaluated
    if not have_ref:
        notes.append(f"The reference '{loaded.reference}' has not been evaluated yet: no comparisons.")
    if corrected is None:
        compared = compare_candidates(loaded)
        correction = apply_correction(loaded, compared)
    else:
        compared, correction = corrected
    families = verdict_families(loaded, compared)

    from leanbench.analysis.heads import untrained_heads
    from leanbench.analysis.serving import attach_serving
    from leanbench.analysis.speed import missing_round_medians, runtime_controls

    controls = runtime_controls(study)
    candidates_out = [candidate_entry(loaded, r, compared.get(r.name), controls) for r in loaded.rows]
    attach_serving(loaded, candidates_out, controls)  # before the TCO: an LM's is priced from its serving figures
    tco = tco_section(loaded, candidates_out)
    for c in candidates_out:
        if not c.metrics:
            notes.append(f"'{c.name}' has no evaluation yet (an unfinished run?).")
    power = power_section(loaded, compared)
    notes.extend(inconclusive_notes(loaded, compared, power))
    notes.extend(measured_apart(loaded))
    notes.extend(missing_round_medians(loaded, candidates_out, controls))
    notes.extend(untrained_heads(loaded))
    notes.extend(disturbed_timings(loaded))
    notes.extend(unreliable_timings(loaded))
    from leanbench.analysis.generations import generations_section

    generations, generation_notes = generations_section(loaded)
    notes.extend(generation_notes)
    task = info.task
    metrics = {m: get_metric(m) for m in ev.metrics}
    results = StudyResults(
        study=loaded.name,
        description=study.description,
        reference=loaded.reference,
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        manifest=info.manifest(),
        task=TaskInfo(kind=task.kind or "classification", source=task.source, n_classes=len(task.label_names or []),
                      label_names=task.label_names, meta=task.meta if task.meta is not None else {},
                      splits=task.splits, evaluated_split=ev.split),
        decision=DecisionInfo(metric=dec.metric, margin=dec.margin, alpha=dec.alpha, confidence=ev.confidence,
                              bootstrap=ev.bootstrap, higher_is_better=metrics[dec.metric].higher_is_better,
                              test=dec.test, correction=correction, seeds=loaded.seeds, families=families),
        power=power,
        metrics_info={m: MetricInfo(higher_is_better=x.higher_is_better, unit=x.unit, description=x.description)
                      for m, x in metrics.items()},
        # the measurement settings as the store recorded them (a setting added to the schema since is not
        # claimed for measurements taken before it existed)
        measurement=study.measure.model_dump(mode="json", exclude_unset=True),
        candidates=candidates_out,
        robustness=robustness_section(loaded),
        slices=slices_section(loaded),
        integrity=integrity_section(loaded, notes),
        tco=tco,
        cost=dataclasses.replace(study_cost(store, loaded.name), reconcile=reconcile_last_run(loaded)),
        notes=notes,
    )
    results.recommendation = recommend(results, constraints_of(study))
    results.failed_cells = failed_cells(store, loaded.name)
    results.generations = generations
    return results


def failed_cells(store: Any, study: str) -> list[FailedCell] | None:
    """The cells of the study's last run that failed and are still not done (None: none)."""
    rows = store.failed_cells(study)
    return [FailedCell(cell=r["label"], kind=r["kind"], candidate=r["candidate"], error=r["error"],
                       blocked_by=r["blocked_by"]) for r in rows] or None


def candidate_entry(loaded: Loaded, row: CandidateRow, compared: dict[str, Comparison] | None,
                    controls: dict[str, str] | None = None) -> CandidateResult:
    """One candidate's results; `controls`: candidate -> its runtime control (`analysis.speed`)."""
    from leanbench.analysis.seeds import seed_spread
    from leanbench.analysis.speed import derived_speedups

    name, dec = row.name, loaded.study.decision
    build, measure = loaded.builds[name], loaded.measures[name]
    own = {n: (b.seconds if b is not None else None) for n, b in loaded.builds.items()}
    out = CandidateResult(
        name=name, from_=row.from_, steps=row.steps,
        describe=build.result.describe if build else None,
        build_info=build.result.steps if build else None,
        metrics={}, latency={},
        cost=CandidateCost(build_seconds=_sum_known([own.get(n) for n in closure(name, loaded.deps)]),
                           build_seconds_own=build.seconds if build else None,
                           build_flops=build.flops if build else None),
    )
    if loaded.preds[name]:
        out.metrics = candidate_metrics(loaded, name)
        out.n_evaluated = len(loaded.preds[name][0])
        out.seeds = seed_spread(loaded, name)
        if name == loaded.reference:
            out.vs_reference = Comparison.for_reference(dec.metric, dec.margin)
        elif compared is not None:
            out.comparisons = compared
            out.vs_reference = compared[dec.metric]
    if measure is not None:
        m = measure.result
        thr = m.throughput
        out.params, out.nonzero_params, out.size_bytes = m.params, m.nonzero_params, m.size_bytes
        out.flops_per_example = m.flops.flops if m.flops else None
        out.flops_method = m.flops.method if m.flops else None
        out.latency = _normalised(m.latency or {}, m.reference_score)
        out.throughput_per_s = thr.per_s if thr else None
        out.throughput = _setting_only(thr)
        out.peak_memory_bytes = m.memory.peak_bytes if m.memory else None
        out.memory = m.memory
        out.profiles = {p: _profile_summary(prof) for p, prof in (m.profiles or {}).items() if prof is not None}
        p50, ref_p50 = _p50(measure), _p50(loaded.measures[loaded.reference])
        if p50 and ref_p50:
            out.speedup_vs_reference = ref_p50 / p50
        out.speedup, out.throughput_ratio = m.speedup, m.throughput_ratio  # with CIs (interleaved rounds)
        derived_speedups(loaded, out, controls or {})  # over the parent and the runtime control, paired by round
    return out


def _setting_only(thr: Throughput | None) -> Throughput:
    """The pricing profile's throughput setting: the measure cell's throughput without its rate."""
    if thr is None:
        return Throughput(keys=())
    keys = thr.keys if thr.keys is not None else tuple(thr.to_dict())
    return dataclasses.replace(thr, per_s=None, keys=tuple(k for k in keys if k != "per_s"))


def measured_apart(loaded: Loaded) -> list[str]:
    """One note per candidate whose latencies come from another run than the reference's: its speed-up is
    then not side by side (a run measures every candidate again when any is new, so this happens only when
    another study sharing the cells, or an interrupted run, measured some of them later)."""
    ref = loaded.measures[loaded.reference]
    if ref is None:
        return []
    apart = [n for n, m in loaded.measures.items() if m is not None and m.run_id != ref.run_id]
    if not apart:
        return []
    return [f"Not measured side by side: {', '.join(repr(n) for n in apart)} measured in another run than the "
            f"reference (run {ref.run_id}), so their speed-ups compare latencies from different machine states; "
            "run the study again to measure every candidate together."]


def unreliable_timings(loaded: Loaded) -> list[str]:
    """One note for measurements that stayed disturbed after their repeats (too many rounds above the others:
    another process took the CPU), with the rounds counted."""
    found = []
    for name, m in loaded.measures.items():
        for profile, lat in ((m.result.latency if m is not None else None) or {}).items():
            if lat is not None and lat.unreliable:
                found.append(f"'{name}' ({profile}: {lat.disturbed_rounds_any} of {lat.rounds} rounds disturbed "
                             f"after {lat.attempts} attempts)")
    if not found:
        return []
    return [f"Unreliable timing: {'; '.join(found)}. Something else used the CPU during many rounds; speed-up "
            "intervals still pair rounds, but measure again on a quiet machine before trusting the latencies."]


DISTURBED_FACTOR = 1.25  # model-only above end to end by more than this: not noise in the tokenizer's favour


def disturbed_timings(loaded: Loaded) -> list[str]:
    """One note naming the candidates whose model-only latency percentile is above the end-to-end one by more
    than DISTURBED_FACTOR. End to end times the same forward pass plus tokenization, so this can only come from
    something else taking the CPU while the model-only runs were timed."""
    found = []
    for name, m in loaded.measures.items():
        latency = (m.result.latency if m is not None else None) or {}
        for profile, lat in latency.items():
            if lat is None or lat.end_to_end is None:
                continue
            for p in (50, 90, 99):
                model, e2e = lat.percentile(p), lat.end_to_end.percentile(p)
                if model is not None and e2e and model > DISTURBED_FACTOR * e2e:
                    found.append(f"'{name}' ({profile}: model-only p{p} {model:.3g} ms, end to end {e2e:.3g} ms)")
                    break
    if not found:
        return []
    return [f"Disturbed timing: {'; '.join(found)}. End to end includes the same forward pass, so the "
            "model-only figures were slowed by something else running; read those latencies with care, and "
            "measure again alone (a changed `measure` setting re-measures every candidate)."]


def power_section(loaded: Loaded, compared: dict[str, dict[str, Comparison]]) -> Power | None:
    """Minimum detectable margin and the test-set size the margin needs (paired, decision metric). Which
    inconclusive verdicts the test-set size explains is `inconclusive_notes`' to say."""
    from leanbench.stats import power_note

    dec = loaded.study.decision
    discordance = [rows[dec.metric].discordant for rows in compared.values()
                   if rows[dec.metric].discordant is not None]
    ref = loaded.preds[loaded.reference] if loaded.reference in loaded.preds else []
    if not ref or not discordance:
        return None
    n = len(ref[0])
    return Power.from_dict(power_note(n, float(np.median(discordance)), dec.margin, dec.alpha))


REFERENCE_GFLOPS = 100.0  # a nominal reference machine on the manifest's matmul micro-benchmark


def _normalised(latency: dict[str, Latency | None], ref: Any) -> dict[str, Latency | None]:
    """Adds `normalised_ms` to each profile: p50 scaled to a nominal machine scoring REFERENCE_GFLOPS on the
    fixed matmul benchmark scored when the latencies were taken (latency x machine score / reference score),
    so that studies run on different machines can be put on one scale."""
    from leanbench.measure.reference_bench import normalise_latency

    score = ref.score if isinstance(ref, ReferenceScore) else None
    if not score:
        return latency
    return {name: dataclasses.replace(lat, normalised_ms=normalise_latency(lat.p50_ms, score, REFERENCE_GFLOPS))
            if lat is not None else None for name, lat in latency.items()}


def _profile_summary(p: MeasuredProfile) -> ProfileResult:
    thr = p.throughput
    return ProfileResult(throughput_per_s=thr.per_s if thr else None, throughput_ci=thr.ci if thr else None,
                         batch=p.batch, threads=p.threads, auto_batch=p.auto_batch,
                         energy_j_per_query=p.energy_j_per_query, energy_method=p.energy_method,
                         energy_uncertainty=p.energy_uncertainty, memory_cap_ok=p.memory_cap_ok,
                         peak_memory_bytes=p.memory.peak_bytes if p.memory else None, slo=p.slo)


def _p50(measure: MeasureCell | None) -> float | None:
    """Median latency of the first profile (edge by default): the speed-up's basis."""
    if measure is None:
        return None
    latency = measure.result.latency or {}
    first = latency["edge"] if "edge" in latency else next(iter(latency.values()), None)
    return first.p50_ms if first is not None else None


def _sum_known(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(sum(known)) if known else None


def _is_points(metric: str) -> bool:
    return metric in ("accuracy", "macro_f1", "ece", "acc", "acc_norm")


def _pts(x: float, metric: str) -> str:
    return f"{x * 100:.1f} points" if _is_points(metric) else f"{x:.3g}"


def study_cost(store: Store, study: str) -> StudyCost:
    """Ledger totals by phase (all runs of the study)."""
    by_phase: dict[str, PhaseTotals] = {}
    for e in store.ledger(study):
        p = by_phase.setdefault(e["phase"], PhaseTotals(seconds=0.0, cpu_seconds=0.0, flops=0.0, entries=0))
        p.seconds += e["seconds"]
        p.cpu_seconds += e["cpu_seconds"]
        p.flops += e["flops"] or 0.0
        p.entries += 1
    return StudyCost(by_phase=by_phase, seconds=sum(p.seconds for p in by_phase.values()))


__all__ = ["LeanbenchError", "analyse"]
