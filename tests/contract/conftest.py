"""Factories for the plugin contract suite: one tiny real model per registered family, and one small valid
config per registered (step, family, method). ``test_plugins.py`` checks that both cover every plugin the
registries declare, so a plugin is covered by being registered.

Every factory is ``factory(tmp_path) -> (adapter, TaskData it works on)``, offline, in seconds. The suite
builds each family's model once per session (``family_model``) and a second, independent instance when a
step needs a teacher of the same family (``teacher_model``).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parents[1]
for _folder in (TESTS / "unit", TESTS / "fixtures"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

from _tiny_text import save_tiny_bert, save_tokenizer, toy_task  # noqa: E402
from tiny_lm import build_tiny_lm, sentences, write_mc_jsonl  # noqa: E402

import leanbench.schema  # noqa: E402, F401  (registers the built-in plugins)
from leanbench.compress.base import StepContext  # noqa: E402
from leanbench.data.base import Split, TaskData  # noqa: E402
from leanbench.models.base import ModelAdapter, build_model  # noqa: E402
from leanbench.plugins import apply_step  # noqa: E402
from leanbench.study import (  # noqa: E402
    DistillConfig,
    FinetuneConfig,
    HFSpec,
    LoraConfig,
    LowRankConfig,
    MLPSpec,
    MultipleChoiceTask,
    PruneConfig,
    QuantizeConfig,
    TextStudentSpec,
    TfidfLogRegSpec,
    TrainConfig,
)

Factory = Callable[[Path], tuple[ModelAdapter, TaskData]]
TEACHER = "teacher"  # the name distill configs give their teacher; StepContext.teacher resolves it
CORPUS = "corpus.txt"  # the causal-LM distillation corpus, beside the multiple-choice file (data.meta["base_dir"])


def step_ctx(data: TaskData, cache_dir: Path, seed: int = 0,
             teacher: Callable[[str], tuple[ModelAdapter, str]] | None = None) -> StepContext:
    def no_teacher(name: str) -> tuple[ModelAdapter, str]:
        raise AssertionError(f"this step asked for a teacher ('{name}') but names none in its config")

    return StepContext(data=data, seed=seed, cache_dir=cache_dir, teacher=teacher or no_teacher)


# --------------------------------------------------------------------------- data
def wine_task() -> TaskData:
    """scikit-learn's wine (178 x 13, 3 classes), standardised, split 60/20/20 by a fixed permutation."""
    from sklearn.datasets import load_wine

    d = load_wine()
    X = ((d.data - d.data.mean(0)) / d.data.std(0)).astype(np.float32)
    y = d.target.astype(np.int64)
    idx = np.random.default_rng(0).permutation(len(y))
    parts = np.split(idx, [int(0.6 * len(y)), int(0.8 * len(y))])
    ids = np.array([f"wine-{i}" for i in range(len(y))])
    splits = [Split(n, X[p], y[p], ids[p]) for n, p in zip(("train", "validation", "test"), parts, strict=True)]
    return TaskData(*splits, label_names=[str(c) for c in d.target_names], input_shape=(X.shape[1],),
                    source="wine")


def text_task() -> TaskData:
    return toy_task(n_train=32, n_val=16, n_test=16, max_length=16)


# --------------------------------------------------------------------------- factories, one per family
def make_torch(tmp_path: Path) -> tuple[ModelAdapter, TaskData]:
    data = wine_task()
    return build_model(MLPSpec(hidden=[8]), data, 0), data


def make_hf(tmp_path: Path) -> tuple[ModelAdapter, TaskData]:
    data = text_task()
    bert = save_tiny_bert(tmp_path / "bert", layers=2)
    return build_model(HFSpec(hf=str(bert)), data, 0), data


def _quantized_hf(tmp_path: Path, method: str) -> tuple[ModelAdapter, TaskData]:
    hf, data = make_hf(tmp_path)
    result = apply_step("quantize", QuantizeConfig(method=method), hf, step_ctx(data, tmp_path / "cache"))
    return result.model, data


def make_hf_int8(tmp_path: Path) -> tuple[ModelAdapter, TaskData]:
    return _quantized_hf(tmp_path, "dynamic-int8")


def make_onnx(tmp_path: Path) -> tuple[ModelAdapter, TaskData]:
    return _quantized_hf(tmp_path, "onnx-fp32")


