"""Greedy generation on the PyTorch causal LM and the LLM serving protocol (measure/serving.py): generation equal
to transformers' `generate(do_sample=False)` token for token, the protocol's figures on the tiny Llama, and on
a stub adapter with known sleep times, the figures the sleeps imply."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from tiny_lm import build_tiny_lm, sentences  # noqa: E402

from leanbench.errors import ConfigError, ModelError  # noqa: E402
from leanbench.measure.serving import kv_cache_bytes, measure_serving  # noqa: E402
from leanbench.models.causal_lm import CausalLMAdapter, load_hf_causal_lm  # noqa: E402
from leanbench.study import ServingConfig  # noqa: E402


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> CausalLMAdapter:
    torch.set_num_threads(1)
    return load_hf_causal_lm(str(build_tiny_lm(tmp_path_factory.mktemp("lm") / "llama")))


def _hf_generate(adapter: CausalLMAdapter, prompts: list[list[int]], n: int, **kw) -> list[list[int]]:
    """transformers' own greedy generation over the same left-padded batch: the independent reference."""
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    out = adapter.model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=n,
                                 pad_token_id=0, **kw)
    return out[:, width:].tolist()


def test_generate_greedy_equals_transformers_generate(llama):
    prompts = llama.encode(sentences(7, seed=3))
    assert len({len(p) for p in prompts}) > 2  # really left-padded
    steps: list[int] = []
    mine = llama.generate_greedy(prompts, 24, on_step=steps.append)
    assert mine == _hf_generate(llama, prompts, 24, min_new_tokens=24)
    assert steps == list(range(24))
    assert [len(o) for o in mine] == [24] * len(prompts)
    # one prompt alone gives what it gives in the batch (padding changes nothing)
    assert llama.generate_greedy(prompts[2:3], 24) == [mine[2]]


def test_generate_greedy_stops_at_a_stop_token(llama):
    prompts = llama.encode(sentences(5, seed=4))
    free = llama.generate_greedy(prompts, 12)
    stop = free[0][3]  # a token the first sequence produces at step 3
    stopped = llama.generate_greedy(prompts, 12, stop_ids={stop})
    for full, cut in zip(free, stopped, strict=True):
        end = full.index(stop) + 1 if stop in full else len(full)
        assert cut == full[:end]  # the stop token is kept, nothing after it
    assert len(stopped[0]) <= 4 < len(free[0])
    # transformers stops at the eos token the same way (eos = pad = 0 here: compare up to the stop)
    ref = _hf_generate(llama, prompts, 12, eos_token_id=stop)
    assert [r[:len(c)] for r, c in zip(ref, stopped, strict=True)] == stopped


def test_generate_greedy_bad_input(llama):
    with pytest.raises(ModelError, match="at least one token"):
        llama.generate_greedy([[1, 2], []], 3)
    with pytest.raises(ModelError, match="max_new_tokens"):
        llama.generate_greedy([[1, 2]], 0)


def test_serving_protocol_on_the_tiny_llama(llama):
    X = np.asarray(sentences(10, seed=5), dtype=object)
    cfg = ServingConfig(prompt_lengths=[16, 40, 200], new_tokens=8, batches=[1, 3], rounds=3, warmup=1)
    other = load_hf_causal_lm(llama.info["source"])
    rounds: list[int] = []
    out = measure_serving({"a": llama, "b": other}, X, cfg, threads=1, on_round=lambda d, t: rounds.append(d))
    assert rounds == [0, 1, 2, 3]
    for res in out.values():
        assert res["settings"]["prompt_lengths"] == [16, 40]  # 200 + 8 exceeds the 128-token context
        assert res["notes"] and "200" in res["notes"][0]
        for b in (1, 3):
            got = res["batches"][str(b)]
            dec = got["decode"]
            assert dec["tokens"] == b * 8 and dec["decode_tokens"] == b * 7
            for fig in [dec["tok_per_s"], dec["tpot_ms"], dec["ttft_ms"], dec["total_ms"],
                        *(got["prefill"][str(L)][k] for L in (16, 40) for k in ("tok_per_s", "ttft_ms"))]:
                assert fig["value"] > 0 and len(fig["rounds"]) == 3
                assert fig["ci_low"] is None or fig["ci_low"] <= fig["value"] <= fig["ci_high"]
            assert all(t <= tot for t, tot in zip(dec["ttft_ms"]["rounds"], dec["total_ms"]["rounds"], strict=True))
            # decode rate and time per token describe the same steps: rate = batch / TPOT, round by round
            np.testing.assert_allclose(dec["tok_per_s"]["rounds"],
                                       [b * 1e3 / t for t in dec["tpot_ms"]["rounds"]], rtol=1e-9)
            mem = got["memory"]
            assert mem["context"] == 48 and mem["batch"] == b
            assert mem["kv_cache_bytes"] == 2 * 2 * 2 * 8 * 48 * b * 4  # layers, kv heads, head dim, ctx, fp32
            assert mem["peak_bytes"] > mem["weights_bytes"] > 0


