"""Where a store lives and how it is opened: a SQLite file or any SQLAlchemy URL (PostgreSQL for a shared one).

Opening checks before it changes anything: a file that is not a SQLite database, a damaged one, a database
that holds other tables, a schema version that is not a number or is newer than this leanbench are one
message each, and the file is left as it was. Only then are missing tables created (or an older schema
upgraded), in one transaction that holds the store's write lock, so two runs opening a new store at once
create it once.

Every write transaction holds the store's write lock from its start (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: a transaction-level advisory lock), so a read-then-write in it (a lease) is atomic across
processes and machines. Waiting for the lock is bounded by ``LEANBENCH_STORE_TIMEOUT`` seconds (default 30):
then one message says that another process holds the store. Errors of the database (locked, damaged,
unreachable, login refused) reach the user as `StoreError`, never as a driver traceback.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import create_engine, event, inspect, select
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from leanbench.errors import StoreError
from leanbench.store.schema import SCHEMA_UPGRADES, SCHEMA_VERSION, meta

DEFAULT_STORE = Path(".leanbench") / "leanbench.db"
DEFAULT_TIMEOUT_S = 30.0
SQLITE_HEADER = b"SQLite format 3\x00"
_PG_LOCK = 0x6C65616E  # the advisory lock id of a store's writes ("lean")
URL_EXAMPLES = "e.g. sqlite:///results/leanbench.db or postgresql+psycopg://user:password@host:5432/dbname"


@dataclass(frozen=True)
class Location:
    """A store: a SQLite file (`path`) or a database server (`url`, `path` None)."""

    url: URL
    path: Path | None

    @property
    def display(self) -> str:
        """How messages name the store: the file, or the URL without its password."""
        return str(self.path) if self.path is not None else self.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()


def resolve_store(store: str | os.PathLike | None) -> str:
    """--store beats LEANBENCH_STORE beats the default .leanbench/leanbench.db."""
    if store:
        return str(store)
    return os.environ.get("LEANBENCH_STORE") or str(DEFAULT_STORE)


def resolve_store_path(store: str | os.PathLike | None) -> Path:
    """The store as a path (a URL is kept as given); see `location` for URLs."""
    return Path(resolve_store(store))


def location(store: str | os.PathLike | None) -> Location:
    """A path or a SQLAlchemy URL as a store location (a malformed URL is one message)."""
    text = resolve_store(store)
    if "://" not in text:
        path = Path(text)
        return Location(URL.create("sqlite", database=str(path)), path)
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        raise StoreError(f"--store: '{_hide_password(text)}' is neither a file path nor a valid SQLAlchemy URL "
                         f"({URL_EXAMPLES})") from None
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
            raise StoreError(f"--store: '{text}': give the SQLite file (sqlite:///path/to/leanbench.db); an "
                             "in-memory store keeps nothing")
        return Location(url, Path(url.database))
    if not url.database:
        raise StoreError(f"--store: '{url.render_as_string(hide_password=True)}' names no database "
                         f"({URL_EXAMPLES})")
    return Location(url, None)


def _hide_password(text: str) -> str:
    head, sep, rest = text.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return text
    return f"{head}{sep}{creds.split(':', 1)[0]}:***@{host}"


def timeout_s() -> float:
    """How long a store operation waits for another process's lock (LEANBENCH_STORE_TIMEOUT, seconds)."""
    raw = os.environ.get("LEANBENCH_STORE_TIMEOUT")
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise StoreError(f"LEANBENCH_STORE_TIMEOUT must be a number of seconds >= 0; got '{raw}'")
    return value


# ----------------------------------------------------------------- engines


def make_engine(loc: Location, *, readonly: bool, timeout: float) -> Engine:
    """An engine for the store; SQLite opened with `mode=ro` when `readonly` (nothing can be written)."""
    if loc.path is not None:
        engine = _sqlite_engine(loc.path, readonly=readonly, timeout=timeout)
    else:
        engine = _server_engine(loc, readonly=readonly, timeout=timeout)
    _translate_errors(engine, loc, timeout)
    return engine


def _sqlite_engine(path: Path, *, readonly: bool, timeout: float) -> Engine:
    target = f"file:{quote(str(path.absolute()))}?mode=ro" if readonly else str(path)

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(target, uri=readonly, timeout=timeout, check_same_thread=False)

    engine = create_engine("sqlite://", creator=connect)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cur.execute("PRAGMA synchronous=NORMAL")  # per connection, not stored in the file
        cur.close()

    return engine


