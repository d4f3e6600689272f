"""One study as the exports read it: its typed results (`analyse`), its validated config and its candidate
rows in the store (the cells they were built and evaluated in). Read-only.

A study of several tasks (`tasks:`) records no candidate rows of its own: each task ran as its one-task study
(`<study>.<task>`), whose rows hold the cells. `task_views` gives one `TaskView` per task (its name, its one-task
study, its results and its rows); a one-task study is its own single view, named None."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from leanbench.errors import LeanbenchError

if TYPE_CHECKING:
    from leanbench.analysis.results import CandidateResult, StudyResults
    from leanbench.store import Store
    from leanbench.study import Study


@dataclass
class TaskView:
    """One task of the study as the exports read it: `name` None for a one-task study."""

    name: str | None
    study: Study
    results: StudyResults
    rows: dict[str, dict[str, Any]]  # candidate -> its `candidates` row in the task's study


@dataclass
class StudySource:
    store: Store
    results: StudyResults
    study: Study
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # candidate -> its `candidates` row
    source: str | None = None  # the study file it was run from
    tasks: list[TaskView] = field(default_factory=list)  # a study of several tasks: one view per task

    @property
    def multi_task(self) -> bool:
        return bool(self.tasks)

    def task_views(self) -> list[TaskView]:
        """One view per task (a one-task study: itself, named None)."""
        return self.tasks or [TaskView(None, self.study, self.results, self.rows)]

    @property
    def name(self) -> str:
        return str(self.results.study)

    def candidate(self, name: str) -> CandidateResult:
        """The candidate called `name`, or one message naming the study's candidates (did you mean)."""
        from leanbench.registry import did_you_mean

        cand = self.results.candidate(name)
        if cand is None:
            names = [c.name for c in self.results.candidates if c.name]
            raise LeanbenchError(f"study '{self.name}' has no candidate '{name}'{did_you_mean(name, names)}; "
                                 f"candidates: {', '.join(names)}")
        return cand

    def candidate_config(self, name: str) -> dict[str, Any]:
        """The candidate's config as the study file gives it (model, from, steps as one-key mappings...)."""
        from leanbench.store.db import canonical_config

        config = canonical_config(self.study.model_dump(mode="json", by_alias=True, exclude_none=True))
        return next(c for c in config["candidates"] if c["name"] == name)

    def build_key(self, name: str) -> str | None:
        """The key of the candidate's build at its first seed (the model the report describes; several tasks:
        from the first task that has the candidate, their builds being shared)."""
        for view in self.task_views():
            builds = (view.rows.get(name) or {}).get("cells", {}).get("build", {})
            for seed in view.study.seeds_of(name) if name in view.rows else []:
                if str(seed) in builds:
                    return builds[str(seed)]
            if builds:
                return next(iter(builds.values()))
        return None

    def evaluate_cells(self, name: str, task: str | None = None) -> dict[str, Any]:
        """The candidate's cells as the plan recorded them: {"build", "evaluate", "perturbed", "measure"} (of
        the task `task` in a study of several tasks)."""
        view = next((v for v in self.task_views() if v.name == task), None)
        return ((view.rows if view else {}).get(name) or {}).get("cells", {})


def open_study(store: Store, name: str | None) -> StudySource:
    """The study `name` of `store` (the latest one when None); an unknown name is one message with the
    studies the store holds."""
    from leanbench.analysis import analyse

    results = analyse(store, name)
    name = str(results.study)
    study, row = store.study_config(name), store.study(name)
    if study is None or row is None:  # pragma: no cover - analyse found it a moment ago
        raise LeanbenchError(f"no study named '{name}' in {store.location}")
    rows = {r["name"]: r for r in store.candidates(name)}
    tasks = []
    if study.tasks is not None:
        for task, sub in study.per_task():
            res = (results.task_results or {}).get(task)
            if res is not None:
                tasks.append(TaskView(task, sub, res, {r["name"]: r for r in store.candidates(sub.name)}))
    return StudySource(store, results, study, rows, row.get("source"), tasks)
