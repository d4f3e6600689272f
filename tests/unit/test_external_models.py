"""Models built elsewhere as candidates without a build step: an ONNX classifier file exported here (predictions
equal the torch model's), a Hugging Face classification checkpoint whose id2label is matched to the task's
labels (reordered explicitly, a mismatch an error), a new head flagged, and bad files."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny_text import SPECIAL, save_tiny_bert, save_tokenizer, toy_texts  # noqa: E402

from leanbench.errors import ModelError  # noqa: E402
from leanbench.models.base import build_model  # noqa: E402
from leanbench.models.hf import label_order  # noqa: E402
from leanbench.schema.models import HFSpec, OnnxFileSpec  # noqa: E402

VOCAB = 35


def _classifier(folder: Path, labels: list[str], seed: int = 0):
    """A tiny BertForSequenceClassification with these id2label names (random weights), saved with its
    tokenizer."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64, num_labels=len(labels),
                     id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    model = BertForSequenceClassification(cfg).eval()
    model.save_pretrained(str(folder))
    save_tokenizer(folder)
    return model


def _torch_logits(model, folder: Path, X: np.ndarray) -> np.ndarray:
    from transformers import AutoTokenizer

    enc = AutoTokenizer.from_pretrained(str(folder))(list(X), padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**enc).logits.numpy()


def _export(model, folder: Path, path: Path, inputs=("input_ids", "token_type_ids", "attention_mask")) -> Path:
    """torch.onnx.export (TorchScript) of the classifier's logits, dynamic batch and sequence axes."""
    from transformers import AutoTokenizer

    # traced on a padded batch: traced on one unpadded text, the graph would drop the attention mask
    enc = AutoTokenizer.from_pretrained(str(folder))(["a good film", "the plot was really dull and boring"],
                                                     padding=True, return_tensors="pt")

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args):
            return self.inner(**dict(zip(inputs, args, strict=True))).logits

    torch.onnx.export(Logits(model), tuple(enc[n] for n in inputs), str(path), input_names=list(inputs),
                      output_names=["logits"], dynamo=False, opset_version=17,
                      dynamic_axes={n: {0: "b", 1: "t"} for n in inputs})
    model.eval()  # export can leave the model in training mode (dropout on)
    return path


def _data(labels: list[str], base: Path) -> SimpleNamespace:
    return SimpleNamespace(label_names=labels, meta={"task_kind": "classification", "base_dir": str(base)})


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("ext")
    folder = root / "clf"
    model = _classifier(folder, ["negative", "positive"])
    f = _export(model, folder, root / "model.onnx")
    return {"root": root, "folder": folder, "model": model, "onnx": f, "X": toy_texts(20, 5)[0]}


def test_an_onnx_file_is_a_candidate_and_predicts_what_torch_does(exported):
    folder, X = exported["folder"], exported["X"]
    spec = OnnxFileSpec(onnx="model.onnx", tokenizer="clf")  # relative to the study folder
    adapter = build_model(spec, _data(["negative", "positive"], exported["root"]), seed=0)
    assert adapter.adapter_name == "onnx"
    want = torch.softmax(torch.from_numpy(_torch_logits(exported["model"], folder, X)).double(), 1).numpy()
    np.testing.assert_allclose(adapter.predict_proba(X), want, atol=1e-5)
    d = adapter.describe()
    assert d["built_elsewhere"] and "same order" in d["labels"] and d["labels_config"].endswith("config.json")


def test_onnx_labels_in_another_order_are_reordered_and_said(exported):
    X = exported["X"]
    adapter = build_model(OnnxFileSpec(onnx=str(exported["onnx"]), tokenizer=str(exported["folder"])),
                          _data(["Positive", "negative"], exported["root"]), seed=0)
    raw = _torch_logits(exported["model"], exported["folder"], X)
    np.testing.assert_allclose(adapter.forward(adapter.prepare(X)), raw[:, [1, 0]], atol=1e-4)
    assert adapter.info["label_order"] == [1, 0] and "reordered" in adapter.describe()["labels"]
    # saved and loaded, the order holds
    adapter.save(exported["root"] / "saved")
    again = type(adapter).load(exported["root"] / "saved")
    np.testing.assert_allclose(again.forward(again.prepare(X)), raw[:, [1, 0]], atol=1e-4)


def test_onnx_labels_that_are_not_the_tasks_are_an_error(exported):
    with pytest.raises(ModelError, match=r"labels \['negative', 'positive'\] are not the task's labels"):
        build_model(OnnxFileSpec(onnx=str(exported["onnx"]), tokenizer=str(exported["folder"])),
                    _data(["spam", "ham"], exported["root"]), seed=0)
    with pytest.raises(ModelError, match="gives 2 logits per example, the task has 3"):
        build_model(OnnxFileSpec(onnx=str(exported["onnx"]), tokenizer=str(exported["folder"])),
                    _data(["a", "b", "c"], exported["root"]), seed=0)


