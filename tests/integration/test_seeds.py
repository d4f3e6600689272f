"""Several seeds: each stochastic candidate is built once per seed, deterministic ones once; the seed
spread is reported and the two-level CI agrees with an independent implementation."""

from __future__ import annotations

import numpy as np
import pytest

from leanbench.analysis import analyse
from leanbench.runner.local import run_study
from leanbench.stats.hierarchical import paired_seed_example_bootstrap, seed_example_bootstrap_mean
from leanbench.store import Store
from leanbench.study_loader import parse_study

STUDY = {
    "name": "seeds",
    "task": {"data": "sklearn:breast_cancer"},
    "reference": "ref",
    "candidates": [
        {"name": "ref", "model": {"arch": "mlp", "hidden": [32]}, "steps": [{"train": {"epochs": 8}}]},
        {"name": "tiny", "model": {"arch": "mlp", "hidden": [2]}, "steps": [{"train": {"epochs": 4, "lr": 0.003}}]},
        {"name": "ref-int8", "from": "ref", "steps": ["quantize"]},
    ],
    "evaluate": {"seeds": [0, 1, 2], "bootstrap": 2000, "perturbations": "none"},
    "measure": {"enabled": False},
    "integrity": {"contamination": False},
}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    store = Store.open(tmp_path_factory.mktemp("seeds") / "lb.db")
    summary = run_study(parse_study(STUDY), store)
    return store, summary, analyse(store, "seeds").to_dict()


def test_each_seed_builds_its_own_candidate(seeded):
    _, summary, results = seeded
    builds = [c for c in summary.cells_run if c.startswith("build")]
    assert len(builds) == 9  # 3 candidates x 3 seeds; the int8 copy differs per seed through its parent
    for c in results["candidates"]:
        assert c["seeds"]["n"] == 3 and len(c["seeds"]["values"]) == 3
        assert c["seeds"]["min"] <= c["seeds"]["mean"] <= c["seeds"]["max"]
    assert results["decision"]["seeds"] == [0, 1, 2]


def test_two_level_ci_agrees_with_the_independent_implementation(seeded):
    store, _, results = seeded
    rows = {r["name"]: r for r in store.candidates("seeds")}
    runs = [store.predictions(k) for k in rows["tiny"]["cells"]["evaluate"].values()]
    correct = np.stack([(r["scores"].argmax(1) == r["gold"]).astype(float) for r in runs])
    ci = seed_example_bootstrap_mean(correct, n_resamples=4000, seed=7)
    ours = results["candidates"][1]["metrics"]["accuracy"]
    assert ours["value"] == pytest.approx(ci.value)
    assert ours["ci_low"] == pytest.approx(ci.low, abs=0.015)
    assert ours["ci_high"] == pytest.approx(ci.high, abs=0.015)

    ref_runs = [store.predictions(k) for k in rows["ref"]["cells"]["evaluate"].values()]
    ref_correct = np.stack([(r["scores"].argmax(1) == r["gold"]).astype(float) for r in ref_runs])
    diff = paired_seed_example_bootstrap(lambda s, idx: correct[s][idx].mean(),
                                         lambda s, idx: ref_correct[s][idx].mean(),
                                         3, 3, correct.shape[1], paired_seeds=False, n_resamples=4000, seed=3)
    vs = results["candidates"][1]["vs_reference"]
    assert vs["diff"] == pytest.approx(diff.value)
    width = diff.high - diff.low  # Monte-Carlo error of two bootstraps: a small share of the CI's width
    assert vs["ci_low"] == pytest.approx(diff.low, abs=0.1 * width)
    assert vs["ci_high"] == pytest.approx(diff.high, abs=0.1 * width)
    assert "two-level" in vs["method"]


FEWER = {**STUDY, "name": "fewer", "candidates": [
    {"name": "ref", "model": {"arch": "mlp", "hidden": [32]}, "steps": [{"train": {"epochs": 8}}], "seeds": [0]},
    {"name": "kd", "model": {"arch": "mlp", "hidden": [2]},
     "steps": [{"distill": {"teacher": "ref", "epochs": 4, "lr": 0.003}}]},
    {"name": "ref-int8", "from": "ref", "steps": ["quantize"]},
]}


def test_an_expensive_candidate_can_have_fewer_seeds(tmp_path):
    study = parse_study(FEWER)
    assert study.seeds_of("ref") == [0] and study.seeds_of("ref-int8") == [0] and study.seeds_of("kd") == [0, 1, 2]
    store = Store.open(tmp_path / "lb.db")
    summary = run_study(study, store)
    builds = [c for c in summary.cells_run if c.startswith("build")]
    assert len(builds) == 5  # the reference and its int8 copy once, the student once per seed
    rows = {r["name"]: r for r in store.candidates("fewer")}
    assert list(rows["ref"]["cells"]["evaluate"]) == ["0"] and list(rows["ref-int8"]["cells"]["build"]) == ["0"]
    assert len(set(rows["kd"]["cells"]["build"].values())) == 3
    results = analyse(store, "fewer").to_dict()
    by_name = {c["name"]: c for c in results["candidates"]}
    assert by_name["ref"]["seeds"]["n"] == 1 and by_name["ref"]["seeds"]["planned"] == [0]
    assert by_name["kd"]["seeds"]["n"] == 3
    assert "two-level" in by_name["kd"]["vs_reference"]["method"]  # the student's seeds, one reference run
    assert by_name["kd"]["cost"]["seeds_built"] == 3 and by_name["ref"]["cost"]["seeds_built"] == 1
    # every student seed distilled from the one reference build
    assert run_study(study, store).cells_run == []


def test_candidate_seeds_must_be_among_the_study_seeds():
    from leanbench.errors import ConfigError

    bad = {**FEWER, "candidates": [{**FEWER["candidates"][0], "seeds": [0, 7]}, *FEWER["candidates"][1:]]}
    with pytest.raises(ConfigError, match=r"candidates\[0\]\.seeds: \[7\] not among the study's seeds \[0, 1, 2\]"):
        parse_study(bad)


def test_what_draws_random_numbers_gets_a_seed_in_its_key():
    from leanbench.runner.keys import is_stochastic
    from leanbench.study import CandidateConfig

    def cand(**kw):
        return CandidateConfig.model_validate({"name": "c", **kw})

    assert not is_stochastic(cand(model={"arch": "tfidf-logreg"}, steps=["train"]))  # lbfgs, fixed vocabulary
    assert is_stochastic(cand(model={"arch": "mlp"}, steps=["train"]))
    assert is_stochastic(cand(model={"arch": "tfidf-logreg"}, steps=["train"], sweep={"n_trials": 2}))
    assert not is_stochastic(cand(**{"from": "p"}, steps=[{"quantize": {"method": "dynamic-int8"}}]))
    assert is_stochastic(cand(**{"from": "p"}, steps=[{"quantize": {"method": "onnxruntime-static-int8"}}]))
