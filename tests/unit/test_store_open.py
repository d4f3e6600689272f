"""Opening a store: a path or a SQLAlchemy URL; a damaged file, a schema version that is not one, a store from
a newer leanbench, a refused login, an unreachable server, a malformed URL: one message each (exit code 2 from
the CLI), and nothing written. Reading (`report`, `ls`) is read-only: the file's bytes and time stay as they
were. A store locked by another process is waited for, up to LEANBENCH_STORE_TIMEOUT, then one message."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _store_backends import BACKENDS, fresh_store_url, pg_base_url
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from leanbench.cli import app
from leanbench.errors import StoreError
from leanbench.store import Store
from leanbench.store.db import SCHEMA_VERSION


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    yield from fresh_store_url(request.param, tmp_path)


def _cli(*args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of a leanbench command run in this process."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def base_password(url: str) -> str:
    from sqlalchemy import make_url

    return make_url(url).password or "(none)"


def _snapshot(db: Path) -> tuple[bytes, int, list[str]]:
    """The file's bytes and modification time, and which of its sidecar files exist."""
    return db.read_bytes(), db.stat().st_mtime_ns, sorted(p.name for p in db.parent.iterdir())


def _a_store(db: Path) -> None:
    """A store with one run, written and closed (its WAL folded into the file)."""
    st = Store.open(db)
    st.start_run("s", {}, {})
    st.engine.dispose()
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")  # no -wal/-shm beside it: what a reader adds is visible
    assert sorted(p.name for p in db.parent.iterdir()) == [db.name]


def _set_version(url: str, value: str) -> None:
    engine = create_engine(url if "://" in url else f"sqlite:///{url}")
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE meta SET value = '{value}' WHERE key = 'schema_version'")
        conn.exec_driver_sql("DROP TABLE leases")  # to see whether opening creates missing tables
    engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url if "://" in url else f"sqlite:///{url}")
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------- damaged


def test_a_sqlite_file_with_garbage_pages_is_one_message(tmp_path):
    db = tmp_path / "lb.db"
    _a_store(db)
    raw = bytearray(db.read_bytes())
    raw[100:] = os.urandom(len(raw) - 100)  # the 100-byte header intact, every page garbage
    db.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match="not a readable leanbench store"):
        Store.open(db)
    code, out, err = _cli("ls", "--store", str(db))
    assert code == 2 and "not a readable leanbench store" in err and "Traceback" not in err + out
    assert db.read_bytes() == bytes(raw)


