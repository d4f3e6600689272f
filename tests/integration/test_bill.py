"""The bill on a real (small) run: ledger reconciles with the measured wall time, a sweep's trials are
in the ledger and in the candidate's build cost, energy is labelled, TCO and break-even are filled."""

from __future__ import annotations

import json

import pytest

from leanbench.analysis import analyse
from leanbench.runner.local import run_study
from leanbench.store import Store
from leanbench.study_loader import parse_study

STUDY = {
    "name": "bill",
    "seed": 1,
    "task": {"data": "sklearn:iris"},
    "reference": "big",
    "candidates": [
        {"name": "big", "model": {"arch": "mlp", "hidden": [128, 128]}, "steps": [{"train": {"epochs": 20}}]},
        {"name": "small", "model": {"arch": "mlp", "hidden": [8]},
         "steps": [{"distill": {"teacher": "big", "epochs": {"choice": [5, 10]}, "lr": {"log_uniform": [1e-3, 3e-2]}}}],
         "sweep": {"n_trials": 3}},
        {"name": "big-int8", "from": "big", "steps": ["quantize"]},
    ],
    "evaluate": {"bootstrap": 200, "perturbations": "none"},
    "measure": {"runs": 20, "warmup": 2, "throughput_runs": 3},
    "deploy": {"profiles": [{"name": "edge", "threads": 1, "batch": 1, "slo_ms": 50},
                            {"name": "server", "threads": 0, "batch": "auto"}],
               "auto_batches": [1, 16], "traffic": {"queries_per_day": 1_000_000, "horizon_days": 30}},
}


@pytest.fixture(scope="module")
def bill(tmp_path_factory):
    store = Store.open(tmp_path_factory.mktemp("bill") / "lb.db")
    summary = run_study(parse_study(json.loads(json.dumps(STUDY))), store)
    return store, summary, analyse(store, "bill").to_dict()


def test_ledger_reconciles_with_the_run_wall_time(bill):
    store, summary, results = bill
    rec = results["cost"]["reconcile"]
    assert rec["ok"], rec
    assert abs(rec["measured"] - summary.seconds) < 1e-6
    assert abs(rec["gap_rel"]) <= 0.05


def test_every_sweep_trial_is_in_the_ledger_and_the_build_cost(bill):
    store, _, results = bill
    trials = [e for e in store.ledger("bill") if e["phase"] == "sweep:trial"]
    assert len(trials) == 3 and sorted(e["trial"] for e in trials) == [0, 1, 2]
    assert sum(e["kept"] for e in trials) == 1
    small = next(c for c in results["candidates"] if c["name"] == "small")
    big = next(c for c in results["candidates"] if c["name"] == "big")
    trial_seconds = sum(e["seconds"] for e in trials)
    assert small["cost"]["build_by_phase"]["sweep:trial"]["seconds"] == pytest.approx(trial_seconds)
    # the student's bill includes its search and its teacher, each once
    assert small["cost"]["build_seconds"] >= trial_seconds + big["cost"]["build_seconds"] - 1e-9
    assert small["build_info"] is not None


def test_energy_is_labelled_with_its_method(bill):
    store, _, results = bill
    for e in store.ledger("bill"):
        assert e["energy_method"].startswith(("estimated: ", "measured: rapl")), e
        assert e["joules"] is None or e["joules"] >= 0
    for c in results["candidates"]:
        assert c["cost"]["energy_method"].startswith(("estimated: ", "measured: rapl"))


def test_profiles_tco_and_break_even(bill):
    _, _, results = bill
    assert results["tco"]["profile"] == "server"
    for c in results["candidates"]:
        assert set(c["latency"]) == {"edge", "server"}
        edge = c["latency"]["edge"]
        assert edge["threads"] == 1 and edge["batch"] == 1 and edge["runs"] >= 20
        assert edge["p90_ci"][0] <= edge["p90_ms"]
        assert c["profiles"]["server"]["batch"] in (1, 16)
        assert c["profiles"]["edge"]["slo"]["slo_ms"] == 50
        tco = c["cost"]["tco_usd"]
        assert tco["low"] <= tco["value"] <= tco["high"]
        if c["name"] != "big":
            assert c["cost"]["break_even"]["status"] in ("after", "immediately", "until", "never", "equal")
