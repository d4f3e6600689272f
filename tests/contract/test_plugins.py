"""One contract suite over every registered plugin (as scikit-learn's ``parametrize_with_checks``): the cases
are generated from the registries (``FAMILIES``, ``STEPS`` handlers), so a plugin is covered by being
registered, and a registered plugin without a factory or a step config fails here.

- every family: its adapter's interface (``leanbench.models.base.ModelAdapter``) on a tiny real model;
- every (step, family[, method]) a handler declares: the input model is left untouched, the same seed
  gives the same model, the FLOP estimate is finite and >= 0, the output family is the declared one;
- every (step, family) with no handler, and every method a family's handler leaves out: ``ModelError``
  naming the step (method), the family and what the step supports.
"""

from __future__ import annotations

import json
import math
import typing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from leanbench.errors import ModelError
from leanbench.evaluate.multiple_choice import requests_of
from leanbench.models.base import load_model
from leanbench.plugins import FAMILIES, STEPS, adapter_class, apply_step

from .conftest import FAMILY_FACTORIES, STEP_CONFIGS, Built, step_ctx

FAMILY_NAMES = FAMILIES.names()
STEP_CASES = [(step, family, method)
              for step in STEPS.names()
              for family, handler in sorted(STEPS.get(step).handlers.items())
              for method in (handler.methods or (None,))]
UNSUPPORTED = [(step, family) for step in STEPS.names() for family in FAMILY_NAMES
               if family not in STEPS.get(step).handlers]


def _method_values(config: type) -> tuple[str, ...]:
    """The values a config's `method` field allows (a Literal), or () when it has none."""
    field = getattr(config, "model_fields", {}).get("method")
    return typing.get_args(field.annotation) if field is not None else ()


UNSUPPORTED_METHODS = [(step, family, method)
                       for step in STEPS.names()
                       for family, handler in sorted(STEPS.get(step).handlers.items()) if handler.methods
                       for method in _method_values(STEPS.get(step).config) if method not in handler.methods]


# (step, family, method) -> why its contract fails, for a known bug being fixed: xfail(strict=True), so a fix
# turns it into a failure to remove from here.
# lora (hf) was here: peft drew the A matrices from torch's global generator before the step seeded it.
KNOWN_STEP_FAILURES: dict[tuple[str, str, str | None], str] = {}


def _step_params() -> list[Any]:
    return [pytest.param(*case, id=_case_id(case),
                         marks=[pytest.mark.xfail(strict=True, raises=AssertionError, reason=KNOWN_STEP_FAILURES[case])]
                         if case in KNOWN_STEP_FAILURES else [])
            for case in STEP_CASES]


def _case_id(case: tuple) -> str:
    return "-".join(str(part) for part in case if part is not None)


def classifies(family: str) -> bool:
    return "classification" in FAMILIES.get(family).serves


# --------------------------------------------------------------------------- what a model computes
def outputs(model: Any, data: Any) -> np.ndarray:
    """What a model's evaluation reads, on the test split: class probabilities for a classification family;
    for a causal LM, the log-likelihood of every (question, choice) request (its predict_proba raises by
    design: multiple-choice and language-modeling evaluation score choices / documents by log-likelihood,
    so `loglikelihood` is the contract that applies)."""
    if classifies(model.adapter_name):
        return np.asarray(model.predict_proba(data.test.X))
    results = model.loglikelihood(requests_of(data.test.X, " "))
    return np.array([[ll, float(greedy)] for ll, greedy in results], dtype=np.float64)


def _arrays(value: Any, prefix: str) -> dict[str, np.ndarray]:
    """State-dict values as numpy arrays: tensors (quantized ones as int values, scales and zero points),
    and the tuples dynamic int8 layers keep their packed weight and bias in."""
    if isinstance(value, torch.Tensor):
        if value.is_quantized:
            scale = (value.q_per_channel_scales() if value.qscheme() in (torch.per_channel_affine,
                                                                         torch.per_channel_symmetric)
                     else torch.tensor([value.q_scale()]))
            return {prefix: value.int_repr().numpy().copy(), prefix + ":scale": scale.numpy().copy()}
        return {prefix: value.detach().cpu().float().numpy().copy()}
    if isinstance(value, (tuple, list)):
        out: dict[str, np.ndarray] = {}
        for i, v in enumerate(value):
            out.update(_arrays(v, f"{prefix}[{i}]"))
        return out
    return {}