def test_bad_onnx_files_are_one_clear_message(exported, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    labels = _data(["negative", "positive"], tmp_path)
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(exported["onnx"].read_bytes()[:2000])
    with pytest.raises(ModelError, match="cut.onnx is not a readable ONNX model|cut.onnx .*truncated"):
        build_model(OnnxFileSpec(onnx=str(cut), tokenizer=str(exported["folder"])), labels, seed=0)
    with pytest.raises(ModelError, match="model.onnx: no file"):
        build_model(OnnxFileSpec(onnx=str(tmp_path / "none.onnx"), tokenizer=str(exported["folder"])), labels, 0)
    # a graph whose inputs the tokenizer does not give
    x = helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["b", 2])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", 2])
    graph = helper.make_graph([helper.make_node("Identity", ["pixel_values"], ["logits"])], "g", [x], [y])
    other = tmp_path / "image.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(other))
    with pytest.raises(ModelError, match=r"takes inputs \['pixel_values'\].*pixel_values missing"):
        build_model(OnnxFileSpec(onnx=str(other), tokenizer=str(exported["folder"])), labels, seed=0)


def test_a_study_accepts_an_onnx_file_as_a_candidate(exported):
    from leanbench.study_loader import parse_study

    study = parse_study({"name": "ext", "task": {"data": "x.csv", "text": "t", "label": "y"}, "reference": "ort",
                         "candidates": [{"name": "ort", "model": {"onnx": "m.onnx", "tokenizer": "tok"}}]})
    assert isinstance(study.candidates[0].model, OnnxFileSpec)
    assert study.family_paths()["ort"][-1][1] == "onnx"


# --------------------------------------------------------------------------- HF checkpoints
def test_hf_checkpoint_labels_reordered_explicitly(tmp_path):
    folder = tmp_path / "ckpt"
    model = _classifier(folder, ["neg", "pos", "neu"])
    X = toy_texts(12, 7)[0]
    adapter = build_model(HFSpec(hf=str(folder)), _data(["neu", "neg", "pos"], tmp_path), seed=0)
    raw = _torch_logits(model, folder, X)
    np.testing.assert_allclose(adapter.logits(X), raw[:, [2, 0, 1]], atol=1e-5)
    d = adapter.describe()
    assert d["head"] == "from the checkpoint" and "reordered" in d["labels"] and "'neu' <- output 2" in d["labels"]
    same = build_model(HFSpec(hf=str(folder)), _data(["neg", "pos", "neu"], tmp_path), seed=0)
    np.testing.assert_allclose(same.logits(X), raw, atol=1e-5)
    with pytest.raises(ModelError, match=r"labels \['neg', 'pos', 'neu'\] are not the task's labels"):
        build_model(HFSpec(hf=str(folder)), _data(["a", "b", "c"], tmp_path), seed=0)


def test_a_new_head_is_said_and_codes_match_ids(tmp_path):
    base = save_tiny_bert(tmp_path / "base")
    adapter = build_model(HFSpec(hf=str(base)), _data(["negative", "positive"], tmp_path), seed=0)
    assert adapter.describe()["head"].startswith("new: initialised from the seed (classifier.")
    adapter.save(tmp_path / "saved")
    assert type(adapter).load(tmp_path / "saved").describe()["head"].startswith("new")
    order, note = label_order({0: "NEGATIVE", 1: "POSITIVE"}, ["0", "1"], "x")
    assert order is None and "class codes 0..1" in note and "0 = 'NEGATIVE'" in note
    assert label_order({0: "LABEL_0", 1: "LABEL_1"}, ["b", "a"], "x")[0] is None
    with pytest.raises(ModelError, match="has 3 labels"):
        label_order({0: "a", 1: "b", 2: "c"}, ["a", "b"], "x")
    assert len(SPECIAL) == 5


def test_a_new_head_without_training_is_a_note_in_the_report():
    from leanbench.analysis.heads import untrained_heads
    from leanbench.study_loader import parse_study

    study = parse_study({"name": "h", "task": {"data": "x.csv", "text": "t", "label": "y"}, "reference": "enc",
                         "candidates": [{"name": "enc", "model": {"hf": "enc"}},
                                        {"name": "enc-int8", "from": "enc",
                                         "steps": [{"quantize": {"method": "dynamic-int8"}}]},
                                        {"name": "tuned", "from": "enc", "steps": [{"finetune": {"epochs": 1}}]}]})
    new = {"head": "new: initialised from the seed (classifier.bias)"}
    build = SimpleNamespace(result=SimpleNamespace(describe=new))
    loaded = SimpleNamespace(study=study, builds={"enc": build, "enc-int8": None, "tuned": None})
    (note,) = untrained_heads(loaded)
    assert "'enc', 'enc-int8'" in note and "tuned" not in note
    loaded.builds["enc"] = SimpleNamespace(result=SimpleNamespace(describe={"head": "from the checkpoint"}))
    assert untrained_heads(loaded) == []
