"""One fine-tuned HF classifier on five runtimes, side by side on SST-2 (872 test examples).

Usage:
    .venv/bin/python benchmarks/sst2_runtimes.py MODEL_DIR [SST2_FOLDER] [--threads 1] [--batch 1]
        [--warmup 20] [--runs 100] [--rounds 3] [--eval-batch 1] [--calibration 256] [--per-channel]
        [--exporter auto|dynamo|torchscript]

MODEL_DIR is a saved leanbench ``hf`` model (adapter.json) or a plain Hugging Face classifier folder.
The SST-2 folder (train.tsv, validation.tsv, test.tsv; columns sentence, label; read with
csv.QUOTE_NONE) comes from the argument, else env LEANBENCH_SST2, else ../shared/data/sst2 relative to
the repository root.

Variants, built with leanbench's ``quantize`` step: PyTorch fp32 (the model as given), PyTorch dynamic
int8, ONNX Runtime fp32 (the runtime-change control), ONNX Runtime dynamic int8, ONNX Runtime static
int8 (QDQ, calibrated on a seeded sample of the train split). For each: test accuracy (predictions at
``--eval-batch``, default 1 = the latency setting: dynamic int8 depends on batch composition), agreement
with PyTorch fp32, p50/p90 latency of the model call alone and end to end (tokenization included),
at ``--threads`` / ``--batch``, every variant timed together in ``--rounds`` interleaved rounds (leanbench's
protocol: ``--warmup`` untimed calls, then ``--runs`` timed calls each spread over the rounds), and the size of
the saved model file. Speed-ups, with 95% CIs paired by round, are given against PyTorch fp32 AND against
ONNX Runtime fp32, so that a runtime change is not passed off as compression.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
VARIANTS = [  # (name, quantize method or None, built from)
    ("pytorch-fp32", None, None),
    ("pytorch-dynamic-int8", "dynamic-int8", "pytorch-fp32"),
    ("ort-fp32", "onnx-fp32", "pytorch-fp32"),
    ("ort-dynamic-int8", "onnxruntime-dynamic-int8", "ort-fp32"),
    ("ort-static-int8", "onnxruntime-static-int8", "ort-fp32"),
]
MAIN_FILES = ("model.onnx", "model.safetensors")


def read_split(path: Path, name: str) -> Any:
    from leanbench.data.base import Split

    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        text, label = header.index("sentence"), header.index("label")
        rows = list(reader)
    X = np.array([r[text] for r in rows], dtype=object)
    y = np.array([int(r[label]) for r in rows], dtype=np.int64)
    return Split(name, X, y, np.array([f"{name}-{i}" for i in range(len(rows))]))


def load_sst2(folder: Path) -> Any:
    from leanbench.data.base import TaskData

    splits = {n: read_split(folder / f"{n}.tsv", n) for n in ("train", "validation", "test")}
    return TaskData(splits["train"], splits["validation"], splits["test"], ["0", "1"], (), str(folder))


def load_reference(model_dir: Path) -> Any:
    """A saved leanbench hf model, or a plain HF classifier folder wrapped as one (max_length 128)."""
    from leanbench.models.base import load_model
    from leanbench.models.hf import HFClassifierAdapter, load_classifier, load_tokenizer

    if (model_dir / "adapter.json").is_file():
        return load_model(model_dir)
    model = load_classifier(str(model_dir))
    return HFClassifierAdapter(model, load_tokenizer(str(model_dir)), source=str(model_dir))


def build_variants(ref: Any, data: Any, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    from leanbench.compress.base import StepContext, get_step
    from leanbench.study import QuantizeConfig

    ctx = StepContext(data=data, seed=0, cache_dir=Path(tempfile.gettempdir()), teacher=lambda n: (None, ""))
    built: dict[str, dict[str, Any]] = {"pytorch-fp32": {"model": ref, "build_s": 0.0, "info": {}}}
    for name, method, parent in VARIANTS[1:]:
        cfg = QuantizeConfig(method=method, calibration_examples=args.calibration, per_channel=args.per_channel,
                             exporter=args.exporter)
        start = time.perf_counter()
        result = get_step("quantize")(cfg, built[parent]["model"], ctx)
        built[name] = {"model": result.model, "build_s": time.perf_counter() - start, "info": result.info}
        print(f"built {name} in {built[name]['build_s']:.1f} s", file=sys.stderr, flush=True)
    return built


def file_size(model: Any, folder: Path) -> int:
    """Bytes of the saved weights file (model.onnx or model.safetensors)."""
    model.save(folder)
    for f in MAIN_FILES:
        if (folder / f).is_file():
            return (folder / f).stat().st_size
    return sum(f.stat().st_size for f in folder.glob("*.safetensors"))


def evaluate(name: str, entry: dict[str, Any], data: Any, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Accuracy, predictions, file size and parameters of one variant."""
    model = entry["model"]
    start = time.perf_counter()
    proba = model.predict_proba(data.test.X, batch_size=args.eval_batch)
    print(f"evaluated {name}", file=sys.stderr, flush=True)
    return {"name": name, "pred": proba.argmax(1), "acc": float((proba.argmax(1) == data.test.y).mean()),
            "eval_s": time.perf_counter() - start, "bytes": file_size(model, tmp / name),
            "params": model.num_params(), "build_s": entry["build_s"],
            "exporter": getattr(model, "info", {}).get("exporter", "")}