def test_a_file_that_is_not_sqlite_and_a_database_of_other_tables(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    with pytest.raises(StoreError, match="not a SQLite database"):
        Store.open(junk)
    assert junk.read_text() == "hello"
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    before = other.read_bytes()
    with pytest.raises(StoreError, match=r"holds other tables \(customers\).*not a leanbench store"):
        Store.open(other)
    assert other.read_bytes() == before


def test_a_schema_version_that_is_not_an_integer(store_url):
    Store.open(store_url).engine.dispose()
    _set_version(store_url, "4.1")
    with pytest.raises(StoreError, match=r"schema version is '4\.1'"):
        Store.open(store_url)
    assert "leases" not in _tables(store_url)


def test_a_store_from_a_newer_leanbench_is_refused_before_anything_is_written(store_url):
    Store.open(store_url).engine.dispose()
    _set_version(store_url, str(SCHEMA_VERSION + 1))
    db = Path(store_url) if "://" not in store_url else None
    before = _snapshot(db) if db else None
    for kwargs in ({}, {"readonly": True}):
        with pytest.raises(StoreError, match=f"newer leanbench .*version {SCHEMA_VERSION + 1}.*Nothing was changed"):
            Store.open(store_url, **kwargs)
    assert "leases" not in _tables(store_url)  # the missing table was not created
    if db:
        assert _snapshot(db) == before
    code, out, err = _cli("ls", "--store", store_url)
    assert code == 2 and "newer leanbench" in err and "Traceback" not in err + out


# ---------------------------------------------------------------------------------------------- read-only


def test_reading_a_store_changes_nothing(tmp_path):
    db = tmp_path / "lb.db"
    _a_store(db)
    before = _snapshot(db)
    time.sleep(0.01)
    st = Store.open(db, readonly=True)
    assert st.run_status(1) == "running" and st.study_names() == []
    st.engine.dispose()
    code, out, err = _cli("ls", "--store", str(db))
    assert code == 0, err
    code, out, err = _cli("report", "--store", str(db), "-f", "json")
    assert code == 2 and "holds no study yet" in err
    assert _snapshot(db) == before


def test_report_and_ls_of_a_real_run_are_read_only(tmp_path):
    from leanbench.runner.local import run_study
    from leanbench.study_loader import parse_study

    study = {"name": "ro", "seed": 0, "task": {"data": "sklearn:iris"}, "reference": "ref",
             "candidates": [{"name": "ref", "model": {"arch": "mlp", "hidden": [8]},
                             "steps": [{"train": {"epochs": 2}}]}],
             "evaluate": {"bootstrap": 100, "perturbations": "none"}, "integrity": {"contamination": False},
             "measure": {"runs": 12, "warmup": 1, "rounds": 6, "throughput_runs": 3, "throughput_warmup": 1},
             "deploy": {"profiles": [{"name": "edge", "threads": 1, "batch": 1}]}}
    db = tmp_path / "lb.db"
    st = Store.open(db)
    run_study(parse_study(study), st)
    st.engine.dispose()
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = _snapshot(db)
    time.sleep(0.01)
    for args in (["ls", "--json"], ["report", "-f", "json"], ["report", "-f", "md"]):
        code, out, err = _cli(*args, "--store", str(db))
        assert code == 0, err
    assert json.loads(_cli("ls", "--json", "--store", str(db))[1])["studies"][0]["name"] == "ro"
    assert _snapshot(db) == before


def test_reading_an_older_store_upgrades_it_once(tmp_path):
    db = tmp_path / "lb.db"
    st = Store.open(db)
    folder = st.artifact_dir("k1")
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"x")
    st.put_cell(key="k1", kind="build", study="s", candidate="a", run_id=None, seconds=1, cpu_seconds=1, flops=None,
                result={}, artifact=folder)
    st.engine.dispose()
    with sqlite3.connect(db) as conn:  # as schema 5 left it: no checksum, the path as the run gave it
        conn.execute("ALTER TABLE cells DROP COLUMN artifact_checksum")
        conn.execute("DROP TABLE leases")
        conn.execute("UPDATE cells SET artifact = ?", (".leanbench/artifacts/k1",))
        conn.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    ro = Store.open(db, readonly=True)
    assert ro.cell("k1")["artifact"] == str(folder) and ro.artifact_ok("k1")  # found by name; no checksum yet
    ro.engine.dispose()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (str(SCHEMA_VERSION),)
        assert conn.execute("SELECT artifact, artifact_checksum FROM cells").fetchone() == ("k1", None)


# ---------------------------------------------------------------------------------------------- locked

HOLD = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def _hold_lock(db: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_locked_store_is_waited_for_then_one_message(tmp_path, monkeypatch):
    db = tmp_path / "lb.db"
    Store.open(db).engine.dispose()
    monkeypatch.setenv("LEANBENCH_STORE_TIMEOUT", "0.5")
    proc = _hold_lock(db, 30)
    try:
        t = time.perf_counter()
        with pytest.raises(StoreError, match=r"locked by another process \(waited 0.5 s"):
            Store.open(db)
        assert time.perf_counter() - t >= 0.45
        ro = Store.open(db, readonly=True)  # reading is not blocked (WAL)
        assert ro.study_names() == []
        ro.engine.dispose()
    finally:
        proc.kill()
        proc.wait()
    monkeypatch.setenv("LEANBENCH_STORE_TIMEOUT", "20")
    st = Store.open(db)
    proc = _hold_lock(db, 0.6)  # released while we wait: the write goes through
    t = time.perf_counter()
    assert st.start_run("s", {}, {}) == 1 and time.perf_counter() - t >= 0.3
    proc.wait()
    st.engine.dispose()


def test_a_bad_timeout_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("LEANBENCH_STORE_TIMEOUT", "soon")
    with pytest.raises(StoreError, match="LEANBENCH_STORE_TIMEOUT .*'soon'"):
        Store.open(tmp_path / "lb.db")


# ---------------------------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(("given", "message"), [
    ("postgresql+psycopg://u:secret@host:notaport/db", "neither a file path nor a valid SQLAlchemy URL"),
    ("nosuchdialect://u@host/db", "no database dialect 'nosuchdialect'"),
    ("sqlite://", "in-memory store keeps nothing"),
    ("postgresql+psycopg://u@host", "names no database"),
])
def test_a_malformed_url_is_one_message(given, message, tmp_path):
    with pytest.raises(StoreError, match=message) as err:
        Store.open(given)
    assert "secret" not in str(err.value)
    code, out, err = _cli("ls", "--store", given)
    assert code == 2 and message in err and "Traceback" not in err + out
    assert list(tmp_path.iterdir()) == []  # nothing written where the test runs


