"""The analysis of a study of several tasks (`tasks:`): each task's one-task analysis, the verdicts corrected
across the whole study, and a cross-task summary per candidate.

1. Each task's study (`Study.per_task`, run as a one-task study into the store) is loaded and compared with
   the reference as a one-task study is (`core.compare_candidates`): the same metrics, CIs and raw p-values.
2. Multiplicity (Holm 1979, `stats.multiplicity.apply_holm_by_family`) over the union of the tasks: the primary
   family holds every task x candidate comparison on the task's decision metric and gives the per-task verdicts;
   the secondary family every other task x candidate x metric comparison. With `decision.correction: none` each
   verdict is the unadjusted one.
3. Each task's results are then built with those comparisons (`core.analyse_loaded`); a candidate's entry per
   task is that task's candidate entry (`CandidateTask`).
4. Per candidate a cross-task summary (`CrossTask`): the macro average over tasks of the difference from the
   reference on each task's decision metric (oriented so that higher is better), with a percentile CI from a
   stratified paired bootstrap (each task's examples resampled on their own, B = evaluate.bootstrap, the same
   draw for the candidate and the reference; with several seeds, the two-level bootstrap of `analysis.seeds`
   within each task); the worst task (lowest difference) with that task's CI and verdict; the tasks on which the
   corrected verdict is "inferior" (significantly worse than the reference beyond the margin); the tasks the
   candidate cannot serve (left out of its average) or has no evaluation on yet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import numpy as np

from leanbench.analysis.common import Loaded, load, seed_for
from leanbench.analysis.results import (
    CandidateResult,
    CandidateTask,
    Comparison,
    CrossTask,
    DecisionInfo,
    MetricValue,
    PhaseTotals,
    StudyCost,
    StudyResults,
    TaskInfo,
    TaskResult,
    VerdictFamily,
    WorstTask,
)
from leanbench.store.db import Store

MACRO_METHOD = ("mean over tasks of the paired difference; stratified bootstrap: each task's examples resampled "
                "independently, paired with the reference within the task (percentile)")
CORRECTION_NOTE = ("Holm-Bonferroni step-down adjustment (Holm 1979) of one-sided paired-bootstrap p-values across "
                   "the tasks of the study: the primary family (each task's decision metric, across tasks x "
                   "candidates) gives the per-task verdicts; the secondary family (the other metrics, across tasks x "
                   "candidates x metrics) is adjusted on its own and never changes a verdict")


def analyse_tasks(store: Store, parent: Loaded, analyse_loaded: Callable[..., StudyResults],
                  compare_candidates: Callable[[Loaded], dict]) -> StudyResults:
    """The results of a study of several tasks (`parent`: its loaded row, recorded after every task ran), built
    with the one-task analysis's own steps (`analysis.core`: `analyse_loaded`, `compare_candidates`)."""
    from leanbench.analysis.recommendation import constraints_of, recommend

    study = parent.study
    subs = study.per_task()
    loads = {name: load(store, sub.name) for name, sub in subs}
    compared = {name: compare_candidates(loaded) for name, loaded in loads.items()}
    correction = correct_across_tasks(loads, compared)
    per = {name: analyse_loaded(store, loads[name], (compared[name], correction)) for name in loads}
    families = union_families(loads, compared)
    for res in per.values():
        res.decision.families = families
    results = StudyResults(
        study=parent.name, description=study.description, reference=study.reference,
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), manifest=parent.info.manifest(),
        task=_task_info(parent), decision=_decision(study, per, correction, families),
        metrics_info={m: i for res in per.values() for m, i in (res.metrics_info or {}).items()},
        candidates=[_candidate(study, name, per, loads) for name in study.candidate_names],
        cost=_cost(per), notes=_notes(per, study), tasks=[_task_row(name, sub, per[name], study) for name, sub in subs],
        task_results=per)
    first = next(iter(per.values()))
    results.measurement, results.tco = first.measurement, first.tco
    results.recommendation = recommend(results, constraints_of(study))
    results.failed_cells = [dataclasses.replace(c, cell=f"{name}: {c.cell}") for name, res in per.items()
                            for c in res.failed_cells or []] or None
    return results


# ---------------------------------------------------------------------------------------------- multiplicity


def _rows(loads: dict[str, Loaded], compared: dict[str, dict[str, dict[str, Comparison]]]) -> list[Comparison]:
    """Every comparison of the study, its `family` set: primary on its task's decision metric, else secondary."""
    from leanbench.stats.multiplicity import PRIMARY, SECONDARY

    rows = []
    for task, by_cand in compared.items():
        metric = loads[task].study.decision.metric
        for comps in by_cand.values():
            for row in comps.values():
                row.family = PRIMARY if row.metric == metric else SECONDARY
                rows.append(row)
    return rows


