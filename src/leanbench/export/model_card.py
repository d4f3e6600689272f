"""A model card (README.md) for an exported candidate: YAML front matter in the Hugging Face Hub's layout,
then a short Markdown body.

The front matter's `model-index` (https://github.com/huggingface/hub-docs/blob/main/modelcard.md) holds one
result: the task (its Hub task id, `TaskKindPlugin.hub_task`), the dataset (the study's data source and the
evaluated split) and one metric entry per evaluated metric, its value as a number and its confidence
interval in the entry's `args` (`ci_low`, `ci_high`, `confidence`: the one free mapping the Hub's parser
keeps), `verified: false`. `huggingface_hub.ModelCard.load(path).data.eval_results` reads them. The verdict,
the comparison with the reference and the bill sit beside it under the `leanbench` key
(`card.data.leanbench`), with the recommendation when the analysis made one.

A study of several tasks gives one `model-index` result per task (its Hub task, its dataset, its metrics), so
`eval_results` holds one entry per task x metric; the `leanbench` key then holds each task's verdict and
comparison (`tasks`) and the cross-task summary (`cross_task`) in place of the one verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from leanbench import __version__
from leanbench.export.bill import bill_figures, comparison_figures, cross_task_figures, task_entries
from leanbench.report._format import table_cell as _fmt

if TYPE_CHECKING:
    from leanbench.analysis.results import CandidateResult
    from leanbench.export.source import StudySource


def _recommendation(rec: Any, name: str) -> dict[str, Any]:
    """The study's recommendation (what to ship, and why) and this candidate's own check against it."""
    rec = rec.to_dict() if hasattr(rec, "to_dict") else rec
    if not isinstance(rec, dict):
        return {}
    out = {k: rec[k] for k in ("status", "choice", "ship", "why") if rec.get(k) is not None}
    check = next((c for c in rec.get("checks") or [] if isinstance(c, dict) and c.get("name") == name), None)
    if check:
        out["this_candidate"] = {k: check[k] for k in ("qualifies", "blockers", "why_not") if k in check}
    return out


def metric_entries(src: StudySource, cand: CandidateResult, metrics: dict[str, Any] | None = None,
                   n: int | None = None) -> list[dict[str, Any]]:
    """One `model-index` metric per evaluated metric (of `metrics`, a task's; default the candidate's): the
    value, its CI in `args`."""
    confidence = src.results.decision.confidence if src.results.decision else None
    out = []
    for name, m in (cand.metrics if metrics is None else metrics or {}).items():
        if m is None or m.value is None:
            continue
        args = {k: v for k, v in (("ci_low", m.ci_low), ("ci_high", m.ci_high), ("confidence", confidence),
                                  ("n", cand.n_evaluated if metrics is None else n),
                                  ("seeds", len(src.study.seeds_of(cand.name))))
                if v is not None}
        out.append({"type": name, "name": name, "value": m.value, "args": args, "verified": False})
    return out


def model_index(src: StudySource, cand: CandidateResult) -> list[dict[str, Any]]:
    from leanbench.plugins import TASK_KINDS

    if src.multi_task:
        return [{"name": cand.name, "results": _task_results(src, cand)}]
    task = src.results.task
    kind = (task.kind if task else None) or "classification"
    source = (task.source if task else None) or src.name
    split = (task.evaluated_split if task else None) or "test"
    return [{"name": cand.name, "results": [{
        "task": {"type": TASK_KINDS.get(kind).hub_task_of(src.study.task), "name": kind},
        "dataset": {"type": source, "name": source, "split": split},
        "metrics": metric_entries(src, cand),
    }]}]


def _task_results(src: StudySource, cand: CandidateResult) -> list[dict[str, Any]]:
    """One `model-index` result per task the candidate was evaluated on: the task's Hub task, its data source
    (the dataset's name is the task's), its metrics with CIs."""
    from leanbench.plugins import TASK_KINDS

    out = []
    for view in src.task_views():
        entry = (cand.tasks or {}).get(str(view.name))
        if entry is None or not entry.metrics:
            continue
        info = view.results.task
        kind = view.study.task.kind
        source = (info.source if info else None) or str(view.name)
        out.append({"task": {"type": TASK_KINDS.get(kind).hub_task_of(view.study.task), "name": kind},
                    "dataset": {"type": source, "name": str(view.name),
                                "split": (info.evaluated_split if info else None) or "test"},
                    "metrics": metric_entries(src, cand, entry.metrics, entry.n_evaluated)})
    return out


def _per_task(src: StudySource, cand: CandidateResult) -> dict[str, Any] | None:
    """Each task's verdict and comparison with the reference (a study of several tasks), and the cross-task
    summary."""
    if not src.multi_task:
        return None
    out: dict[str, Any] = {}
    for task, _, vs in task_entries(cand):
        if vs is not None:
            out[str(task)] = {"verdict": vs.verdict, "metric": vs.metric, "margin": vs.margin,
                              **{k: v for k, v in (("diff_vs_reference", vs.diff), ("diff_vs_reference_ci_low",
                                                   vs.ci_low), ("diff_vs_reference_ci_high", vs.ci_high),
                                                  ("p_value", vs.p_value)) if v is not None}}
    return out or None


def _cross_task(cand: CandidateResult) -> dict[str, Any] | None:
    cross = cand.cross_task
    if cross is None:
        return None
    out: dict[str, Any] = {"tasks": cross.tasks, "worst_task": cross.worst.task if cross.worst else None,
                           "inferior_tasks": cross.inferior_tasks, "skipped_tasks": cross.skipped_tasks or None,
                           **cross_task_figures(cand)}
    return {k: v for k, v in out.items() if v is not None}


def card_data(src: StudySource, cand: CandidateResult, form: str, build_key: str | None) -> dict[str, Any]:
    """The front matter as a mapping."""
    res, vs = src.results, cand.vs_reference
    steps = [next(iter(s)) if isinstance(s, dict) else str(s) for s in cand.steps or []]
    manifest = res.manifest
    extra: dict[str, Any] = {
        "study": src.name, "candidate": cand.name, "reference": res.reference,
        "verdict": vs.verdict if vs else None,
        "decision": {"metric": vs.metric, "margin": vs.margin, "alpha": res.decision.alpha if res.decision else None,
                     **comparison_figures(cand)} if vs else None,
        "tasks": _per_task(src, cand),
        "cross_task": _cross_task(cand),
        "bill": bill_figures(cand),
        "config": src.candidate_config(str(cand.name)),
        "format": form,
        "build_cell": build_key,
        "machine": {"cpu": manifest.cpu, "cores": manifest.cores, "torch": manifest.torch,
                    "leanbench": manifest.leanbench} if manifest else None,
        "exported_by": f"leanbench {__version__}",
    }
    recommendation = _recommendation(getattr(res, "recommendation", None), str(cand.name))
    if recommendation:
        extra["recommendation"] = recommendation
    return {"tags": ["leanbench", *(x for x in steps if x)], "model-index": model_index(src, cand),
            "leanbench": {k: v for k, v in extra.items() if v is not None}}




def _body(src: StudySource, cand: CandidateResult, form: str) -> list[str]:
    res, vs = src.results, cand.vs_reference
    lines = [f"# {cand.name}", "",
             f"Candidate `{cand.name}` of the leanbench study `{src.name}`"
             + (f" (reference: `{res.reference}`)" if res.reference else "") + ".", ""]
    if res.description:
        lines += [res.description.strip(), ""]
    lines += [f"**Format**: {form}.", ""]
    if vs is not None and vs.verdict:
        lines += [f"**Verdict** on {vs.metric} (margin {_fmt(vs.margin)}): **{vs.verdict}**; difference from the "
                  f"reference {_fmt(vs.diff)} [{_fmt(vs.ci_low)}, {_fmt(vs.ci_high)}].", ""]
    why = _recommendation(getattr(res, "recommendation", None), str(cand.name)).get("why")
    if why:
        lines += [f"**The study's recommendation**: {why}", ""]
    conf = res.decision.confidence if res.decision else None
    if src.multi_task:
        lines += _task_body(src, cand, conf)
    else:
        lines += [f"## Results ({res.task.evaluated_split if res.task else 'test'} split"
                  + (f", {conf:.0%} CIs" if conf else "") + ")", "", "| metric | value | CI |", "|---|---|---|"]
        for name, m in (cand.metrics or {}).items():
            if m is not None:
                lines.append(f"| {_fmt(name)} | {_fmt(m.value)} | [{_fmt(m.ci_low)}, {_fmt(m.ci_high)}] |")
    bill = bill_figures(cand)
    if bill:
        lines += ["", "## Bill", "", "| figure | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in bill.items()]
    return lines + ["", f"Exported by leanbench {__version__}. Every figure from a sample carries its CI; the "
                        "latencies were measured on the machine named in the front matter."]


def _task_body(src: StudySource, cand: CandidateResult, conf: float | None) -> list[str]:
    """Several tasks: the cross-task summary, then one row per task x metric with the task's verdict."""
    lines: list[str] = []
    cross = cand.cross_task
    if cross is not None:
        macro, worst = cross.macro_diff, cross.worst
        if macro is not None:
            lines.append(f"**Across {len(cross.tasks or [])} tasks**: mean difference from the reference on the "
                         f"tasks' decision metrics {_fmt(macro.value)} [{_fmt(macro.ci_low)}, {_fmt(macro.ci_high)}].")
        if worst is not None:
            lines.append(f"Worst task: {worst.task} ({worst.metric} {_fmt(worst.diff)} [{_fmt(worst.ci_low)}, "
                         f"{_fmt(worst.ci_high)}], {worst.verdict}); inferior on: "
                         f"{', '.join(cross.inferior_tasks or []) or 'none'}.")
        lines.append("")
    lines += ["## Results per task" + (f" ({conf:.0%} CIs)" if conf else ""), "",
              "| task | metric | value | CI | verdict (decision metric) |", "|---|---|---|---|---|"]
    for task, metrics, vs in task_entries(cand):
        for name, m in (metrics or {}).items():
            if m is not None:
                verdict = f"{vs.verdict}, diff {_fmt(vs.diff)} [{_fmt(vs.ci_low)}, {_fmt(vs.ci_high)}]" \
                    if vs is not None and vs.metric == name else ""
                lines.append(f"| {_fmt(task)} | {_fmt(name)} | {_fmt(m.value)} | [{_fmt(m.ci_low)}, "
                             f"{_fmt(m.ci_high)}] | {_fmt(verdict) if verdict else ''} |")
    return lines


def render_card(src: StudySource, cand: CandidateResult, form: str, build_key: str | None = None) -> str:
    """README.md text: `---`, the YAML front matter, `---`, the Markdown body."""
    front = yaml.safe_dump(card_data(src, cand, form, build_key), sort_keys=False, allow_unicode=True, width=100)
    return "---\n" + front + "---\n\n" + "\n".join(_body(src, cand, form)) + "\n"
