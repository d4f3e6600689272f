"""A study of several tasks: the candidate x task heatmap, the cross-task table, the verdict of every candidate
on every task, and each task's one-task sections, collapsed, one task each.

Each task's sections are those of its own one-task report (its verdict table, the per-metric verdicts, seeds,
robustness, slices, generations, integrity, notes), read from `StudyResults.task_results`, with their headings
one level down and their figures' div ids prefixed by the task, so that several tasks sit on one page.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from leanbench.analysis.results import StudyResults
from leanbench.report import _format as f
from leanbench.report.blocks import Block, Bullets, Details, Figure, Heading, Para, Table, slug


def multitask_blocks(results: StudyResults) -> list[Block]:
    """The cross-task part of the report, then every task's sections; [] for a one-task study."""
    if not results.tasks:
        return []
    return [*cross_task_blocks(results), *per_task_blocks(results)]


def lead(results: StudyResults) -> str:
    """One paragraph: the reference, the tasks, how the candidates were compared and what came out."""
    tasks = results.tasks or []
    names = ", ".join(f"{t.name} ({t.kind}, {f.fmt_count(t.n)} examples, {t.metric})" for t in tasks)
    n_cand = sum(1 for c in f.candidates(results) if c.name != results.reference)
    passing = [str(c.name) for c in f.candidates(results) if c.cross_task is not None
               and c.cross_task.verdicts and not c.cross_task.skipped_tasks and not c.cross_task.not_evaluated
               and all(v in ("non-inferior", "superior") for v in c.cross_task.verdicts.values())]
    text = (f"Reference: {results.reference or f.DASH}. {n_cand} candidate{'s' if n_cand != 1 else ''} on "
            f"{len(tasks)} tasks: {names}. Each is compared with the reference on every task it can serve, on the "
            f"task's decision metric, paired on the same examples ({f.confidence_pct(results)}% confidence "
            "intervals). ")
    text += (f"Non-inferior or superior on every task: {', '.join(repr(n) for n in passing)}." if passing
             else "No candidate is shown non-inferior on every task.")
    return text


# ---------------------------------------------------------------------------------------------- across tasks


def cross_task_blocks(results: StudyResults) -> list[Block]:
    from leanbench.report.plots import task_heatmap_figure

    out: list[Block] = [
        Heading("Across tasks"),
        Figure(lambda: task_heatmap_figure(results)[0], "lb-task-heatmap",
               "Δ vs the reference per candidate and task (colour and text; hover for the CI and the verdict); the "
               "last column is the macro average over the tasks the candidate serves."),
        cross_task_table(results),
        Para("Macro Δ: the mean over tasks of the candidate's difference from the reference on each task's "
             "decision metric, with a CI from a stratified paired bootstrap (each task's examples resampled "
             "independently, the same draw for candidate and reference). Worst task: the lowest difference, with "
             "that task's own CI. Worse beyond the margin: tasks whose verdict, corrected across every task, "
             "candidate and metric (Holm), is inferior.", small=True),
        Heading("Verdicts per task"),
        task_verdict_table(results),
    ]
    return out


def _fraction(results: StudyResults, metrics: Sequence[str]) -> bool:
    return bool(metrics) and all(f.is_fraction(results, m) for m in metrics)


def cross_task_table(results: StudyResults) -> Table:
    header = ["candidate", "tasks", "macro Δ [CI]", "worst task", "its Δ [CI]", "worse beyond the margin on",
              "not evaluated on"]
    rows, classes = [], []
    for cand in f.candidates(results):
        cross = cand.cross_task
        if cand.name == results.reference or cross is None:
            continue
        macro = cross.macro_diff
        fraction = _fraction(results, list((cross.metrics or {}).values()))
        worst = cross.worst
        skipped = [f"{t} (cannot serve)" for t in cross.skipped_tasks or []] + list(cross.not_evaluated or [])
        rows.append([
            str(cand.name), str(len(cross.tasks or [])),
            f.fmt_diff_ci(macro.value, macro.ci_low, macro.ci_high, fraction) if macro is not None
            else (cross.note or f.DASH),
            str(worst.task) if worst is not None else f.DASH,
            f.fmt_diff_ci(worst.diff, worst.ci_low, worst.ci_high, f.is_fraction(results, str(worst.metric)))
            + f" ({worst.verdict})" if worst is not None else f.DASH,
            ", ".join(cross.inferior_tasks or []) or "none",
            ", ".join(skipped) or f.DASH,
        ])
        classes.append([None, None, None, None, None, "flag" if cross.inferior_tasks else None, None])
    return Table(header, rows, classes=classes, text_cols=(5, 6))