def correct_across_tasks(loads: dict[str, Loaded], compared: dict[str, dict[str, dict[str, Comparison]]]
                         ) -> str | None:
    """Sets every comparison's `family`, `family_size`, adjusted p-values, `verdict` and `inconclusive_because`,
    with Holm over the union of the tasks' families (the study's `decision.correction`); returns its
    description (None: no correction)."""
    from leanbench.analysis.verdicts import decide_verdicts
    from leanbench.stats.multiplicity import PRIMARY

    rows = _rows(loads, compared)
    dec = next(iter(loads.values())).study.decision  # alpha and correction are the study's, shared
    sizes = {fam: sum(r.family == fam for r in rows) for fam in {r.family for r in rows}}
    for row in rows:
        row.family_size = sizes[row.family]
    holm = decide_verdicts(rows, dec.correction, dec.alpha)
    if not holm:
        return None
    primary = sizes.get(PRIMARY, 0)
    secondary = len(rows) - primary
    text = f"{CORRECTION_NOTE} (primary: {primary} comparison{'s' if primary != 1 else ''} over {len(loads)} tasks"
    text += f"; secondary: {secondary}" if secondary else ""
    return f"{text}; one-sided level alpha/2 = {dec.alpha / 2:g})"


def union_families(loads: dict[str, Loaded], compared: dict[str, dict[str, dict[str, Comparison]]]
                   ) -> dict[str, VerdictFamily | None] | None:
    """What each family holds across the tasks: metrics, number of comparisons, which one decides."""
    from leanbench.stats.multiplicity import PRIMARY

    out: dict[str, VerdictFamily | None] = {}
    for row in _rows(loads, compared):
        fam = out.setdefault(str(row.family), VerdictFamily(metrics=[], comparisons=0, decides=row.family == PRIMARY))
        fam.comparisons = (fam.comparisons or 0) + 1
        if row.metric not in (fam.metrics or []):
            fam.metrics = [*(fam.metrics or []), str(row.metric)]
    return dict(sorted(out.items(), key=lambda kv: kv[0] != PRIMARY)) or None


# ---------------------------------------------------------------------------------------------- cross-task


def task_differences(loaded: Loaded, name: str, seed: int) -> tuple[float, np.ndarray]:
    """The candidate's difference from the reference on the task's decision metric (oriented: higher is better)
    and its `evaluate.bootstrap` paired resamples, drawn from `seed` (one run each: the examples resampled, the
    same draw for both; several seeds: the two-level bootstrap of `analysis.seeds`)."""
    from leanbench.analysis.seeds import paired_seed_diffs
    from leanbench.evaluate.metrics import get_metric, resampled_values

    metric = get_metric(loaded.study.decision.metric)
    sign = 1.0 if metric.higher_is_better else -1.0
    cand, ref = loaded.preds[name], loaded.preds[loaded.reference]
    B = loaded.study.evaluate.bootstrap
    if len(cand) == 1 and len(ref) == 1:
        g = cand[0].gold
        value = metric.fn(g, cand[0].scores) - metric.fn(g, ref[0].scores)
        diffs = (resampled_values(metric, g, cand[0].scores, B, seed)
                 - resampled_values(metric, g, ref[0].scores, B, seed))
    else:
        value, diffs, _ = paired_seed_diffs(loaded, metric, cand, ref, seed)
    return sign * float(value), sign * np.asarray(diffs, dtype=float)


def macro_difference(diffs: dict[str, tuple[float, np.ndarray]], confidence: float) -> MetricValue:
    """The mean over tasks of the differences, with the percentile CI of the mean of the tasks' resamples (each
    task resampled independently: a stratified bootstrap)."""
    from leanbench.stats import percentile_ci

    value = float(np.mean([v for v, _ in diffs.values()]))
    resampled = np.mean(np.stack([d for _, d in diffs.values()]), axis=0)
    ci = percentile_ci(value, resampled, confidence)
    return MetricValue(value=value, ci_low=float(ci.low), ci_high=float(ci.high))


def cross_task(study: Any, name: str, per: dict[str, StudyResults], loads: dict[str, Loaded]) -> CrossTask:
    """The candidate `name` across the tasks (see the module docstring)."""
    from leanbench.evaluate.metrics import get_metric

    skipped = [t for t, loaded in loads.items() if name not in loaded.study.candidate_names]
    entries = {t: per[t].candidate(name) for t in loads if t not in skipped}
    evaluated = {t: c for t, c in entries.items()
                 if c is not None and c.metrics and c.vs_reference is not None and loads[t].preds.get(study.reference)}
    out = CrossTask(tasks=list(evaluated), metrics={t: str(loads[t].study.decision.metric) for t in evaluated},
                    verdicts={t: c.vs_reference.verdict for t, c in evaluated.items()},
                    inferior_tasks=[t for t, c in evaluated.items() if c.vs_reference.verdict == "inferior"],
                    skipped_tasks=skipped, not_evaluated=[t for t in entries if t not in evaluated])
    if not evaluated:
        return out
    units = {get_metric(m).unit for m in out.metrics.values()}
    diffs = {t: task_differences(loads[t], name, seed_for(loads[t].seed, "cross_task", t, name)) for t in evaluated}
    worst = min(evaluated, key=lambda t: diffs[t][0])
    vs = evaluated[worst].vs_reference
    out.worst = WorstTask(task=worst, metric=vs.metric, diff=vs.diff, ci_low=vs.ci_low, ci_high=vs.ci_high,
                          verdict=vs.verdict)
    if len(units) > 1:
        out.note = (f"no macro average: the tasks' decision metrics are in different units "
                    f"({', '.join(sorted(map(str, units)))})")
        return out
    out.macro_diff = macro_difference(diffs, loads[worst].study.evaluate.confidence)
    out.method = MACRO_METHOD
    return out


