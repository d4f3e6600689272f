"""Measurement layer: threads, latency, throughput, FLOPs, memory and size on tiny real torch models."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from leanbench.measure import memory as memory_mod
from leanbench.measure.flops import flops_per_example
from leanbench.measure.latency import measure_latency, measure_throughput
from leanbench.measure.memory import peak_memory, weights_bytes
from leanbench.measure.size import model_size
from leanbench.measure.threads import available_cores, torch_threads
from leanbench.models.base import ModelAdapter

torch.set_num_threads(1)
quantize_warnings = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


class SeqAdapter(ModelAdapter):
    """A torch module behind the adapter interface; counts calls so tests can check what was timed."""

    adapter_name = "test-seq"

    def __init__(self, module: nn.Module, shape: tuple[int, ...] | None = None):
        self.module = module.eval()
        self.shape = shape
        self.prepare_calls = 0
        self.forward_calls = 0
        self.batch_sizes: list[int] = []

    def prepare(self, X: np.ndarray) -> torch.Tensor:
        self.prepare_calls += 1
        t = torch.as_tensor(np.asarray(X, dtype=np.float32))
        return t if self.shape is None else t.reshape(len(X), *self.shape)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        self.forward_calls += 1
        self.batch_sizes.append(len(inputs))
        with torch.no_grad():
            return self.module(inputs)

    def predict_proba(self, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return torch.softmax(self.forward(self.prepare(X)), -1).double().numpy()

    def save(self, path: Path) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, path: Path) -> ModelAdapter:
        raise NotImplementedError

    def num_params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def nonzero_params(self) -> int:
        return sum(int((p != 0).sum()) for p in self.module.parameters())

    def torch_module(self) -> nn.Module:
        return self.module


class Sleep(nn.Module):
    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return x


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def quantized(module: nn.Module, dtype: torch.dtype = torch.qint8) -> nn.Module:
    return torch.ao.quantization.quantize_dynamic(module, {nn.Linear}, dtype=dtype)


X64 = np.random.default_rng(0).normal(size=(20, 64))


# threads -------------------------------------------------------------------------------------------------

def test_torch_threads_sets_and_restores() -> None:
    torch.set_num_threads(1)
    with torch_threads(2) as n:
        assert n == 2 and torch.get_num_threads() == 2
    assert torch.get_num_threads() == 1
    with pytest.raises(RuntimeError), torch_threads(0) as n:
        assert n == available_cores() == torch.get_num_threads()
        raise RuntimeError("inside")
    assert torch.get_num_threads() == 1


def test_torch_threads_rejects_negative() -> None:
    from leanbench.errors import ConfigError

    with pytest.raises(ConfigError, match="threads: must be an integer >= 0.*got -1"), torch_threads(-1):
        pass


# latency -------------------------------------------------------------------------------------------------

def test_latency_keys_order_and_runs_honoured() -> None:
    model = SeqAdapter(mlp())
    out = measure_latency(model, X64, threads=1, batch=4, warmup=3, runs=25)
    assert set(out) == {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "threads", "batch",
                        "warmup", "runs", "method", "samples_ms"}
    assert len(out["samples_ms"]) == 25
    assert 0 < out["min_ms"] <= out["p50_ms"] <= out["p90_ms"] <= out["p99_ms"]
    assert (out["threads"], out["batch"], out["warmup"], out["runs"]) == (1, 4, 3, 25)
    assert model.forward_calls == 28 and set(model.batch_sizes) == {4}
    assert model.prepare_calls == 5  # 20 rows / batch 4: prepared once, before timing, then reused
    assert torch.get_num_threads() == 1


def test_latency_sees_a_known_delay() -> None:
    model = SeqAdapter(nn.Sequential(nn.Linear(64, 8), Sleep(0.002)))
    out = measure_latency(model, X64, warmup=1, runs=10)
    assert out["p50_ms"] >= 2.0 and out["min_ms"] >= 2.0


def test_latency_rejects_bad_setting() -> None:
    from leanbench.errors import ConfigError

    with pytest.raises(ConfigError, match="runs: must be an integer >= 1, got 0"):
        measure_latency(SeqAdapter(mlp()), X64, runs=0)


def test_throughput_tiles_small_data_and_is_consistent() -> None:
    model = SeqAdapter(nn.Sequential(nn.Linear(64, 8), Sleep(0.001)))
    out = measure_throughput(model, X64[:5], threads=1, batch=16, warmup=1, runs=5)
    assert set(model.batch_sizes) == {16} and model.forward_calls == 6
    assert out["threads"] == 1 and out["batch"] == 16 and out["runs"] == 5
    # odd number of runs: the median of batch/t is batch / median(t)
    assert out["per_s"] == pytest.approx(16 / (out["p50_batch_ms"] / 1e3), rel=1e-9)
    assert out["per_s"] <= 16 / 0.001


# FLOPs ---------------------------------------------------------------------------------------------------

def test_flops_of_mlp_exact() -> None:
    out = flops_per_example(SeqAdapter(mlp()), X64)
    assert out["flops"] == 2 * (64 * 32 + 32 * 10)


@quantize_warnings
def test_flops_of_quantized_copy_equal_fp32() -> None:
    out = flops_per_example(SeqAdapter(quantized(mlp())), X64)
    assert out["flops"] == 2 * (64 * 32 + 32 * 10)
    assert "int8 MACs as FLOPs" in out["method"]


def test_flops_of_conv_by_hand() -> None:
    # 3x8x8 input, 4 filters of 3x3, no padding: 4*6*6 outputs, each 3*3*3 MACs
    model = SeqAdapter(nn.Sequential(nn.Conv2d(3, 4, kernel_size=3), nn.Flatten()), shape=(3, 8, 8))
    X = np.random.default_rng(1).normal(size=(2, 3 * 8 * 8))
    assert flops_per_example(model, X)["flops"] == 2 * (4 * 6 * 6) * (3 * 3 * 3)


@pytest.mark.parametrize("inference", [False, True])
def test_lstm_flops_counted_once_whether_or_not_the_counter_sees_its_kernel(inference: bool) -> None:
    from leanbench.measure.flops import _count

    lstm = nn.LSTM(16, 8, batch_first=True, bidirectional=True)
    x = torch.randn(3, 5, 16)  # 15 tokens; per token and direction 2 * 4 gates * 8 * (16 + 8) FLOPs

    def forward(inputs: torch.Tensor) -> None:
        if inference:  # the LSTM decomposes into addmm ops that FlopCounterMode counts
            with torch.inference_mode():
                lstm(inputs)
        else:  # one fused kernel that FlopCounterMode does not see: counted by the hook
            lstm(inputs)

    flops, notes = _count(lstm, forward, x)
    assert flops == 15 * 2 * (2 * 4 * 8 * (16 + 8)) and "LSTM" in notes


def test_flops_unavailable_without_torch_module() -> None:
    class NoTorch(SeqAdapter):
        def torch_module(self) -> None:
            return None

    assert flops_per_example(NoTorch(mlp()), X64) == {"flops": None, "method": "unavailable"}


# memory --------------------------------------------------------------------------------------------------

def wide() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 100_000), nn.ReLU(), nn.Linear(100_000, 2))


def test_activation_bytes_cover_known_intermediate() -> None:
    X = np.random.default_rng(0).normal(size=(3, 10))
    out = peak_memory(SeqAdapter(wide()), X, batch=4)
    hidden = 4 * 100_000 * 4  # batch 4 x 100k float32
    # Linear output and ReLU output are alive together for a moment: peak is 2 hidden (+ the logits)
    assert hidden <= out["activation_bytes"] <= 2 * hidden + 1024
    assert out["weights_bytes"] == 4 * sum(p.numel() for p in wide().parameters())
    assert out["peak_bytes"] == out["weights_bytes"] + out["activation_bytes"]
    assert "profiler" in out["method"]
    rss = out["rss_peak_delta_bytes"]
    assert rss is None or rss >= 0


def test_activation_fallback_sums_module_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory_mod, "_profiled_peak", lambda forward, inputs: None)
    out = peak_memory(SeqAdapter(wide()), np.zeros((4, 10)), batch=4)
    # Linear, ReLU, Linear, and the Sequential's own output (= last Linear's)
    assert out["activation_bytes"] == 2 * (4 * 100_000 * 4) + 2 * (4 * 2 * 4)
    assert "forward hooks" in out["method"]


@quantize_warnings
def test_quantized_weights_about_a_quarter() -> None:
    torch.manual_seed(0)
    fp32 = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 512))
    w32 = weights_bytes(fp32)
    assert w32 == 4 * (2 * 512 * 512 + 2 * 512)
    w8 = weights_bytes(quantized(fp32))
    # int8 weights (1 byte) + fp32 bias + one scale and zero point per layer
    assert w8 == 2 * (512 * 512 + 4 * 512 + 16)
    assert 0.24 < w8 / w32 < 0.27
    w16 = weights_bytes(quantized(fp32, torch.float16))
    assert w16 == 2 * (2 * 512 * 512 + 4 * 512)


def test_shared_weights_counted_once() -> None:
    a = nn.Linear(8, 8)
    assert weights_bytes(nn.Sequential(a, nn.ReLU(), a)) == 4 * (64 + 8)


# size ----------------------------------------------------------------------------------------------------

def test_model_size(tmp_path: Path) -> None:
    module = mlp()
    with torch.no_grad():
        module[0].weight[:4] = 0
    (tmp_path / "weights.bin").write_bytes(b"x" * 1234)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "adapter.json").write_text("{}")
    out = model_size(SeqAdapter(module), tmp_path)
    n = 64 * 32 + 32 + 32 * 10 + 10
    assert out == {"params": n, "nonzero_params": n - 4 * 64, "size_bytes": 1234 + 2}


def test_measure_package_import_is_lean() -> None:
    code = "import sys, leanbench.measure as m; assert 'torch' not in sys.modules; print(m.__all__)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "measure_latency" in res.stdout


