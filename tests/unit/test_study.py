"""Study config: every error at once, with its path; references and cycles; shipped studies validate."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from leanbench.errors import ConfigError
from leanbench.study_loader import load_study, parse_study

ROOT = Path(__file__).resolve().parents[2]

BASE = {
    "name": "t",
    "task": {"data": "sklearn:iris"},
    "reference": "big",
    "candidates": [
        {"name": "big", "model": {"arch": "mlp", "hidden": [32]}, "steps": [{"train": {"epochs": 2}}]},
        {"name": "small", "model": {"arch": "mlp", "hidden": [4]},
         "steps": [{"distill": {"teacher": "big", "epochs": 2}}]},
        {"name": "big-int8", "from": "big", "steps": [{"quantize": {}}]},
    ],
}


def problems(raw) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_study(raw)
    return info.value.problems


def with_candidate(i: int, **changes) -> dict:
    raw = yaml.safe_load(yaml.safe_dump(BASE))
    raw["candidates"][i].update(changes)
    return raw


def test_valid_study_parses_with_defaults():
    s = parse_study(BASE)
    assert s.reference == "big"
    assert s.build_order() == ["big", "small", "big-int8"]
    assert s.evaluate.bootstrap >= 1000 and s.evaluate.confidence == 0.95
    assert s.measure.runs >= 200
    assert [p.name for p in s.deploy.profiles] == ["edge", "server"]
    assert (s.deploy.profiles[0].threads, s.deploy.profiles[0].batch) == (1, 1)
    assert s.seeds == [0] and s.evaluate.perturbations == "default"
    assert s.candidate("small").teachers == ["big"]


def test_search_spaces_move_into_the_sweep():
    raw = with_candidate(1, steps=[{"distill": {"teacher": "big", "lr": {"log_uniform": [1e-4, 1e-2]},
                                                "temperature": {"choice": [1, 2, 4]}}}], sweep={"n_trials": 5})
    cand = parse_study(raw).candidate("small")
    assert cand.sweep.n_trials == 5
    assert cand.sweep.space == {"steps[0].distill.lr": {"log_uniform": [1e-4, 1e-2]},
                                "steps[0].distill.temperature": {"choice": [1, 2, 4]}}
    # a placeholder that validates as a number
    assert cand.steps[0].name == "distill" and cand.steps[0].config.temperature == 1
    bad = with_candidate(1, steps=[{"distill": {"teacher": "big", "lr": {"log_uniform": [1e-2, 1e-4]}}}])
    assert problems(bad) == ["candidates[1].steps[0].distill.lr: log_uniform needs low < high, "
                             "got [0.01, 0.0001]"]


def test_deploy_profiles_and_perturbations_are_checked():
    raw = yaml.safe_load(yaml.safe_dump(BASE))
    raw["deploy"] = {"profiles": [{"name": "edge", "batch": 0}, {"name": "edge"}], "tco_profile": "srv"}
    raw["evaluate"] = {"perturbations": [{"typo": {}}], "seeds": [1, 1]}
    found = problems(raw)
    assert any(p.startswith("deploy.profiles[0].batch") for p in found)
    assert any("unknown perturbation 'typo' (did you mean 'typos'?)" in p for p in found)
    assert any(p.startswith("evaluate.seeds") and "distinct" in p for p in found)


@pytest.mark.parametrize("path", sorted((ROOT / "studies").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_studies_validate(path, monkeypatch):
    monkeypatch.setenv("MINILM_DIR", monkeypatch.__class__.__name__)  # validation does not open the model
    assert load_study(path).candidates


def test_unknown_key_suggests_the_right_one():
    raw = with_candidate(0, steps=[{"train": {"epochs": 2, "learning_rate": 0.1, "patiense": 2}}])
    found = problems(raw)
    assert any("candidates[0].steps[0].train.patiense: unknown key 'patiense' (did you mean 'patience'?)" == p
               for p in found)
    assert any(p.startswith("candidates[0].steps[0].train.learning_rate: unknown key") for p in found)


def test_wrong_type_and_out_of_range_name_path_and_value():
    raw = with_candidate(1, steps=[{"distill": {"teacher": "big", "temperature": -1, "alpha": 1.5,
                                                "epochs": "many"}}])
    found = problems(raw)
    assert "candidates[1].steps[0].distill.temperature: input should be greater than 0, got -1" in found
    assert any(p.startswith("candidates[1].steps[0].distill.alpha:") and "1.5" in p for p in found)
    assert any(p.startswith("candidates[1].steps[0].distill.epochs:") and "'many'" in p for p in found)


def test_all_errors_reported_at_once():
    raw = yaml.safe_load(yaml.safe_dump(BASE))
    raw["reference"] = "bigg"
    raw["task"]["data"] = "sklearn:irs"
    raw["candidates"][0]["steps"] = [{"train": {"epochs": 0}}]
    raw["evaluate"] = {"bootstrap": 10}
    found = problems(raw)
    assert len(found) == 4, found
    assert any(p.startswith("reference: no candidate named 'bigg' (did you mean 'big'?)") for p in found)
    assert any("unknown dataset 'sklearn:irs' (did you mean 'iris'?)" in p for p in found)


def test_unknown_step_and_unknown_dataset():
    found = problems(with_candidate(2, steps=[{"quantise": {}}]))
    assert len(found) == 1
    assert found[0].startswith("candidates[2].steps[0].quantise: unknown step 'quantise' (did you mean 'quantize'?); "
                               "known: ")
    raw = yaml.safe_load(yaml.safe_dump(BASE))
    raw["task"]["data"] = "sklearn:mnist"
    assert any(p.startswith("task.data: unknown dataset 'sklearn:mnist'") for p in problems(raw))


def test_missing_from_and_teacher_names():
    raw = with_candidate(2, **{"from": "bgi"})
    assert any(p.startswith("candidates[2].from: no candidate named 'bgi' (did you mean 'big'?)")
               for p in problems(raw))
    raw = with_candidate(1, steps=[{"distill": {"teacher": "nobody"}}])
    assert any(p.startswith("candidates[1].steps[0].distill.teacher: no candidate named 'nobody'")
               for p in problems(raw))


def test_cycles_through_from_and_teacher_are_errors():
    raw = yaml.safe_load(yaml.safe_dump(BASE))
    raw["candidates"][0] = {"name": "big", "from": "big-int8", "steps": [{"quantize": {}}]}
    found = problems(raw)
    assert any("form a cycle: " in p and "big" in p and "big-int8" in p for p in found)
    raw = with_candidate(1, steps=[{"distill": {"teacher": "small"}}])
    assert any("cycle: small -> small" in p for p in problems(raw))


def test_model_and_from_are_exclusive_and_training_comes_first():
    raw = with_candidate(2, model={"arch": "mlp"})
    assert any("exactly one of 'model'" in p for p in problems(raw))
    raw = with_candidate(0, steps=[{"quantize": {}}])
    assert any("needs a train or distill step first" in p for p in problems(raw))


def test_lowrank_needs_exactly_one_of_rank_energy():
    assert any("exactly one of 'rank' or 'energy'" in p
               for p in problems(with_candidate(2, steps=[{"lowrank": {"rank": 4, "energy": 0.9}}])))


def test_malformed_yaml_names_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("name: t\ntask: {data: sklearn:iris\nreference: x\n")
    with pytest.raises(ConfigError) as info:
        load_study(f)
    assert "malformed YAML: line" in str(info.value)


def test_env_interpolation(tmp_path, monkeypatch):
    raw = yaml.safe_load(yaml.safe_dump(BASE))
    raw["task"] = {"data": {"train": "${DATA_DIR:-/nope}/train.tsv"}, "text": "sentence"}
    monkeypatch.setenv("DATA_DIR", "/data/sst2")
    assert parse_study(raw).task.data.train == "/data/sst2/train.tsv"
    raw["task"]["data"]["train"] = "${SURELY_UNSET_VAR_X}/train.tsv"
    assert any("SURELY_UNSET_VAR_X is not set" in p for p in problems(raw))


def test_only_keeps_the_reference_and_what_candidates_are_built_from():
    from leanbench.runner.keys import build_keys
    from leanbench.study_loader import select_candidates

    raw = yaml.safe_load(yaml.safe_dump(BASE))
    raw["candidates"].append({"name": "small-int8", "from": "small", "steps": [{"quantize": {}}]})
    full = parse_study(raw)
    sub = select_candidates(full, ["small-int8"])
    assert [c.name for c in sub.candidates] == ["big", "small", "small-int8"]  # teacher, parent, file order
    assert [c.name for c in select_candidates(full, ["big-int8"]).candidates] == ["big", "big-int8"]
    prints = {"train": "a", "validation": "b"}
    full_keys, sub_keys = build_keys(full, prints), build_keys(sub, prints)
    assert all(sub_keys[n] == full_keys[n] for n in sub_keys)  # the subset's cells are the full run's
    with pytest.raises(ConfigError) as info:
        select_candidates(full, ["smal", "big"])
    assert info.value.problems == ["--only: no candidate named 'smal' (did you mean 'small'?)"]


def test_a_new_setting_at_its_neutral_value_keeps_the_cell_key():
    """Cells built before `lr_ratio` existed behaved as lr_ratio 1: that value must find them."""
    from leanbench.runner.keys import build_keys

    def key(**lora):
        raw = yaml.safe_load(yaml.safe_dump(BASE))
        raw["candidates"].append({"name": "adapted", "model": {"hf": "some/model"},
                                  "steps": [{"lora": {"r": 4, **lora}}]})
        return build_keys(parse_study(raw), {"train": "a", "validation": "b"})["adapted"]

    assert key() == key(lr_ratio=1.0) != key(lr_ratio=16)
    assert key() == key(use_dora=False) != key(use_dora=True)
    assert key() == key(init="default") != key(init="pissa")


def test_duplicate_key_is_an_error_not_a_silent_override(tmp_path):
    f = tmp_path / "dup.yaml"
    f.write_text("name: t\nreference: a\ntask: {data: sklearn:iris}\nreference: b\n")
    with pytest.raises(ConfigError) as info:
        load_study(f)
    assert "malformed YAML: line 4, column 1: key 'reference' given twice in one mapping (first on line 2)" \
        in str(info.value)


def test_merge_keys_may_still_be_overridden(tmp_path):
    f = tmp_path / "merge.yaml"
    f.write_text(yaml.safe_dump(BASE, sort_keys=False)
                 + "anchors: &a {lr: 0.1, epochs: 2}\nextra: {<<: *a, lr: 0.2}\n")
    from leanbench.study_loader import _UniqueKeyLoader
    raw = yaml.load(f.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506
    assert raw["extra"] == {"lr": 0.2, "epochs": 2}
    assert raw == yaml.safe_load(f.read_text())


def test_a_yaml_alias_bomb_is_one_clear_error_not_a_hang(tmp_path):
    """Nine levels of nine aliases parse in no time but expand to 387 million values."""
    import time

    lines = [yaml.safe_dump(BASE, sort_keys=False).rstrip(), "x0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9]"]
    lines += [f"x{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 9)}]" for k in range(1, 10)]
    f = tmp_path / "bomb.yaml"
    f.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_study(f)
    assert time.perf_counter() - started < 30
    assert info.value.problems == [
        "(top level): the study expands to more than 1,000,000 values: YAML aliases (`*name`) repeat what their "
        "anchor (`&name`) holds, and aliases of aliases multiply; a study is far smaller, so check its anchors "
        "and aliases"]
    small = tmp_path / "aliases.yaml"  # aliases within the limit still work
    small.write_text(yaml.safe_dump(BASE, sort_keys=False) + "anchors: &e {epochs: 2}\nmore: [*e, *e]\n")
    assert "more: unknown key" in str(pytest.raises(ConfigError, load_study, small).value)


def test_many_problems_are_listed_up_to_a_cap_and_counted(tmp_path):
    raw = {**yaml.safe_load(yaml.safe_dump(BASE)), **{f"unknown_{i}": 1 for i in range(2000)}}
    with pytest.raises(ConfigError) as info:
        parse_study(raw, source="s.yaml")
    err = info.value
    assert len(err.problems) == 50 and err.more == 1950
    text = str(err)
    assert text.startswith("2,000 problems in s.yaml (the first 50 listed):")
    assert text.endswith("  ... and 1,950 more problems") and len(text) < 5000
    few = {**yaml.safe_load(yaml.safe_dump(BASE)), "unknown_a": 1, "unknown_b": 2}
    assert str(pytest.raises(ConfigError, parse_study, few).value).startswith("2 problems:")


def test_deeply_nested_yaml_is_a_message(tmp_path):
    f = tmp_path / "deep.yaml"
    f.write_text("name: x\na: " + "[" * 3000 + "]" * 3000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_study(f)
