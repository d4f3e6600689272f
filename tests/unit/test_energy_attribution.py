"""Energy per query is the candidate's own: its own calls' CPU time and its own memory (weights + peak
activations), not the process's resident set (every model loaded so far) or the other threads' CPU time."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from leanbench.measure.energy import EnergyConfig, EnergyMeter, other_threads_cpu, resident_gb
from leanbench.measure.latency import measure_energy
from leanbench.measure.memory import OWN_OTHER_METHOD, OWN_TORCH_METHOD, own_memory_bytes, peak_memory
from leanbench.models.base import ModelAdapter

ESTIMATE = EnergyConfig(backend="estimate")
X = np.random.default_rng(0).normal(size=(64, 64))


class Net(ModelAdapter):
    adapter_name = "test-net"

    def __init__(self, module: nn.Module):
        self.module = module.eval()

    def prepare(self, X: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(X, dtype=np.float32))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
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
        return self.num_params()

    def torch_module(self) -> nn.Module:
        return self.module


def nets() -> tuple[Net, Net]:
    torch.manual_seed(0)
    small = Net(nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 2)))
    big = Net(nn.Sequential(nn.Linear(64, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 2)))
    return small, big


def energy_of(model: Net, batch: int = 32) -> dict:
    own, _ = own_memory_bytes(peak_memory(model, X, batch=batch))
    return measure_energy(model, X, threads=1, batch=batch, warmup=3, runs=20, memory_bytes=own, energy=ESTIMATE,
                          min_seconds=0.3)


def cpu_per_call(model: Net, batch: int = 32, calls: int = 200) -> float:
    inputs = model.prepare(X[:batch])
    with torch.inference_mode():
        for _ in range(5):
            model.forward(inputs)
        t = time.thread_time()
        for _ in range(calls):
            model.forward(inputs)
        return (time.thread_time() - t) / calls


def test_a_much_faster_model_costs_markedly_less_energy_per_query():
    small, big = nets()
    faster = cpu_per_call(big) / cpu_per_call(small)
    assert faster > 10, faster  # the set-up: one model is much faster than the other
    e_small, e_big = energy_of(small), energy_of(big)
    ratio = e_big["j_per_query"] / e_small["j_per_query"]
    # energy per query scales with the candidate's own CPU time: no fixed cost per window, no process memory
    assert ratio > faster / 3, (ratio, faster)
    assert e_small["calls"] > 20 and e_small["wall_s"] >= 0.3  # a tiny model's window is long enough to read
    for e in (e_small, e_big):
        assert e["method"] == ESTIMATE.candidate_method
        assert e["queries"] == e["calls"] * 32 and not e["too_short"]


def test_the_memory_term_does_not_grow_with_other_models_in_the_process():
    small, _ = nets()
    before = energy_of(small)
    rss = resident_gb()
    others = [nets()[1] for _ in range(3)]  # other models loaded in the process, and a large buffer
    ballast = torch.ones(100_000_000)  # 0.4 GB
    assert resident_gb() - rss > 0.3
    after = energy_of(small)
    assert after["memory_gb"] == before["memory_gb"]
    expected, how = own_memory_bytes(peak_memory(small, X, batch=32))
    assert how == OWN_TORCH_METHOD and after["memory_gb"] == pytest.approx(expected / 1e9)
    assert after["memory_gb"] < 1e-3  # a few kB of weights and activations, not the process's GBs
    del others, ballast


def test_a_model_without_a_torch_module_is_charged_its_size_and_its_call_growth():
    got, how = own_memory_bytes({"peak_bytes": None, "rss_peak_delta_bytes": 4096}, size_bytes=10_000)
    assert (got, how) == (14_096, OWN_OTHER_METHOD)
    assert own_memory_bytes({"peak_bytes": 123, "rss_peak_delta_bytes": 4096}, size_bytes=10_000)[0] == 123
    assert own_memory_bytes({"peak_bytes": None}, None)[0] is None


@pytest.mark.skipif(other_threads_cpu() is None, reason="per-thread CPU time not readable here")
def test_other_python_threads_cpu_is_not_charged_to_the_candidate():
    stop = threading.Event()

    def spin() -> None:  # a busy neighbour thread in the same process (e.g. a progress display)
        while not stop.is_set():
            sum(range(1000))

    worker = threading.Thread(target=spin)
    worker.start()
    try:
        time.sleep(0.05)
        with EnergyMeter(ESTIMATE, memory_gb=0.0) as own:
            time.sleep(0.3)  # the work itself is idle: the busy thread takes the CPU
        with EnergyMeter(ESTIMATE) as whole:
            time.sleep(0.3)
    finally:
        stop.set()
        worker.join()
    assert whole.reading.cpu_s > 0.1  # the process-wide figure counts the busy thread
    assert own.reading.cpu_s < 0.05, own.reading
    assert "other Python threads excluded" in own.reading.detail
    assert own.reading.method == ESTIMATE.candidate_method and own.reading.memory_gb == 0.0


def test_the_method_text_states_the_attribution():
    m = EnergyConfig(cpu_watts_per_core=5, memory_watts_per_gb=0.5).candidate_method
    assert m.startswith("estimated: cpu 5 W/core x the candidate's own cpu-seconds")
    assert "weights + peak activations" in m and "not the process's resident set" in m
    with pytest.raises(Exception, match="memory_gb"):
        EnergyMeter(ESTIMATE, memory_gb=-1.0)
