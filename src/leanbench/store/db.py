"""The result store, through SQLAlchemy Core: a SQLite file (WAL) or any database URL (PostgreSQL to share one).

The runner's driver is the only writer. Every finished cell is written in one transaction together with its
per-example rows and ledger entries (replacing any earlier ones of the cell) and releases its lease, so a
crash never leaves a cell half-written: a cell is either ``done`` with all its rows, or absent. Build
artifacts live in folders under the artifact root (`artifact_dir`), recorded by name with a checksum.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import insert, inspect, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from leanbench.cost.ledger import ABANDONED
from leanbench.errors import StoreError
from leanbench.store import artifacts as _artifacts
from leanbench.store.connect import (
    DEFAULT_STORE,
    Location,
    check_sqlite_file,
    damaged,
    location,
    make_engine,
    resolve_store_path,
    stored_version,
    timeout_s,
    write_lock,
)
from leanbench.store.schema import (
    SCHEMA_VERSION,
    candidates,
    cells,
    failed_cells,
    leases,
    ledger,
    meta,
    metadata,
    predictions,
    runs,
    splits,
    studies,
    upgrade_schema,
)

if TYPE_CHECKING:
    from leanbench.study import Study

__all__ = ["CONFIG_VERSION", "DEFAULT_STORE", "SCHEMA_VERSION", "Store", "resolve_store_path"]

# Version of the stored study config (runs.config, studies.config), see `migrate_config`:
#   0 (NULL, written before versions were recorded): `Study.model_dump(mode="json", by_alias=True)` of its day;
#     each step dumped with every step name as a key, None but one; settings added since are absent.
#   1: as 0, with each step stored as the one-key mapping a study file uses ({"distill": {...}}), so a stored
#     config does not depend on how the step union dumps itself.
CONFIG_VERSION = 1


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Store:
    """Typed access to the result store. Open with `Store.open(path or URL)`; reading never creates or
    changes anything (`readonly=True`: not even can)."""

    def __init__(self, engine: Engine, loc: Location, *, artifacts: str | os.PathLike | None = None,
                 readonly: bool = False):
        self.engine = engine
        self.loc = loc
        self.readonly = readonly
        self.path: Path | None = loc.path  # the SQLite file; None for a database server
        # the folder beside a SQLite file; .leanbench in the working directory for a server
        self.root = (loc.path.parent if loc.path is not None else Path(".leanbench")).absolute()
        self.artifact_root = Path(artifacts).absolute() if artifacts else self.root / "artifacts"

    @property
    def location(self) -> str:
        """The store as messages name it: the file, or the URL without its password."""
        return self.loc.display

    @property
    def target(self) -> str:
        """The store as `--store` takes it, to open it again (a server URL with its password)."""
        return str(self.path) if self.path is not None else self.loc.url.render_as_string(hide_password=False)

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, store: str | os.PathLike | None = None, *, create: bool = True, readonly: bool = False,
             artifacts: str | os.PathLike | None = None) -> Store:
        """Opens the store at a path or SQLAlchemy URL (None: $LEANBENCH_STORE or .leanbench/leanbench.db).

        `create=False`: the store must exist. `readonly`: nothing is written (SQLite `mode=ro`, a read-only
        PostgreSQL session), except that a store of an older schema is upgraded once, in place, first.
        `artifacts`: the folder of build artifacts (default: `artifacts/` beside a SQLite file,
        `.leanbench/artifacts` in the working directory for a server)."""
        loc = location(store)
        timeout = timeout_s()
        if loc.path is not None:
            if not loc.path.is_file():
                if readonly or not create:
                    raise StoreError(f"no result store at {loc.display} (run a study first, or pass --store)")
                try:
                    loc.path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(f"cannot open the result store at {loc.display}: {exc}") from None
            else:
                check_sqlite_file(loc)
        engine = make_engine(loc, readonly=readonly, timeout=timeout)
        try:
            with engine.connect() as conn:
                version = stored_version(conn, loc)
            if readonly or not create:
                if version is None:
                    raise StoreError(f"no result store at {loc.display} (run a study first, or pass --store)")
            if readonly and version < SCHEMA_VERSION:
                engine.dispose()
                cls.open(store, create=False, artifacts=artifacts).engine.dispose()  # upgrades it, once
                engine = make_engine(loc, readonly=True, timeout=timeout)
            elif not readonly:
                _initialise(engine, loc)
        except DBAPIError as exc:
            engine.dispose()
            raise StoreError(_describe(loc, exc)) from None
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, loc, artifacts=artifacts, readonly=readonly)

    def artifact_dir(self, key: str) -> Path:
        return self.artifact_root / key

    def cache_dir(self) -> Path:
        d = self.root / "cache"
        d.mkdir(parents=True, exist_ok=True)
        return d

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction holding the store's write lock from its start (see `connect.write_lock`)."""
        if self.readonly:
            raise StoreError(f"the result store at {self.location} was opened read-only")
        with self.engine.begin() as conn:
            write_lock(conn)
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
        a crash of the machine). Their cell leases (holders named `lease_holder(run_id, ...)`) are dropped with
        them, so the next run takes those cells at once instead of waiting for the leases to expire. Returns
        their ids."""
        with self.transaction() as conn:
            ids = [r[0] for r in conn.execute(select(runs.c.id).where(runs.c.status == "running"))]
            recorded = dict(conn.execute(select(meta.c.key, meta.c.value).where(
                meta.c.key.in_([_process_key(i) for i in ids]))).all()) if ids else {}
            stale = [i for i in ids if ended(_process_of(recorded.get(_process_key(i))))]
            if stale:
                conn.execute(update(runs).where(runs.c.id.in_(stale), runs.c.status == "running")
                             .values(status="stale"))
                conn.execute(meta.delete().where(meta.c.key.in_([_process_key(i) for i in stale])))
                for i in stale:
                    conn.execute(leases.delete().where(leases.c.holder.startswith(lease_holder(i, ""),
                                                                                  autoescape=True)))
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
        """A finished cell: its row, `result` parsed and `artifact` as the folder's path (None: no artifact)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(cells).where(cells.c.key == key, cells.c.status == "done")).mappings().first()
        if row is None:
            return None
        return {**dict(row), "result": json.loads(row["result"]), "artifact": self._artifact_path(row["artifact"])}

    def _artifact_path(self, stored: str | None) -> str | None:
        """A stored artifact (relative to the artifact root; absolute when it was saved outside it) as a path."""
        if stored is None:
            return None
        path = Path(stored)
        return str(path if path.is_absolute() else self.artifact_root / path)

    def _stored_artifact(self, artifact: str | os.PathLike) -> str:
        path = Path(artifact).absolute()
        try:
            return path.relative_to(self.artifact_root).as_posix()
        except ValueError:
            return str(path)

    def artifact_ok(self, key: str) -> bool:
        """Whether a finished cell's artifact folder is there and has the checksum recorded when the cell was
        committed (a cell without an artifact: True; no such cell: False; committed before checksums were
        recorded: its folder exists)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(cells.c.artifact, cells.c.artifact_checksum).where(
                cells.c.key == key, cells.c.status == "done")).first()
        if row is None:
            return False
        if row.artifact is None:
            return True
        return _artifacts.matches(self._artifact_path(row.artifact), row.artifact_checksum)

    def put_cell(self, *, key: str, kind: str, study: str, candidate: str, run_id: int | None,
                 seconds: float, cpu_seconds: float, flops: float | None, result: dict,
                 artifact: str | os.PathLike | None = None, ledger_entries: Iterable[dict] = (),
                 prediction_rows: list[dict] | None = None) -> None:
        """Writes a finished cell, its per-example rows and its ledger entries in one transaction, replacing
        the cell's earlier rows (a rebuilt cell is billed once; unfinished work, `abandoned:*`, stays billed),
        recording the artifact folder's checksum, and releasing the cell's lease."""
        stored = checksum = None
        if artifact is not None:
            stored = self._stored_artifact(artifact)
            try:
                checksum = _artifacts.checksum(artifact)
            except OSError as exc:
                raise StoreError(f"cannot read the artifact of cell {key} at {artifact}: {exc}") from None
        with self.transaction() as conn:
            conn.execute(cells.delete().where(cells.c.key == key))
            conn.execute(predictions.delete().where(predictions.c.cell_key == key))
            conn.execute(ledger.delete().where(ledger.c.cell_key == key,
                                               ledger.c.phase.not_like(f"{ABANDONED}%")))
            conn.execute(leases.delete().where(leases.c.key == key))
            if prediction_rows:
                conn.execute(insert(predictions), [{"cell_key": key, **r} for r in prediction_rows])
            entries = [_ledger_row({"run_id": run_id, "study": study, "candidate": candidate, "cell_key": key,
                                    "created_at": now(), **e}) for e in ledger_entries]
            if entries:
                conn.execute(insert(ledger), entries)
            conn.execute(insert(cells).values(
                key=key, kind=kind, study=study, candidate=candidate, status="done", created_at=now(),
                run_id=run_id, seconds=seconds, cpu_seconds=cpu_seconds, flops=flops,
                artifact=stored, artifact_checksum=checksum, result=json.dumps(result)))

    # ----------------------------------------------------------------- leases
    def acquire_lease(self, key: str, holder: str, ttl_s: float = 60.0) -> bool:
        """Takes the lease on cell `key` for `ttl_s` seconds: True if `holder` now holds it (or already did;
        then it is extended), False if another holder holds one that has not expired. Atomic across processes
        and machines (under the store's write lock). Expiry uses the clocks of the holders' machines."""
        t = time.time()
        with self.transaction() as conn:
            row = conn.execute(select(leases.c.holder, leases.c.expires).where(leases.c.key == key)).first()
            if row is None:
                conn.execute(insert(leases).values(key=key, holder=holder, expires=t + ttl_s, acquired_at=now()))
                return True
            if row.holder != holder and row.expires > t:
                return False
            conn.execute(update(leases).where(leases.c.key == key).values(
                holder=holder, expires=t + ttl_s, acquired_at=now() if row.holder != holder else leases.c.acquired_at))
            return True

    def renew_leases(self, holder: str, ttl_s: float = 60.0) -> None:
        """Extends every lease `holder` holds to `ttl_s` seconds from now (a long cell renews while it works)."""
        with self.transaction() as conn:
            conn.execute(update(leases).where(leases.c.holder == holder).values(expires=time.time() + ttl_s))

    def release_lease(self, key: str, holder: str) -> None:
        """Gives up the lease on `key` if `holder` holds it (a cell that failed; `put_cell` releases too)."""
        with self.transaction() as conn:
            conn.execute(leases.delete().where(leases.c.key == key, leases.c.holder == holder))

    def release_leases(self, holder: str) -> None:
        """Gives up every lease `holder` still holds (a run that ends, finished, failed or interrupted)."""
        with self.transaction() as conn:
            conn.execute(leases.delete().where(leases.c.holder == holder))

    def lease(self, key: str) -> dict | None:
        """Who holds the lease on `key` and until when (Unix seconds), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(leases).where(leases.c.key == key)).mappings().first()
        return dict(row) if row is not None else None

    # ----------------------------------------------------------------- failed cells
    def record_failed_cell(self, *, run_id: int, study: str, key: str, kind: str, candidate: str | None,
                           label: str, error: str, blocked_by: str | None = None) -> None:
        """Records that a cell failed in run `run_id` (or was not run: `blocked_by` names the failed cell it
        depends on). The cell itself stays absent, so the next run retries it."""
        with self.transaction() as conn:
            conn.execute(failed_cells.delete().where(failed_cells.c.run_id == run_id, failed_cells.c.key == key))
            conn.execute(insert(failed_cells).values(run_id=run_id, key=key, study=study, kind=kind,
                                                     candidate=candidate, label=label, error=error,
                                                     blocked_by=blocked_by, created_at=now()))

    def failed_cells(self, study: str, run_id: int | None = None) -> list[dict]:
        """The cells that failed in a run of `study` (default: its last run), in the order they failed, that are
        still not done (a later run of another study may have made one)."""
        if run_id is None:
            row = self.study(study)
            run_id = row["last_run_id"] if row else None
        if run_id is None or not inspect(self.engine).has_table("failed_cells"):
            return []  # a store written before failures were recorded, opened read-only
        with self.engine.connect() as conn:
            rows = conn.execute(select(failed_cells).where(failed_cells.c.run_id == run_id)
                                .order_by(failed_cells.c.created_at)).mappings().all()
        return [dict(r) for r in rows if self.cell(r["key"]) is None]

    def split_uses(self, fingerprint: str) -> list[dict]:
        """Every use of a split in this store: evaluations reported on it (purpose "report") and builds that
        selected on it, e.g. early stopping (purpose "selection"); `who` is "study/candidate"."""
        with self.engine.connect() as conn:  # narrowed in SQL, decided on the parsed JSON (any dialect)
            rows = conn.execute(select(cells.c.study, cells.c.candidate, cells.c.kind, cells.c.result).where(
                cells.c.kind.in_(("evaluate", "perturbed", "build")),
                cells.c.result.contains(fingerprint, autoescape=True))).all()
        out = []
        for study, candidate, kind, result in rows:
            field = "selected_on" if kind == "build" else "fingerprint"
            if json.loads(result).get(field) == fingerprint:
                out.append({"fingerprint": fingerprint, "purpose": "selection" if kind == "build" else "report",
                            "who": f"{study}/{candidate}", "study": study, "kind": kind})
        return out

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


# ----------------------------------------------------------------- opening


def _initialise(engine: Engine, loc: Location) -> None:
    """Creates a new store's tables or upgrades an older one, under the write lock (one transaction)."""
    if loc.path is not None:
        with engine.connect() as conn:  # persistent; not inside a transaction, and only once checked
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    with engine.begin() as conn:
        write_lock(conn)
        version = stored_version(conn, loc)  # again: another process may have created it meanwhile
        metadata.create_all(conn)
        if version is None:
            if conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first() is None:
                conn.execute(insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
        elif version < SCHEMA_VERSION:
            upgrade_schema(conn, version)


def _describe(loc: Location, exc: DBAPIError) -> str:
    """A database error met while opening, as one line."""
    text = " ".join(str(exc.orig).split()) or type(exc.orig).__name__
    if "malformed" in text or "not a database" in text:
        return damaged(loc, text)
    return f"cannot open the result store at {loc.display}: {text}"


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


def lease_holder(run_id: int, who: str) -> str:
    """The lease holder of a run: "run <id> of <who>" (`mark_stale_runs` drops a dead run's leases by it)."""
    return f"run {run_id} of {who}"


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
