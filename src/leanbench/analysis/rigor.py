"""Report sections beyond the verdicts: robustness under perturbations, slices, integrity and holdout use."""

from __future__ import annotations

import numpy as np

from leanbench.analysis.common import Loaded, ci_value, seed_for
from leanbench.analysis.results import (
    Decontaminated,
    Holdout,
    Integrity,
    MetricValue,
    PerturbationCell,
    Robustness,
    RobustnessEntry,
    SliceInfo,
    SliceRow,
    Slices,
)


def robustness_section(loaded: Loaded) -> Robustness | None:
    """Per candidate and perturbation: the decision metric, its drop vs clean (paired), and the difference
    vs the reference under the same perturbation (paired); plus worst case and mean over perturbations.
    With several seeds, the first seed's runs are used (the seed spread is reported separately)."""
    from leanbench.evaluate.metrics import get_metric, metric_ci, paired_metric_diff
    from leanbench.stats import orient

    ev = loaded.study.evaluate
    metric = get_metric(loaded.study.decision.metric)
    labels = sorted({lbl for per in loaded.perturbed.values() for lbl in per})
    if not labels:
        return None
    opts = {"n_resamples": ev.bootstrap, "confidence": ev.confidence}
    ref_runs = loaded.perturbed.get(loaded.reference, {})
    out = Robustness(metric=metric.name, higher_is_better=metric.higher_is_better, perturbations=labels,
                     candidates={},
                     method="drop = metric(perturbed) - metric(clean), paired bootstrap over examples; "
                            "every candidate sees the identical perturbed inputs (seeded per example)")
    for name, per in loaded.perturbed.items():
        clean = loaded.preds.get(name)
        if not clean or not per or any(not runs for runs in per.values()):
            continue
        rows: dict[str, PerturbationCell] = {}
        for label in labels:
            pert = per[label][0]
            seed = seed_for(loaded.seed, "robust", label, metric.name)
            row = PerturbationCell(
                metric=ci_value(metric_ci(metric, pert.gold, pert.scores, seed=seed, **opts)),
                drop=ci_value(paired_metric_diff(metric, pert.gold, pert.scores, clean[0].scores, seed=seed,
                                                 **opts)))
            ref = ref_runs.get(label)
            if ref and name != loaded.reference:
                row.vs_reference = ci_value(paired_metric_diff(metric, pert.gold, pert.scores, ref[0].scores,
                                                               seed=seed, **opts))
            rows[label] = row
        values = [r.metric.value for r in rows.values()]
        worst = min(values) if metric.higher_is_better else max(values)
        drops = [orient(r.drop.value, r.drop.value, metric.higher_is_better)[0] for r in rows.values()]
        out.candidates[name] = RobustnessEntry(by_perturbation=rows, worst=worst, mean=float(np.mean(values)),
                                               worst_drop=float(min(drops)), mean_drop=float(np.mean(drops)))
    return out


def slices_section(loaded: Loaded) -> Slices | None:
    """Per slice and candidate: metric with CI, the paired difference vs the reference, and a flag where
    the candidate loses significantly more on the slice than overall (Holm across slices x candidates)."""
    from leanbench.evaluate.slices import Slice, slice_report
    from leanbench.stats.multiplicity import apply_holm

    slices = loaded.info.task.slices or {}
    ref = loaded.preds.get(loaded.reference)
    if not slices or not ref:
        return None
    ev, dec = loaded.study.evaluate, loaded.study.decision
    n = len(ref[0])
    objs = []
    for name, rows in slices.items():
        mask = np.zeros(n, dtype=bool)
        mask[rows] = True
        kind = name.split(":", 1)[0] if ":" in name else "custom"
        objs.append(Slice(name, mask, kind))
    all_rows = []
    for cand, runs in loaded.preds.items():
        if cand == loaded.reference or not runs:
            continue
        for row in slice_report(ref[0].gold, runs[0].scores, ref[0].scores, objs, dec.metric,
                                margin=dec.margin, alpha=dec.alpha, n_resamples=ev.bootstrap,
                                confidence=ev.confidence, seed=seed_for(loaded.seed, "slices", cand)):
            all_rows.append({"name": cand, **row})
    all_rows = apply_holm(all_rows, dec.alpha / 2, p_key="p_value", adjusted_key="p_adjusted",
                          reject_key="flagged")
    return Slices(metric=dec.metric, slices=[SliceInfo(name=s.name, n=s.n) for s in objs],
                  rows=[r for r in map(SliceRow.from_dict, all_rows) if r is not None],
                  method="stratified paired bootstrap of the slice's loss beyond the overall loss; one-sided "
                         "p-values Holm-adjusted across slices x candidates at alpha/2; slices under 10 examples "
                         "are shown but never flagged")


def integrity_section(loaded: Loaded, notes: list[str]) -> Integrity | None:
    """Contamination and duplicates (from the integrity cell, with every flagged example's id per method and
    training split), the decision metric on the clean subset, and how often the evaluated split has been
    used in this store."""
    from leanbench.evaluate.metrics import get_metric, metric_ci
    from leanbench.integrity.holdout import holdout_warnings

    cell_key = loaded.info.cells.get("integrity")
    cell = loaded.store.cell(cell_key) if cell_key else None
    ev = loaded.study.evaluate
    split = (loaded.info.task.splits or {})[ev.split]
    records = loaded.store.split_uses(split.fingerprint)
    warnings = holdout_warnings(records, split.fingerprint, split=ev.split)
    notes.extend(warnings)
    holdout = Holdout(evaluations=sum(r["purpose"] == "report" for r in records),
                      selections=sum(r["purpose"] == "selection" for r in records),
                      studies=sorted({r["study"] for r in records}), warnings=warnings)
    if cell is None:
        return Integrity(holdout=holdout, keys=("holdout",))
    out = Integrity.from_dict({"holdout": {}, **cell["result"]})
    assert out is not None
    out.holdout = holdout
    flagged = set(out.contaminated_rows or [])
    if flagged:
        metric = get_metric(loaded.study.decision.metric)
        decon: dict[str, MetricValue | None] = {}
        for name, runs in loaded.preds.items():
            if not runs:
                continue
            keep = np.array([i for i in range(len(runs[0])) if i not in flagged])
            if keep.size:
                decon[name] = ci_value(metric_ci(metric, runs[0].gold[keep], runs[0].scores[keep],
                                                 n_resamples=ev.bootstrap, confidence=ev.confidence,
                                                 seed=seed_for(loaded.seed, "decontaminated")))
        out.decontaminated = Decontaminated(metric=metric.name, n_clean=int(split.n - len(flagged)),
                                            candidates=decon)
        cfg = loaded.study.integrity
        notes.append(f"{len(flagged)} of {split.n} {ev.split} examples also occur (exactly, by {cfg.ngram}-gram "
                     f"overlap over at least {cfg.ngram_min_coverage:.0%} of the text, or as near-duplicates) in "
                     "the training data; the integrity section gives the metric on the clean subset beside the "
                     "full one (`leanbench report --flags FILE` lists them).")
    return out
