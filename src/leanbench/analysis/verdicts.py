"""The verdict of every comparison row, one place for the one-task (`analysis.core`) and the multi-task
(`analysis.multitask`) analyses: Holm within each row's family or none, and why an inconclusive one is."""

from __future__ import annotations

from leanbench.analysis.results import Comparison


def decide_verdicts(rows: list[Comparison], correction: str, alpha: float) -> bool:
    """Each comparison's `verdict` (rows carry their `family`): Holm-adjusted within its family with
    `correction: holm`, else the unadjusted one; and why an inconclusive one is. Returns whether Holm applied
    (one-task and multi-task analyses both decide here)."""
    from leanbench.evaluate.metrics import get_metric
    from leanbench.stats import orient
    from leanbench.stats.multiplicity import apply_holm_by_family, inconclusive_reason

    holm = correction == "holm" and bool(rows)
    if holm:
        adjusted = apply_holm_by_family([{"p_noninferiority": row.p_noninferiority, "p_superiority": row.p_superiority,
                                          "p_inferiority": row.p_inferiority, "family": row.family} for row in rows],
                                        alpha)
        for row, adj in zip(rows, adjusted, strict=True):
            row.p_noninferiority_adjusted = adj["p_noninferiority_adjusted"]
            row.p_superiority_adjusted = adj["p_superiority_adjusted"]
            row.p_inferiority_adjusted = adj["p_inferiority_adjusted"]
            row.verdict_adjusted = row.verdict = adj["verdict_adjusted"]
            row.correction, row.level = adj["correction"], adj["level"]
    else:
        for row in rows:
            row.verdict = row.verdict_unadjusted
    for row in rows:
        lo, hi = orient(float(row.ci_low), float(row.ci_high), get_metric(str(row.metric)).higher_is_better)
        row.inconclusive_because = inconclusive_reason(row.verdict, row.verdict_unadjusted, lo, hi, float(row.margin))
    return holm
