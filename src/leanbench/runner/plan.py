"""Planning: a study and its data become the list of cells to run, each with its content key.

Per candidate and each of its seeds (the study's, or fewer for a candidate that says `seeds:`): one build cell
and one evaluate cell, one perturbed-evaluate cell per perturbation; per candidate: one measure cell (on its
first seed's build). Per study: one integrity cell. Cells whose
keys coincide (a deterministic candidate across seeds) are planned once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from leanbench.plugins import TASK_KINDS
from leanbench.runner.keys import build_keys, eval_key, integrity_key, measure_key, perturbed_key
from leanbench.study import Study


@dataclass(frozen=True)
class CellSpec:
    kind: str  # build | evaluate | perturbed | measure | integrity
    key: str
    candidate: str | None = None
    seed: int | None = None
    perturbation: Any = None  # leanbench.evaluate.perturb.Perturbation for "perturbed" cells

    @property
    def label(self) -> str:
        parts = [self.kind, self.candidate or "study"]
        if self.perturbation is not None:
            parts.append(f"[{self.perturbation.label}]")
        return " ".join(parts)


@dataclass
class Plan:
    seeds: list[int]
    keys: dict[int, dict[str, str]]  # seed -> candidate -> build key
    rows: list[dict] = field(default_factory=list)  # the candidates table: name -> its cells
    cells: list[CellSpec] = field(default_factory=list)
    perturbations: list[Any] = field(default_factory=list)
    study_cells: dict[str, str] = field(default_factory=dict)  # study-wide cells: integrity


def perturbations_for(study: Study, data: Any) -> list[Any]:
    """The perturbations a study evaluates under (none where the task kind has no perturbation suite)."""
    from leanbench.evaluate.perturb import default_perturbations, input_kind, perturbation_from_config

    setting = study.evaluate.perturbations
    X = data.split(study.evaluate.split).X
    if setting == "none" or not TASK_KINDS.get(study.task.kind).perturbations or (X.dtype == object and X.ndim > 1):
        return []  # sentence pairs have no perturbation suite yet
    if setting == "default":
        return default_perturbations(input_kind(data.split(study.evaluate.split).X))
    return [perturbation_from_config(name, params or {}, where=f"evaluate.perturbations[{i}].")
            for i, item in enumerate(setting) for name, params in item.items()]


def spans_key(study: Study, data: Any) -> str | None:
    """The fingerprint of the evaluated examples' own-text spans (`evaluate.perturb.input_spans`) where the loader
    recorded them (multiple-choice and generation prompts), else None."""
    from leanbench.evaluate.perturb import spans_fingerprint, split_spans

    split = data.split(study.evaluate.split)
    return spans_fingerprint(split_spans(data, split.name), split.ids)


def make_plan(study: Study, data: Any, machine: dict[str, Any]) -> Plan:
    fps = data.fingerprints
    seeds = study.seeds
    plan = Plan(seeds, {s: build_keys(study, fps, s) for s in seeds}, perturbations=perturbations_for(study, data))
    scope = spans_key(study, data) if plan.perturbations else None
    seen: set[str] = set()

    def first_build(name: str) -> str:  # the build a candidate is measured on: its first seed's
        return plan.keys[study.seeds_of(name)[0]][name]

    group = [first_build(c.name) for c in study.candidates]  # measured together

    def add(cell: CellSpec) -> None:
        if cell.key not in seen:
            seen.add(cell.key)
            plan.cells.append(cell)

    for name in study.build_order():  # dependencies first, whatever seeds each candidate has
        for seed in study.seeds_of(name):
            add(CellSpec("build", plan.keys[seed][name], name, seed))
    for pos, cand in enumerate(study.candidates):
        cells: dict[str, Any] = {"build": {}, "evaluate": {}, "perturbed": {}, "measure": None}
        for seed in study.seeds_of(cand.name):
            build = plan.keys[seed][cand.name]
            ev = eval_key(study, build, fps)
            cells["build"][str(seed)] = build
            cells["evaluate"][str(seed)] = ev
            add(CellSpec("evaluate", ev, cand.name, seed))
            cells["perturbed"][str(seed)] = {}
            for p in plan.perturbations:
                pk = perturbed_key(study, ev, p.key(), scope)
                cells["perturbed"][str(seed)][p.label] = pk
                add(CellSpec("perturbed", pk, cand.name, seed, p))
        if study.measure.enabled:
            cells["measure"] = measure_key(study, first_build(cand.name), machine, group)
        plan.rows.append({"name": cand.name, "position": pos, "from_": cand.from_,
                          "steps": [s.name for s in cand.steps], "cells": cells})
    if study.measure.enabled:
        for row in plan.rows:
            add(CellSpec("measure", row["cells"]["measure"], row["name"], study.seeds_of(row["name"])[0]))
    if study.integrity.contamination:
        plan.study_cells["integrity"] = integrity_key(study, fps)
        add(CellSpec("integrity", plan.study_cells["integrity"]))
    return plan


def dependencies(study: Study, plan: Plan) -> dict[str, list[str]]:
    """Per planned cell, the keys of the planned cells that must be done before it: a build needs the builds of
    its parent and teachers (at its seed), an evaluation its build, a measure cell every build measured with it
    (the group: each candidate's first seed)."""
    planned = {c.key for c in plan.cells}
    group = [plan.keys[study.seeds_of(c.name)[0]][c.name] for c in study.candidates]
    out: dict[str, list[str]] = {}
    for cell in plan.cells:
        if cell.kind == "build":
            needs = [plan.keys[cell.seed][d] for d in study.dependencies(cell.candidate)]
        elif cell.kind in ("evaluate", "perturbed"):
            needs = [plan.keys[cell.seed][cell.candidate]]
        elif cell.kind == "measure":
            needs = group
        else:
            needs = []
        out[cell.key] = [k for k in dict.fromkeys(needs) if k in planned and k != cell.key]
    return out