def _server_engine(loc: Location, *, readonly: bool, timeout: float) -> Engine:
    args: dict[str, Any] = {}
    if loc.dialect == "postgresql":
        args["connect_args"] = {"connect_timeout": max(1, round(timeout)),
                                "options": f"-c lock_timeout={int(timeout * 1000)}"}
    try:
        engine = create_engine(loc.url, pool_pre_ping=True, **args)
    except NoSuchModuleError:
        raise StoreError(f"--store: '{loc.display}': SQLAlchemy has no database dialect "
                         f"'{loc.url.drivername}' ({URL_EXAMPLES})") from None
    except ImportError as exc:
        extra = " (pip install 'leanbench[postgres]')" if loc.dialect == "postgresql" else ""
        raise StoreError(f"--store: '{loc.display}' needs the database driver '{exc.name}'{extra}") from None
    if readonly and loc.dialect == "postgresql":
        engine = engine.execution_options(postgresql_readonly=True)
    return engine


def _translate_errors(engine: Engine, loc: Location, timeout: float) -> None:
    """The database's errors as one message each (`StoreError`), wherever the store is used."""

    @event.listens_for(engine, "handle_error")
    def _on_error(ctx: Any) -> None:
        exc = ctx.original_exception
        text = " ".join(str(exc).split()) or type(exc).__name__
        low = text.lower()
        if "locked" in low or "lock timeout" in low or getattr(exc, "sqlstate", None) == "55P03":
            raise StoreError(f"the result store at {loc.display} is locked by another process (waited "
                             f"{timeout:g} s; LEANBENCH_STORE_TIMEOUT sets how long): {text}") from None
        if isinstance(exc, sqlite3.DatabaseError) and ("malformed" in low or "not a database" in low):
            raise StoreError(damaged(loc, text)) from None
        if ctx.connection is None or ctx.is_disconnect:  # while connecting
            raise StoreError(f"cannot connect to the result store at {loc.display}: {text}") from None


def damaged(loc: Location, why: str) -> str:
    return f"{loc.display} is not a readable leanbench store: {why}"


def check_sqlite_file(loc: Location) -> None:
    """A file that is not a SQLite database is refused before SQLite touches it."""
    assert loc.path is not None
    try:
        with loc.path.open("rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StoreError(f"cannot open the result store at {loc.display}: {exc}") from None
    if head and head != SQLITE_HEADER:  # empty: a new database
        raise StoreError(damaged(loc, "the file is not a SQLite database"))


# ----------------------------------------------------------------- opening


def stored_version(conn: Connection, loc: Location) -> int | None:
    """The schema version the store was written with; None: an empty database (a new store).

    Reads only. A database holding other tables and no leanbench version, a version that is not an integer,
    one newer than this leanbench and one too old to upgrade are refused here, before anything is written."""
    tables = set(inspect(conn).get_table_names())
    if "meta" not in tables:
        if tables:
            raise StoreError(f"{loc.display} holds other tables ({', '.join(sorted(tables)[:5])}) and no leanbench "
                             "schema version: not a leanbench store; give another --store")
        return None
    value = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    if value is None:
        return None  # created by a leanbench that stopped before recording its version: completed on open
    try:
        version = int(value)
    except ValueError:
        raise StoreError(f"{loc.display}: the store's schema version is '{value}', not a version any leanbench "
                         f"writes (an integer; this leanbench reads up to {SCHEMA_VERSION}); the store is "
                         "damaged or not a leanbench store") from None
    if version > SCHEMA_VERSION:
        raise StoreError(f"{loc.display} was written by a newer leanbench (store schema version {version}; this "
                         f"leanbench reads up to {SCHEMA_VERSION}): upgrade leanbench to use it. Nothing was "
                         "changed")
    if version != SCHEMA_VERSION and version not in SCHEMA_UPGRADES:
        raise StoreError(f"{loc.display}: store schema version {version}, this leanbench reads {SCHEMA_VERSION} "
                         f"and upgrades from {min(SCHEMA_UPGRADES)}; use a new --store")
    return version


def write_lock(conn: Connection) -> None:
    """Takes the store's write lock for the rest of the transaction (the first statement of it)."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif dialect == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK})")
