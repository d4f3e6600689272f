"""The local runner: plans a study into cells and runs the ones not already in the store.

Order: load data -> build every candidate (dependency order) -> evaluate each -> measure each.
A cell's result, its per-example rows and its ledger entries are committed together; artifacts are
written to a temporary folder and renamed into place, so a run killed at any point keeps every finished
cell and the next run completes the rest.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leanbench.errors import ModelError
from leanbench.runner.cells import build_keys, eval_key, measure_key
from leanbench.runner.manifest import build_manifest
from leanbench.runner.progress import NullReporter, Reporter
from leanbench.store.db import Store, prediction_rows
from leanbench.study import Study


@dataclass
class Timer:
    """Wall and process CPU seconds of a block."""

    wall: float = 0.0
    cpu: float = 0.0
    _t0: tuple[float, float] = (0.0, 0.0)

    def __enter__(self) -> Timer:
        self._t0 = (time.perf_counter(), time.process_time())
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall = time.perf_counter() - self._t0[0]
        self.cpu = time.process_time() - self._t0[1]


@dataclass
class RunSummary:
    study: str
    run_id: int
    seconds: float
    cells_run: list[str] = field(default_factory=list)
    cells_reused: list[str] = field(default_factory=list)


def load_data(study: Study) -> Any:
    """Loads the study's task data, timing it for the ledger (meta: load_seconds, load_cpu_seconds)."""
    from leanbench.evaluate.tasks import get_task_kind

    with Timer() as timer:
        data = get_task_kind(study.task.kind).load(study.task, seed=study.seed, base_dir=Path(study.base_dir))
    data.meta["load_seconds"] = timer.wall
    data.meta["load_cpu_seconds"] = timer.cpu
    return data


def task_summary(data: Any) -> dict:
    return {
        "source": data.source,
        "label_names": list(data.label_names),
        "input_shape": list(data.input_shape),
        "splits": {s.name: {"name": s.name, "n": len(s), "fingerprint": s.fingerprint}
                   for s in (data.train, data.validation, data.test)},
    }


