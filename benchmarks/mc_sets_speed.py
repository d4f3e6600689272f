"""Multiple choice on every multiple-choice set of studies/llm-tasks.yaml: leanbench vs lm-evaluation-harness's
hf backend on the same SmolLM2-135M fp32 model, N questions per set (issue 29's "every set, not only OBQA and
MMLU").

Per set: the questions are the set's task in studies/llm-tasks.yaml (its source and template) with `sample: N`
drawn by the study seed; both tools score the identical requests (lm_eval through a local task YAML over the
contexts leanbench built, as `benchmarks/lm_eval_parity.py` does, whose loading, timing and token counts this
reuses): one model object in memory, the same torch threads, the same batch size (sequences per forward), back
to back, each tool's evaluation call timed with perf_counter (lm_eval: `simple_evaluate` including building its
task; leanbench: the multiple-choice evaluate, tokenization included).

Columns: identical answers (questions whose chosen answer, by acc and by acc_norm, is the same in both tools, of
N); wall seconds of each tool; the tokens each tool put through the model (padding included: lm_eval one row
per (context, choice) request, leanbench one packed row per question) and its rate (those tokens per second);
the request tokens per second of each tool (the same work for both: the context + choice tokens of every
request, each counted once per request as lm_eval scores it), which is the speed-up over the same denominator;
and the speed-up (lm_eval seconds / leanbench seconds).

    python benchmarks/mc_sets_speed.py                       # 300 questions per set, 2 threads, batch 16
    python benchmarks/mc_sets_speed.py --n 10 --sets piqa    # a quick check
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lm_eval_parity import forward_sizes, model_folder, run_leanbench, run_lm_eval  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "studies" / "llm-tasks.yaml"


def mc_sets(study: Path = STUDY) -> dict[str, dict]:
    """Task name -> its task config (without the study-level keys) for every multiple-choice task of the study."""
    import yaml

    tasks = yaml.safe_load(study.read_text())["tasks"]
    keep = ("kind", "data", "question", "choices", "gold", "template", "target_delimiter")
    return {t["name"]: {k: v for k, v in t.items() if k in keep} for t in tasks if t["kind"] == "multiple-choice"}


def load(config: dict, n: int, seed: int):
    from leanbench.evaluate.multiple_choice import KIND
    from leanbench.schema.tasks import MultipleChoiceTask

    task = MultipleChoiceTask(**config, sample=n)
    return task, KIND.load(task, seed=seed, base_dir=ROOT / "studies")


def request_tokens(model, split) -> int:
    """Context + choice tokens of every request, minus the last (what lm_eval scores per request), unpadded."""
    from leanbench.evaluate.multiple_choice import requests_of

    return sum(len(c) + len(x) - 1 for c, x in model.encode_requests(requests_of(split.X, " ")))


def answers(scores_ll: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = np.where(lengths > 0, scores_ll / np.where(lengths > 0, lengths, 1.0), -np.inf)
    return scores_ll.argmax(axis=1), norm.argmax(axis=1)


def compare(name: str, config: dict, model, n: int, seed: int, batch_size: int, workdir: Path, order: str) -> dict:
    from leanbench.evaluate.multiple_choice import split_scores

    task, data = load(config, n, seed)
    split = data.test
    runs = {tool: (run_leanbench(model, task, split, batch_size) if tool == "leanbench"
                   else run_lm_eval(model, split, name, batch_size, workdir)) for tool in order.split(",")}
    lb_wall, scores, _ = runs["leanbench"]
    le_wall, samples, _ = runs["lm_eval"]
    ll, lengths = split_scores(scores)
    lb_acc, lb_norm = answers(ll, lengths)
    le_ll = np.full_like(ll, -np.inf)
    for i, s in enumerate(samples):
        le_ll[i, :len(s["filtered_resps"])] = [r[0] for r in s["filtered_resps"]]
    le_acc, le_norm = answers(le_ll, lengths)
    sizes = forward_sizes(model, split, batch_size, batch_size)
    req = request_tokens(model, split)
    return {"set": name, "source": config["data"], "questions": len(split),
            "requests": sum(len(c) for _, c in split.X),
            "identical_acc": int((lb_acc == le_acc).sum()), "identical_acc_norm": int((lb_norm == le_norm).sum()),
            "max_loglik_gap": float(np.max(np.abs(np.where(np.isfinite(ll), ll - le_ll, 0.0)))),
            "lm_eval_s": le_wall, "leanbench_s": lb_wall, "speedup": le_wall / lb_wall,
            "lm_eval_tokens": sizes["lm_eval_tokens"], "leanbench_tokens": sizes["leanbench_tokens"],
            "lm_eval_tokens_per_s": sizes["lm_eval_tokens"] / le_wall,
            "leanbench_tokens_per_s": sizes["leanbench_tokens"] / lb_wall,
            "request_tokens": req, "lm_eval_request_tokens_per_s": req / le_wall,
            "leanbench_request_tokens_per_s": req / lb_wall, "batch_size": batch_size}


def table(rows: list[dict], threads: int) -> str:
    head = ("| set | questions | identical answers acc / acc_norm | lm_eval s | leanbench s | speed-up | "
            "tokens through the model lm_eval / leanbench | tokens/s lm_eval / leanbench | "
            "request tokens/s lm_eval / leanbench |\n|---|---|---|---|---|---|---|---|---|")
    lines = [f"| {r['set']} | {r['questions']} | {r['identical_acc']} / {r['identical_acc_norm']} | "
             f"{r['lm_eval_s']:.1f} | {r['leanbench_s']:.1f} | {r['speedup']:.2f}x | "
             f"{r['lm_eval_tokens']:,} / {r['leanbench_tokens']:,} | "
             f"{r['lm_eval_tokens_per_s']:,.0f} / {r['leanbench_tokens_per_s']:,.0f} | "
             f"{r['lm_eval_request_tokens_per_s']:,.0f} / {r['leanbench_request_tokens_per_s']:,.0f} |" for r in rows]
    batch = ", ".join(sorted({str(r["batch_size"]) for r in rows}))
    return "\n".join([head, *lines, "", f"batch size (sequences per forward) {batch} in both tools; torch threads "
                      f"{threads}; SmolLM2-135M-Instruct fp32 (from GGUF Q4_1); questions: each set's task in "
                      f"{STUDY.relative_to(ROOT)}, a seeded sample"])


def main() -> None:
    import torch

    sets = mc_sets()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=list(sets), choices=list(sets))
    ap.add_argument("--n", type=int, default=300, help="questions per set (a seeded sample)")
    ap.add_argument("--batch-size", type=int, default=16, help="sequences per forward, both tools")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--seed", type=int, default=0, help="the sample's seed (the study's seed is 0)")
    ap.add_argument("--order", default="lm_eval,leanbench", help="which tool runs first on each set")
    ap.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "leanbench-smollm2-fp32")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from leanbench.models.causal_lm import load_hf_causal_lm

    model = load_hf_causal_lm(str(model_folder(args.model_dir)))
    with tempfile.TemporaryDirectory() as tmp:
        rows = [compare(s, sets[s], model, args.n, args.seed, args.batch_size, Path(tmp), args.order)
                for s in args.sets]
    print(table(rows, torch.get_num_threads()))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
