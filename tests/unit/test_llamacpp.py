"""GGUF models on llama.cpp: a tiny random Llama (tests/fixtures/tiny_lm.py) written as a GGUF here (the `gguf`
package), run through llama-cpp-python and compared with the same weights in PyTorch.

Tolerances, stated: on f32 weights the difference is llama.cpp's KV cache, float16 by default (keys and values
rounded to 11 significant bits), and kernels that sum in another order: every logit agrees within
LOGIT_ATOL = 2e-2 and a request's log-likelihood (a sum over its tokens) within LL_ATOL = 5e-2 nats (measured
here, one thread: at most 6.2e-3 and 1.4e-2); greedy decisions (is_greedy, generated tokens) must be identical.
The layout of the written file is checked exactly by an independent reader (transformers' GGUF loader:
identical logits)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gguf")
pytest.importorskip("llama_cpp")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from tiny_lm import build_tiny_lm, sentences, write_mc_jsonl  # noqa: E402

import leanbench.schema  # noqa: E402, F401  (registers the built-in plugins)
from leanbench.compress.base import StepContext  # noqa: E402
from leanbench.errors import ConfigError, LeanbenchError, ModelError  # noqa: E402
from leanbench.models.base import load_model  # noqa: E402
from leanbench.models.causal_lm import CausalLMAdapter, load_hf_causal_lm  # noqa: E402
from leanbench.models.gguf_io import check_gguf, write_gguf  # noqa: E402
from leanbench.models.llamacpp import LlamaCppAdapter  # noqa: E402
from leanbench.plugins import apply_step  # noqa: E402
from leanbench.study import QuantizeConfig  # noqa: E402
from leanbench.study_loader import load_study  # noqa: E402

LL_ATOL = 5e-2
LOGIT_ATOL = 2e-2


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("llamacpp")
    build_tiny_lm(root / "hf")
    write_mc_jsonl(root / "mc.jsonl", n=12)
    return root


@pytest.fixture(scope="module")
def torch_lm(root: Path) -> CausalLMAdapter:
    return load_hf_causal_lm(str(root / "hf"))


@pytest.fixture(scope="module")
def f32_file(root: Path, torch_lm: CausalLMAdapter) -> Path:
    return write_gguf(torch_lm.model, torch_lm.tokenizer, root / "tiny-f32.gguf", dtype="f32")


@pytest.fixture(scope="module")
def lcpp(f32_file: Path) -> LlamaCppAdapter:
    return LlamaCppAdapter(f32_file, threads=1)


@pytest.fixture(scope="module")
def requests(root: Path) -> list[tuple[str, str]]:
    rows = [json.loads(x) for x in (root / "mc.jsonl").read_text().splitlines()]
    return [(r["question"], " " + c) for r in rows for c in r["choices"]] + [("", "The cat runs.")]


def _ctx(root: Path) -> StepContext:
    def no_teacher(name: str) -> tuple:
        raise AssertionError(name)

    return StepContext(data=None, seed=0, cache_dir=root / "cache", teacher=no_teacher)


# --------------------------------------------------------------------------- parity with PyTorch
def test_llamacpp_tokenizes_as_the_hugging_face_tokenizer(torch_lm, lcpp):
    texts = sentences(20, seed=3) + ["", " leading space", "digits 0123 and 45"]
    assert lcpp.encode(texts) == torch_lm.encode(texts)
    assert lcpp.encode(texts, add_special_tokens=False) == torch_lm.encode(texts, add_special_tokens=False)


def test_conversion_gives_the_same_logits(torch_lm, lcpp, f32_file):
    """Every position's logits: llama.cpp on the written file vs PyTorch, and transformers' own GGUF reader
    (an independent implementation of the layout) on the same file: bit-identical weights."""
    ids = torch_lm.encode(["The small dog sees the old tree near the river."])[0]
    with torch.no_grad():
        ref = torch_lm.model(torch.tensor([ids])).logits[0].numpy()
    lcpp.ctx.clear()
    ours = lcpp.ctx.decode(ids, list(range(len(ids))), [(0,)] * len(ids), [True] * len(ids))
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=LOGIT_ATOL, rtol=0)
    assert (ours.argmax(1) == ref.argmax(1)).all()
    back = load_hf_causal_lm(str(f32_file.parent), gguf_file=f32_file.name)
    with torch.no_grad():
        np.testing.assert_array_equal(back.model(torch.tensor([ids])).logits[0].numpy(), ref)


def test_loglikelihoods_match_pytorch(torch_lm, lcpp, requests):
    ref = torch_lm.loglikelihood(requests)
    ours = lcpp.loglikelihood(requests)
    gaps = [abs(a - b) for (a, _), (b, _) in zip(ours, ref, strict=True)]
    assert max(gaps) < LL_ATOL, f"largest gap {max(gaps):.2e}"
    print(f"largest log-likelihood gap llama.cpp vs PyTorch: {max(gaps):.2e} over {len(gaps)} requests")
    assert [g for _, g in ours] == [g for _, g in ref]
    single = lcpp.loglikelihood(requests, pack=False)  # one fresh row per request: the packed path's values
    np.testing.assert_allclose([ll for ll, _ in single], [ll for ll, _ in ours], atol=1e-4, rtol=0)
    assert [g for _, g in single] == [g for _, g in ours]


def test_more_choices_than_sequences_and_batched_prefill(torch_lm, lcpp):
    from leanbench.models.llamacpp import MAX_SEQ

    many = [("The old house is", f" {w} {v}") for w in ("red", "big", "near")
            for v in ("the sun", "a car", "fire", "the moon")]
    assert len(many) > MAX_SEQ  # packed in several decodes
    ours, ref = lcpp.loglikelihood(many), torch_lm.loglikelihood(many)
    np.testing.assert_allclose([ll for ll, _ in ours], [ll for ll, _ in ref], atol=LL_ATOL, rtol=0)
    rows = lcpp.prepare(np.array(sentences(3, seed=5), dtype=object))
    together = lcpp.forward(rows)  # one decode, a sequence per prompt
    apart = np.stack([lcpp.forward([r])[0] for r in rows])
    assert together.shape == (3, lcpp.n_vocab)
    np.testing.assert_allclose(together, apart, atol=1e-4, rtol=0)


def test_rolling_loglikelihoods_match_pytorch(torch_lm, lcpp):
    texts = [" ".join(sentences(6, seed=s)) for s in range(3)]
    for limit in (None, 16):  # 16: several disjoint windows per text
        ref = torch_lm.loglikelihood_rolling(texts, max_length=limit)
        ours = lcpp.loglikelihood_rolling(texts, max_length=limit)
        assert [n for _, n in ours] == [n for _, n in ref]
        # a document sums ~80 token log-probs, each within the request tolerance: 1e-4 of the total
        np.testing.assert_allclose([ll for ll, _ in ours], [ll for ll, _ in ref], atol=LL_ATOL, rtol=1e-4)


def test_greedy_generation_matches_transformers(torch_lm, lcpp):
    prompts = torch_lm.encode(["The cat", "A small dog sees the", "Red fish"])
    expected = []
    for p in prompts:
        with torch.no_grad():
            out = torch_lm.model.generate(torch.tensor([p]), max_new_tokens=8, do_sample=False, pad_token_id=0,
                                          eos_token_id=None)
        expected.append(out[0, len(p):].tolist())
    steps: list[int] = []
    assert lcpp.generate_greedy(prompts[:1], 8, on_step=steps.append) == expected[:1]
    assert steps == list(range(8))
    steps.clear()
    assert lcpp.generate_greedy(prompts, 8, on_step=steps.append) == expected  # lock step, 3 sequences
    assert steps == list(range(8))
    stop = {expected[1][2]}
    cut = lcpp.generate_greedy(prompts, 8, stop_ids=stop)
    for got, full in zip(cut, expected, strict=True):
        first = next((i for i, t in enumerate(full) if t in stop), None)
        assert got == (full if first is None else full[:first + 1])
    with pytest.raises(ModelError, match="max_new_tokens"):
        lcpp.generate_greedy(prompts, 0)


# --------------------------------------------------------------------------- the quantize step
def test_quantize_step_from_pytorch_gives_a_smaller_readable_q8_0(root, torch_lm, lcpp, f32_file, requests, tmp_path):
    q8 = apply_step("quantize", QuantizeConfig(method="gguf", type="q8_0"), torch_lm, _ctx(root)).model
    assert isinstance(q8, LlamaCppAdapter) and "Q8_0" in q8.describe()["model"]
    assert q8.path.stat().st_size < f32_file.stat().st_size
    q8.save(tmp_path / "q8")
    again = load_model(tmp_path / "q8")
    assert isinstance(again, LlamaCppAdapter) and check_gguf(tmp_path / "q8" / "model.gguf")
    ref = np.array([ll for ll, _ in lcpp.loglikelihood(requests)])
    got = np.array([ll for ll, _ in again.loglikelihood(requests)])
    assert np.all(np.isfinite(got)) and not np.array_equal(got, ref)  # quantized: close, not equal
    assert np.max(np.abs(got - ref)) < 0.05 * np.max(np.abs(ref))


def test_f16_is_the_runtime_control_and_llamacpp_requantizes(root, torch_lm, lcpp, f32_file, requests):
    f16 = apply_step("quantize", QuantizeConfig(method="gguf", type="f16"), torch_lm, _ctx(root))
    assert "F16" in f16.model.describe()["model"]
    assert f16.model.path.stat().st_size < 0.6 * f32_file.stat().st_size
    q4 = apply_step("quantize", QuantizeConfig(method="gguf", type="q4_0"), lcpp, _ctx(root))
    assert isinstance(q4.model, LlamaCppAdapter) and "Q4_0" in q4.model.describe()["model"]
    assert q4.info["bytes_after"] < q4.info["bytes_before"]
    assert lcpp.path == f32_file and f32_file.is_file()  # the input model is untouched


# --------------------------------------------------------------------------- bad input: one message, exit 2
def _study(tmp_path: Path, root: Path, model: dict, steps: list | None = None, profiles: list | None = None) -> Path:
    import yaml

    cand = {"name": "m", "model": model, **({"steps": steps} if steps else {})}
    study = {"name": "gguf-bad", "task": {"kind": "multiple-choice", "data": str(root / "mc.jsonl")},
             "reference": "m", "candidates": [cand],
             **({"deploy": {"profiles": profiles}} if profiles else {})}
    f = tmp_path / "study.yaml"
    f.write_text(yaml.safe_dump(study))
    return f


def test_a_gguf_llamacpp_cannot_read_is_one_message(root, f32_file, tmp_path, requests):
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"not a model at all" * 10)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(f32_file.read_bytes()[: f32_file.stat().st_size // 2])
    for bad, needle in ((garbage, "is not a GGUF file"), (truncated, "truncated")):
        with pytest.raises(ConfigError) as err:
            load_study(_study(tmp_path, root, {"gguf": str(bad)}), check_data=True)
        assert len(err.value.problems) == 1 and needle in err.value.problems[0]
        assert err.value.problems[0].startswith("candidates[0].model.gguf:")
        with pytest.raises(ModelError, match=needle):  # at load time too
            LlamaCppAdapter(bad)
    headless = tmp_path / "headless.gguf"  # parses as GGUF for nobody: llama.cpp's own refusal, still a ModelError
    headless.write_bytes(b"GGUF" + b"\xff" * 60)
    with pytest.raises(ModelError, match="headless.gguf"):
        LlamaCppAdapter(headless)


def test_unknown_quant_type_says_did_you_mean(root, tmp_path):
    with pytest.raises(ConfigError) as err:
        load_study(_study(tmp_path, root, {"hf": str(root / "hf")}, steps=[{"quantize": {"method": "gguf",
                                                                                         "type": "q4_km"}}]))
    (problem,) = err.value.problems
    assert "candidates[0].steps[0].quantize.type: unknown GGUF type 'q4_km' (did you mean 'q4_k_m'?)" in problem
    assert "q8_0" in problem and "f16" in problem
    with pytest.raises(ConfigError, match="'type' is for method gguf only"):
        load_study(_study(tmp_path, root, {"hf": str(root / "hf")},
                          steps=[{"quantize": {"method": "dynamic-int8", "type": "q8_0"}}]))


def test_model_larger_than_the_memory_cap_is_refused_at_validate(root, f32_file, tmp_path):
    profiles = [{"name": "tiny", "threads": 1, "batch": 1, "memory_cap_mb": 0.01},
                {"name": "big", "threads": 1, "batch": 1, "memory_cap_mb": 1000}]
    with pytest.raises(ConfigError) as err:
        load_study(_study(tmp_path, root, {"gguf": str(f32_file)}, profiles=profiles), check_data=True)
    (problem,) = err.value.problems
    assert "candidates[0].model.gguf:" in problem and "profile 'tiny'" in problem and "0.01" in problem
    assert load_study(_study(tmp_path, root, {"gguf": str(f32_file)}, profiles=profiles[1:]), check_data=True)


def test_missing_llama_cpp_package_is_named_with_its_extra(root, f32_file, tmp_path, monkeypatch):
    from leanbench.data import check

    real = check.installed
    monkeypatch.setattr(check, "installed", lambda module: module != "llama_cpp" and real(module))
    for model, steps in (({"gguf": str(f32_file)}, None),
                         ({"hf": str(root / "hf")}, [{"quantize": {"method": "gguf", "type": "q8_0"}}])):
        with pytest.raises(ConfigError) as err:
            load_study(_study(tmp_path, root, model, steps=steps), check_data=True)
        (problem,) = err.value.problems
        assert "needs the package 'llama_cpp'" in problem and "pip install 'leanbench[llama]'" in problem
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # and at load time: a ModelError, not an ImportError
    with pytest.raises(ModelError, match=r"pip install 'leanbench\[llama\]'"):
        LlamaCppAdapter(f32_file)


def test_validate_exits_2_without_a_traceback(root, tmp_path):
    import os
    import subprocess

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 8)
    res = subprocess.run([sys.executable, "-m", "leanbench.cli", "validate",
                          str(_study(tmp_path, root, {"gguf": str(bad)}))], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "200"}, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "candidates[0].model.gguf:" in res.stderr and "bad.gguf" in res.stderr
    assert issubclass(ModelError, LeanbenchError) and ModelError.exit_code == 2


# --------------------------------------------------------------------------- generation, export, serving memory
def test_generation_interface_is_the_pytorch_adapters(torch_lm, lcpp):
    """decode / eos_token_ids / vocab_size as CausalLMAdapter's (Hugging Face `batch_decode(skip_special_tokens)`):
    every single token, random sequences (characters cut between tokens, the special token among them)."""
    import random

    assert lcpp.vocab_size == torch_lm.vocab_size and lcpp.eos_token_ids == torch_lm.eos_token_ids == {0}
    singles = [[i] for i in range(torch_lm.vocab_size)]
    assert lcpp.decode(singles) == torch_lm.decode(singles)
    rng = random.Random(0)
    seqs = [[rng.randrange(torch_lm.vocab_size) for _ in range(rng.randint(0, 30))] for _ in range(100)]
    seqs += torch_lm.encode(sentences(10, seed=2)) + [[0, 40, 41, 0, 42, 0]]
    assert lcpp.decode(seqs) == torch_lm.decode(seqs)
    assert any("\ufffd" in t for t in torch_lm.decode(seqs))  # byte pieces cut mid-character are compared too


def test_generation_task_gives_the_pytorch_strings(root, torch_lm, lcpp, f32_file, tmp_path):
    """The generation evaluator on llama.cpp gives the strings it gives on PyTorch, in any batch; and a generation
    study with a GGUF candidate stores, per example, the text its PyTorch reference stores."""
    from leanbench.evaluate.generation import Settings, generate
    from leanbench.runner.local import run_study
    from leanbench.store import Store
    from leanbench.study_loader import parse_study

    prompts = [s[:-1] for s in sentences(7, seed=3)] + ["A"]
    settings = Settings(until=(".", "\n"), max_new_tokens=10)
    expected = generate(torch_lm, prompts, settings, batch_size=1)
    assert any(expected) and any(len(torch_lm.encode([e])[0]) < 10 for e in expected if e)  # some stop early
    assert generate(lcpp, prompts, settings, batch_size=1) == expected
    assert generate(lcpp, prompts, settings, batch_size=3) == expected  # lock step, several sequences

    rows = [{"id": f"g{i}", "q": f"Q: {s}\nA:", "a": ["cat"]} for i, s in enumerate(sentences(6, seed=9))]
    (tmp_path / "gen.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    study = parse_study({
        "name": "gen-gguf", "reference": "torch",
        "task": {"kind": "generation", "data": "gen.jsonl", "prompt": "q", "target": "a", "until": ["."],
                 "max_new_tokens": 6},
        "candidates": [{"name": "torch", "model": {"hf": str(root / "hf")}},
                       {"name": "gguf", "model": {"gguf": str(f32_file)}}],
        "evaluate": {"batch_size": 4, "bootstrap": 100}, "measure": {"enabled": False},
        "integrity": {"contamination": False}}, base_dir=tmp_path)
    store = Store.open(tmp_path / "s.db")
    run_study(study, store)
    texts = {}
    for cand in store.candidates("gen-gguf"):
        cell = next(iter(cand["cells"]["evaluate"].values()))
        texts[cand["name"]] = [e["generated"] for e in store.predictions(cell)["extra"]]
    assert len(texts["torch"]) == 6 and any(texts["torch"])
    assert texts["gguf"] == texts["torch"]


def test_export_writes_the_gguf_file_at_the_top(lcpp, f32_file, requests, tmp_path):
    from leanbench.models.base import export_model

    lcpp.save(tmp_path / "saved")
    (tmp_path / "out").mkdir()
    files, form = export_model(tmp_path / "saved", tmp_path / "out")
    assert sorted(f.relative_to(tmp_path / "out").as_posix() for f in files) == ["adapter.json", "model.gguf"]
    assert (tmp_path / "out" / "model.gguf").read_bytes() == f32_file.read_bytes()
    assert "GGUF" in form and "model.gguf" in form and "ALL_F32" in form and "llama" in form
    again = load_model(tmp_path / "out")  # the exported folder reads back, and as llama.cpp runs it
    assert isinstance(again, LlamaCppAdapter)
    assert again.loglikelihood(requests[:4]) == lcpp.loglikelihood(requests[:4])
    again.close()
    (tmp_path / "saved" / "model.gguf").write_bytes(b"not a model")
    (tmp_path / "out2").mkdir()
    with pytest.raises(ModelError, match="not a GGUF file"):
        export_model(tmp_path / "saved", tmp_path / "out2")


def test_serving_peak_memory_counts_the_kv_cache(torch_lm, lcpp, f32_file):
    """llama.cpp's KV cache count (f16, from llama.cpp's hyper-parameters) is half the PyTorch f32 count from the
    transformers config: the same layers, kv heads and head dim; serving's peak adds it to the file size."""
    from leanbench.measure.serving import MEMORY_OTHER_KV, measure_serving
    from leanbench.study import ServingConfig

    assert lcpp.kv_cache_bytes(100, 3) * 2 == torch_lm.kv_cache_bytes(100, 3) > 0
    cfg = ServingConfig(prompt_lengths=[8, 16], new_tokens=4, batches=[1, 2], rounds=3, warmup=0)
    size = f32_file.stat().st_size
    out = measure_serving({"gguf": lcpp}, np.asarray(sentences(4, seed=1), dtype=object), cfg, threads=1,
                          sizes={"gguf": size})
    for b in (1, 2):
        mem = out["gguf"]["batches"][str(b)]["memory"]
        assert mem["context"] == 20 and mem["kv_cache_bytes"] == lcpp.kv_cache_bytes(20, b)
        assert mem["method"] == MEMORY_OTHER_KV
        assert mem["peak_bytes"] == size + mem["kv_cache_bytes"] + (mem["rss_peak_delta_bytes"] or 0)
