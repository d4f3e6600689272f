"""Every shipped study keeps its cell keys: a store made before a change is reused in full after it.

The fixture holds the build / evaluate / measure / perturbed keys of every study under studies/, for each of
its seeds, and its integrity key, computed at fixed data fingerprints and machine by the code before the
plugin redesign (commit 7b46e9e). Regenerate it only for a change that means to rebuild cells, and say so.
Regenerated so far: the measure keys, when every candidate came to be measured together in interleaved
rounds (a measure key names its protocol settings and the whole group of builds measured together).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leanbench.runner import keys
from leanbench.study_loader import load_study

ROOT = Path(__file__).resolve().parents[2]
BEFORE = json.loads((Path(__file__).parent / "fixtures" / "cell_keys_before_plugins.json").read_text())
FPS = {"train": "fp-train", "validation": "fp-validation", "test": "fp-test"}
MACHINE = {"cpu": "cpu", "cores": 2, "torch": "2.13.0"}


def study_keys(path: Path) -> dict:
    study = load_study(path)
    if study.tasks is not None:  # several tasks: the keys of each task's one-task study
        return {name: one_study_keys(sub) for name, sub in study.per_task()}
    return one_study_keys(study)


def one_study_keys(study) -> dict:
    out: dict = {}
    first = {c.name: keys.build_keys(study, FPS, study.seeds_of(c.name)[0])[c.name] for c in study.candidates}
    group = [first[c.name] for c in study.candidates]
    for seed in study.seeds:
        built = keys.build_keys(study, FPS, seed)
        out[str(seed)] = {name: {"build": key, "evaluate": keys.eval_key(study, key, FPS),
                                 "measure": keys.measure_key(study, first[name], MACHINE, group),
                                 "perturbed": keys.perturbed_key(study, keys.eval_key(study, key, FPS), "p")}
                          for name, key in built.items()}
    out["integrity"] = keys.integrity_key(study, FPS)
    return out


def test_the_fixture_covers_every_shipped_study():
    assert sorted(BEFORE) == sorted(p.name for p in (ROOT / "studies").glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_cell_keys_are_the_ones_before_the_plugin_redesign(name, monkeypatch):
    monkeypatch.setenv("MINILM_DIR", "/minilm")  # the keys hold the spec as written, not the folder's content
    monkeypatch.setenv("SMOLLM2_DIR", "/smol")
    # the LLM serving settings (measure.serving) re-key the measure cells of studies whose models generate, by
    # design (those cells now measure more); without them every key is the one before
    monkeypatch.setattr(keys, "serving_applies", lambda study: False)
    assert study_keys(ROOT / "studies" / name) == BEFORE[name]


def test_serving_settings_enter_only_the_measure_keys_of_generating_studies(monkeypatch):
    monkeypatch.setenv("MINILM_DIR", "/minilm")
    monkeypatch.setenv("SMOLLM2_DIR", "/smol")
    lm, clf = load_study(ROOT / "studies" / "obqa-smollm2.yaml"), load_study(ROOT / "studies" / "digits.yaml")
    assert keys.serving_applies(lm) and not keys.serving_applies(clf)
    assert "serving" in keys.measure_settings(lm) and "serving" not in keys.measure_settings(clf)
