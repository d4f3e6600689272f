"""`device: cuda` for PyTorch candidates (issue 28): the settings, their validation, the cell keys, the device
helpers; and, on a machine with a GPU, a tiny study evaluated and measured there (skipped here, with the reason)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from leanbench.errors import ConfigError, ModelError
from leanbench.models import device as dev
from leanbench.study_loader import parse_study

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device on this machine (torch.cuda.is_available() is False)")


def study(evaluate_device: str = "cpu", profile_device: str = "cpu", candidates: list | None = None) -> dict:
    return {
        "name": "dev", "seed": 0, "task": {"data": "sklearn:iris"}, "reference": "big",
        "candidates": candidates or [
            {"name": "big", "model": {"arch": "mlp", "hidden": [64]}, "steps": [{"train": {"epochs": 5}}]},
            {"name": "small", "model": {"arch": "mlp", "hidden": [8]}, "steps": [{"train": {"epochs": 5}}]},
        ],
        "evaluate": {"bootstrap": 100, "perturbations": "none", "device": evaluate_device},
        "measure": {"runs": 12, "warmup": 1, "rounds": 6, "throughput_runs": 3,
                    "serving": {"enabled": False}},
        "deploy": {"profiles": [{"name": "edge", "threads": 1, "batch": 1},
                                {"name": "gpu", "threads": 1, "batch": 4, "device": profile_device}],
                   "auto_batches": [1]},
    }


WITH_SKLEARN = [
    {"name": "big", "model": {"arch": "mlp", "hidden": [64]}, "steps": [{"train": {"epochs": 5}}]},
    {"name": "tfidf", "model": {"arch": "tfidf-logreg"}, "steps": ["train"]},
]


# --------------------------------------------------------------------------- settings and validation
def test_device_defaults_to_cpu_and_unknown_devices_are_one_message() -> None:
    s = parse_study(study())
    assert s.evaluate.device == "cpu" and [p.device for p in s.deploy.profiles] == ["cpu", "cpu"]
    bad = study()
    bad["deploy"]["profiles"][1]["device"] = "tpu"
    with pytest.raises(ConfigError) as exc:
        parse_study(bad)
    assert "deploy.profiles[1].device" in str(exc.value) and "'cpu'" in str(exc.value)


@pytest.mark.skipif(CUDA, reason="checks the message of a machine without CUDA")
def test_cuda_without_a_gpu_is_one_message_per_setting_and_exit_2(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_study(study("cuda", "cuda"))
    text = str(exc.value)
    assert "evaluate.device: 'cuda' asked for, but" in text and "deploy.profiles[1].device: 'cuda'" in text
    assert "torch.cuda.is_available() is False" in text or "built without CUDA" in text
    import yaml
    from typer.testing import CliRunner

    from leanbench.cli import app

    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(study("cpu", "cuda")))
    res = CliRunner().invoke(app, ["validate", str(f)])
    assert res.exit_code == 2 and "deploy.profiles[1].device" in res.output and "Traceback" not in res.output


def test_a_cuda_profile_refuses_cpu_only_families(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a GPU (faked here: the check's answer), a cuda profile may time PyTorch models only; the evaluation
    device may be cuda with any family (the others evaluate on their own runtime)."""
    monkeypatch.setattr(dev, "cuda_problem", lambda: None)
    s = study(profile_device="cuda", candidates=WITH_SKLEARN)
    s["task"] = {"data": "sklearn:iris"}
    with pytest.raises(ConfigError) as exc:
        parse_study({**s, "candidates": WITH_SKLEARN})
    assert ("deploy.profiles[1].device: cuda measures PyTorch models only; 'tfidf' (sklearn) run on the CPU only"
            in str(exc.value))
    assert parse_study(study(evaluate_device="cuda", profile_device="cuda")).deploy.profiles[1].device == "cuda"