def make_text_student(tmp_path: Path) -> tuple[ModelAdapter, TaskData]:
    data = text_task()
    tok = tmp_path / "tok"
    save_tokenizer(tok)
    spec = TextStudentSpec(arch="textcnn", tokenizer=str(tok), embed_dim=16, channels=8, kernel_sizes=[2, 3])
    return build_model(spec, data, 0), data


def make_sklearn(tmp_path: Path) -> tuple[ModelAdapter, TaskData]:
    data = text_task()
    model = build_model(TfidfLogRegSpec(C=2.0), data, 0)
    return apply_step("train", TrainConfig(), model, step_ctx(data, tmp_path / "cache")).model, data


def make_causal_lm(tmp_path: Path) -> tuple[ModelAdapter, TaskData]:
    """The tiny Llama on a 6-question multiple-choice task; the folder also holds the distillation corpus
    (`CORPUS`), found through data.meta["base_dir"] as a study folder's files are."""
    folder = build_tiny_lm(tmp_path / "lm")
    mc = write_mc_jsonl(tmp_path / "mc.jsonl", n=6)
    (tmp_path / CORPUS).write_text("\n\n".join(" ".join(sentences(4, seed=s)) for s in range(8)))
    from leanbench.data.mc import load_mc_task

    data = load_mc_task(MultipleChoiceTask(kind="multiple-choice", data=str(mc)), seed=0, base_dir=tmp_path)
    data = dataclasses.replace(data, meta={**data.meta, "base_dir": str(tmp_path)})
    return build_model(HFSpec(hf=str(folder)), data, 0), data


def make_llamacpp(tmp_path: Path) -> tuple[ModelAdapter, TaskData]:
    """The tiny Llama written as an f32 GGUF (models/gguf_io.py) and opened by llama.cpp (`model: {gguf: ...}`)."""
    pytest.importorskip("llama_cpp")  # the `llama` extra (part of `all`, which `make test` installs)
    from leanbench.models.gguf_io import write_gguf
    from leanbench.schema.models import GGUFSpec

    lm, data = make_causal_lm(tmp_path)
    path = write_gguf(lm.model, lm.tokenizer, tmp_path / "tiny.gguf", dtype="f32")
    return build_model(GGUFSpec(gguf=str(path)), data, 0), data


def make_onnx_causal_lm(tmp_path: Path) -> tuple[ModelAdapter, TaskData]:
    """The tiny Llama exported with its KV cache to ONNX Runtime (`quantize: {method: onnx-fp32}`)."""
    lm, data = make_causal_lm(tmp_path)
    cfg = QuantizeConfig(method="onnx-fp32", exporter="torchscript")
    return apply_step("quantize", cfg, lm, step_ctx(data, tmp_path / "cache")).model, data


FAMILY_FACTORIES: dict[str, Factory] = {
    "torch": make_torch,
    "hf": make_hf,
    "hf-dynamic-int8": make_hf_int8,
    "onnx": make_onnx,
    "text-student": make_text_student,
    "sklearn": make_sklearn,
    "causal-lm": make_causal_lm,
    "llama.cpp": make_llamacpp,
    "onnx-causal-lm": make_onnx_causal_lm,
}


# --------------------------------------------------------------------------- step configs
_FAST_TRAIN = TrainConfig(epochs=2, batch_size=32, lr=1e-2, patience=0)
_TEXT_TRAIN = TrainConfig(epochs=1, batch_size=16, lr=1e-2, max_steps=2)
_FINETUNE = FinetuneConfig(max_steps=2, batch_size=16, lr=1e-3)

