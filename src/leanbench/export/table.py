"""`leanbench export STUDY --table out.csv|out.md`: the verdict table, one row per candidate: what it is,
its verdict on the decision metric with the difference from the reference and its CI, every metric with
its CI, and the bill (`bill.py`). CSV holds the numbers as they are; Markdown rounds them for reading.

A study of several tasks: per task its verdict and decision metric (`<task>.verdict`, `<task>.decision_metric`)
and figures (`<task>.acc`, `<task>.diff_vs_reference`, ...), the cross-task summary (`cross_task.macro_diff`
with its CI, `worst_task`, `inferior_tasks`); no candidate-level verdict, as in the results JSON. The Markdown
table has a column per task (verdict and difference with its CI) and the macro average."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from leanbench.export.bill import all_figures, key_part
from leanbench.report._format import table_cell as _cell

if TYPE_CHECKING:
    from leanbench.analysis.results import StudyResults

FORMATS = (".csv", ".md")


def _steps(steps: list[Any] | None) -> str:
    return " → ".join(next(iter(s)) if isinstance(s, dict) else str(s) for s in steps or [])


def _task_columns(results: StudyResults, c: Any) -> dict[str, Any]:
    """A study of several tasks: each task's verdict and decision metric, the worst task, the inferior ones."""
    out: dict[str, Any] = {}
    for t in results.tasks or []:
        entry = (c.tasks or {}).get(t.name)
        vs = entry.vs_reference if entry is not None else None
        out[f"{key_part(str(t.name))}.verdict"] = vs.verdict if vs else None
        out[f"{key_part(str(t.name))}.decision_metric"] = vs.metric if vs else t.metric
    cross = c.cross_task
    out["worst_task"] = cross.worst.task if cross is not None and cross.worst is not None else None
    out["inferior_tasks"] = "; ".join(cross.inferior_tasks or []) if cross is not None else None
    return out


def verdict_rows(results: StudyResults) -> list[dict[str, Any]]:
    """One mapping per candidate, every row with the same keys in the same order (missing figures None)."""
    rows = []
    for c in results.candidates:
        vs = c.vs_reference
        head = {"candidate": c.name, "from": c.from_, "steps": _steps(c.steps)}
        if results.tasks:
            rows.append({**head, **_task_columns(results, c), **all_figures(c)})
        else:
            rows.append({**head, "verdict": vs.verdict if vs else None, "decision_metric": vs.metric if vs else None,
                         **all_figures(c)})
    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)
    return [{k: r.get(k) for k in keys} for r in rows]




def _ci(row: dict[str, Any], key: str) -> str:
    """`value [low, high]` of a figure and its CI columns."""
    if row.get(key) is None:
        return "—"
    low, high = row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
    return _cell(row[key]) + (f" [{_cell(low)}, {_cell(high)}]" if low is not None and high is not None else "")


def _task_cell(row: dict[str, Any], task: str) -> str:
    """`verdict, diff [low, high]` of one task (the reference: its decision metric's value and CI)."""
    k = key_part(task)
    if row.get(f"{k}.diff_vs_reference") is not None:
        return f"{_cell(row.get(f'{k}.verdict'))}, {_ci(row, f'{k}.diff_vs_reference')}"
    metric = row.get(f"{k}.decision_metric")
    return _ci(row, f"{k}.{key_part(str(metric))}") if metric else "—"


def markdown_table(results: StudyResults, rows: list[dict[str, Any]]) -> str:
    """The readable table: the decision metric and the difference with CIs (several tasks: each task's verdict
    and difference, the macro average), size, p50 latency and speed-up per profile, build time and TCO (the CSV
    has every figure)."""
    metric = results.decision.metric if results.decision else None
    profiles = [p for c in results.candidates for p in (c.latency or {})]
    profiles = list(dict.fromkeys(profiles))
    tasks = [(str(t.name), t.metric) for t in results.tasks or []]
    quality = ([f"{t} ({m}): verdict, diff vs reference" for t, m in tasks] + ["macro diff (across tasks)"]
               if tasks else ["verdict", f"{metric}", "diff vs reference"])
    head = ["candidate", "steps", *quality, "params", "size (bytes)",
            *(f"p50 ms ({p})" for p in profiles), *(f"speed-up ({p})" for p in profiles), "build s", "TCO usd"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if tasks:
            scores = [_task_cell(r, t) for t, _ in tasks] + [_ci(r, "cross_task.macro_diff")]
        else:
            scores = [_cell(r["verdict"]), _ci(r, key_part(str(metric))), _ci(r, "diff_vs_reference")]
        cells = [_cell(r["candidate"]), _cell(r["steps"] or "—"), *scores, _cell(r.get("params")),
                 _cell(r.get("size_bytes"))]
        cells += [_ci(r, f"latency_{key_part(p)}_p50_ms") for p in profiles]
        cells += [_ci(r, f"speedup_{key_part(p)}") for p in profiles]
        cells += [_cell(r.get("build_seconds")), _cell(r.get("tco_usd"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table(results: StudyResults, path: Path) -> int:
    """Writes the verdict table to `path` (.csv or .md, atomically); returns the number of candidates."""
    import csv

    from leanbench.atomic import atomic_path
    from leanbench.export.predictions import output_kind

    kind = output_kind(path, FORMATS, "--table")
    rows = verdict_rows(results)
    with atomic_path(path) as tmp:
        if kind == ".md":
            tmp.write_text(f"# {results.study}: verdicts (reference: {results.reference})\n\n"
                           + markdown_table(results, rows), encoding="utf-8")
        else:
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["candidate"])
                writer.writeheader()
                writer.writerows(rows)
    return len(rows)