def test_cpu_is_key_neutral_and_cuda_makes_its_own_cells() -> None:
    from leanbench.runner.keys import eval_key, measure_key

    fps = {"train": "a", "validation": "b", "test": "c"}
    machine = {"cpu": "cpu", "cores": 2, "torch": "2.13.0", "gpu": "H100"}
    cpu = parse_study(study())
    plain = cpu.model_copy(update={"evaluate": cpu.evaluate.model_copy(update={"device": "cpu"})})
    cuda_eval = cpu.model_copy(update={"evaluate": cpu.evaluate.model_copy(update={"device": "cuda"})})
    profiles = [p.model_copy(update={"device": "cuda"}) if p.name == "gpu" else p for p in cpu.deploy.profiles]
    cuda_measure = cpu.model_copy(update={"deploy": cpu.deploy.model_copy(update={"profiles": profiles})})
    assert eval_key(cpu, "k", fps) == eval_key(plain, "k", fps) != eval_key(cuda_eval, "k", fps)
    assert measure_key(cpu, "k", machine, ["k"]) == measure_key(cuda_eval, "k", machine, ["k"])
    assert measure_key(cpu, "k", machine, ["k"]) != measure_key(cuda_measure, "k", machine, ["k"])
    other_gpu = {**machine, "gpu": "A100"}
    assert measure_key(cuda_measure, "k", machine, ["k"]) != measure_key(cuda_measure, "k", other_gpu, ["k"])
    assert measure_key(cpu, "k", machine, ["k"]) == measure_key(cpu, "k", other_gpu, ["k"])  # gpu: cuda only


# --------------------------------------------------------------------------- the helpers, on a CPU
def test_cpu_only_models_refuse_to_move_with_a_reason() -> None:
    from leanbench.models.torch_common import quantized_linear_type
    from leanbench.models.torch_models import TorchAdapter

    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    arch = {"arch": "mlp", "hidden": [8], "in_features": 4, "n_classes": 3}
    q = torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)
    assert any(isinstance(m, quantized_linear_type()) for m in q.modules())
    adapter = TorchAdapter(q, arch, (4,), quantized="dynamic-int8")
    assert dev.cpu_only_layers(q) == ["0", "2"]
    with pytest.raises(ModelError, match="CPU-only kernels .*: 0, 2"):
        adapter.to_device("cuda")
    assert adapter.device == "cpu"
    with pytest.raises(ModelError, match="unknown device 'tpu'"):
        adapter.to_device("tpu")

    from leanbench.models.base import ModelAdapter

    class Plain(ModelAdapter):  # a non-torch family: the base refuses anything but the CPU
        adapter_name = "plain"
        predict_proba = prepare = forward = save = num_params = nonzero_params = lambda *a, **k: None
        load = classmethod(lambda cls, p: cls())

    Plain().to_device("cpu")
    with pytest.raises(ModelError, match="a plain model runs on the CPU only, not on cuda"):
        Plain().to_device("cuda")
    assert not dev.supports(Plain(), "cuda") and dev.supports(Plain(), "cpu") and dev.supports(adapter, "cuda")


def test_on_cpu_everything_is_as_before() -> None:
    from leanbench.models.torch_models import TorchAdapter

    module = torch.nn.Sequential(torch.nn.Linear(4, 3))
    adapter = TorchAdapter(module, {"arch": "mlp", "hidden": [], "in_features": 4, "n_classes": 3}, (4,))
    call = adapter.forward
    assert dev.synced(adapter, call) is call and dev.model_device(adapter) == "cpu"
    x = {"a": torch.ones(2), "b": [torch.zeros(1)], "c": 3}
    assert dev.move(x, "cpu")["a"] is x["a"] and dev.move(x, "cpu")["c"] == 3
    with dev.on_device(adapter, "cpu"):
        assert adapter.prepare(np.ones((2, 4))).device.type == "cpu"


def test_gpu_energy_says_why_it_is_not_measured() -> None:
    """Without pynvml (here) or with an unreadable counter, the window reads no joules and says why."""
    with dev.GpuEnergy() as e:
        pass
    try:
        import pynvml  # noqa: F401
    except ImportError:
        assert e.joules is None and "pynvml is not installed" in e.reason
    else:  # pragma: no cover - a machine with NVML
        assert e.joules is not None or "unreadable" in e.reason
    from leanbench.measure.latency import _with_gpu_energy

    host = {"joules": 2.0, "queries": 4, "uncertainty": 0.5, "detail": "", "method": "estimate"}
    none = _with_gpu_energy(host, e if e.joules is None else type("E", (), {"joules": None, "reason": "x"})())
    assert none["joules"] == 2.0 and none["method"].startswith("estimate; host only: ")
    read = _with_gpu_energy(host, type("E", (), {"joules": 6.0, "reason": None})())
    assert read["joules"] == 8.0 and read["j_per_query"] == 2.0 and read["uncertainty"] == pytest.approx(0.1625)
    assert "NVML" in read["method"]


