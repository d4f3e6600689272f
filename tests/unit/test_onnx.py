"""HF classifiers on PyTorch dynamic int8 and ONNX Runtime (fp32, dynamic int8, static int8), on a tiny
BERT built from a config with a locally trained WordLevel tokenizer: export faithfulness, accuracy kept,
file sizes, save/load round trips, thread control and end-to-end latency."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from leanbench.compress.base import StepContext, get_step
from leanbench.data.base import Split, TaskData
from leanbench.errors import ModelError
from leanbench.measure.latency import END_TO_END_METHOD, LATENCY_METHOD, measure_latency
from leanbench.models.base import dir_size_bytes, load_model
from leanbench.models.hf import HFClassifierAdapter
from leanbench.models.onnx import FP32_LOGIT_ATOL, OnnxAdapter, export_onnx, onnx_from_hf
from leanbench.study import QuantizeConfig

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

POS = ["good", "great", "fun", "lovely", "superb", "nice"]
NEG = ["bad", "awful", "boring", "dull", "poor", "terrible"]
FILLER = ["the", "movie", "film", "was", "plot", "acting", "really", "quite", "a", "and"]


def make_texts(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Toy sentiment: a sentence holds 1-2 words of its class among 2-8 filler words."""
    texts, labels = [], []
    for _ in range(n):
        y = int(rng.integers(2))
        words = list(rng.choice(FILLER, size=int(rng.integers(2, 9))))
        for _ in range(int(rng.integers(1, 3))):
            words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(POS if y else NEG)))
        texts.append(" ".join(words))
        labels.append(y)
    return np.array(texts, dtype=object), np.array(labels, dtype=np.int64)


def make_tokenizer() -> object:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([" ".join(POS + NEG + FILLER)],
                            trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"]))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    # BERT's input order (token_type_ids before attention_mask): exporters that name graph inputs
    # positionally once swapped the two, which the logit check must catch
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]",
                                   model_input_names=["input_ids", "token_type_ids", "attention_mask"])


def tiny_bert(hidden: int = 32, intermediate: int = 64, seed: int = 0) -> HFClassifierAdapter:
    from transformers import BertConfig, BertForSequenceClassification

    tokenizer = make_tokenizer()
    cfg = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=intermediate, max_position_embeddings=64, num_labels=2,
                     hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    torch.manual_seed(seed)
    return HFClassifierAdapter(BertForSequenceClassification(cfg), tokenizer, max_length=32,
                               label_names=["neg", "pos"])


