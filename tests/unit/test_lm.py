"""Causal-LM adapter, LM compression and distillation, on a tiny random Llama / GPT-2 built here."""

from __future__ import annotations

import copy
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from tiny_lm import build_tiny_lm, sentences, write_mc_jsonl  # noqa: E402

from leanbench.compress import lm_compress as lc  # noqa: E402
from leanbench.errors import ModelError  # noqa: E402
from leanbench.models import lm_layers as ll  # noqa: E402
from leanbench.models.causal_lm import (  # noqa: E402
    MEASURE_TOKENS,
    CausalLMAdapter,
    load_hf_causal_lm,
    rolling_windows,
)
from leanbench.models.torch_common import quantized_linear_type  # noqa: E402


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("lm")
    return {"llama": build_tiny_lm(root / "llama"), "gpt2": build_tiny_lm(root / "gpt2", arch="gpt2"),
            "root": root}


@pytest.fixture(scope="module")
def llama(folders: dict) -> CausalLMAdapter:
    return load_hf_causal_lm(str(folders["llama"]))


@pytest.fixture(scope="module")
def requests(folders: dict) -> list[tuple[str, str]]:
    rows = [json.loads(x) for x in write_mc_jsonl(folders["root"] / "mc.jsonl", n=12).read_text().splitlines()]
    return [(r["question"], " " + c) for r in rows for c in r["choices"]] + [("", "The cat runs.")]


def _naive(adapter: CausalLMAdapter, requests: list[tuple[str, str]]) -> list[tuple[float, bool]]:
    """One full forward per request, positions gathered in a Python loop: the independent reference."""
    out = []
    for ctx, cont in adapter.encode_requests(requests):
        with torch.no_grad():
            lp = torch.log_softmax(adapter.model(torch.tensor([ctx + cont])).logits.float(), -1)[0]
        rows = [lp[len(ctx) - 1 + j] for j in range(len(cont))]
        out.append((sum(float(r[t]) for r, t in zip(rows, cont, strict=True)),
                    all(int(r.argmax()) == t for r, t in zip(rows, cont, strict=True))))
    return out


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_packed_loglikelihood_equals_one_forward_per_request(folders: dict, requests: list, arch: str) -> None:
    adapter = load_hf_causal_lm(str(folders[arch]))
    ref = _naive(adapter, requests)
    for pack, batch in ((True, 7), (False, 3)):
        got = adapter.loglikelihood(requests, batch_size=batch, pack=pack)
        np.testing.assert_allclose([g[0] for g in got], [r[0] for r in ref], atol=1e-4)
        assert [g[1] for g in got] == [r[1] for r in ref]


def test_encoding_moves_context_whitespace_and_handles_empty_context(llama: CausalLMAdapter) -> None:
    (ctx_a, cont_a), (ctx_b, cont_b), (ctx_e, cont_e) = llama.encode_requests(
        [("The cat ", "runs"), ("The cat", " runs"), ("", "The cat")])
    assert (ctx_a, cont_a) == (ctx_b, cont_b)
    assert ctx_a + cont_a == llama.encode(["The cat runs"])[0]
    assert ctx_e == [llama.prefix_token_id] and cont_e == llama.encode(["The cat"], add_special_tokens=False)[0]


@pytest.mark.parametrize("n", [1, 5, 8, 9, 17, 40])
def test_rolling_windows_match_lm_eval(n: int) -> None:
    utils = pytest.importorskip("lm_eval.utils")
    tokens = list(range(100, 100 + n))
    ref = [utils.make_disjoint_window(w)
           for w in utils.get_rolling_token_windows(tokens, prefix_token=7, max_seq_len=8, context_len=1)]
    assert rolling_windows(tokens, 7, 8) == [tuple(w) for w in ref]
    assert sum(len(p) for _, p in rolling_windows(tokens, 7, 8)) == n


def test_loglikelihood_rolling_is_the_sum_over_all_tokens(llama: CausalLMAdapter) -> None:
    text = "The small cat runs under the old tree."
    (ll, n), = llama.loglikelihood_rolling([text])
    tokens = llama.encode([text])[0]
    with torch.no_grad():
        lp = torch.log_softmax(llama.model(torch.tensor([[llama.prefix_token_id] + tokens[:-1]])).logits, -1)[0]
    assert n == len(tokens)
    assert ll == pytest.approx(float(lp[torch.arange(n), torch.tensor(tokens)].sum()), abs=1e-4)
    long = " ".join(sentences(40))  # several windows of 128 positions
    (ll_long, n_long), = llama.loglikelihood_rolling([long], batch_size=2)
    assert n_long > 128 and math.isfinite(ll_long) and ll_long < 0


