"""The Python API: the CLI's four verbs as functions.

    import leanbench
    study = leanbench.load_study("studies/digits.yaml")       # validated; ConfigError lists every problem
    summary = leanbench.run(study, store=".leanbench/leanbench.db")  # builds, evaluates, measures; resumes
    results = leanbench.results("digits", store=".leanbench/leanbench.db")  # typed StudyResults
    html = leanbench.render(results, "html")                   # or "md", "json"

Each imports what it needs when called, so ``import leanbench`` stays light.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from leanbench.analysis.results import StudyResults
    from leanbench.runner.local import RunSummary
    from leanbench.study import Study


def load_study(path: str | os.PathLike, *, check_data: bool = False) -> Study:
    """A study file validated into a `Study` (`check_data`: also open the data, as `leanbench validate`)."""
    from leanbench.study_loader import load_study as _load

    return _load(Path(path), check_data=check_data)


def run(study: Study | str | os.PathLike, store: str | os.PathLike | None = None,
        only: list[str] | None = None) -> RunSummary:
    """Runs (or resumes) a study into the store (default: $LEANBENCH_STORE or .leanbench/leanbench.db);
    `only`: these candidates, the reference and what they are built from."""
    from leanbench.runner.local import run_study
    from leanbench.store import Store
    from leanbench.study_loader import select_candidates

    if not hasattr(study, "candidates"):
        study = load_study(study)  # type: ignore[arg-type]
    if only:
        study = select_candidates(study, list(only))  # type: ignore[arg-type]
    if study.tasks is not None:  # type: ignore[union-attr]  (several tasks: each task's study in turn)
        from leanbench.runner.multitask import load_task_data, run_tasks

        data = load_task_data(study)  # type: ignore[arg-type]
        return run_tasks(study, Store.open(store), data=data)  # type: ignore[arg-type]
    return run_study(study, Store.open(store))  # type: ignore[arg-type]


def results(study: str | None = None, store: str | os.PathLike | None = None) -> StudyResults:
    """The typed results of a study in the store (the only one when `study` is None); read-only."""
    from leanbench.analysis import analyse
    from leanbench.store import Store

    return analyse(Store.open(store, readonly=True), study)


def render(results: StudyResults | dict[str, Any], fmt: str = "html") -> str:
    """The report of `results` as HTML (self-contained), Markdown or JSON text."""
    from leanbench.report import render as _render

    return _render(results, fmt)