# ---------------------------------------------------------------------------------------------- the results


def _candidate(study: Any, name: str, per: dict[str, StudyResults], loads: dict[str, Loaded]) -> CandidateResult:
    """The candidate's entry: what it is, how fast and what it costs (from the first task it serves: builds and
    measurements are shared across tasks whose cells coincide), its entry per task, its cross-task summary."""
    own = {t: res.candidate(name) for t, res in per.items() if res.candidate(name) is not None}
    base = next(iter(own.values()))
    tasks = {t: CandidateTask(metrics=c.metrics, vs_reference=c.vs_reference, comparisons=c.comparisons,
                              n_evaluated=c.n_evaluated, seeds=c.seeds) for t, c in own.items()}
    out = dataclasses.replace(base, metrics=None, vs_reference=None, comparisons=None, seeds=None, n_evaluated=None,
                              tasks=tasks)
    if name != study.reference:
        out.cross_task = cross_task(study, name, per, loads)
    return out


def _task_row(name: str, sub: Any, res: StudyResults, study: Any) -> TaskResult:
    evaluated = [c.name for c in res.candidates if c.metrics]
    n = next((c.n_evaluated for c in res.candidates if c.n_evaluated is not None), None)
    return TaskResult(name=name, study=sub.name, kind=sub.task.kind, source=res.task.source if res.task else None,
                      n=n, metric=sub.decision.metric, margin=sub.decision.margin,
                      higher_is_better=res.decision.higher_is_better if res.decision else None,
                      metrics=list(sub.evaluate.metrics), candidates=evaluated,
                      skipped=[c for c in study.candidate_names if c not in sub.candidate_names])


def _task_info(parent: Loaded) -> TaskInfo:
    task = parent.info.task
    return TaskInfo(kind=task.kind, source=task.source, meta=task.meta if task.meta is not None else {})


def _decision(study: Any, per: dict[str, StudyResults], correction: str | None,
              families: dict[str, VerdictFamily | None] | None) -> DecisionInfo:
    """The study's decision rule: the metric and margin when every task shares them (else each task's, joined),
    alpha, CI level, resamples, test, the correction across tasks."""
    decs = [res.decision for res in per.values() if res.decision is not None]
    metrics = list(dict.fromkeys(str(d.metric) for d in decs))
    margins = {d.margin for d in decs}
    hib = {d.higher_is_better for d in decs}
    ev, dec = study.evaluate, study.decision
    return DecisionInfo(metric=metrics[0] if len(metrics) == 1 else " / ".join(metrics),
                        margin=next(iter(margins)) if len(margins) == 1 else None, alpha=dec.alpha,
                        confidence=ev.confidence, bootstrap=ev.bootstrap,
                        higher_is_better=next(iter(hib)) if len(hib) == 1 else None, test=dec.test,
                        correction=correction, seeds=study.seeds, families=families)


def _cost(per: dict[str, StudyResults]) -> StudyCost:
    """The ledger of every task's study added up by phase (a cell reused by a later task costs nothing again)."""
    by_phase: dict[str, PhaseTotals] = {}
    for res in per.values():
        for phase, p in ((res.cost.by_phase if res.cost else None) or {}).items():
            if p is None:
                continue
            tot = by_phase.setdefault(phase, PhaseTotals(seconds=0.0, cpu_seconds=0.0, flops=0.0, entries=0))
            tot.seconds = (tot.seconds or 0.0) + (p.seconds or 0.0)
            tot.cpu_seconds = (tot.cpu_seconds or 0.0) + (p.cpu_seconds or 0.0)
            tot.flops = (tot.flops or 0.0) + (p.flops or 0.0)
            tot.entries = (tot.entries or 0) + (p.entries or 0)
    return StudyCost(by_phase=by_phase, seconds=sum(p.seconds or 0.0 for p in by_phase.values()))


def _notes(per: dict[str, StudyResults], study: Any) -> list[str]:
    """Each task's notes, once, naming the tasks they come from; and which candidate skips which task."""
    found: dict[str, list[str]] = {}
    for task, res in per.items():
        for note in res.notes or []:
            found.setdefault(note, []).append(task)
    out = [f"{'Task' if len(ts) == 1 else 'Tasks'} {', '.join(ts)}: {note}" for note, ts in found.items()]
    for task, sub in study.per_task():
        skipped = [c for c in study.candidate_names if c not in sub.candidate_names]
        if skipped:
            out.append(f"Task {task} ({sub.task.kind}): {', '.join(repr(c) for c in skipped)} cannot serve it, "
                       "so not evaluated on it (left out of the cross-task average).")
    return out


__all__ = ["analyse_tasks", "correct_across_tasks", "cross_task", "macro_difference", "task_differences",
           "union_families"]