def test_dynamic_int8_keeps_tied_embeddings_and_round_trips(llama: CausalLMAdapter, requests: list,
                                                            tmp_path: Path) -> None:
    assert lc.tied_head(llama.model) == "lm_head"
    module, rec = lc.dynamic_int8(llama.model)
    assert module.lm_head.weight is module.model.embed_tokens.weight  # sharing survives
    assert rec["kept_fp32"] == ["lm_head"] and "model.layers.0.mlp.up_proj" in rec["layers"]
    assert isinstance(module.model.layers[0].mlp.up_proj, quantized_linear_type())
    adapter = CausalLMAdapter(module, llama.tokenizer, {}, [rec])
    before = adapter.loglikelihood(requests)
    adapter.save(tmp_path / "m")
    loaded = CausalLMAdapter.load(tmp_path / "m")
    assert loaded.model.lm_head.weight is loaded.model.model.embed_tokens.weight
    assert [r[0] for r in loaded.loglikelihood(requests)] == [r[0] for r in before]
    assert loaded.num_params() == llama.num_params()


@pytest.mark.parametrize(("bits", "group"), [(8, None), (4, 16), (4, 12)])
def test_weight_only_quantization(llama: CausalLMAdapter, requests: list, tmp_path: Path, bits: int,
                                  group: int | None) -> None:
    w = torch.randn(6, 40)
    q, s = ll.quantize_weight(w, bits, group or 40)
    qmax = 127 if bits == 8 else 7
    assert q.abs().max() <= qmax + (bits == 4)
    deq = (q.float().view(6, -1, group or 40) * s[:, :, None]).view(6, -1)[:, :40]
    assert torch.all((deq - w).abs() <= s.repeat_interleave(group or 40, 1)[:, :40] / 2 + 1e-6)
    if bits == 4:
        assert torch.equal(ll.unpack_int4(ll.pack_int4(q)), q)
    module, rec = lc.weight_only(llama.model, bits, group)
    assert module.lm_head.weight is module.model.embed_tokens.weight
    layer = module.model.layers[0].self_attn.q_proj
    assert isinstance(layer, ll.WeightOnlyLinear) and layer.qweight.dtype == (torch.int8 if bits == 8 else torch.uint8)
    ref = llama.model.model.layers[0].self_attn.q_proj.weight
    assert (layer.dequantized() - ref).abs().max() <= ref.abs().max() / (2 * qmax) + 1e-6
    adapter = CausalLMAdapter(module, llama.tokenizer, {}, [rec])
    adapter.save(tmp_path / "m")
    loaded = CausalLMAdapter.load(tmp_path / "m")
    assert [r[0] for r in loaded.loglikelihood(requests[:6])] == [r[0] for r in adapter.loglikelihood(requests[:6])]


def test_two_four_and_magnitude_pruning(llama: CausalLMAdapter) -> None:
    module = copy.deepcopy(llama.model)
    original = module.model.layers[0].mlp.down_proj.weight.detach().clone()
    rec = lc.prune_2_4(module)
    w = module.model.layers[0].mlp.down_proj.weight
    groups, orig = w.view(w.shape[0], -1, 4), original.view(w.shape[0], -1, 4)
    assert int((groups != 0).sum(-1).max()) <= 2 and "lm_head" not in rec["layers"]
    kept = orig.abs().topk(2, dim=-1).values.sum(-1)
    assert torch.allclose(groups.abs().sum(-1), kept)  # the two largest |w| of each group survive
    assert lc.linear_sparsity(module) == pytest.approx(0.5)
    assert torch.equal(module.model.embed_tokens.weight, llama.model.model.embed_tokens.weight)
    module = copy.deepcopy(llama.model)
    lc.magnitude_prune(module, 0.3)
    assert lc.linear_sparsity(module) == pytest.approx(0.3, abs=1e-3)