def snapshot(model: Any, data: Any) -> dict[str, Any]:
    """Everything observable about a model: its outputs, parameter counts, describe(), and the values of its
    torch module's state dict when it has one."""
    state: dict[str, np.ndarray] = {}
    module = model.torch_module()
    if module is not None:
        for name, value in module.state_dict().items():
            state.update(_arrays(value, name))
    return {"outputs": outputs(model, data), "num_params": model.num_params(),
            "nonzero_params": model.nonzero_params(), "describe": json.dumps(model.describe(), sort_keys=True),
            "state": state}


def assert_unchanged(before: dict[str, Any], after: dict[str, Any], what: str) -> None:
    np.testing.assert_array_equal(after["outputs"], before["outputs"], err_msg=f"{what}: outputs changed")
    for key in ("num_params", "nonzero_params", "describe"):
        assert after[key] == before[key], f"{what}: {key} changed"
    assert after["state"].keys() == before["state"].keys(), f"{what}: state dict keys changed"
    changed = [k for k in before["state"] if not np.array_equal(before["state"][k], after["state"][k])]
    assert not changed, f"{what}: tensors changed: {changed[:5]}"


# --------------------------------------------------------------------------- coverage
def test_every_registered_family_has_a_factory():
    missing = set(FAMILIES.names()) - set(FAMILY_FACTORIES)
    assert not missing, f"families without a contract factory in tests/contract/conftest.py: {sorted(missing)}"


def test_every_registered_step_handler_has_a_config():
    missing = [case for case in STEP_CASES if case not in STEP_CONFIGS]
    assert not missing, f"(step, family, method) without a config in tests/contract/conftest.py: {missing}"
    stale = set(STEP_CONFIGS) - set(STEP_CASES)
    assert not stale, f"configs for pairs no handler declares: {sorted(stale, key=str)}"
    for (step, _, method), cfg in STEP_CONFIGS.items():
        assert isinstance(cfg, STEPS.get(step).config)
        assert getattr(cfg, "method", None) == method or method is None


def test_the_suite_covers_something():
    assert len(FAMILY_NAMES) >= 7 and len(STEP_CASES) >= 30 and UNSUPPORTED


# --------------------------------------------------------------------------- adapter contract
@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_factory_builds_the_family(built: Built, family: str):
    model, _ = built.get(family)
    assert model.adapter_name == family
    assert isinstance(model, adapter_class(family))


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_predictions(built: Built, family: str):
    model, data = built.get(family)
    X = data.test.X
    if classifies(family):
        probs = model.predict_proba(X)
        assert isinstance(probs, np.ndarray) and probs.dtype == np.float64
        assert probs.shape == (len(X), data.n_classes)
        assert np.all(np.isfinite(probs)) and np.all(probs >= 0)
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-9)
        # batching changes nothing but the batches (values may differ slightly: dynamic int8 quantizes
        # activations per batch, and padding follows the batch's longest text)
        small = model.predict_proba(X, batch_size=3)
        assert small.shape == probs.shape and small.dtype == np.float64
        np.testing.assert_allclose(small.sum(1), 1.0, atol=1e-9)
        return
    # a causal LM gives log-likelihoods, not class probabilities (ModelAdapter.predict_proba does not apply);
    # its contract is the one evaluation uses: one (log-likelihood <= 0, is_greedy) per request, and
    # (log-likelihood, token count) per document for language modeling
    with pytest.raises(ModelError, match="log-likelihoods"):
        model.predict_proba(X)
    requests = requests_of(X, " ")
    scores = model.loglikelihood(requests)
    assert len(scores) == len(requests)
    assert all(math.isfinite(ll) and ll <= 0 and isinstance(g, bool) for ll, g in scores)
    rolling = model.loglikelihood_rolling(["The cat runs.", "A small dog sees the old tree."])
    assert [n > 0 and math.isfinite(ll) and ll < 0 for ll, n in rolling] == [True, True]


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_save_load_round_trip(built: Built, family: str, tmp_path: Path):
    """Reloaded models give bit-identical outputs (np.array_equal) for every family: the weights are stored
    as they are (safetensors / the ONNX bytes / the fitted coefficients), not re-derived."""
    model, data = built.get(family)
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.adapter_name == family
    np.testing.assert_array_equal(outputs(loaded, data), outputs(model, data))
    assert (loaded.num_params(), loaded.nonzero_params()) == (model.num_params(), model.nonzero_params())


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_param_counts(built: Built, family: str):
    model, _ = built.get(family)
    total, nonzero = model.num_params(), model.nonzero_params()
    assert isinstance(total, int) and isinstance(nonzero, int)
    assert total >= nonzero >= 0 and total > 0


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_describe(built: Built, family: str):
    model, _ = built.get(family)
    described = model.describe()
    json.dumps(described)
    assert described["adapter"] == family


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_torch_module_and_forward(built: Built, family: str):
    from torch import nn

    model, data = built.get(family)
    module = model.torch_module()
    assert module is None or isinstance(module, nn.Module)
    out = model.forward(model.prepare(data.test.X[:3]))  # what latency measurement times
    assert len(out) == 3