class SleepyLM:
    """A stub generating model with known times: `prefill_s` (+ `per_prompt_token_s` per prompt token) before
    the first token, `step_s` for every later step."""

    max_length = 1000

    def __init__(self, prefill_s: float, step_s: float, per_prompt_token_s: float = 0.0):
        self.prefill_s, self.step_s, self.per_token = prefill_s, step_s, per_prompt_token_s

    def encode(self, texts):
        return [[1 + (i % 7) for i in range(len(t))] for t in texts]

    def generate_greedy(self, prompts, max_new_tokens, stop_ids=None, on_step=None):
        time.sleep(self.prefill_s + self.per_token * len(prompts[0]))
        for i in range(max_new_tokens):
            if i:
                time.sleep(self.step_s)
            if on_step is not None:
                on_step(i)
        return [[5] * max_new_tokens for _ in prompts]


def _close(fig: dict, expected: float, rel: float = 0.3) -> None:
    assert expected / (1 + rel) <= fig["value"] <= expected * (1 + rel), (fig["value"], expected)


def test_serving_figures_match_known_sleep_times():
    X = np.asarray(["some text"] * 4, dtype=object)
    cfg = ServingConfig(prompt_lengths=[8, 32], new_tokens=5, batches=[1, 2], rounds=3, warmup=0)
    fast, slow = SleepyLM(0.010, 0.004, 0.0005), SleepyLM(0.020, 0.012)
    out = measure_serving({"fast": fast, "slow": slow}, X, cfg)
    f, s = out["fast"]["batches"], out["slow"]["batches"]
    for b in (1, 2):
        _close(f[str(b)]["prefill"]["8"]["ttft_ms"], 14.0)
        _close(f[str(b)]["prefill"]["32"]["ttft_ms"], 26.0)
        _close(f[str(b)]["prefill"]["32"]["tok_per_s"], b * 32 / 0.026)
        _close(f[str(b)]["decode"]["tpot_ms"], 4.0)
        _close(f[str(b)]["decode"]["tok_per_s"], b / 0.004)
        _close(f[str(b)]["decode"]["total_ms"], 14.0 + 4 * 4.0)
        _close(s[str(b)]["decode"]["tpot_ms"], 12.0)
        _close(s[str(b)]["prefill"]["8"]["ttft_ms"], 20.0)
        assert f[str(b)]["memory"]["peak_bytes"] is None  # no torch module, no size given
    assert out["fast"]["method"] and out["fast"]["settings"]["decode_prompt"] == 8


def test_serving_needs_a_prompt_that_fits():
    lm = SleepyLM(0.0, 0.0)
    lm.max_length = 10
    with pytest.raises(ConfigError, match="prompt_lengths"):
        measure_serving({"x": lm}, np.asarray(["a b"], dtype=object),
                        ServingConfig(prompt_lengths=[8], new_tokens=4, batches=[1], rounds=3))


def test_kv_cache_bytes_from_the_config(llama):
    assert llama.kv_cache_bytes(100, 2) == 2 * 2 * 2 * 8 * 100 * 2 * 4  # layers, kv heads, head dim, ctx, batch, fp32
    assert kv_cache_bytes(llama, 100, 2) == llama.kv_cache_bytes(100, 2)  # what serving asks: the adapter
    assert kv_cache_bytes(SleepyLM(0.0, 0.0), 100, 2) is None  # a model that does not say
    assert measure_serving({"clf": object()}, np.asarray(["a"], dtype=object), ServingConfig()) == {}