class LocalRunner:
    def __init__(self, study: Study, store: Store, reporter: Reporter | None = None, source: str | None = None):
        self.study = study
        self.store = store
        self.reporter = reporter or NullReporter()
        self.source = source
        self.run_id: int | None = None
        self.keys: dict[str, str] = {}
        self._models: dict[str, Any] = {}

    # ----------------------------------------------------------------- entry point
    def run(self, data: Any | None = None) -> RunSummary:
        """Runs the study; `data` is what `load_data` returned when the caller loaded it already."""
        t0 = time.perf_counter()
        data = data if data is not None else load_data(self.study)
        self.data = data
        manifest = build_manifest(self.study.seed, Path(self.study.base_dir))
        config = self.study.model_dump(mode="json", by_alias=True)
        fps = data.fingerprints
        self.keys = build_keys(self.study, fps)
        plan = []
        for pos, c in enumerate(self.study.candidates):
            plan.append({
                "name": c.name, "position": pos, "from_": c.from_,
                "steps": [s.name for s in c.steps], "build_key": self.keys[c.name],
                "eval_key": eval_key(self.study, self.keys[c.name], fps),
                "measure_key": measure_key(self.study, self.keys[c.name], manifest)
                if self.study.measure.enabled else None,
            })
        self.run_id = self.store.start_run(self.study.name, manifest, config)
        summary = RunSummary(self.study.name, self.run_id, 0.0)
        status = "failed"
        try:
            self.store.save_plan(self.study.name, config, self.source, task_summary(data), self.run_id, plan)
            self.store.add_ledger(self.study.name, self.run_id, [
                {"phase": "data", "seconds": data.meta["load_seconds"], "cpu_seconds": data.meta["load_cpu_seconds"],
                 "flops": None}])
            total = len(plan) * (3 if self.study.measure.enabled else 2)
            self.reporter.start(total)
            for name in self.study.build_order():
                self._cell(summary, f"build {name}", self.keys[name], lambda n=name: self._build(n))
            for row in plan:
                self._cell(summary, f"evaluate {row['name']}", row["eval_key"],
                           lambda r=row: self._evaluate(r["name"], r["eval_key"]))
            if self.study.measure.enabled:
                for row in plan:
                    self._cell(summary, f"measure {row['name']}", row["measure_key"],
                               lambda r=row: self._measure(r["name"], r["measure_key"]))
            status = "finished"
        finally:
            summary.seconds = time.perf_counter() - t0
            self.store.finish_run(self.run_id, status, summary.seconds)
            self.reporter.finish()
        return summary

    def _cell(self, summary: RunSummary, label: str, key: str, work: Any) -> None:
        kind = label.split()[0]
        done = self.store.cell(key)
        if done is not None and (kind != "build" or Path(done["artifact"] or "").is_dir()):
            summary.cells_reused.append(label)
            self.reporter.cell_done(label, reused=True, seconds=0.0)
            return
        t = time.perf_counter()
        self.reporter.cell_start(label)
        work()
        summary.cells_run.append(label)
        self.reporter.cell_done(label, reused=False, seconds=time.perf_counter() - t)

    # ----------------------------------------------------------------- build
    def model(self, name: str) -> Any:
        """A built candidate's model, loaded from its artifact (cached in memory for this run)."""
        from leanbench.models.base import load_model

        if name not in self._models:
            path = self.store.artifact_dir(self.keys[name])
            if not path.is_dir():
                raise ModelError(f"candidate '{name}' has no built model at {path}")
            self._models[name] = load_model(path)
        return self._models[name]

    def _build(self, name: str) -> None:
        from leanbench.compress.base import StepContext, get_step

        cand = self.study.candidate(name)
        key = self.keys[name]
        ctx = StepContext(
            data=self.data, seed=self.study.seed, cache_dir=self.store.cache_dir(),
            teacher=lambda t: (self.model(t), self.keys[t]),
            progress=lambda done, total, info: self.reporter.step_progress(done, total, info),
        )
        entries, build_info = [], []
        wall = cpu = flops = 0.0
        with Timer() as init_timer:
            if cand.model is not None:
                from leanbench.models.base import build_model

                model = build_model(cand.model, self.data, self.study.seed)
            else:
                model = self.model(cand.from_)
        for step in cand.steps:
            self.reporter.step_start(f"{name}: {step.name}")
            with Timer() as timer:
                result = get_step(step.name)(step.config, model, ctx)
            model = result.model
            entries.append({"phase": f"build:{step.name}", "seconds": timer.wall,
                            "cpu_seconds": timer.cpu, "flops": result.flops})
            build_info.append({"step": step.name, "seconds": timer.wall, "flops": result.flops,
                               "info": result.info})
            wall += timer.wall
            cpu += timer.cpu
            flops += result.flops or 0.0
        with Timer() as save_timer:
            artifact = self.store.artifact_dir(key)
            tmp = artifact.with_name(f".tmp-{key}-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            model.save(tmp)
            shutil.rmtree(artifact, ignore_errors=True)
            os.replace(tmp, artifact)
        entries.append({"phase": "build:save", "seconds": save_timer.wall + init_timer.wall,
                        "cpu_seconds": save_timer.cpu + init_timer.cpu, "flops": None})
        self._models[name] = model
        self.store.put_cell(
            key=key, kind="build", study=self.study.name, candidate=name, run_id=self.run_id,
            seconds=wall + save_timer.wall + init_timer.wall, cpu_seconds=cpu + save_timer.cpu + init_timer.cpu,
            flops=flops, artifact=str(artifact), ledger_entries=entries,
            result={"steps": build_info, "describe": model.describe()},
        )

    # ----------------------------------------------------------------- evaluate
    def _evaluate(self, name: str, key: str) -> None:
        from leanbench.evaluate.tasks import get_task_kind

        split = self.data.split(self.study.evaluate.split)
        model = self.model(name)
        with Timer() as timer:
            try:
                out = get_task_kind(self.study.task.kind).evaluate(model, split, self.study, self.data)
            except ModelError as exc:
                raise ModelError(f"candidate '{name}': {exc}") from None
        rows = prediction_rows(split.ids, split.y, out.scores, out.pred, out.extra)
        self.store.put_cell(
            key=key, kind="evaluate", study=self.study.name, candidate=name, run_id=self.run_id,
            seconds=timer.wall, cpu_seconds=timer.cpu, flops=None,
            result={"split": split.name, "fingerprint": split.fingerprint, "n": len(split),
                    "batch_size": self.study.evaluate.batch_size, **(out.info or {})},
            ledger_entries=[{"phase": "evaluate", "seconds": timer.wall, "cpu_seconds": timer.cpu,
                             "flops": None}],
            prediction_rows=rows,
        )

    # ----------------------------------------------------------------- measure
    def _measure(self, name: str, key: str) -> None:
        from leanbench.measure.flops import flops_per_example
        from leanbench.measure.latency import measure_latency, measure_throughput
        from leanbench.measure.memory import peak_memory
        from leanbench.measure.size import model_size

        cfg = self.study.measure
        model = self.model(name)
        X = self.data.split(self.study.evaluate.split).X
        with Timer() as timer:
            result = {
                **model_size(model, self.store.artifact_dir(self.keys[name])),
                "flops": flops_per_example(model, X),
                "latency": {"edge": measure_latency(model, X, threads=cfg.latency.threads,
                                                    batch=cfg.latency.batch, warmup=cfg.latency.warmup,
                                                    runs=cfg.latency.runs)},
                "throughput": measure_throughput(model, X, threads=cfg.throughput.threads,
                                                 batch=cfg.throughput.batch, warmup=cfg.throughput.warmup,
                                                 runs=cfg.throughput.runs),
                "memory": peak_memory(model, X, batch=cfg.throughput.batch),
            }
        self.store.put_cell(
            key=key, kind="measure", study=self.study.name, candidate=name, run_id=self.run_id,
            seconds=timer.wall, cpu_seconds=timer.cpu, flops=None, result=result,
            ledger_entries=[{"phase": "measure", "seconds": timer.wall, "cpu_seconds": timer.cpu,
                             "flops": None}],
        )


def run_study(study: Study, store: Store, reporter: Reporter | None = None,
              source: str | None = None, data: Any | None = None) -> RunSummary:
    """Runs (or resumes) a study into the store."""
    return LocalRunner(study, store, reporter, source).run(data)