def train(adapter: HFClassifierAdapter, X: np.ndarray, y: np.ndarray, steps: int = 60) -> None:
    """A few Adam steps (batch 32) so the toy task is learnt; leaves the model in eval mode."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(adapter.model.parameters(), lr=3e-3)
    adapter.model.train()
    for step in range(steps):
        idx = np.arange(step * 32, step * 32 + 32) % len(X)
        loss = adapter.model(**adapter.prepare(X[idx]), labels=torch.from_numpy(y[idx])).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    adapter.model.eval()


@pytest.fixture(scope="module")
def toy() -> TaskData:
    rng = np.random.default_rng(0)
    splits = {}
    for name, n in (("train", 400), ("validation", 60), ("test", 120)):
        X, y = make_texts(rng, n)
        splits[name] = Split(name, X, y, np.array([f"{name}-{i}" for i in range(n)]))
    return TaskData(splits["train"], splits["validation"], splits["test"], ["neg", "pos"], (), "toy")


@pytest.fixture(scope="module")
def trained(toy: TaskData) -> HFClassifierAdapter:
    adapter = tiny_bert()
    train(adapter, toy.train.X, toy.train.y)
    return adapter


def ctx_for(data: TaskData, tmp_path) -> StepContext:
    return StepContext(data=data, seed=0, cache_dir=tmp_path, teacher=lambda name: (None, ""))


def quantize(method: str, model, data: TaskData, tmp_path, **kw):
    return get_step("quantize")(QuantizeConfig(method=method, **kw), model, ctx_for(data, tmp_path))


def accuracy(model, split: Split, batch_size: int = 32) -> float:
    return float((model.predict_proba(split.X, batch_size=batch_size).argmax(1) == split.y).mean())


@pytest.fixture(scope="module")
def built(trained, toy, tmp_path_factory) -> dict[str, object]:
    """Every runtime of the trained toy model, built once through the quantize step (TorchScript exporter
    here for speed; the ORT int8 models start from the fp32 ONNX model, as a `from:` chain would)."""
    tmp = tmp_path_factory.mktemp("built")
    out = {"torch-fp32": trained, "dynamic-int8": quantize("dynamic-int8", trained, toy, tmp),
           "onnx-fp32": quantize("onnx-fp32", trained, toy, tmp, exporter="torchscript")}
    for method in ("onnxruntime-dynamic-int8", "onnxruntime-static-int8"):
        out[method] = quantize(method, out["onnx-fp32"].model, toy, tmp, calibration_examples=64)
    return out


# --------------------------------------------------------------------------- export
@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_ort_fp32_logits_match_pytorch_within_stated_tolerance(trained, toy, exporter):
    onnx_model = onnx_from_hf(trained, exporter=exporter)
    X = toy.test.X[:40]
    for batch in (1, 7, 40):  # dynamic batch and sequence axes: padding differs per batch
        for i in range(0, len(X), batch):
            rows = X[i:i + batch]
            torch_logits = trained.forward(trained.prepare(rows)).numpy()
            ort_logits = onnx_model.forward(onnx_model.prepare(rows))
            np.testing.assert_allclose(ort_logits, torch_logits, atol=FP32_LOGIT_ATOL, rtol=0)
    assert np.array_equal(onnx_model.predict_proba(toy.test.X).argmax(1), trained.predict_proba(toy.test.X).argmax(1))
    assert onnx_model.info["exporter"] == exporter
    assert onnx_model.input_names == ["input_ids", "attention_mask", "token_type_ids"]
    assert onnx_model.num_params() == trained.num_params()
    assert onnx_model.info["max_abs_logit_diff"] <= FP32_LOGIT_ATOL


def test_export_leaves_model_in_eval_mode_and_reports_what_ran(tmp_path):
    adapter = tiny_bert()
    adapter.model.train()  # even a model handed over in training mode comes back in eval mode
    adapter.model.eval()
    report = export_onnx(adapter, tmp_path / "m.onnx", exporter="torchscript")
    assert adapter.model.training is False
    assert not any(m.training for m in adapter.model.modules())
    assert report["exporter"] == "torchscript" and report["opset"] == 18
    assert (tmp_path / "m.onnx").stat().st_size > 0


def test_export_mismatch_beyond_tolerance_is_a_model_error(trained, tmp_path):
    with pytest.raises(ModelError, match="differ from PyTorch"):
        export_onnx(trained, tmp_path / "m.onnx", exporter="torchscript", atol=-1.0)
    with pytest.raises(ModelError, match="exporter must be one of"):
        export_onnx(trained, tmp_path / "m.onnx", exporter="tracing")


def test_onnx_param_count_matches_pytorch(trained, built):
    n = trained.num_params()
    assert built["onnx-fp32"].model.num_params() == n
    assert built["dynamic-int8"].model.num_params() == n
    for method in ("onnxruntime-dynamic-int8", "onnxruntime-static-int8"):
        # int8 weights count once; scales and zero points do not count
        assert abs(built[method].model.num_params() - n) <= 0.02 * n, method


# --------------------------------------------------------------------------- quantized runtimes
@pytest.mark.parametrize("method", ["dynamic-int8", "onnx-fp32", "onnxruntime-dynamic-int8",
                                    "onnxruntime-static-int8"])
def test_every_runtime_keeps_accuracy(trained, toy, built, method):
    ref = accuracy(trained, toy.test)
    assert ref >= 0.9  # the toy task was learnt
    assert accuracy(built[method].model, toy.test) >= ref - 0.05


def test_step_info_states_method_batching_and_calibration(built):
    static = built["onnxruntime-static-int8"].info
    assert static["calibration"]["examples"] == 64 and static["calibration"]["split"] == "train"
    assert static["calibration"]["seconds"] > 0 and static["format"] == "QDQ"
    for method in ("dynamic-int8", "onnxruntime-dynamic-int8"):
        assert "batch" in built[method].info["batch_note"]
        assert "batch_note" in built[method].model.describe()
    assert built["onnx-fp32"].model.describe()["quantization"] is None
    assert built["onnx-fp32"].model.describe()["runtime"] == "onnxruntime"


def test_ort_int8_file_is_at_most_40_percent_of_fp32(toy, tmp_path):
    big = tiny_bert(hidden=256, intermediate=1024)  # Linear weights dominate the file
    fp32 = quantize("onnx-fp32", big, toy, tmp_path, exporter="torchscript").model
    int8 = quantize("onnxruntime-dynamic-int8", fp32, toy, tmp_path).model
    fp32.save(tmp_path / "fp32")
    int8.save(tmp_path / "int8")
    ratio = (tmp_path / "int8" / "model.onnx").stat().st_size / (tmp_path / "fp32" / "model.onnx").stat().st_size
    assert ratio <= 0.40


@pytest.mark.parametrize("method", ["torch-fp32", "dynamic-int8", "onnx-fp32", "onnxruntime-dynamic-int8",
                                    "onnxruntime-static-int8"])
def test_save_load_round_trip_predicts_identically(built, toy, tmp_path, method):
    model = built[method] if method == "torch-fp32" else built[method].model
    model.save(tmp_path / method)
    loaded = load_model(tmp_path / method)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict_proba(toy.test.X, 32), model.predict_proba(toy.test.X, 32))
    assert loaded.num_params() == model.num_params()
    assert not list((tmp_path / method).glob("*.pkl")) and not list((tmp_path / method).glob("*.bin"))


def test_torch_int8_file_is_smaller_and_counts_linears_as_int8(built, toy, tmp_path):
    built["torch-fp32"].save(tmp_path / "fp32")
    built["dynamic-int8"].model.save(tmp_path / "int8")
    assert dir_size_bytes(tmp_path / "int8") < dir_size_bytes(tmp_path / "fp32")
    assert built["dynamic-int8"].model.describe()["quantization"] == "dynamic-int8"
    assert built["dynamic-int8"].model.nonzero_params() <= built["dynamic-int8"].model.num_params()


def test_quantizing_twice_or_a_non_hf_model_is_a_model_error(built, toy, tmp_path):
    with pytest.raises(ModelError, match="already"):
        quantize("onnxruntime-dynamic-int8", built["onnxruntime-dynamic-int8"].model, toy, tmp_path)
    with pytest.raises(ModelError, match="already"):
        quantize("dynamic-int8", built["dynamic-int8"].model, toy, tmp_path)
    with pytest.raises(ModelError, match="weight-only-int8"):
        quantize("weight-only-int8", built["torch-fp32"], toy, tmp_path)


# --------------------------------------------------------------------------- threads and latency
def test_set_threads_rebuilds_the_session_with_that_count(built):
    model: OnnxAdapter = built["onnx-fp32"].model
    session = model.session
    assert model.set_threads(1) == 1 and model.session is session  # same count: kept
    assert model.set_threads(2) == 2 and model.session is not session
    assert model.session.get_session_options().intra_op_num_threads == 2
    model.set_threads(1)


def test_latency_applies_threads_to_the_session_and_times_prepare_when_asked(built, toy, monkeypatch):
    model: OnnxAdapter = built["onnx-fp32"].model
    seen = []
    original = model.set_threads
    monkeypatch.setattr(model, "set_threads", lambda n: seen.append(n) or original(n))
    calls = {"prepare": 0}
    prepare = model.prepare

    def counting_prepare(X):
        calls["prepare"] += 1
        return prepare(X)

    monkeypatch.setattr(model, "prepare", counting_prepare)
    model_only = measure_latency(model, toy.test.X, threads=2, batch=1, warmup=2, runs=10)
    assert seen[0] == 2 and model_only["threads"] == 2 and model_only["method"] == LATENCY_METHOD
    assert model.threads == 1  # restored after the measurement
    before = calls["prepare"]
    e2e = measure_latency(model, toy.test.X, threads=1, batch=4, warmup=2, runs=10, include_prepare=True)
    assert calls["prepare"] - before == 12  # one tokenization per timed or warm-up call
    assert e2e["method"] == END_TO_END_METHOD and e2e["batch"] == 4
    assert e2e["p50_ms"] > 0 and set(model_only) == set(e2e)


@pytest.mark.parametrize("method", ["onnxruntime-dynamic-int8", "onnxruntime-static-int8"])
def test_per_channel_int8_runs_and_keeps_accuracy(trained, toy, built, tmp_path, method):
    q = quantize(method, built["onnx-fp32"].model, toy, tmp_path, per_channel=True, calibration_examples=32)
    assert q.model.info["per_channel"] is True
    assert accuracy(q.model, toy.test) >= accuracy(trained, toy.test) - 0.05


def test_ort_quantization_failure_and_empty_calibration_set_are_model_errors(built, toy, tmp_path, monkeypatch):
    import onnxruntime.quantization as ortq

    from leanbench.compress.hf_quantize import calibration_sample

    def broken(*args, **kwargs):
        raise RuntimeError("[ShapeInferenceError] shapes differ")

    monkeypatch.setattr(ortq, "quantize_dynamic", broken)
    with pytest.raises(ModelError, match="onnxruntime-dynamic-int8.*ShapeInferenceError"):
        quantize("onnxruntime-dynamic-int8", built["onnx-fp32"].model, toy, tmp_path)
    with pytest.raises(ModelError, match="train split is empty"):
        calibration_sample(np.array([], dtype=object), 8, 0)
