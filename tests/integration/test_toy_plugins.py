"""A plugin is one module plus its descriptor: a toy model family (adapter + model kind) and a toy step,
defined here and registered, go through a whole study (validate, build, evaluate, measure, analyse) with no
other change. An unsupported (step, family) pair is a clear error at validate time, before anything runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pytest
from pydantic import Field
from sklearn.neighbors import NearestCentroid

from leanbench.analysis import analyse
from leanbench.compress.base import StepResult
from leanbench.errors import ConfigError
from leanbench.models.base import ModelAdapter, load_model, read_adapter_file, write_adapter_file
from leanbench.plugins import FAMILIES, MODEL_KINDS, STEPS, Family, Handler, ModelKind, StepPlugin
from leanbench.runner.keys import build_keys
from leanbench.runner.local import load_data, run_study
from leanbench.schema.base import Strict
from leanbench.store import Store
from leanbench.study_loader import parse_study


# --------------------------------------------------------------------------- the toy family: nearest centroid
class CentroidAdapter(ModelAdapter):
    """Class probabilities from a softmax over negative squared distances to one centroid per class."""

    adapter_name = "toy-centroid"

    def __init__(self, centroids: np.ndarray, scale: float = 1.0):
        self.centroids = np.asarray(centroids, dtype=np.float64)
        self.scale = scale

    def prepare(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float64).reshape(len(X), -1)

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        return -self.scale * ((inputs[:, None, :] - self.centroids[None]) ** 2).sum(-1)

    def predict_proba(self, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
        logits = self.forward(self.prepare(X))
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(1, keepdims=True)

    def save(self, path: Path) -> None:
        write_adapter_file(path, self.adapter_name, {"scale": self.scale})
        (path / "centroids.json").write_text(json.dumps(self.centroids.tolist()))

    @classmethod
    def load(cls, path: Path) -> CentroidAdapter:
        info = read_adapter_file(path)
        return cls(np.array(json.loads((Path(path) / "centroids.json").read_text())), info["scale"])

    def num_params(self) -> int:
        return int(self.centroids.size)

    def nonzero_params(self) -> int:
        return int(np.count_nonzero(self.centroids))

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.adapter_name, "classes": len(self.centroids)}


class CentroidSpec(Strict):
    pretrained: ClassVar[bool] = True  # fitted when built: may be evaluated as it is
    arch: Literal["toy-centroid"] = "toy-centroid"
    scale: float = Field(1.0, gt=0)


def build_centroids(spec: CentroidSpec, data: Any, seed: int) -> CentroidAdapter:
    X, y = data.train.X.reshape(len(data.train), -1).astype(np.float64), data.train.y
    return CentroidAdapter(np.stack([X[y == k].mean(0) for k in range(data.n_classes)]), spec.scale)


# --------------------------------------------------------------------------- the toy step: coarser centroids
class RoundConfig(Strict):
    decimals: int = Field(0, ge=0, le=6)


def round_centroids(cfg: RoundConfig, model: CentroidAdapter, ctx: Any) -> StepResult:
    rounded = CentroidAdapter(np.round(model.centroids, cfg.decimals), model.scale)
    return StepResult(rounded, flops=float(model.centroids.size), info={"decimals": cfg.decimals})


@pytest.fixture
def toy_plugins():
    FAMILIES.add("toy-centroid", Family("toy-centroid", CentroidAdapter, ("classification",), "a toy centroid model"))
    MODEL_KINDS.add("toy-centroid", ModelKind("toy-centroid", CentroidSpec, build_centroids, "toy-centroid"))
    STEPS.add("round", StepPlugin("round", RoundConfig, handlers={"toy-centroid": Handler(round_centroids)}))
    yield
    for registry, name in ((FAMILIES, "toy-centroid"), (MODEL_KINDS, "toy-centroid"), (STEPS, "round")):
        registry.remove(name)


STUDY = {
    "name": "toy",
    "task": {"data": "sklearn:iris"},
    "reference": "centroid",
    "candidates": [
        {"name": "centroid", "model": {"arch": "toy-centroid", "scale": 0.5}},
        {"name": "centroid-rounded", "from": "centroid", "steps": [{"round": {"decimals": 0}}]},
        {"name": "mlp", "model": {"arch": "mlp", "hidden": [8]}, "steps": [{"train": {"epochs": 5}}]},
    ],
    "evaluate": {"bootstrap": 200, "perturbations": "none"},
    "measure": {"runs": 10, "warmup": 1, "throughput_runs": 3, "throughput_warmup": 0},
    "deploy": {"profiles": [{"name": "edge", "threads": 1, "batch": 1}]},
    "integrity": {"contamination": False},
}


def test_a_toy_family_and_step_run_through_a_whole_study(toy_plugins, tmp_path):
    study = parse_study(STUDY)
    assert study.families() == {"centroid": "toy-centroid", "centroid-rounded": "toy-centroid", "mlp": "torch"}
    store = Store.open(tmp_path / "s.db")
    summary = run_study(study, store)
    assert not summary.cells_reused and len(summary.cells_run) == 3 * 3  # build, evaluate, measure each
    results = analyse(store, "toy").to_dict()
    by_name = {c["name"]: c for c in results["candidates"]}
    assert by_name["centroid"]["params"] == 3 * 4 and by_name["centroid-rounded"]["params"] == 3 * 4
    data = load_data(study)  # the same examples, scored by scikit-learn's nearest centroid
    flat = [s.X.reshape(len(s), -1) for s in (data.train, data.test)]
    expected = NearestCentroid().fit(flat[0], data.train.y).score(flat[1], data.test.y)
    assert by_name["centroid"]["metrics"]["accuracy"]["value"] == pytest.approx(expected)
    assert by_name["centroid-rounded"]["vs_reference"]["verdict"] in ("non-inferior", "inconclusive", "inferior",
                                                                      "superior")
    assert by_name["centroid-rounded"]["latency"]["edge"]["p50_ms"] > 0
    built = store.cell(study_keys(study)["centroid-rounded"])
    assert np.allclose(load_model(built["artifact"]).centroids % 1, 0)  # the step ran on the saved model
    assert len(run_study(study, store).cells_run) == 0  # and everything is reused


def study_keys(study: Any) -> dict[str, str]:
    return build_keys(study, load_data(study).fingerprints)


def test_a_step_without_a_handler_for_the_family_is_a_validate_time_error(toy_plugins):
    bad = {**STUDY, "candidates": [*STUDY["candidates"],
                                   {"name": "mlp-rounded", "from": "mlp", "steps": [{"round": {}}]},
                                   {"name": "centroid-pruned", "from": "centroid", "steps": [{"prune": {}}]}]}
    with pytest.raises(ConfigError) as info:
        parse_study(bad)
    assert info.value.problems == [
        "candidates[3].steps[0].round: step 'round' does not apply to a torch model (a leanbench torch model); "
        "round supports: toy-centroid",
        "candidates[4].steps[0].prune: step 'prune' does not apply to a toy-centroid model (a toy centroid model); "
        "prune supports: torch (magnitude, structured), hf (magnitude, heads, ffn, layers), causal-lm (magnitude, 2:4)",
    ]


def test_unknown_toy_keys_get_a_did_you_mean(toy_plugins):
    bad = {**STUDY, "candidates": [{"name": "centroid", "model": {"arch": "toy-centroid", "scal": 2}},
                                   {"name": "r", "from": "centroid", "steps": [{"round": {"decimal": 1}}]}]}
    with pytest.raises(ConfigError) as info:
        parse_study(bad)
    assert info.value.problems == [
        "candidates[0].model.scal: unknown key 'scal' (did you mean 'scale'?)",
        "candidates[1].steps[0].round.decimal: unknown key 'decimal' (did you mean 'decimals'?)",
    ]