def test_a_sqlite_url_is_the_file(tmp_path):
    st = Store.open(f"sqlite:///{tmp_path / 'u.db'}")
    assert st.path == tmp_path / "u.db" and st.artifact_root == tmp_path / "artifacts"
    st.engine.dispose()


def test_a_refused_login_and_an_unreachable_server(monkeypatch):
    from sqlalchemy import make_url

    base = make_url(pg_base_url())
    monkeypatch.setenv("LEANBENCH_STORE_TIMEOUT", "3")
    wrong = base.set(password="wrong-password").render_as_string(hide_password=False)
    refused = base.set(host="127.0.0.1", port=1).render_as_string(hide_password=False)
    nohost = base.set(host="no-such-host.invalid").render_as_string(hide_password=False)
    for url, why in ((wrong, "password authentication failed"), (refused, "refused"), (nohost, "")):
        t = time.perf_counter()
        code, out, err = _cli("ls", "--store", url)
        assert code == 2 and "cannot connect to the result store" in err and why in err, err
        assert "Traceback" not in err + out and "wrong-password" not in err and base.password not in err
        assert time.perf_counter() - t < 30


def test_a_postgresql_store_end_to_end_through_the_cli(tmp_path):
    """`leanbench run --store postgresql+psycopg://...` with the artifacts in a folder of their own, then `ls`
    and `report` from another working directory, which find the models through the store alone."""
    import yaml

    for url in fresh_store_url("postgresql", tmp_path):
        study = {"name": "pg", "seed": 0, "task": {"data": "sklearn:iris"}, "reference": "ref",
                 "candidates": [{"name": "ref", "model": {"arch": "mlp", "hidden": [8]},
                                 "steps": [{"train": {"epochs": 2}}]},
                                {"name": "ref-int8", "from": "ref", "steps": [{"quantize": {}}]}],
                 "evaluate": {"bootstrap": 100, "perturbations": "none"}, "integrity": {"contamination": False},
                 "measure": {"runs": 12, "warmup": 1, "rounds": 6, "throughput_runs": 3, "throughput_warmup": 1},
                 "deploy": {"profiles": [{"name": "edge", "threads": 1, "batch": 1}]}}
        f = tmp_path / "pg.yaml"
        f.write_text(yaml.safe_dump(study))
        arts = tmp_path / "shared-artifacts"
        code, out, err = _cli("run", str(f), "--store", url, "--artifacts", str(arts), "-q")
        assert code == 0, err
        assert base_password(url) not in err  # the store is named without its password
        assert sorted(p.name for p in arts.iterdir() if not p.name.startswith(".")) and not (
            tmp_path / ".leanbench" / "artifacts").exists()
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        os.chdir(elsewhere)
        listing = json.loads(_cli("ls", "--json", "--store", url, "--artifacts", str(arts))[1])
        assert all(Path(folder).is_dir() for c in listing["studies"][0]["candidates"]
                   for folder in c["artifacts"].values())
        code, out, err = _cli("report", "-f", "json", "--store", url)
        assert code == 0 and json.loads(out)["study"] == "pg"
        code, out, err = _cli("run", str(f), "--store", url, "--artifacts", str(arts), "-q")
        assert code == 0 and "0 cells run" in err, err
