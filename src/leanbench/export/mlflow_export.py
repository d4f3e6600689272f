"""`leanbench export STUDY --mlflow URI`: one MLflow run per candidate, in the experiment named after the
study, through `mlflow.tracking.MlflowClient` (no global MLflow state is touched).

- params: the candidate's config as the study file gives it, flattened (`model.arch`, `from`,
  `steps.0.train.epochs`, ...);
- metrics: every metric value with its `_ci_low` / `_ci_high`, the difference from the reference with its CI,
  and the bill (`bill.py`: size, FLOPs, latency per profile, speed-up, memory, energy, build cost, TCO);
- tags: `verdict`, `leanbench.study`, `leanbench.candidate`, `leanbench.reference`, `leanbench.version`,
  `leanbench.export_key` (study, run id, candidate) and, when the analysis made a recommendation,
  `leanbench.recommended` (true/false); a study of several tasks has no one verdict: `verdict.<task>` per task,
  `leanbench.tasks` and `leanbench.inferior_tasks` (comma-separated) instead, and its metrics are per task
  (`<task>.acc`, `<task>.diff_vs_reference`, ...) with the cross-task summary (`cross_task.macro_diff`, ...);
- artifact: the study's HTML report.

Exporting the same analysed run again skips the candidates already logged under their `export_key`. A run
that fails while it is logged is marked FAILED. MLflow is in the `export` extra.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leanbench import __version__
from leanbench.errors import LeanbenchError
from leanbench.export.bill import all_figures

if TYPE_CHECKING:
    from leanbench.analysis.results import CandidateResult
    from leanbench.export.source import StudySource

MLFLOW_HINT = "pip install 'leanbench[export]'"
PARAM_CHARS = 500  # MLflow's smallest limit on a param value across versions
BATCH = 100  # params per log_batch call (MLflow's limit)


@dataclass
class MlflowExport:
    experiment_id: str
    logged: dict[str, str] = field(default_factory=dict)  # candidate -> run id
    skipped: dict[str, str] = field(default_factory=dict)  # candidate -> the run id already logged


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """A nested config as `a.b.0.c -> "value"` strings (lists indexed), values cut to PARAM_CHARS."""
    out: dict[str, str] = {}
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else None
    if items is None:
        text = value if isinstance(value, str) else json.dumps(value)
        return {prefix or "value": text[:PARAM_CHARS]}
    for k, v in items:
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _experiment(client: Any, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    return exp.experiment_id if exp is not None else client.create_experiment(name)


def export_key(src: StudySource, name: str) -> str:
    run_id = src.results.manifest.run_id if src.results.manifest else None
    return f"{src.name}/{run_id}/{name}"


def _tags(src: StudySource, cand: CandidateResult) -> dict[str, str]:
    tags = {"leanbench.study": src.name, "leanbench.candidate": str(cand.name),
            "leanbench.reference": str(src.results.reference), "leanbench.version": __version__,
            "leanbench.export_key": export_key(src, str(cand.name))}
    if cand.tasks is None:
        tags["verdict"] = str(cand.verdict)
    else:
        from leanbench.export.bill import key_part, task_entries

        for task, _, vs in task_entries(cand):
            tags[f"verdict.{key_part(str(task))}"] = str(vs.verdict if vs is not None else None)
        tags["leanbench.tasks"] = ",".join(str(t) for t in cand.tasks)
        if cand.cross_task is not None:
            tags["leanbench.inferior_tasks"] = ",".join(cand.cross_task.inferior_tasks or [])
    rec = getattr(src.results, "recommendation", None)
    if rec is not None and getattr(rec, "ship", None) is not None:
        tags["leanbench.recommended"] = str(cand.name in (rec.ship or [])).lower()
    return tags


def _already_logged(client: Any, experiment_id: str, key: str) -> str | None:
    runs = client.search_runs([experiment_id], filter_string=f"tags.`leanbench.export_key` = '{key}'",
                              max_results=1)
    return runs[0].info.run_id if runs else None


def _log_run(client: Any, experiment_id: str, src: StudySource, cand: CandidateResult, report: Path) -> str:
    from mlflow.entities import Metric, Param

    run = client.create_run(experiment_id, run_name=str(cand.name), tags=_tags(src, cand))
    run_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        params = [Param(k, v) for k, v in flatten(src.candidate_config(str(cand.name))).items()]
        metrics = [Metric(k, float(v), now, 0) for k, v in all_figures(cand).items()]
        for i in range(0, max(len(params), len(metrics)), BATCH):
            client.log_batch(run_id, metrics=metrics[i:i + BATCH], params=params[i:i + BATCH])
        client.log_artifact(run_id, str(report))
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id)
    return run_id


def export_mlflow(src: StudySource, uri: str) -> MlflowExport:
    """Logs one run per candidate to the tracking server or store at `uri` (see the module docstring)."""
    from leanbench.report import render

    if importlib.util.find_spec("mlflow") is None:
        raise LeanbenchError(f"--mlflow: logging to MLflow needs the mlflow package, which is not installed; "
                             f"{MLFLOW_HINT}")
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=uri)
        out = MlflowExport(_experiment(client, src.name))
        with tempfile.TemporaryDirectory(prefix="leanbench-mlflow-") as tmp:
            report = Path(tmp) / f"{src.name}.html"
            report.write_text(render(src.results, "html"), encoding="utf-8")
            for cand in src.results.candidates:
                done = _already_logged(client, out.experiment_id, export_key(src, str(cand.name)))
                if done is not None:
                    out.skipped[str(cand.name)] = done
                    continue
                out.logged[str(cand.name)] = _log_run(client, out.experiment_id, src, cand, report)
    except MlflowException as exc:
        raise LeanbenchError(f"--mlflow {uri}: {' '.join(str(exc).split()) or type(exc).__name__}") from None
    except OSError as exc:
        raise LeanbenchError(f"--mlflow {uri}: cannot write: {exc}") from None
    return out