def latencies(built: dict[str, dict[str, Any]], X: np.ndarray, args: argparse.Namespace) -> dict[str, dict]:
    """p50/p90 of the model call and end to end per variant, all variants timed together in ``--rounds``
    interleaved rounds of ``--runs / --rounds`` calls (leanbench's measurement protocol), and each variant's
    speed-up over PyTorch fp32 and over ONNX Runtime fp32 with its 95% CI (paired by round)."""
    from leanbench.measure.interleaved import time_interleaved
    from leanbench.stats.speedup import paired_speedup

    models = {n: e["model"] for n, e in built.items()}
    calls = max(1, -(-args.runs // args.rounds))
    out: dict[str, dict] = {n: {} for n in models}
    for tag, prepare in (("", False), ("e2e_", True)):
        t = time_interleaved(models, X, threads=args.threads, batch=args.batch, warmup=args.warmup,
                             rounds=args.rounds, calls=calls, include_prepare=prepare)
        for n, timing in t.items():
            p50, p90 = np.percentile(timing.samples_ms, [50, 90])
            out[n][f"{tag}p50"], out[n][f"{tag}p90"] = float(p50), float(p90)
            for ref in ("pytorch-fp32", "ort-fp32"):
                s = paired_speedup(t[ref].round_medians, timing.round_medians, min_effect=0.05)
                out[n][f"{tag}vs_{ref}"] = s
        print(f"latency ({'end to end' if prepare else 'model'}) done", file=sys.stderr, flush=True)
    return out


def _ci(s: dict) -> str:
    lo = "?" if s["ci_low"] is None else f"{s['ci_low']:.2f}"
    hi = "?" if s["ci_high"] is None else f"{s['ci_high']:.2f}"
    return f"{s['value']:.2f}x [{lo}, {hi}]"


def table(rows: list[dict[str, Any]]) -> str:
    ref = rows[0]
    head = ("| variant | params | file MB | file vs fp32 | test acc | Δ acc (pts) | agree w/ fp32 | "
            "model p50 ms | model p90 ms | e2e p50 ms | e2e p90 ms | speed-up vs torch fp32 (model / e2e) | "
            "speed-up vs ORT fp32 (model / e2e) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['params'] / 1e6:.2f}M | {r['bytes'] / 2**20:.1f} | {r['bytes'] / ref['bytes']:.0%} | "
            f"{r['acc']:.2%} | {100 * (r['acc'] - ref['acc']):+.2f} | {(r['pred'] == ref['pred']).mean():.2%} | "
            f"{r['p50']:.2f} | {r['p90']:.2f} | {r['e2e_p50']:.2f} | {r['e2e_p90']:.2f} | "
            f"{_ci(r['vs_pytorch-fp32'])} / {_ci(r['e2e_vs_pytorch-fp32'])} | "
            f"{_ci(r['vs_ort-fp32'])} / {_ci(r['e2e_vs_ort-fp32'])} |")
    return "\n".join(lines)


def machine() -> str:
    import onnxruntime
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{cpu}, {cores} cores; python {platform.python_version()}, torch {torch.__version__}, "
            f"onnxruntime {onnxruntime.__version__}, transformers {transformers.__version__}")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir", type=Path)
    p.add_argument("sst2", type=Path, nargs="?",
                   default=Path(os.environ.get("LEANBENCH_SST2", ROOT.parent / "shared" / "data" / "sst2")))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--runs", type=int, default=200, help="timed calls per variant, spread over the rounds")
    p.add_argument("--rounds", type=int, default=20, help="interleaved rounds (leanbench's measure.rounds)")
    p.add_argument("--eval-batch", type=int, default=1, help="batch size of the accuracy predictions")
    p.add_argument("--calibration", type=int, default=256, help="train examples for static int8")
    p.add_argument("--per-channel", action="store_true", help="per-channel int8 weights (ORT)")
    p.add_argument("--exporter", choices=["auto", "dynamo", "torchscript"], default="auto")
    return p.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse(argv)
    import torch

    torch.set_num_threads(args.threads)
    data = load_sst2(args.sst2)
    ref = load_reference(args.model_dir)
    built = build_variants(ref, data, args)
    with tempfile.TemporaryDirectory(prefix="leanbench-sst2-runtimes-") as tmp:
        rows = [evaluate(name, built[name], data, args, Path(tmp)) for name, _, _ in VARIANTS]
    lat = latencies(built, data.test.X, args)
    rows = [{**r, **lat[r["name"]]} for r in rows]
    print(f"SST-2 test ({len(data.test)} examples), model {args.model_dir}")
    print(f"machine: {machine()}")
    print(f"latency: threads {args.threads}, batch {args.batch}, warm-up {args.warmup}, {args.runs} timed calls "
          f"per variant in {args.rounds} interleaved rounds; "
          f"accuracy predicted at batch {args.eval_batch}; static int8 calibrated on {args.calibration} "
          f"train examples; ONNX exporter: {rows[2]['exporter']}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}\n")
    print(table(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
