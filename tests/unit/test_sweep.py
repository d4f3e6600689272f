"""Sweeps: search-space syntax, validation with paths, applying values; Optuna runs when it is installed."""

from __future__ import annotations

import sys

import pytest

from leanbench.cost.ledger import build_cost, totals
from leanbench.errors import ConfigError, LeanbenchError
from leanbench.measure.energy import EnergyConfig
from leanbench.search.sweep import (
    OPTUNA_MISSING,
    apply_params,
    check_space,
    find_search_space,
    placeholder_params,
    run_sweep,
    spec_values,
    validate_space,
)

CANDIDATE = {
    "name": "student",
    "steps": [
        {"distill": {"teacher": "teacher", "lr": {"log_uniform": [1e-5, 1e-3]},
                     "temperature": {"choice": [1, 2, 4]}, "alpha": {"uniform": [0.1, 0.9]}, "epochs": 20}},
        {"prune": {"sparsity": 0.5, "finetune": {"epochs": {"int": [2, 8]}}}},
    ],
}
ESTIMATE = EnergyConfig(backend="estimate")


def test_find_search_space_names_each_space_by_path():
    space = find_search_space(CANDIDATE)
    assert space == {
        "steps[0].distill.lr": {"log_uniform": [1e-5, 1e-3]},
        "steps[0].distill.temperature": {"choice": [1, 2, 4]},
        "steps[0].distill.alpha": {"uniform": [0.1, 0.9]},
        "steps[1].prune.finetune.epochs": {"int": [2, 8]},
    }
    assert validate_space(space) == []
    assert find_search_space({"lr": 1e-3, "epochs": 3}) == {}
    assert find_search_space(CANDIDATE["steps"][0]["distill"]) == {
        "lr": {"log_uniform": [1e-5, 1e-3]}, "temperature": {"choice": [1, 2, 4]},
        "alpha": {"uniform": [0.1, 0.9]}}


@pytest.mark.parametrize(("spec", "message"), [
    ({"log_uniform": [0, 1e-3]}, "log_uniform needs 0 < low, got low = 0"),
    ({"log_uniform": [1e-3, 1e-5]}, "log_uniform needs low < high, got [0.001, 1e-05]"),
    ({"uniform": [0.5]}, "uniform needs [low, high], got [0.5]"),
    ({"uniform": ["a", 1]}, "uniform needs two finite numbers [low, high], got ['a', 1]"),
    ({"int": [1.5, 4]}, "int needs two integers [low, high], got [1.5, 4]"),
    ({"int": [4, 4]}, "int needs low < high, got [4, 4]"),
    ({"choice": []}, "choice needs a non-empty list of values, got []"),
    ({"choice": [1, [2]]}, "choice values must be numbers, strings, booleans or null, got [[2]]"),
    ({"choice": [1, 2, 1]}, "choice lists a value twice: [1, 2, 1]"),
    ({"uniform": [0, 1], "step": 0.1}, "a search space is a mapping with one key among"),
])
def test_validate_space_says_where_and_what(spec, message):
    problems = validate_space(find_search_space({"steps": [{"train": {"lr": spec}}]}))
    assert len(problems) == 1
    assert problems[0].startswith("steps[0].train.lr: ")
    assert message in problems[0]


def test_all_problems_are_reported_at_once():
    space = {"a": {"uniform": [1, 0]}, "b": {"choice": []}, "c": {"int": [0, 3]}}
    with pytest.raises(ConfigError) as err:
        check_space(space, source="candidates[1]")
    assert err.value.problems == ["a: uniform needs low < high, got [1, 0]",
                                  "b: choice needs a non-empty list of values, got []"]


def test_apply_params_writes_a_concrete_config_and_leaves_the_original():
    space = find_search_space(CANDIDATE)
    concrete = apply_params(CANDIDATE, placeholder_params(space))
    d = concrete["steps"][0]["distill"]
    assert d["lr"] == pytest.approx(1e-4)  # geometric mean of 1e-5 and 1e-3
    assert d["temperature"] == 1 and d["alpha"] == pytest.approx(0.5)
    assert concrete["steps"][1]["prune"]["finetune"]["epochs"] == 5
    assert find_search_space(concrete) == {}
    assert find_search_space(CANDIDATE) == space  # untouched
    assert spec_values(space["steps[0].distill.temperature"]) == [1, 2, 4]
    with pytest.raises(LeanbenchError, match="path 'steps\\[5\\].x' does not exist"):
        apply_params(CANDIDATE, {"steps[5].x": 1})