# --------------------------------------------------------------------------- step contract
@pytest.mark.parametrize(("step", "family", "method"), _step_params())
def test_step_contract(built: Built, tmp_path: Path, step: str, family: str, method: str | None):
    if (step, family, method) not in STEP_CONFIGS:
        pytest.fail(f"no config for ({step!r}, {family!r}, {method!r}) in tests/contract/conftest.py STEP_CONFIGS")
    cfg = STEP_CONFIGS[step, family, method]
    plugin = STEPS.get(step)
    model, data = built.get(family)
    teacher = None
    if plugin.named(cfg):  # a teacher of the same family, built independently of the student
        teacher_model = built.get(family, "teacher")[0]

        def teacher(name: str) -> tuple[Any, str]:
            return teacher_model, f"contract-{family}-teacher"

    before = snapshot(model, data)
    # the global torch RNG is left in a different state before each run: a step's result must depend on its
    # seed (ctx.seed / cfg.seed), not on what ran before it in the process
    torch.manual_seed(1)
    first = apply_step(step, cfg, model, step_ctx(data, tmp_path / "run1", seed=0, teacher=teacher))
    assert_unchanged(before, snapshot(model, data), f"{step} on {family}: the input model")

    expected = plugin.output_family(cfg, family)
    assert first.model.adapter_name == expected
    assert isinstance(first.model, adapter_class(expected))
    assert isinstance(first.flops, (int, float)) and math.isfinite(first.flops) and first.flops >= 0
    json.dumps(first.info, default=str)

    # the same seed, a fresh cache folder (the teacher's logits computed anew): the same model, bit for bit
    # (np.array_equal; every registered step is exact on CPU with one torch thread and single-threaded ONNX
    # Runtime sessions: relax to allclose(rtol=atol=1e-6) only for a plugin whose kernels are not)
    torch.manual_seed(2)
    second = apply_step(step, cfg, model, step_ctx(data, tmp_path / "run2", seed=0, teacher=teacher))
    assert second.model.adapter_name == expected
    np.testing.assert_array_equal(outputs(second.model, data), outputs(first.model, data))
    assert second.model.num_params() == first.model.num_params()


# --------------------------------------------------------------------------- unsupported pairs
@pytest.mark.parametrize(("step", "family"), UNSUPPORTED, ids=map(_case_id, UNSUPPORTED))
def test_unsupported_pair_is_a_clear_error(step: str, family: str):
    plugin = STEPS.get(step)
    cfg = next(c for (s, _, _), c in STEP_CONFIGS.items() if s == step)
    stand_in = SimpleNamespace(adapter_name=family)  # the family check runs before any handler
    with pytest.raises(ModelError) as err:
        apply_step(step, cfg, stand_in, step_ctx(None, Path("unused")))
    message = str(err.value)
    assert f"step '{step}'" in message and f"a {family} model" in message
    assert f"{step} supports: {plugin.supports()}" in message
    assert all(f in message for f in plugin.handlers)


@pytest.mark.parametrize(("step", "family", "method"), UNSUPPORTED_METHODS, ids=map(_case_id, UNSUPPORTED_METHODS))
def test_unsupported_method_is_a_clear_error(step: str, family: str, method: str):
    plugin = STEPS.get(step)
    cfg = plugin.config(method=method)
    with pytest.raises(ModelError) as err:
        apply_step(step, cfg, SimpleNamespace(adapter_name=family), step_ctx(None, Path("unused")))
    message = str(err.value)
    assert f"{step} method '{method}'" in message and f"a {family} model" in message
    assert f"{step} supports: {plugin.supports()}" in message