# (step, family, method) -> config; method is None where the family's handler takes every method
STEP_CONFIGS: dict[tuple[str, str, str | None], Any] = {
    ("train", "torch", None): _FAST_TRAIN,
    ("train", "hf", None): _TEXT_TRAIN,
    ("train", "text-student", None): _TEXT_TRAIN,
    ("train", "sklearn", None): TrainConfig(),
    ("distill", "torch", None): DistillConfig(teacher=TEACHER, epochs=2, batch_size=32, lr=1e-2, patience=0),
    ("distill", "hf", None): DistillConfig(teacher=TEACHER, epochs=1, batch_size=16, max_steps=2),
    ("distill", "text-student", None): DistillConfig(teacher=TEACHER, epochs=1, batch_size=16, lr=1e-2),
    ("distill", "causal-lm", None): DistillConfig(teacher=TEACHER, data=CORPUS, seq_len=16, epochs=1,
                                                  batch_size=8, lr=1e-3),
    ("prune", "torch", "magnitude"): PruneConfig(method="magnitude", sparsity=0.5),
    ("prune", "torch", "structured"): PruneConfig(method="structured", sparsity=0.5),
    ("prune", "hf", "magnitude"): PruneConfig(method="magnitude", sparsity=0.5),
    ("prune", "hf", "heads"): PruneConfig(method="heads", sparsity=0.5),
    ("prune", "hf", "ffn"): PruneConfig(method="ffn", sparsity=0.5),
    ("prune", "hf", "layers"): PruneConfig(method="layers", sparsity=0.5),
    ("prune", "causal-lm", "magnitude"): PruneConfig(method="magnitude", sparsity=0.3),
    ("prune", "causal-lm", "2:4"): PruneConfig(method="2:4"),
    ("quantize", "torch", "dynamic-int8"): QuantizeConfig(method="dynamic-int8"),
    ("quantize", "hf", "dynamic-int8"): QuantizeConfig(method="dynamic-int8"),
    ("quantize", "hf", "onnx-fp32"): QuantizeConfig(method="onnx-fp32"),
    ("quantize", "hf", "onnxruntime-dynamic-int8"): QuantizeConfig(method="onnxruntime-dynamic-int8"),
    ("quantize", "hf", "onnxruntime-static-int8"): QuantizeConfig(method="onnxruntime-static-int8",
                                                                  calibration_examples=16),
    ("quantize", "onnx", "onnxruntime-dynamic-int8"): QuantizeConfig(method="onnxruntime-dynamic-int8"),
    ("quantize", "onnx", "onnxruntime-static-int8"): QuantizeConfig(method="onnxruntime-static-int8",
                                                                    calibration_examples=16),
    ("quantize", "causal-lm", "dynamic-int8"): QuantizeConfig(method="dynamic-int8"),
    ("quantize", "causal-lm", "weight-only-int8"): QuantizeConfig(method="weight-only-int8"),
    ("quantize", "causal-lm", "weight-only-int4"): QuantizeConfig(method="weight-only-int4", group_size=16),
    ("quantize", "causal-lm", "gguf"): QuantizeConfig(method="gguf", type="q8_0"),
    ("quantize", "llama.cpp", "gguf"): QuantizeConfig(method="gguf", type="q4_0"),
    ("quantize", "causal-lm", "int4-packed"): QuantizeConfig(method="int4-packed", group_size=32),
    # the TorchScript exporter: seconds on the tiny Llama where dynamo takes ~15 s (tested in test_onnx_causal_lm)
    ("quantize", "causal-lm", "onnx-fp32"): QuantizeConfig(method="onnx-fp32", exporter="torchscript"),
    ("quantize", "causal-lm", "onnxruntime-dynamic-int8"): QuantizeConfig(method="onnxruntime-dynamic-int8",
                                                                          exporter="torchscript"),
    ("quantize", "causal-lm", "onnxruntime-int4"): QuantizeConfig(method="onnxruntime-int4", exporter="torchscript"),
    ("quantize", "onnx-causal-lm", "onnxruntime-dynamic-int8"): QuantizeConfig(method="onnxruntime-dynamic-int8"),
    ("quantize", "onnx-causal-lm", "onnxruntime-int4"): QuantizeConfig(method="onnxruntime-int4"),
    ("lowrank", "torch", None): LowRankConfig(rank=2),
    ("finetune", "hf", None): _FINETUNE,
    ("finetune", "text-student", None): _FINETUNE,
    ("lora", "hf", None): LoraConfig(max_steps=2, batch_size=16, r=2),
}


# --------------------------------------------------------------------------- session cache
class Built:
    """Each family's factory run once per session and role ("model", or "teacher": an independent instance
    for steps that distil from a model of the same family)."""

    def __init__(self, factory: pytest.TempPathFactory):
        self._factory = factory
        self._cache: dict[tuple[str, str], tuple[ModelAdapter, TaskData]] = {}

    def get(self, family: str, role: str = "model") -> tuple[ModelAdapter, TaskData]:
        if (family, role) not in self._cache:
            if family not in FAMILY_FACTORIES:
                pytest.fail(f"family '{family}' is registered but has no factory in tests/contract/conftest.py")
            self._cache[family, role] = FAMILY_FACTORIES[family](self._factory.mktemp(f"{family}-{role}"))
        return self._cache[family, role]


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    import torch

    torch.set_num_threads(1)
    return Built(tmp_path_factory)
