"""The store backends the store tests run against: a SQLite file, and a PostgreSQL database when
LEANBENCH_TEST_PG_URL names a server (`make test` starts a throwaway one through .ci/postgres; by hand:
`eval "$(.ci/postgres start)"`). Each PostgreSQL test gets a database of its own, dropped after it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ENV = "LEANBENCH_TEST_PG_URL"
PG_SKIP = (f"{PG_ENV} is not set: no PostgreSQL server to test against (`make test` starts one with .ci/postgres "
           "when the server is installed; or eval \"$(.ci/postgres start)\")")
BACKENDS = ["sqlite", "postgresql"]


def pg_base_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(PG_SKIP)
    return url


def fresh_store_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A new, empty store of the backend: a path, or the URL of a database created for the test."""
    if backend == "sqlite":
        yield str(tmp_path / "store" / "leanbench.db")
        return
    from sqlalchemy import create_engine, make_url

    base = make_url(pg_base_url())
    name = f"lb_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()
