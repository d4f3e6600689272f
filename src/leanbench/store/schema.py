"""The store's tables, its schema version and the in-place upgrades from older versions.

Written for SQLAlchemy Core on any database it speaks (SQLite, PostgreSQL): no dialect-specific SQL here.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Connection

# 5: `config_version` on runs and studies. 6: `leases` (a cell in progress, held by one run at a time),
# `cells.artifact_checksum`, artifact paths relative to the artifact root, `failed_cells` (created). Older
# versions from 4 are upgraded in place (SCHEMA_UPGRADES).
SCHEMA_VERSION = 6

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
    Column("artifact", String),  # the artifact folder, relative to the store's artifact root (its key)
    Column("result", Text, nullable=False),
    # "sha256:<hex>" over the artifact folder's files (`artifacts.checksum`), taken when the cell was committed
    Column("artifact_checksum", String),
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

# A cell in progress: one holder (a run's driver) builds it at a time; `expires` (Unix seconds) lets another
# take over when the holder died. Leases are bookkeeping, not results: `put_cell` of the key drops its lease.
leases = Table(
    "leases", metadata,
    Column("key", String, primary_key=True),
    Column("holder", String, nullable=False),
    Column("expires", Float, nullable=False),
    Column("acquired_at", String, nullable=False),
)

# A cell that failed in a run (its process crashed, was killed, ran out of memory or time, or raised): the
# run went on without it and the report lists it. Bookkeeping of the run, not a result: the next run retries
# the cell; the report shows the failures of the study's last run.
failed_cells = Table(
    "failed_cells", metadata,
    Column("run_id", Integer, primary_key=True),
    Column("key", String, primary_key=True),
    Column("study", String, nullable=False, index=True),
    Column("kind", String, nullable=False),
    Column("candidate", String),
    Column("label", String, nullable=False),
    Column("error", Text, nullable=False),
    Column("blocked_by", String),  # not run: the label of the failed cell it depends on (None: it failed itself)
    Column("created_at", String, nullable=False),
)

meta = Table(
    "meta", metadata,
    Column("key", String, primary_key=True),
    Column("value", String, nullable=False),
)




# ----------------------------------------------------------------- upgrades


def _columns(conn: Connection, table: str) -> set[str]:
    return {c["name"] for c in inspect(conn).get_columns(table)}


def _add_config_version(conn: Connection) -> None:
    """4 -> 5: runs and studies record the version of the config they hold; existing rows are version 0."""
    for table in ("runs", "studies"):
        if "config_version" not in _columns(conn, table):
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN config_version INTEGER")


def _artifact_checksums_and_relative_paths(conn: Connection) -> None:
    """5 -> 6: `cells.artifact_checksum` (NULL for cells committed before: their folder is only checked to
    exist), and artifact paths as the name of the folder under the artifact root (they were stored as the
    run gave them: relative to its working directory, or absolute). The `leases` table is new (created)."""
    if "artifact_checksum" not in _columns(conn, "cells"):
        conn.exec_driver_sql("ALTER TABLE cells ADD COLUMN artifact_checksum VARCHAR")
    rows = conn.execute(select(cells.c.key, cells.c.artifact).where(cells.c.artifact.is_not(None))).all()
    for key, artifact in rows:
        name = relative_artifact(artifact)
        if name != artifact:
            conn.execute(update(cells).where(cells.c.key == key).values(artifact=name))


def relative_artifact(stored: str) -> str:
    """An artifact path as stored before version 6 (``.leanbench/artifacts/<key>``, absolute or relative to
    the working directory of the run) as the folder's name under the artifact root."""
    return stored.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


SCHEMA_UPGRADES = {4: _add_config_version, 5: _artifact_checksums_and_relative_paths}  # from -> the next


def upgrade_schema(conn: Connection, version: int) -> None:
    """Upgrades a store in place, one version at a time, inside the opening transaction."""
    while version < SCHEMA_VERSION:
        SCHEMA_UPGRADES[version](conn)
        version += 1
    conn.execute(update(meta).where(meta.c.key == "schema_version").values(value=str(SCHEMA_VERSION)))