def task_verdict_table(results: StudyResults) -> Table:
    """One row per candidate, one column per task: Δ [CI] and the verdict, coloured by the verdict."""
    tasks = results.tasks or []
    header = ["candidate"] + [f"{t.name}: Δ {t.metric} (margin {f.fmt_margin(results, str(t.metric), t.margin)})"
                              for t in tasks]
    rows, classes = [], []
    for cand in f.candidates(results):
        if cand.name == results.reference:
            continue
        row, cls = [str(cand.name)], [None]
        for t in tasks:
            entry = (cand.tasks or {}).get(str(t.name))
            vs = entry.vs_reference if entry is not None else None
            if vs is None:
                row.append("cannot serve" if str(cand.name) in (t.skipped or []) else "not evaluated")
                cls.append(None)
                continue
            diff = f.fmt_diff_ci(vs.diff, vs.ci_low, vs.ci_high, f.is_fraction(results, str(vs.metric)))
            row.append(f"{diff} {vs.verdict}")
            cls.append(f"v-{vs.verdict}" if vs.verdict else None)
        rows.append(row)
        classes.append(cls)
    return Table(header, rows, classes=classes)


# ---------------------------------------------------------------------------------------------- each task


def per_task_blocks(results: StudyResults) -> list[Block]:
    """One collapsed block per task with that task's one-task sections."""
    from leanbench.report import sections
    from leanbench.report.sections.stats import verdict_tables

    out: list[Block] = [Heading("Per task")]
    for t in results.tasks or []:
        res = (results.task_results or {}).get(str(t.name))
        summary = (f"Task {t.name}: {t.kind}, {f.fmt_count(t.n)} examples ({t.source or 'unknown source'}), decided "
                   f"on {t.metric} at a margin of {f.fmt_margin(results, str(t.metric), t.margin)}")
        if res is None:
            out.append(Details(summary, [Para("No results for this task in the report.")]))
            continue
        main, more = verdict_tables(res)
        inner: list[Block] = [Para(f"Its own study in the store: '{t.study}' (`leanbench report --study {t.study}` "
                                   "renders it alone, with its verdicts corrected for that task only)."),
                              main, Details("More columns", [more])]
        if t.skipped:
            inner.append(Para(f"Not evaluated (cannot serve a {t.kind} task): {', '.join(t.skipped)}.", small=True))
        inner.extend(_task_scoped(str(t.name), sections.blocks(res, sections.QUALITY)))
        if res.notes:
            inner.append(Bullets(list(res.notes), title="Notes"))
        out.append(Details(summary, inner))
    return out


def _task_scoped(task: str, blocks: Sequence[Any]) -> list[Any]:
    """`blocks` with headings one level down and figure ids prefixed by the task (several tasks, one page)."""
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            b = dataclasses.replace(b, level=min(b.level + 1, 6))
        elif isinstance(b, Figure):
            b = dataclasses.replace(b, div_id=f"t-{slug(task)}-{b.div_id}")
        elif isinstance(b, Details):
            b = dataclasses.replace(b, blocks=_task_scoped(task, b.blocks))
        out.append(b)
    return out


__all__ = ["cross_task_blocks", "cross_task_table", "lead", "multitask_blocks", "per_task_blocks",
           "task_verdict_table"]