# --------------------------------------------------------------------------- on a GPU
@needs_cuda
def test_a_study_evaluated_and_measured_on_the_gpu_agrees_with_the_cpu(tmp_path: Path) -> None:
    from leanbench.runner.local import run_study
    from leanbench.store import Store

    store = Store.open(tmp_path / "lb.db")
    cpu, gpu = parse_study({**study(), "name": "on-cpu"}), parse_study({**study("cuda", "cuda"), "name": "on-gpu"})
    run_study(cpu, store)
    run_study(gpu, store)
    rows = {s: {c["name"]: c["cells"] for c in store.candidates(s)} for s in ("on-cpu", "on-gpu")}
    for name in ("big", "small"):
        a, b = (rows[s][name] for s in ("on-cpu", "on-gpu"))
        assert a["build"] == b["build"] and a["evaluate"] != b["evaluate"]  # same model, its own cuda cell
        pa, pb = (store.predictions(cells["evaluate"]["0"]) for cells in (a, b))
        np.testing.assert_allclose(pb["scores"], pa["scores"], atol=1e-5)
        assert store.cell(b["evaluate"]["0"])["result"]["device"] == "cuda"
        m = store.cell(b["measure"])["result"]["profiles"]
        assert m["edge"]["device"] == "cpu" and m["gpu"]["device"] == "cuda"
        assert m["gpu"]["latency"]["p50_ms"] > 0 and m["gpu"]["throughput"]["per_s"] > 0
        assert m["gpu"]["memory"]["method"].startswith("GPU:") and m["gpu"]["memory"]["peak_bytes"] > 0
        assert "GPU" in m["gpu"]["energy_method"]  # NVML joules, or "host only: GPU energy not measured ..."


@needs_cuda
def test_a_causal_lm_scores_and_generates_the_same_on_the_gpu(tmp_path: Path) -> None:
    from tiny_lm import build_tiny_lm

    from leanbench.measure.memory import peak_memory
    from leanbench.measure.serving import generation_memory, timed_generation
    from leanbench.models.causal_lm import load_hf_causal_lm

    lm = load_hf_causal_lm(str(build_tiny_lm(tmp_path / "llama")))
    requests = [("The cat", " runs."), ("The cat", " sleeps under the tree."), ("", "A dog.")]
    prompts = [lm.encode(["The small cat runs under the old tree."])[0]] * 2
    on_cpu = lm.loglikelihood(requests), lm.loglikelihood_rolling(["The old tree."]), lm.generate_greedy(prompts, 8)
    with dev.on_device(lm, "cuda"):
        assert lm.device == "cuda" and lm.prepare(np.array(["a b c"], dtype=object)).device.type == "cuda"
        on_gpu = lm.loglikelihood(requests), lm.loglikelihood_rolling(["The old tree."]), lm.generate_greedy(prompts, 8)
        timing = timed_generation(lm, prompts, 8)
        mem = generation_memory(lm, prompts, 8)
        fwd = peak_memory(lm, np.array(["a b c d"], dtype=object), batch=2)
    assert lm.device == "cpu"  # moved back
    np.testing.assert_allclose([r[0] for r in on_gpu[0]], [r[0] for r in on_cpu[0]], atol=1e-3)
    assert [r[1] for r in on_gpu[0]] == [r[1] for r in on_cpu[0]]
    np.testing.assert_allclose(on_gpu[1][0][0], on_cpu[1][0][0], atol=1e-3)
    assert on_gpu[2] == on_cpu[2]  # greedy tokens (a tiny random model: no near-ties at these lengths)
    assert timing and mem["method"].startswith("GPU:") and mem["peak_bytes"] > mem["weights_bytes"] > 0
    assert fwd["method"].startswith("GPU:") and fwd["activation_bytes"] > 0
