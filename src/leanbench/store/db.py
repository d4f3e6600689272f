"""The result store: SQLite (WAL) through SQLAlchemy Core.

The runner is the only writer. Every finished cell is written in one transaction together with its
per-example rows and ledger entries, so a crash never leaves a cell half-written: a cell is either
``done`` with all its rows, or absent.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import (
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from leanbench.errors import StoreError

if TYPE_CHECKING:
    from leanbench.study import Study

DEFAULT_STORE = Path(".leanbench") / "leanbench.db"
SCHEMA_VERSION = 5  # 5: `config_version` on runs and studies (4 is upgraded in place on open)
# Version of the stored study config (runs.config, studies.config), see `migrate_config`:
#   0 (NULL, written before versions were recorded): `Study.model_dump(mode="json", by_alias=True)` of its day;
#     each step dumped with every step name as a key, None but one; settings added since are absent.
#   1: as 0, with each step stored as the one-key mapping a study file uses ({"distill": {...}}), so a stored
#     config does not depend on how the step union dumps itself.
CONFIG_VERSION = 1

metadata = MetaData()

runs = Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("study", String, nullable=False, index=True),
    Column("started_at", String, nullable=False),
    Column("finished_at", String),
    # running | finished | failed (an error) | interrupted (Ctrl-C) | stale (its process ended while running)
    Column("status", String, nullable=False),
    Column("manifest", Text, nullable=False),
    Column("config", Text, nullable=False),
    Column("seconds", Float),
    Column("config_version", Integer),  # NULL: written before config versions (version 0)
)

studies = Table(
    "studies", metadata,
    Column("name", String, primary_key=True),
    Column("config", Text, nullable=False),
    Column("source", String),
    Column("updated_at", String, nullable=False),
    Column("last_run_id", Integer),
    Column("task", Text, nullable=False),  # data source, label names, split sizes and fingerprints, slices
    Column("cells", Text, nullable=False),  # study-wide cells (integrity): kind -> key
    Column("config_version", Integer),  # NULL: written before config versions (version 0)
)

candidates = Table(
    "candidates", metadata,
    Column("study", String, primary_key=True),
    Column("name", String, primary_key=True),
    Column("position", Integer, nullable=False),
    Column("from_", String),
    Column("steps", Text, nullable=False),
    # {"build": {seed: key}, "evaluate": {seed: key}, "perturbed": {seed: {label: key}}, "measure": key}
    Column("cells", Text, nullable=False),
)

cells = Table(
    "cells", metadata,
    Column("key", String, primary_key=True),
    Column("kind", String, nullable=False),  # build | evaluate | measure
    Column("study", String, nullable=False),
    Column("candidate", String, nullable=False),
    Column("status", String, nullable=False),
    Column("created_at", String, nullable=False),
    Column("run_id", Integer),
    Column("seconds", Float, nullable=False),
    Column("cpu_seconds", Float, nullable=False),
    Column("flops", Float),
    Column("artifact", String),
    Column("result", Text, nullable=False),
)

predictions = Table(
    "predictions", metadata,
    Column("cell_key", String, primary_key=True),
    Column("row", Integer, primary_key=True),
    Column("example_id", String, nullable=False),
    Column("gold", Integer, nullable=False),
    Column("pred", Integer, nullable=False),
    Column("score", Float, nullable=False),  # classification: probability of the predicted class
    # float64 little-endian vector; its layout belongs to the task kind (classification: class probabilities)
    Column("scores", LargeBinary, nullable=False),
    Column("extra", Text),  # optional JSON per example (task-kind specific)
)

ledger = Table(
    "ledger", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer),
    Column("study", String, nullable=False, index=True),
    Column("candidate", String),
    Column("cell_key", String),
    Column("phase", String, nullable=False),  # data | build:<step> | evaluate | measure
    Column("seconds", Float, nullable=False),
    Column("cpu_seconds", Float, nullable=False),
    Column("flops", Float),
    Column("joules", Float),  # None = unknown, never 0 for an unmeasured window
    Column("energy_method", String),  # "measured: rapl" | "estimated: <model>"
    Column("energy_uncertainty", Float),  # relative, e.g. 0.5 = +-50%
    Column("too_short", Integer),  # window below the meter's resolution (aggregated in the analysis)
    Column("trial", Integer),  # sweep trial number
    Column("kept", Integer),  # sweep trial kept (the winner) or discarded
    Column("created_at", String, nullable=False),
)

splits = Table(
    "splits", metadata,
    Column("fingerprint", String, primary_key=True),
    Column("name", String, nullable=False),
    Column("n", Integer, nullable=False),
    Column("source", String, nullable=False),
)

meta = Table(
    "meta", metadata,
    Column("key", String, primary_key=True),
    Column("value", String, nullable=False),
)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def resolve_store_path(store: str | os.PathLike | None) -> Path:
    """--store beats LEANBENCH_STORE beats the default .leanbench/leanbench.db."""
    if store:
        return Path(store)
    env = os.environ.get("LEANBENCH_STORE")
    return Path(env) if env else DEFAULT_STORE


class Store:
    """Typed access to the result store. Open with `Store.open(path)`; reading never creates a file."""

    def __init__(self, engine: Engine, path: Path):
        self.engine = engine
        self.path = path

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, path: str | os.PathLike | None = None, *, create: bool = True) -> Store:
        p = resolve_store_path(path)
        if not create and not p.is_file():
            raise StoreError(f"no result store at {p} (run a study first, or pass --store)")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            probe = sqlite3.connect(p)
            probe.execute("PRAGMA journal_mode=WAL")
            probe.execute("CREATE TABLE IF NOT EXISTS _probe (x INTEGER)")
            probe.execute("DROP TABLE _probe")
            probe.close()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the result store at {p}: {exc}") from None
        engine = create_engine(f"sqlite:///{p}", future=True)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        try:
            metadata.create_all(engine)
            with engine.begin() as conn:
                existing = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
                if existing is None:
                    conn.execute(insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
                elif int(existing) in SCHEMA_UPGRADES:
                    _upgrade_schema(conn, int(existing))
                elif int(existing) != SCHEMA_VERSION:
                    raise StoreError(f"{p}: store schema version {existing}, this leanbench reads "
                                     f"{SCHEMA_VERSION}; use a new --store")
        except OperationalError as exc:
            raise StoreError(f"cannot write the result store at {p}: {exc.orig}") from None
        return cls(engine, p)

    @property
    def root(self) -> Path:
        """Folder beside the database for artifacts and caches."""
        return self.path.parent

    def artifact_dir(self, key: str) -> Path:
        return self.root / "artifacts" / key

    def cache_dir(self) -> Path:
        d = self.root / "cache"
        d.mkdir(parents=True, exist_ok=True)
        return d

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # ----------------------------------------------------------------- runs and studies
    def start_run(self, study: str, manifest: dict, config: dict, process: dict | None = None) -> int:
        """Records a run as `running`; `process` (pid, host, boot: who runs it) is kept while it runs, in
        `meta` (not in the manifest, which the report shows), so that a later run can tell a dead one."""
        with self.transaction() as conn:
            res = conn.execute(insert(runs).values(
                study=study, started_at=now(), status="running", manifest=json.dumps(manifest),
                config=json.dumps(canonical_config(config)), config_version=CONFIG_VERSION))
            run_id = int(res.inserted_primary_key[0])
            if process is not None:
                conn.execute(insert(meta).values(key=_process_key(run_id), value=json.dumps(process)))
            return run_id

    def finish_run(self, run_id: int, status: str, seconds: float) -> None:
        with self.transaction() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(
                status=status, finished_at=now(), seconds=seconds))
            conn.execute(meta.delete().where(meta.c.key == _process_key(run_id)))

    def mark_stale_runs(self, ended: Callable[[dict | None], bool]) -> list[int]:
        """Marks `stale` every run still `running` whose process has ended (`ended(process)`, with the process
        `start_run` recorded, None if none): a run killed without a chance to record how it ended (SIGKILL,
        a crash of the machine). Returns their ids."""
        with self.transaction() as conn:
            ids = [r[0] for r in conn.execute(select(runs.c.id).where(runs.c.status == "running"))]
            recorded = dict(conn.execute(select(meta.c.key, meta.c.value).where(
                meta.c.key.in_([_process_key(i) for i in ids]))).all()) if ids else {}
            stale = [i for i in ids if ended(_process_of(recorded.get(_process_key(i))))]
            if stale:
                conn.execute(update(runs).where(runs.c.id.in_(stale), runs.c.status == "running")
                             .values(status="stale"))
                conn.execute(meta.delete().where(meta.c.key.in_([_process_key(i) for i in stale])))
        return stale

    def run_status(self, run_id: int) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(runs.c.status).where(runs.c.id == run_id)).scalar()

    def save_plan(self, study: str, config: dict, source: str | None, task: dict, run_id: int,
                  rows: list[dict], study_cells: dict[str, str]) -> None:
        """Records the study, its task and its candidate -> cell mapping (replacing the previous plan)."""
        with self.transaction() as conn:
            conn.execute(studies.delete().where(studies.c.name == study))
            conn.execute(insert(studies).values(name=study, config=json.dumps(canonical_config(config)),
                                                config_version=CONFIG_VERSION, source=source,
                                                updated_at=now(), last_run_id=run_id, task=json.dumps(task),
                                                cells=json.dumps(study_cells)))
            conn.execute(candidates.delete().where(candidates.c.study == study))
            if rows:
                conn.execute(insert(candidates), [{"study": study, **r, "steps": json.dumps(r["steps"]),
                                                   "cells": json.dumps(r["cells"])} for r in rows])
            for split in task.get("splits", {}).values():
                conn.execute(splits.delete().where(splits.c.fingerprint == split["fingerprint"]))
                conn.execute(insert(splits).values(fingerprint=split["fingerprint"], name=split["name"],
                                                   n=split["n"], source=task.get("source", "")))

    def study_names(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(studies.c.name).order_by(studies.c.updated_at))]

    def study(self, name: str) -> dict | None:
        """The study's row: `config` (a dict, in the form of `config_version`; `study_config` gives the
        validated `Study`), `task`, `cells`, `source`, `last_run_id` and `run` (the last run's row)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(studies).where(studies.c.name == name)).mappings().first()
            if row is None:
                return None
            out = dict(row)
            out["config"] = json.loads(out["config"])
            out["task"] = json.loads(out["task"])
            out["cells"] = json.loads(out["cells"])
            run = conn.execute(select(runs).where(runs.c.id == out["last_run_id"])).mappings().first()
            out["run"] = {**dict(run), "manifest": json.loads(run["manifest"])} if run else None
            return out

    def study_config(self, name: str) -> Study | None:
        """The stored config of a study, upgraded to the current form and validated (None: no such study)."""
        row = self.study(name)
        if row is None:
            return None
        return study_from_config(row["config"], row["config_version"], source=row["source"], name=name)

    def candidates(self, study: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(candidates).where(candidates.c.study == study)
                                .order_by(candidates.c.position)).mappings().all()
        return [{**dict(r), "steps": json.loads(r["steps"]), "cells": json.loads(r["cells"])} for r in rows]

    # ----------------------------------------------------------------- cells
    def cell(self, key: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(cells).where(cells.c.key == key, cells.c.status == "done")).mappings().first()
        if row is None:
            return None
        return {**dict(row), "result": json.loads(row["result"])}

    def put_cell(self, *, key: str, kind: str, study: str, candidate: str, run_id: int | None,
                 seconds: float, cpu_seconds: float, flops: float | None, result: dict,
                 artifact: str | None = None, ledger_entries: Iterable[dict] = (),
                 prediction_rows: list[dict] | None = None) -> None:
        """Writes a finished cell, its per-example rows and its ledger entries in one transaction."""
        with self.transaction() as conn:
            conn.execute(cells.delete().where(cells.c.key == key))
            conn.execute(predictions.delete().where(predictions.c.cell_key == key))
            if prediction_rows:
                conn.execute(insert(predictions), [{"cell_key": key, **r} for r in prediction_rows])
            entries = [_ledger_row({"run_id": run_id, "study": study, "candidate": candidate, "cell_key": key,
                                    "created_at": now(), **e}) for e in ledger_entries]
            if entries:
                conn.execute(insert(ledger), entries)
            conn.execute(insert(cells).values(
                key=key, kind=kind, study=study, candidate=candidate, status="done", created_at=now(),
                run_id=run_id, seconds=seconds, cpu_seconds=cpu_seconds, flops=flops,
                artifact=artifact, result=json.dumps(result)))

    def split_uses(self, fingerprint: str) -> list[dict]:
        """Every use of a split in this store: evaluations reported on it (purpose "report") and builds that
        selected on it, e.g. early stopping (purpose "selection"); `who` is "study/candidate"."""
        fp = func.json_extract(cells.c.result, "$.fingerprint")
        sel = func.json_extract(cells.c.result, "$.selected_on")
        with self.engine.connect() as conn:
            rows = conn.execute(select(cells.c.study, cells.c.candidate, cells.c.kind).where(
                ((cells.c.kind.in_(("evaluate", "perturbed"))) & (fp == fingerprint))
                | ((cells.c.kind == "build") & (sel == fingerprint)))).all()
        return [{"fingerprint": fingerprint, "purpose": "selection" if kind == "build" else "report",
                 "who": f"{study}/{candidate}", "study": study, "kind": kind} for study, candidate, kind in rows]

    def add_ledger(self, study: str, run_id: int | None, entries: Iterable[dict]) -> None:
        rows = [_ledger_row({"run_id": run_id, "study": study, "created_at": now(), **e}) for e in entries]
        if rows:
            with self.transaction() as conn:
                conn.execute(insert(ledger), rows)

    def ledger(self, study: str) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(ledger).where(ledger.c.study == study)
                                                  .order_by(ledger.c.id)).mappings()]

    def predictions(self, cell_key: str) -> dict[str, Any]:
        """Per-example rows of an evaluate cell, in row order: ids, gold, pred, scores (N, K), extra."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(predictions).where(predictions.c.cell_key == cell_key)
                                .order_by(predictions.c.row)).mappings().all()
        if not rows:
            return {"ids": np.array([], dtype=object), "gold": np.array([], dtype=np.int64),
                    "pred": np.array([], dtype=np.int64), "scores": np.zeros((0, 0)), "extra": []}
        return {
            "ids": np.array([r["example_id"] for r in rows], dtype=object),
            "gold": np.array([r["gold"] for r in rows], dtype=np.int64),
            "pred": np.array([r["pred"] for r in rows], dtype=np.int64),
            "scores": np.stack([np.frombuffer(r["scores"], dtype="<f8") for r in rows]),
            "extra": [json.loads(r["extra"]) if r["extra"] else None for r in rows],
        }


# ----------------------------------------------------------------- schema upgrades


def _add_config_version(conn: Connection) -> None:
    """4 -> 5: runs and studies record the version of the config they hold; existing rows are version 0."""
    for table in ("runs", "studies"):
        have = {r[1] for r in conn.exec_driver_sql(f"PRAGMA table_info({table})")}
        if "config_version" not in have:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN config_version INTEGER")


SCHEMA_UPGRADES = {4: _add_config_version}  # from version -> the step to the next one


def _upgrade_schema(conn: Connection, version: int) -> None:
    """Upgrades a store in place, one version at a time, inside the opening transaction."""
    while version < SCHEMA_VERSION:
        SCHEMA_UPGRADES[version](conn)
        version += 1
    conn.execute(update(meta).where(meta.c.key == "schema_version").values(value=str(SCHEMA_VERSION)))


# ----------------------------------------------------------------- stored study configs


def _one_key_step(step: Any) -> Any:
    """A dumped step ({"train": None, "distill": {...}, ...}: every step name a key, all None but one) as the
    one-key mapping a study file uses; any other form is returned as it is."""
    if isinstance(step, dict) and len(step) > 1:
        given = {k: v for k, v in step.items() if v is not None}
        if len(given) == 1:
            return given
    return step


def canonical_config(config: dict[str, Any]) -> dict[str, Any]:
    """A study config (`Study.model_dump(mode="json", by_alias=True)`) in the stored form of CONFIG_VERSION:
    steps as one-key mappings."""
    cands = config.get("candidates")
    if not isinstance(cands, list):
        return config
    return {**config, "candidates": [
        {**c, "steps": [_one_key_step(s) for s in c["steps"]]} if isinstance(c, dict) and isinstance(
            c.get("steps"), list) else c for c in cands]}


def _config_0_to_1(config: dict[str, Any]) -> dict[str, Any]:
    return canonical_config({k: v for k, v in config.items() if k != "base_dir"})


CONFIG_UPGRADES = {0: _config_0_to_1}  # from version -> the step to the next one


def migrate_config(config: dict[str, Any], version: int | None) -> dict[str, Any]:
    """A stored study config written at `version` (None: before versions were recorded, i.e. 0) in the form
    of CONFIG_VERSION. Settings added to the schema since are left out: validation fills their defaults,
    which reproduce the old behaviour (see runner.keys.KEY_NEUTRAL)."""
    version = 0 if version is None else int(version)
    if version > CONFIG_VERSION:
        raise StoreError(f"stored study config version {version}, this leanbench reads up to {CONFIG_VERSION}; "
                         "upgrade leanbench to read this store")
    while version < CONFIG_VERSION:
        config = CONFIG_UPGRADES[version](config)
        version += 1
    return config


def study_from_config(config: dict[str, Any], version: int | None, *, source: str | None = None,
                      name: str | None = None) -> Study:
    """The stored config of a study as a validated `Study`. Nothing is read from the environment or the
    filesystem: `${VAR}`s were resolved when the study was loaded, and `base_dir` is the folder of the stored
    study file path as written (".": none recorded)."""
    from pydantic import ValidationError

    from leanbench.study import Study

    raw = migrate_config(config, version)
    base_dir = str(Path(source).parent) if source else "."
    try:
        return Study.model_validate({**raw, "base_dir": base_dir})
    except ValidationError as exc:
        from leanbench.study_loader import format_loc

        problems = "; ".join(f"{format_loc(tuple(e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise StoreError(f"the stored config of study '{name or raw.get('name')}' does not validate against this "
                         f"leanbench's schema: {problems}") from None


def _process_key(run_id: int) -> str:
    """The `meta` key of the process of a run in progress."""
    return f"run-process:{run_id}"


def _process_of(value: str | None) -> dict | None:
    """The process a run recorded (pid, host, boot), or None."""
    try:
        process = json.loads(value) if value else None
    except ValueError:
        return None
    return process if isinstance(process, dict) else None


def _ledger_row(entry: dict) -> dict:
    """Every ledger column present (None where not given), so rows insert together."""
    return {c.name: entry.get(c.name) for c in ledger.columns if c.name != "id"}


def prediction_rows(ids: np.ndarray, gold: np.ndarray, scores: np.ndarray, pred: np.ndarray | None = None,
                    extra: list[dict | None] | None = None) -> list[dict]:
    """Per-example rows for `Store.put_cell`. `scores` is (N, K) float; `pred` defaults to its argmax.
    Every row's scores vector has the same length K (task kinds pad where examples differ)."""
    scores = np.asarray(scores, dtype=np.float64)
    pred = scores.argmax(axis=1) if pred is None else np.asarray(pred)
    return [
        {"row": i, "example_id": str(ids[i]), "gold": int(gold[i]), "pred": int(pred[i]),
         "score": float(scores[i, pred[i]]) if 0 <= pred[i] < scores.shape[1] else float("nan"),
         "scores": scores[i].astype("<f8").tobytes(),
         "extra": json.dumps(extra[i]) if extra is not None and extra[i] is not None else None}
        for i in range(len(gold))
    ]