def test_steps_dispatch_to_causal_lm_handlers(llama: CausalLMAdapter) -> None:
    from leanbench.compress.base import get_step
    from leanbench.study import PruneConfig, QuantizeConfig

    ctx = SimpleNamespace(seed=0)
    pruned = get_step("prune")(PruneConfig(method="2:4"), llama, ctx)
    assert pruned.info["sparsity"] == pytest.approx(0.5) and pruned.model.nonzero_params() < llama.nonzero_params()
    q = get_step("quantize")(QuantizeConfig(method="weight-only-int4"), pruned.model, ctx)
    assert [c["method"] for c in q.model.compression] == ["2:4", "weight-only-int4"]
    with pytest.raises(ModelError, match="already quantized"):
        get_step("quantize")(QuantizeConfig(method="dynamic-int8"), q.model, ctx)
    with pytest.raises(ModelError, match="prune a causal LM before quantizing"):
        get_step("prune")(PruneConfig(method="magnitude"), q.model, ctx)


def test_distill_lowers_the_kl_to_the_teacher(folders: dict, llama: CausalLMAdapter, tmp_path: Path) -> None:
    from leanbench.compress.lm_distill import distill_lm
    from leanbench.study import DistillConfig

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(" ".join(sentences(6, seed=s)) for s in range(12)))
    student = load_hf_causal_lm(str(folders["llama"]))
    with torch.no_grad():
        for p in student.model.parameters():
            p.mul_(0.5)
    ctx = SimpleNamespace(seed=0, data=SimpleNamespace(meta={"base_dir": str(tmp_path)}),
                          teacher=lambda name: (llama, "key"), progress=lambda *a: None)
    cfg = DistillConfig(teacher="t", data="corpus.txt", seq_len=32, epochs=2, batch_size=8, lr=3e-3,
                        temperature=1.0, alpha=1.0)
    result = distill_lm(cfg, student, ctx)
    hist = result.info["history"]
    assert hist[-1]["val_loss"] < hist[0]["val_loss"] and result.flops > 0
    assert result.model.model is not student.model
    with pytest.raises(ModelError, match="needs `data:`"):
        distill_lm(DistillConfig(teacher="t"), student, ctx)


def test_measure_inputs_are_fixed_length_prompts(llama: CausalLMAdapter) -> None:
    X = np.empty(3, dtype=object)
    X[:] = [("The cat", ("runs", "eats")), ("A", ("b", "c")), "a whole document"]
    inputs = llama.prepare(X)
    assert tuple(inputs.shape) == (3, MEASURE_TOKENS)
    assert llama.forward(inputs).shape[:2] == (3, MEASURE_TOKENS)
    assert llama.describe()["measure_tokens"] == MEASURE_TOKENS


def test_model_without_tokenizer_and_bad_gguf_are_model_errors(folders: dict, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    model = load_hf_causal_lm(str(folders["llama"])).model
    model.save_pretrained(bare)
    with pytest.raises(ModelError, match="no usable tokenizer"):
        load_hf_causal_lm(str(bare))
    (tmp_path / "bad.gguf").write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(ModelError, match="bad.gguf"):
        load_hf_causal_lm(str(tmp_path), gguf_file="bad.gguf", tokenizer=str(folders["llama"]))
    with pytest.raises(ModelError, match="no file 'missing.gguf'"):
        load_hf_causal_lm(str(tmp_path), gguf_file="missing.gguf")
    with pytest.raises(ModelError, match="no installed Python package"):
        from leanbench.models.causal_lm import resolve_source

        resolve_source("python-package:no_such_pkg_here", None)


def test_lm_metrics_are_ratio_estimators() -> None:
    from leanbench.evaluate.language_modeling import count_words
    from leanbench.evaluate.metrics import get_metric

    scores = np.array([[10.0, 5, 20, 4], [30.0, 10, 50, 9]])
    y = np.zeros(2, dtype=np.int64)
    assert get_metric("perplexity")(y, scores) == pytest.approx(math.exp(40 / 15))
    assert get_metric("bits_per_byte")(y, scores) == pytest.approx(40 / 70 / math.log(2))
    assert get_metric("word_perplexity")(y, scores) == pytest.approx(math.exp(40 / 13))
    idx = np.array([[0, 0], [1, 1], [0, 1]])
    np.testing.assert_allclose(get_metric("perplexity").resampled(y, scores, idx),
                               [math.exp(2), math.exp(3), math.exp(40 / 15)])
    assert not get_metric("perplexity").higher_is_better and count_words("a  b\nc") == 3
