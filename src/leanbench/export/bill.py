"""A candidate's figures as flat `name -> number` mappings: its metrics with their CIs, its comparison with
the reference and its bill (size, FLOPs, latency, speed-up, memory, energy, build cost, TCO). The model card,
the MLflow runs and the verdict table read them from here, so the three say the same thing under the same
names. Missing figures are left out, never written as 0.

In a study of several tasks a candidate's metrics and comparison are per task: their names take the task's as a
prefix (`<task>.acc`, `<task>.acc_ci_low`, `<task>.diff_vs_reference`, ...), and the cross-task summary adds
`cross_task.macro_diff` (with its CI), `cross_task.worst_diff` (with its CI) and `cross_task.inferior_tasks`
(how many). A one-task study's names are unprefixed, as they always were."""

from __future__ import annotations

import math
import re
from typing import Any

from leanbench.analysis.results import CandidateResult, Interval


def _number(x: Any) -> float | int | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return x


def key_part(name: str) -> str:
    """A user's name (a profile, a metric) as part of a figure's key: letters, digits, `_`, `-`, `.`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))


def _put(out: dict[str, float | int], key: str, value: Any) -> None:
    v = _number(value)
    if v is not None:
        out[key] = v


def _put_range(out: dict[str, float | int], key: str, value: Interval | float | None) -> None:
    """A cost figure: its value, and its bounds when it has them (`<key>_low`, `<key>_high`)."""
    if isinstance(value, Interval):
        _put(out, key, value.value)
        _put(out, f"{key}_low", value.low)
        _put(out, f"{key}_high", value.high)
    else:
        _put(out, key, value)


def task_entries(cand: CandidateResult) -> list[tuple[str | None, dict[str, Any] | None, Any]]:
    """(task, metrics, comparison with the reference) of each task the candidate was evaluated on: one entry
    (task None) for a one-task study, one per task (in the study's order) for a study of several tasks."""
    if cand.tasks is None:
        return [(None, cand.metrics, cand.vs_reference)]
    return [(task, entry.metrics, entry.vs_reference) for task, entry in cand.tasks.items() if entry is not None]


def task_prefix(task: str | None) -> str:
    """The prefix of a task's figure names: `<task>.` (nothing for a one-task study)."""
    return "" if task is None else f"{key_part(task)}."


def metric_figures(cand: CandidateResult) -> dict[str, float | int]:
    """`<metric>`, `<metric>_ci_low`, `<metric>_ci_high` for every metric the candidate was evaluated on
    (prefixed by the task in a study of several tasks)."""
    out: dict[str, float | int] = {}
    for task, metrics, _ in task_entries(cand):
        for name, m in (metrics or {}).items():
            if m is not None:
                k = task_prefix(task) + key_part(name)
                _put(out, k, m.value)
                _put(out, f"{k}_ci_low", m.ci_low)
                _put(out, f"{k}_ci_high", m.ci_high)
    return out


def comparison_figures(cand: CandidateResult) -> dict[str, float | int]:
    """Candidate minus reference on the decision metric: `diff_vs_reference` with its CI, margin, p-value (per
    task, prefixed, in a study of several tasks, then the cross-task summary's figures)."""
    out: dict[str, float | int] = {}
    for task, _, vs in task_entries(cand):
        if vs is not None:
            k = task_prefix(task)
            for key, value in (("diff_vs_reference", vs.diff), ("diff_vs_reference_ci_low", vs.ci_low),
                               ("diff_vs_reference_ci_high", vs.ci_high), ("margin", vs.margin),
                               ("p_value", vs.p_value)):
                _put(out, k + key, value)
    out.update(cross_task_figures(cand))
    return out


def cross_task_figures(cand: CandidateResult) -> dict[str, float | int]:
    """A candidate across the tasks of the study: the macro-average difference from the reference with its CI,
    the worst task's difference with its CI, the number of tasks on which it is inferior (empty: one task)."""
    out: dict[str, float | int] = {}
    cross = cand.cross_task
    if cross is None:
        return out
    if cross.macro_diff is not None:
        _put(out, "cross_task.macro_diff", cross.macro_diff.value)
        _put(out, "cross_task.macro_diff_ci_low", cross.macro_diff.ci_low)
        _put(out, "cross_task.macro_diff_ci_high", cross.macro_diff.ci_high)
    if cross.worst is not None:
        _put(out, "cross_task.worst_diff", cross.worst.diff)
        _put(out, "cross_task.worst_diff_ci_low", cross.worst.ci_low)
        _put(out, "cross_task.worst_diff_ci_high", cross.worst.ci_high)
    if cross.inferior_tasks is not None:
        _put(out, "cross_task.inferior_tasks", len(cross.inferior_tasks))
    return out


def bill_figures(cand: CandidateResult) -> dict[str, float | int]:
    """Size, FLOPs, per-profile latency (p50 with its CI, p90, p99, normalised p50) and speed-up over the
    reference (with its CI), throughput, memory, energy per query, build time and cost, serving cost, TCO."""
    out: dict[str, float | int] = {}
    for key in ("params", "nonzero_params", "size_bytes", "flops_per_example", "throughput_per_s",
                "peak_memory_bytes"):
        _put(out, key, getattr(cand, key))
    for profile, lat in (cand.latency or {}).items():
        if lat is None:
            continue
        p = key_part(profile)
        for q in (50, 90, 99):
            _put(out, f"latency_{p}_p{q}_ms", lat.percentile(q))
        ci = lat.p50_ci or []
        if len(ci) == 2:
            _put(out, f"latency_{p}_p50_ms_ci_low", ci[0])
            _put(out, f"latency_{p}_p50_ms_ci_high", ci[1])
        norm = lat.normalised_ms
        _put(out, f"latency_{p}_p50_normalised_ms", norm.get("p50_ms") if isinstance(norm, dict) else norm)
    for profile, s in (cand.speedup or {}).items():
        if s is not None:
            p = key_part(profile)
            _put(out, f"speedup_{p}", s.value)
            _put(out, f"speedup_{p}_ci_low", s.ci_low)
            _put(out, f"speedup_{p}_ci_high", s.ci_high)
    for profile, prof in (cand.profiles or {}).items():
        if prof is not None:
            _put(out, f"energy_{key_part(profile)}_j_per_query", prof.energy_j_per_query)
    _cost_figures(cand, out)
    return out


def _cost_figures(cand: CandidateResult, out: dict[str, float | int]) -> None:
    cost = cand.cost
    if cost is None:
        return
    _put(out, "build_seconds", cost.build_seconds)
    _put(out, "build_flops", cost.build_flops)
    if cost.ledger is not None:
        for key in ("build_kwh", "build_usd", "build_co2_kg"):
            _put(out, key, getattr(cost.ledger, key))
    if cost.serving is not None:
        for key in ("serve_usd_per_million", "tco_usd", "tco_kwh", "tco_co2_kg"):
            _put_range(out, key, getattr(cost.serving, key))
    be = cost.break_even
    if be is not None:
        _put(out, "break_even_queries", be.break_even_queries)


def all_figures(cand: CandidateResult) -> dict[str, float | int]:
    """Metrics with CIs, the comparison with the reference, and the bill, in one mapping."""
    return {**metric_figures(cand), **comparison_figures(cand), **bill_figures(cand)}

