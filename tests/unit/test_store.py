"""The store on SQLite and PostgreSQL alike: a rebuilt cell's rows replace the old ones (billed once), artifacts
carry a checksum and are found relative to the artifact root, leases give a cell to one holder at a time
(atomically, across processes) and expire when their holder stops renewing them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _store_backends import BACKENDS, fresh_store_url

from leanbench.store import Store
from leanbench.store.artifacts import checksum


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    yield from fresh_store_url(request.param, tmp_path)


@pytest.fixture
def store(store_url, tmp_path):
    st = Store.open(store_url, artifacts=tmp_path / "artifacts")
    yield st
    st.engine.dispose()


def _entry(phase: str, seconds: float, flops: float | None = None) -> dict:
    return {"phase": phase, "seconds": seconds, "cpu_seconds": seconds, "flops": flops}


def _build(store: Store, key: str, *, flops: float = 100.0, run_id: int | None = None, files: dict | None = None):
    folder = store.artifact_dir(key)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in (files or {"model.safetensors": b"\x01" * 1000, "adapter.json": b"{}"}).items():
        (folder / name).write_bytes(data)
    store.put_cell(key=key, kind="build", study="s", candidate="a", run_id=run_id, seconds=1.0, cpu_seconds=1.0,
                   flops=flops, result={"seed": 0}, artifact=folder,
                   ledger_entries=[_entry("build:init", 0.1), _entry("build:train", 0.9, flops)])
    return folder


def _ledger(store: Store, key: str) -> list[tuple[str, float | None]]:
    return [(r["phase"], r["flops"]) for r in store.ledger("s") if r["cell_key"] == key]


def test_a_rebuilt_cell_replaces_its_ledger_rows_and_keeps_unfinished_work_billed(store):
    _build(store, "k1", flops=100.0, run_id=1)
    store.add_ledger("s", 2, [{**_entry("abandoned:build:interrupted", 5.0), "cell_key": "k1"}])
    _build(store, "k1", flops=120.0, run_id=3)
    assert sorted(_ledger(store, "k1")) == [("abandoned:build:interrupted", None), ("build:init", None),
                                            ("build:train", 120.0)]
    assert store.cell("k1")["run_id"] == 3 and store.cell("k1")["flops"] == 120.0


def test_an_artifact_is_verified_against_the_checksum_taken_at_commit(store):
    folder = _build(store, "k1")
    assert store.artifact_ok("k1")
    assert store.cell("k1")["artifact"] == str(folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:500])  # truncated
    assert not store.artifact_ok("k1")
    weights.write_bytes(b"\x01" * 1000)
    assert store.artifact_ok("k1")
    weights.write_bytes(b"\x02" + b"\x01" * 999)  # same size, one byte changed
    assert not store.artifact_ok("k1")
    weights.write_bytes(b"\x01" * 1000)
    (folder / "extra.bin").write_bytes(b"")  # an added file, even empty
    assert not store.artifact_ok("k1")
    (folder / "extra.bin").unlink()
    (folder / "adapter.json").rename(folder / "adapter2.json")  # a renamed one
    assert not store.artifact_ok("k1")
    shutil.rmtree(folder)
    assert not store.artifact_ok("k1")
    store.put_cell(key="e1", kind="evaluate", study="s", candidate="a", run_id=None, seconds=0.1, cpu_seconds=0.1,
                   flops=None, result={})
    assert store.artifact_ok("e1")  # no artifact to check
    assert not store.artifact_ok("unknown")


def test_checksum_is_sha256_over_sorted_files_with_their_names(tmp_path):
    import hashlib

    (tmp_path / "b").write_bytes(b"BB")
    (tmp_path / "a").write_bytes(b"A")
    h = hashlib.sha256()
    for name, data in (("a", b"A"), ("b", b"BB")):  # independent of the order the folder lists them in
        h.update(len(name).to_bytes(8, "little") + name.encode() + len(data).to_bytes(8, "little") + data)
    assert checksum(tmp_path) == "sha256:" + h.hexdigest()


def test_artifacts_are_stored_relative_to_the_artifact_root_so_a_moved_folder_is_found(store_url, tmp_path):
    first = Store.open(store_url, artifacts=tmp_path / "here")
    _build(first, "k1")
    with first.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT artifact FROM cells").scalar() == "k1"
    first.engine.dispose()
    shutil.move(tmp_path / "here", tmp_path / "moved")
    moved = Store.open(store_url, artifacts=tmp_path / "moved")
    assert moved.cell("k1")["artifact"] == str(tmp_path / "moved" / "k1") and moved.artifact_ok("k1")
    moved.engine.dispose()


def test_leases_one_holder_at_a_time_renewed_released_and_expired(store):
    assert store.acquire_lease("k1", "run-1", ttl_s=30)
    assert store.acquire_lease("k1", "run-1", ttl_s=30)  # already held: still True
    assert not store.acquire_lease("k1", "run-2", ttl_s=30)
    assert store.acquire_lease("k2", "run-2", ttl_s=30)
    store.release_lease("k1", "run-2")  # not its holder: nothing happens
    assert store.lease("k1")["holder"] == "run-1"
    store.release_lease("k1", "run-1")
    assert store.lease("k1") is None and store.acquire_lease("k1", "run-2", ttl_s=0.3)
    before = store.lease("k2")["expires"]
    store.renew_leases("run-2", ttl_s=60)  # every lease of run-2: k1 (0.3 s before) and k2
    assert store.lease("k2")["expires"] > before + 20
    time.sleep(0.4)
    assert not store.acquire_lease("k1", "run-3", ttl_s=30)  # renewed: still run-2's
    assert store.acquire_lease("k3", "dead", ttl_s=0.2)
    time.sleep(0.3)  # a holder that stopped renewing: its lease expires and another takes the cell
    assert store.acquire_lease("k3", "run-3", ttl_s=30) and store.lease("k3")["holder"] == "run-3"
    _build(store, "k3")  # committing a cell releases its lease
    assert store.lease("k3") is None


RACE = """
import sys, time
from leanbench.store import Store
url, holder, start, n = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
st = Store.open(url)
time.sleep(max(0.0, start - time.time()))
won = [str(i) for i in range(n) if st.acquire_lease(f"key-{i}", holder, ttl_s=60)]
print(",".join(won))
"""


def test_processes_racing_for_the_same_cells_get_each_one_once(store, store_url):
    n, holders = 25, ["p1", "p2", "p3"]
    start = time.time() + 3.0  # every process opened the store and waits for the same moment
    procs = [subprocess.Popen([sys.executable, "-c", RACE, store_url, h, str(start), str(n)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for h in holders]
    won = {}
    for h, p in zip(holders, procs, strict=True):
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        won[h] = [int(i) for i in out.strip().split(",") if i]
    assert sorted(i for w in won.values() for i in w) == list(range(n))  # each key exactly once
    assert {store.lease(f"key-{i}")["holder"] for i in range(n)} <= set(holders)


def test_split_uses_read_the_stored_json(store):
    store.put_cell(key="e", kind="evaluate", study="s", candidate="a", run_id=None, seconds=0.1, cpu_seconds=0.1,
                   flops=None, result={"fingerprint": "fp%_1", "split": "test"})
    store.put_cell(key="b", kind="build", study="s", candidate="b", run_id=None, seconds=0.1, cpu_seconds=0.1,
                   flops=None, result={"selected_on": "fp%_1", "note": "fp%_2"})
    store.put_cell(key="c", kind="build", study="s", candidate="c", run_id=None, seconds=0.1, cpu_seconds=0.1,
                   flops=None, result={"selected_on": None, "note": "fp%_1"})  # mentions it, did not select on it
    uses = store.split_uses("fp%_1")
    assert sorted((u["who"], u["purpose"]) for u in uses) == [("s/a", "report"), ("s/b", "selection")]
    assert store.split_uses("fp_") == []


def test_a_read_only_store_refuses_writes(store, store_url):
    store.start_run("s", {}, {})
    ro = Store.open(store_url, readonly=True)
    assert ro.study_names() == [] and ro.run_status(1) == "running"
    from leanbench.errors import StoreError

    with pytest.raises(StoreError, match="read-only"):
        ro.start_run("s", {}, {})
    with pytest.raises(Exception, match="(?i)read-?only"):  # below the Store too: the connection itself
        with ro.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE x (a INTEGER)")
    ro.engine.dispose()


def test_artifact_root_defaults(tmp_path, monkeypatch):
    st = Store.open(tmp_path / "db" / "lb.db")
    assert st.artifact_root == tmp_path / "db" / "artifacts"
    assert st.artifact_dir("k") == tmp_path / "db" / "artifacts" / "k"
    assert Path(st.cache_dir()) == tmp_path / "db" / "cache"
    st.engine.dispose()


def test_the_leases_of_a_run_found_dead_are_dropped_with_it(store):
    from leanbench.store.db import lease_holder

    dead, alive = store.start_run("s", {}, {}, process={"pid": 1}), store.start_run("s", {}, {}, process={"pid": 2})
    for _ in range(1, 12):
        store.start_run("s", {}, {})  # run 11: its holder name starts like run 1's
    assert store.acquire_lease("a", lease_holder(dead, "host:1")) and store.acquire_lease("b", lease_holder(alive, "h"))
    assert store.acquire_lease("c", lease_holder(11, "host:1"))
    assert store.mark_stale_runs(lambda process: process == {"pid": 1}) == [dead]
    assert store.lease("a") is None and store.lease("b") is not None and store.lease("c") is not None


def test_a_run_that_ends_gives_up_every_lease_it_holds(store):
    # an interrupted run holds the lease of every measure cell; the next run must not wait for them to expire
    for key in ("m1", "m2", "m3"):
        assert store.acquire_lease(key, "run-1", ttl_s=60)
    assert store.acquire_lease("other", "run-2", ttl_s=60)
    store.release_leases("run-1")
    assert [store.lease(k) for k in ("m1", "m2", "m3")] == [None, None, None]
    assert store.lease("other")["holder"] == "run-2" and store.acquire_lease("m1", "run-3", ttl_s=60)
