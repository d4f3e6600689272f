"""Hugging Face adapter and the transformer steps (finetune, lora, prune, distill into a layer student),
on a tiny BERT with random weights and a tokenizer built in the test (offline)."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pytest
import torch
from _tiny_text import save_tiny_bert, toy_task

from leanbench.compress.base import StepContext, get_step
from leanbench.errors import ConfigError, ModelError
from leanbench.models.base import dir_size_bytes, load_model
from leanbench.models.hf import HFClassifierAdapter, build_hf_model
from leanbench.study import FinetuneConfig, HFSpec, LoraConfig, PruneConfig
from leanbench.study_loader import parse_study

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert", layers=3)


@pytest.fixture(scope="module")
def data():
    return toy_task(max_length=16)


@pytest.fixture(scope="module")
def tuned(bert_dir, data, tmp_path_factory):
    """The tiny BERT fine-tuned on the toy task (shared by the pruning / distillation tests)."""
    model = build_hf_model(HFSpec(hf=str(bert_dir)), data, 0)
    ctx = StepContext(data=data, seed=0, cache_dir=tmp_path_factory.mktemp("cache"), teacher=None)
    return get_step("finetune")(FinetuneConfig(epochs=8, lr=3e-3, batch_size=16), model, ctx)


def ctx_for(data, tmp_path, teacher=None):
    return StepContext(data=data, seed=0, cache_dir=tmp_path / "cache", teacher=teacher)


def accuracy(model, split) -> float:
    return float(np.mean(model.predict_proba(split.X).argmax(1) == split.y))


# --------------------------------------------------------------------------- adapter
def test_build_save_load_round_trip(bert_dir, data, tmp_path):
    model = build_hf_model(HFSpec(hf=str(bert_dir)), data, seed=0)
    assert isinstance(model, HFClassifierAdapter) and model.max_length == 16
    assert model.model.config.id2label == {0: "negative", 1: "positive"}
    probs = model.predict_proba(data.test.X)
    assert probs.shape == (len(data.test), 2) and np.allclose(probs.sum(1), 1.0)
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file() and not list((tmp_path / "m").glob("*.bin"))
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(data.test.X), probs)
    assert loaded.num_params() == model.num_params() >= model.nonzero_params() > 0


def test_head_is_seeded_and_length_sorting_keeps_order(bert_dir, data):
    a = build_hf_model(HFSpec(hf=str(bert_dir)), data, seed=3)
    b = build_hf_model(HFSpec(hf=str(bert_dir)), data, seed=3)
    c = build_hf_model(HFSpec(hf=str(bert_dir)), data, seed=4)
    assert torch.equal(a.model.classifier.weight, b.model.classifier.weight)
    assert not torch.equal(a.model.classifier.weight, c.model.classifier.weight)
    X = data.test.X[:20]
    one_by_one = np.concatenate([a.predict_proba(X[i:i + 1]) for i in range(len(X))])
    np.testing.assert_allclose(a.predict_proba(X, batch_size=7), one_by_one, atol=1e-5)


def test_text_pairs_are_tokenized_as_pairs(bert_dir, data):
    model = build_hf_model(HFSpec(hf=str(bert_dir)), data, seed=0)
    pairs = np.array([["good movie", "bad plot"], ["the film", "nice"]], dtype=object)
    enc = model.prepare(pairs)
    sep = model.tokenizer.sep_token_id
    assert int((enc["input_ids"][0] == sep).sum()) == 2
    assert enc["token_type_ids"][0].max() == 1
    assert model.predict_proba(pairs).shape == (2, 2)


def test_keep_layers_student_copies_chosen_layers(bert_dir, data):
    full = build_hf_model(HFSpec(hf=str(bert_dir)), data, seed=0)
    student = build_hf_model(HFSpec(hf=str(bert_dir), keep_layers=[0, 2]), data, seed=0)
    layers = student.model.bert.encoder.layer
    assert len(layers) == 2 and student.model.config.num_hidden_layers == 2 and student.layer_map == [0, 2]
    for i, src in enumerate([0, 2]):
        for (ka, va), (kb, vb) in zip(layers[i].state_dict().items(),
                                      full.model.bert.encoder.layer[src].state_dict().items(), strict=True):
            assert ka == kb and torch.equal(va, vb)
    assert torch.equal(student.model.bert.embeddings.word_embeddings.weight,
                       full.model.bert.embeddings.word_embeddings.weight)
    assert student.num_params() < full.num_params()
    with pytest.raises(ModelError, match="keep_layers must be distinct layer indices in \\[0, 2\\]"):
        build_hf_model(HFSpec(hf=str(bert_dir), keep_layers=[0, 5]), data, seed=0)


# --------------------------------------------------------------------------- bad input
def test_folder_without_weights_or_tokenizer(bert_dir, data, tmp_path):
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((bert_dir / "config.json").read_text())
    (no_weights / "tokenizer.json").write_text((bert_dir / "tokenizer.json").read_text())
    with pytest.raises(ModelError, match="without weights"):
        build_hf_model(HFSpec(hf=str(no_weights)), data, seed=0)
    no_tok = tmp_path / "no_tok"
    no_tok.mkdir()
    for f in ("config.json", "model.safetensors"):
        (no_tok / f).write_bytes((bert_dir / f).read_bytes())
    with pytest.raises(ModelError, match="missing tokenizer files"):
        build_hf_model(HFSpec(hf=str(no_tok)), data, seed=0)


def test_unreachable_hub_id_says_pass_a_local_folder(data):
    with pytest.raises(ModelError, match="could not load 'nobody/no-such-model-xyz' from the Hugging Face hub "
                                         "\\(offline\\?\\); pass a local folder"):
        build_hf_model(HFSpec(hf="nobody/no-such-model-xyz"), data, seed=0)


def test_max_length_must_be_positive_in_config():
    raw = {"name": "t", "reference": "a", "task": {"data": "x.tsv", "text": "s", "max_length": 0},
           "candidates": [{"name": "a", "model": {"hf": "x"}}]}
    with pytest.raises(ConfigError, match="task.max_length: input should be greater than 0"):
        parse_study(raw)


def test_non_text_inputs_are_a_clear_error(bert_dir, data):
    model = build_hf_model(HFSpec(hf=str(bert_dir)), data, seed=0)
    with pytest.raises(ModelError, match="needs str inputs"):
        model.predict_proba(np.array([1.0, 2.0], dtype=object))


# --------------------------------------------------------------------------- finetune and lora
def test_finetune_learns_the_toy_task(bert_dir, data, tuned):
    base = build_hf_model(HFSpec(hf=str(bert_dir)), data, 0)
    assert accuracy(tuned.model, data.test) >= 0.9 > accuracy(base, data.test)
    assert tuned.info["steps"] == 48 and tuned.flops > 0
    # the input model is left untouched
    assert accuracy(base, data.test) == accuracy(build_hf_model(HFSpec(hf=str(bert_dir)), data, 0), data.test)


def test_finetune_max_steps_and_max_train_examples(bert_dir, data, tmp_path):
    model = build_hf_model(HFSpec(hf=str(bert_dir)), data, 0)
    res = get_step("finetune")(FinetuneConfig(max_steps=3, batch_size=8, max_train_examples=40), model,
                               ctx_for(data, tmp_path))
    assert res.info["steps"] == 3 and res.info["train_examples_seen"] == 24


def test_group_by_length_pads_less_and_still_learns(bert_dir, data, tmp_path):
    from leanbench.compress.finetune import MEGABATCH, epoch_batches

    lengths = np.random.default_rng(0).integers(1, 60, size=1000)
    plain = epoch_batches(lengths, 8, torch.Generator().manual_seed(3), group=False)
    assert [b.tolist() for b in plain] == [b.tolist() for b in torch.randperm(1000, generator=torch.Generator()
                                                                                 .manual_seed(3)).split(8)]
    grouped = epoch_batches(lengths, 8, torch.Generator().manual_seed(3), group=True)
    assert sorted(torch.cat(grouped).tolist()) == list(range(1000))  # every example once
    padded = lambda bs: sum(int(lengths[b.numpy()].max()) * len(b) for b in bs)  # noqa: E731
    assert padded(grouped) < 0.6 * padded(plain)
    longest = [int(lengths[b.numpy()].max()) for b in grouped[:MEGABATCH]]
    assert longest != sorted(longest, reverse=True)  # the batches' order is shuffled, not longest first
    again = epoch_batches(lengths, 8, torch.Generator().manual_seed(3), group=True)
    assert [b.tolist() for b in again] == [b.tolist() for b in grouped]

    model = build_hf_model(HFSpec(hf=str(bert_dir)), data, 0)
    res = {g: get_step("finetune")(FinetuneConfig(epochs=8, lr=3e-3, batch_size=16, group_by_length=g), model,
                                   ctx_for(data, tmp_path)) for g in (False, True)}
    assert res[True].info["train_padding_share"] < res[False].info["train_padding_share"]
    assert res[True].info["train_tokens"] == res[False].info["train_tokens"]  # same examples, less padding
    assert accuracy(res[True].model, data.test) >= 0.9


def test_lora_merged_equals_unmerged_and_few_trainable(bert_dir, data, tmp_path):
    model = build_hf_model(HFSpec(hf=str(bert_dir)), data, 0)
    res = get_step("lora")(LoraConfig(epochs=2, batch_size=16, r=2, lr=1e-2), model, ctx_for(data, tmp_path))
    # merged W + (alpha/r) BA vs the unmerged adapter: float32 rounding only
    assert res.info["merge_max_abs_prob_diff"] < 1e-5
    assert res.info["trainable_share"] < 0.1  # tiny model: the head is a large share; MiniLM: < 1%
    assert type(res.model.model).__name__ == "BertForSequenceClassification"
    assert res.model.num_params() == model.num_params()
    res.model.save(tmp_path / "lora")
    np.testing.assert_array_equal(load_model(tmp_path / "lora").predict_proba(data.test.X),
                                  res.model.predict_proba(data.test.X))


def test_lora_plus_gives_the_b_matrices_their_own_learning_rate(bert_dir, data):
    from leanbench.compress.finetune import _optimizer
    from leanbench.compress.lora import wrap_lora

    def groups(cfg):
        wrapped = wrap_lora(build_hf_model(HFSpec(hf=str(bert_dir)), data, 0).model, cfg)
        b_ids = {id(p) for n, p in wrapped.named_parameters() if ".lora_B." in n}
        return [(g["lr"], {id(p) in b_ids for p in g["params"]}) for g in _optimizer(wrapped, cfg).param_groups]

    plain = groups(LoraConfig(r=2, lr=1e-3))
    assert [lr for lr, _ in plain] == [1e-3, 1e-3]  # decay / no-decay, B matrices among the decayed
    plus = groups(LoraConfig(r=2, lr=1e-3, lr_ratio=16))
    assert [lr for lr, _ in plus] == [1e-3, 1e-3, pytest.approx(1.6e-2)]
    assert plus[2][1] == {True} and True not in plus[0][1] | plus[1][1]  # all B there, and only B


def test_pissa_starts_from_the_pretrained_function_in_the_principal_subspace_and_merges(bert_dir, data, tmp_path):
    import torch

    from leanbench.compress.lora import wrap_lora

    model = build_hf_model(HFSpec(hf=str(bert_dir)), data, 0)
    base = {n: p.detach().clone() for n, p in model.model.named_parameters()}
    batch = model.tokenizer(list(data.validation.X[:8]), padding=True, return_tensors="pt")
    copy = model.copy()
    with torch.no_grad():
        before = copy.model.eval()(**batch).logits
        pissa = wrap_lora(copy.model, LoraConfig(r=2, dropout=0.0, init="pissa")).eval()
        after = pissa(**batch).logits
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)  # the same function at the start
    layer = pissa.base_model.model.bert.encoder.layer[0].attention.self.query
    w = base["bert.encoder.layer.0.attention.self.query.weight"]
    s = torch.linalg.svdvals(w)
    # the residual keeps all but the top-2 singular values of W
    torch.testing.assert_close(torch.linalg.svdvals(layer.base_layer.weight)[:2], s[2:4], atol=1e-5, rtol=1e-4)
    res = get_step("lora")(LoraConfig(epochs=2, batch_size=16, r=2, lr=1e-2, dropout=0.0, init="pissa"), model,
                           ctx_for(data, tmp_path))
    assert res.info["init"] == "pissa" and res.info["merge_max_abs_prob_diff"] < 1e-5  # merged == unmerged
    assert type(res.model.model).__name__ == "BertForSequenceClassification"
    assert res.model.num_params() == model.num_params()


def test_dora_adds_one_undecayed_magnitude_per_output_feature_and_merges(bert_dir, data, tmp_path):
    from leanbench.compress.finetune import _optimizer
    from leanbench.compress.lora import trainable_counts, wrap_lora

    def wrapped(**kw):
        return wrap_lora(build_hf_model(HFSpec(hf=str(bert_dir)), data, 0).model, LoraConfig(r=2, **kw))

    dora = wrapped(use_dora=True)
    targets = [m for n, m in dora.named_modules() if n.endswith((".query", ".value"))]
    assert targets and trainable_counts(dora)[0] - trainable_counts(wrapped())[0] == sum(
        m.base_layer.out_features for m in targets)  # the magnitudes, one per output feature
    mags = {id(p) for n, p in dora.named_parameters() if ".lora_magnitude_vector." in n}
    decayed = [g for g in _optimizer(dora, LoraConfig(r=2, use_dora=True)).param_groups if g["weight_decay"]]
    assert mags and not mags & {id(p) for g in decayed for p in g["params"]}
    model = build_hf_model(HFSpec(hf=str(bert_dir)), data, 0)
    res = get_step("lora")(LoraConfig(epochs=2, batch_size=16, r=2, lr=1e-2, use_dora=True), model,
                           ctx_for(data, tmp_path))
    assert res.info["use_dora"] and res.info["merge_max_abs_prob_diff"] < 1e-5  # merged == unmerged
    assert type(res.model.model).__name__ == "BertForSequenceClassification"
    assert res.model.num_params() == model.num_params()


def test_lora_targets_match_like_peft_by_dotted_suffix(bert_dir, data, tmp_path):
    from leanbench.compress.lora import trainable_counts, wrap_lora

    model = build_hf_model(HFSpec(hf=str(bert_dir)), data, 0).model
    wrapped = wrap_lora(model, LoraConfig(r=2, target_modules=["query", "pooler.dense"]))
    lora = [n for n, _ in wrapped.named_modules() if n.endswith("lora_A")]
    assert any(".pooler.dense." in n for n in lora) and not any(".output.dense." in n for n in lora)
    assert trainable_counts(wrapped)[0] > 0
    with pytest.raises(ModelError, match=r"target_modules \['nope'\]"):
        wrap_lora(build_hf_model(HFSpec(hf=str(bert_dir)), data, 0).model, LoraConfig(target_modules=["nope"]))


# --------------------------------------------------------------------------- pruning
@pytest.mark.parametrize("method", ["heads", "ffn", "layers"])
def test_structured_pruning_shrinks_and_reloads(tuned, data, tmp_path, method):
    model = tuned.model
    model.save(tmp_path / "before")
    res = get_step("prune")(PruneConfig(method=method, sparsity=0.5), model, ctx_for(data, tmp_path))
    pruned = res.model
    assert pruned.num_params() < model.num_params()
    assert res.info["params_after"] == pruned.num_params()
    pruned.save(tmp_path / "after")
    assert dir_size_bytes(tmp_path / "after") < dir_size_bytes(tmp_path / "before")
    loaded = load_model(tmp_path / "after")
    assert loaded.num_params() == pruned.num_params()
    np.testing.assert_array_equal(loaded.predict_proba(data.test.X), pruned.predict_proba(data.test.X))
    if method == "heads":
        assert res.info["heads_kept"] == [2, 2, 2]
        assert pruned.model.bert.encoder.layer[0].attention.self.query.out_features == 16
    if method == "ffn":
        assert res.info["ffn_kept"] == [32, 32, 32]
    if method == "layers":
        assert res.info["layers_kept"] == [0]  # round(0.5 * 3) = 2 top layers dropped
        assert loaded.model.config.num_hidden_layers == 1


def test_head_pruning_at_zero_sparsity_changes_nothing(tuned, data, tmp_path):
    res = get_step("prune")(PruneConfig(method="heads", sparsity=0.0), tuned.model, ctx_for(data, tmp_path))
    np.testing.assert_allclose(res.model.predict_proba(data.test.X), tuned.model.predict_proba(data.test.X),
                               atol=1e-6)


def test_magnitude_pruning_on_hf_reports_nonzero_not_speed(tuned, data, tmp_path):
    res = get_step("prune")(PruneConfig(method="magnitude", sparsity=0.5), tuned.model, ctx_for(data, tmp_path))
    assert res.model.num_params() == tuned.model.num_params()
    assert res.model.nonzero_params() < tuned.model.nonzero_params()
    assert "none assumed" in res.info["speedup"]


# --------------------------------------------------------------------------- distillation
def test_layer_student_distils_with_cached_logits_and_hidden_loss(bert_dir, tuned, data, tmp_path):
    from leanbench.study import DistillConfig

    student = build_hf_model(HFSpec(hf=str(bert_dir), keep_layers=[0, 2]), data, 0)
    teacher = lambda name: (tuned.model, "teacherkey")  # noqa: E731
    ctx = ctx_for(data, tmp_path, teacher)
    cfg = DistillConfig(teacher="t", epochs=6, lr=3e-3, batch_size=16, hidden_weight=1.0)
    first = get_step("distill")(cfg, student, ctx)
    assert first.info["teacher_logits"] == "computed"
    assert accuracy(first.model, data.test) >= 0.85
    second = get_step("distill")(DistillConfig(teacher="t", max_steps=2, lr=3e-3), student, ctx)
    assert second.info["teacher_logits"] == "cached" and second.info["steps"] == 2


# --------------------------------------------------------------------------- bad text data
def _write_splits(tmp_path, train: bytes, test: bytes):
    (tmp_path / "train.tsv").write_bytes(train)
    (tmp_path / "test.tsv").write_bytes(test)
    return {"train": str(tmp_path / "train.tsv"), "validation": str(tmp_path / "train.tsv"),
            "test": str(tmp_path / "test.tsv")}


@pytest.mark.parametrize("test_file, message", [
    (b"sentence\tlabel\ngood film\t2\n", "label '2' in test .* does not occur in the training split"),
    (b"sentence\tlabel\n \t1\n", "empty text in .*test.tsv, column 'sentence', row 0"),
    (b"sentence\tlabel\ncaf\xe9\t1\n", "test.tsv is not UTF-8: byte 0xe9"),
])
def test_bad_text_data_is_a_clear_error(tmp_path, test_file, message):
    from leanbench.data.loaders import load_task
    from leanbench.errors import DataError
    from leanbench.study import DataFiles, TaskConfig

    files = _write_splits(tmp_path, b"sentence\tlabel\ngood film\t1\nbad film\t0\n", test_file)
    task = TaskConfig(data=DataFiles(**files), text="sentence", label="label")
    with pytest.raises(DataError, match=message):
        load_task(task, seed=0, base_dir=tmp_path)


# --------------------------------------------------------------------------- pickle checkpoints (issue 30)
def _save_bin_only(model, dest):
    """A legacy checkpoint: config + pytorch_model.bin (a pickled state dict), no safetensors. (transformers 5
    dropped `save_pretrained(safe_serialization=False)` and always writes safetensors; this is the file that
    older versions wrote.)"""
    model.save_pretrained(str(dest))
    for f in dest.glob("*.safetensors"):
        f.unlink()
    torch.save(model.state_dict(), dest / "pytorch_model.bin")
    assert (dest / "pytorch_model.bin").is_file() and not list(dest.glob("*.safetensors"))
    return dest


def _bin_only_copy(bert_dir, dest):
    """The tiny BERT (with its tokenizer) as a pytorch_model.bin-only folder."""
    import shutil

    from transformers import BertModel

    shutil.copytree(bert_dir, dest)
    return _save_bin_only(BertModel.from_pretrained(str(bert_dir)), dest)


def test_a_pickle_only_folder_needs_allow_pickle(bert_dir, data, tmp_path, monkeypatch):
    bin_dir = _bin_only_copy(bert_dir, tmp_path / "bin")
    real_load = torch.load
    calls = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))
    with pytest.raises(ModelError) as err:
        build_hf_model(HFSpec(hf=str(bin_dir)), data, seed=0)
    assert str(bin_dir) in str(err.value) and "allow_pickle: true" in str(err.value) and not calls
    picked = build_hf_model(HFSpec(hf=str(bin_dir), allow_pickle=True), data, seed=0)
    assert calls and all(k.get("weights_only") for k in calls)  # torch's restricted unpickler only
    safe = build_hf_model(HFSpec(hf=str(bert_dir)), data, seed=0)
    for (name, a), (_, b) in zip(picked.model.bert.named_parameters(), safe.model.bert.named_parameters(),
                                 strict=True):
        assert torch.equal(a, b), name  # the same weights through either file
    # a folder with safetensors never reaches the unpickler, with or without the option
    calls.clear()
    build_hf_model(HFSpec(hf=str(bert_dir), allow_pickle=True), data, seed=0)
    assert not calls


def test_a_pickle_only_causal_lm_and_embedding_source_are_refused(bert_dir, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from leanbench.models.causal_lm import load_hf_causal_lm
    from leanbench.models.text_students import pretrained_embeddings

    lm = tmp_path / "lm"
    _save_bin_only(LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32,
                                                num_hidden_layers=1, num_attention_heads=2,
                                                num_key_value_heads=2)), lm)
    with pytest.raises(ModelError, match="only in pytorch_model.bin .*allow_pickle: true"):
        load_hf_causal_lm(str(lm))
    bin_dir = _bin_only_copy(bert_dir, tmp_path / "bin")
    with pytest.raises(ModelError, match="only in pytorch_model.bin") as err:
        pretrained_embeddings(str(bin_dir), 31, 8)
    assert "allow_pickle" not in str(err.value)  # no such option there: convert the folder


def test_allow_pickle_false_stays_out_of_the_build_key():
    from leanbench.runner.keys import build_keys

    def study(**model):
        return parse_study({"name": "k", "task": {"data": "x.csv", "text": "t"}, "reference": "a",
                            "candidates": [{"name": "a", "model": {"hf": "some/model", **model}}]})

    fp = {"train": "t", "validation": "v"}
    assert build_keys(study(), fp) == build_keys(study(allow_pickle=False), fp) != build_keys(
        study(allow_pickle=True), fp)


def test_validate_names_a_pickle_only_folder_and_the_option(bert_dir, tmp_path):
    import yaml

    from leanbench.study_loader import load_study

    _bin_only_copy(bert_dir, tmp_path / "bin")
    (tmp_path / "d.csv").write_text("text,label\n" + "".join(f"good film {i},{i % 2}\n" for i in range(40)))
    study = {"name": "p", "task": {"data": "d.csv", "text": "text"}, "reference": "a",
             "candidates": [{"name": "a", "model": {"hf": "bin"}}]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(study))
    with pytest.raises(ConfigError) as err:
        load_study(tmp_path / "s.yaml", check_data=True)
    assert err.value.problems == [f"candidates[0].model.hf: {tmp_path / 'bin'}: the weights are only in "
                                  "pytorch_model.bin (a pickle), which leanbench does not load by default; save "
                                  "the model as safetensors (`from_pretrained(folder)` then `save_pretrained(folder)` "
                                  "writes model.safetensors), or set `allow_pickle: true` on this model to accept "
                                  "it (read with torch's restricted unpickler, weights_only)"]
    study["candidates"][0]["model"]["allow_pickle"] = True
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(study))
    load_study(tmp_path / "s.yaml", check_data=True)