def test_missing_optuna_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # makes `import optuna` fail
    with pytest.raises(LeanbenchError, match="the sweep feature needs optuna") as err:
        run_sweep(lambda params, trial: 0.0, {"x": {"uniform": [0, 1]}}, n_trials=2)
    assert str(err.value) == OPTUNA_MISSING


def test_bad_sweep_arguments_are_config_errors():
    with pytest.raises(ConfigError) as err:
        run_sweep(lambda params, trial: 0.0, {}, n_trials=0, direction="up")
    assert len(err.value.problems) == 3


# --------------------------------------------------------------------------- with optuna
SPACE = {"x": {"uniform": [-2.0, 2.0]}, "k": {"choice": [1, 2, 4]}, "lr": {"log_uniform": [1e-4, 1e-1]}}


def score(params: dict, trial: object) -> float:
    """Best at x = 0.5, k = 2, lr = 1e-2."""
    import math

    return -(params["x"] - 0.5) ** 2 - abs(params["k"] - 2) - (math.log10(params["lr"]) + 2) ** 2


def test_optuna_suggest_follows_the_space():
    optuna = pytest.importorskip("optuna")
    from leanbench.search.sweep import suggest

    trial = optuna.trial.FixedTrial({"x": 0.25, "k": 4, "lr": 1e-3})
    assert suggest(trial, SPACE) == {"x": 0.25, "k": 4, "lr": 1e-3}


def test_sweep_is_seeded_and_costs_every_trial():
    pytest.importorskip("optuna")
    a = run_sweep(score, SPACE, n_trials=12, seed=3, energy=ESTIMATE)
    b = run_sweep(score, SPACE, n_trials=12, seed=3, energy=ESTIMATE)
    assert [t["params"] for t in a.trials] == [t["params"] for t in b.trials]
    assert len(a.trials) == 12 and all(t["state"] == "COMPLETE" for t in a.trials)
    assert a.best_value == max(t["value"] for t in a.trials)
    assert a.best_params == a.trials[a.best_trial]["params"]
    assert a.best_value == pytest.approx(score(a.best_params, None))
    assert all(t["seconds"] > 0 and t["energy"].method.startswith("estimated: ") for t in a.trials)
    assert "TPE (seed 3)" in a.method and "MedianPruner" in a.method

    # N trials -> N ledger entries, one kept, and their sum is in the candidate's build cost
    entries = a.ledger_entries("student")
    assert len(entries) == 12 and [e.trial for e in entries] == list(range(12))
    assert [e.kept for e in entries].count(True) == 1 and entries[a.best_trial].kept
    assert all(e.phase == "sweep:trial" and e.joules is not None for e in entries)
    cost = build_cost("student", {"student": ["teacher"]}, entries)
    assert cost["seconds"] == pytest.approx(a.seconds) == pytest.approx(totals(entries)["seconds"])
    assert cost["by_phase"]["sweep:trial"]["entries"] == 12
    assert a.to_dict()["n_trials"] == 12


def test_minimize_direction():
    pytest.importorskip("optuna")
    r = run_sweep(lambda p, t: (p["x"] - 1.0) ** 2, {"x": {"uniform": [-3.0, 3.0]}}, n_trials=10, seed=0,
                  direction="minimize", energy=ESTIMATE)
    assert r.best_value == min(t["value"] for t in r.trials)


def test_pruned_and_failed_trials_are_recorded_with_their_cost():
    optuna = pytest.importorskip("optuna")
    from leanbench.search.sweep import report

    def objective(params: dict, trial: object) -> float:
        if params["x"] > 1.5:
            raise ValueError("diverged")
        for epoch in range(4):
            report(trial, -abs(params["x"]) * (epoch + 1), epoch)
        return -abs(params["x"])

    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    r = run_sweep(objective, {"x": {"uniform": [-2.0, 2.0]}}, n_trials=20, seed=1, energy=ESTIMATE,
                  pruner=pruner, catch=(ValueError,))
    states = {t["state"] for t in r.trials}
    assert "PRUNED" in states and "COMPLETE" in states
    assert len(r.ledger_entries("c")) == 20  # pruned and failed trials are costed too
    assert all(t["seconds"] > 0 for t in r.trials)
    with pytest.raises(LeanbenchError, match="no trial completed"):
        run_sweep(lambda p, t: float("nan"), {"x": {"uniform": [0, 1]}}, n_trials=2, energy=ESTIMATE)