class CachedLM(SleepyLM):
    """A stub runtime without a torch module that holds a KV cache outside the call (as llama.cpp's context):
    `kv_cache_bytes` says its size; each call of a new shape allocates that much, kept for the next calls."""

    def __init__(self):
        super().__init__(0.0, 0.0)
        self.held: dict[tuple[int, int], bytearray] = {}

    def kv_cache_bytes(self, context, batch):
        return 4096 * context * batch

    def generate_greedy(self, prompts, max_new_tokens, stop_ids=None, on_step=None):
        shape = (len(prompts[0]) + max_new_tokens, len(prompts))
        if shape not in self.held:  # touched pages: resident
            self.held[shape] = bytearray(b"\x01" * self.kv_cache_bytes(*shape))
        return super().generate_greedy(prompts, max_new_tokens, stop_ids, on_step)


def test_peak_memory_adds_the_kv_cache_the_adapter_counts():
    """A model without a torch module: peak = file size + its KV cache + what one call adds beyond it, the cache
    allocated by an untimed call first (never counted twice); a model that gives no count: size + growth."""
    from leanbench.measure.serving import MEMORY_OTHER, MEMORY_OTHER_KV, generation_memory

    lm, prompts = CachedLM(), [[1] * 100, [2] * 100]
    mem = generation_memory(lm, prompts, 28, size_bytes=1000)
    kv = 4096 * 128 * 2  # 1 MiB: well above the resident set's noise
    assert mem["kv_cache_bytes"] == kv and mem["context"] == 128 and mem["method"] == MEMORY_OTHER_KV
    rss = mem["rss_peak_delta_bytes"] or 0  # None where /proc cannot say
    assert rss < kv // 2  # the cache existed before the measured call
    assert mem["peak_bytes"] == 1000 + kv + rss
    plain = generation_memory(SleepyLM(0.0, 0.0), prompts, 28, size_bytes=1000)
    assert plain["kv_cache_bytes"] is None and plain["method"] == MEMORY_OTHER
    assert plain["peak_bytes"] == 1000 + (plain["rss_peak_delta_bytes"] or 0)


def test_a_study_measures_serving_and_reports_it(tmp_path):
    """The measure cell of a multiple-choice study times every causal LM's serving figures together; the results
    carry them per profile with speed-ups over the reference, the report shows the table, the TCO prices an LM
    query from prefill and decode."""
    from tiny_lm import write_mc_jsonl

    from leanbench.analysis import analyse
    from leanbench.report import render
    from leanbench.runner.local import run_study
    from leanbench.store import Store
    from leanbench.study_loader import parse_study

    model = build_tiny_lm(tmp_path / "lm")
    mc = write_mc_jsonl(tmp_path / "mc.jsonl", n=12)
    serving = {"prompt_lengths": [16, 32], "new_tokens": 4, "batches": [1, 2], "rounds": 3, "warmup": 0}
    study = parse_study({
        "name": "lm-serving", "task": {"kind": "multiple-choice", "data": str(mc)}, "reference": "m",
        "candidates": [{"name": "m", "model": {"hf": str(model)}},
                       {"name": "m-int8", "from": "m", "steps": [{"quantize": {"method": "weight-only-int8"}}]}],
        "evaluate": {"bootstrap": 100, "perturbations": "none"},
        "measure": {"runs": 10, "warmup": 1, "rounds": 6, "throughput_runs": 3, "throughput_warmup": 1,
                    "serving": serving},
        "deploy": {"profiles": [{"name": "edge", "threads": 1, "batch": 1}]},
        "integrity": {"contamination": False}}, base_dir=tmp_path)
    store = Store.open(tmp_path / "s.db")
    run_study(study, store)
    res = analyse(store, "lm-serving")
    by = {c.name: c for c in res.candidates}
    for name in ("m", "m-int8"):
        s = by[name].serving["edge"]
        assert s["batches"]["2"]["decode"]["tokens"] == 8 and s["settings"]["rounds"] == 3
        vs = s["vs_reference"]["batches"]["1"]
        assert vs["decode"]["rounds"] == 3 and set(vs["prefill"]) == {"16", "32"}
    assert by["m"].serving["edge"]["vs_reference"]["batches"]["1"]["decode"]["value"] == 1.0
    assert "basis" in by["m"].cost.serving.extra and "decode tok/s" in by["m"].cost.serving.extra["basis"]
    md = render(res, "md")
    assert "LLM serving: prefill and decode" in md and "TPOT ms" in md and "prefill tok/s @32" in md
    assert "serving" in res.to_dict()["candidates"][1]
