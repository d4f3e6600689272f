"""Speed-ups under a noisy neighbour: the old block protocol against interleaved rounds (issue 27).

The digits demo's teacher (MLP 512-512), its 90%-magnitude-pruned copy (the same dense shapes: it cannot be
faster) and its distilled student (MLP 128) are loaded from a store and timed at batch 1, 1 thread (pinned to
one CPU), while a neighbour process works on the other CPU in random bursts of a few to tens of milliseconds, the length of
one candidate's block (copying a 32 MB array by default: it competes for the shared caches and memory
bandwidth). A burst slows every call of the block it lands on, which a block protocol turns into a speed-up. For each protocol and repeat it prints the teacher / candidate speed-ups with their 95% CIs
(``leanbench.stats.speedup``) and the disturbed rounds.

    .venv/bin/python benchmarks/noise_injection.py                 # builds digits into a temporary store
    .venv/bin/python benchmarks/noise_injection.py --store .leanbench/leanbench.db --repeats 3

Targets: with interleaved rounds the teacher / pruned90 interval contains 1.0 and its point estimate is within
15% of 1; the student's interval is above 1. The block protocol, given the same neighbour, is shown beside.
Speed-ups are worded as leanbench reports them: "faster" only when the whole interval is above 1.05.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from leanbench.measure.interleaved import time_interleaved
from leanbench.models.base import load_model
from leanbench.runner.keys import build_keys
from leanbench.runner.local import load_data, run_study
from leanbench.stats.speedup import disturbed_rounds, paired_speedup, speedup_words
from leanbench.store import Store
from leanbench.study_loader import load_study

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("teacher", "teacher-pruned90", "student-kd")


def neighbour(cpu: int, seed: int, stop: mp.Event, busy_ms: tuple[float, float], idle_ms: tuple[float, float],
              kind: str = "memory") -> None:
    """Bursts of work on `cpu`, each `busy_ms` long, with `idle_ms` pauses (uniform, seeded): copies of a
    32 MB array (`memory`: competes for caches and memory bandwidth) or a pure-Python loop (`compute`)."""
    os.sched_setaffinity(0, {cpu})
    rng = random.Random(seed)
    src = np.ones(4_000_000)
    dst = np.empty_like(src)
    while not stop.is_set():
        end = time.perf_counter() + rng.uniform(*busy_ms) / 1e3
        x = 0
        while time.perf_counter() < end:
            if kind == "memory":
                np.copyto(dst, src)
            else:
                x += 1
        time.sleep(rng.uniform(*idle_ms) / 1e3)


def models_from_store(store_path: Path | None) -> tuple[dict, np.ndarray, str]:
    study = load_study(ROOT / "studies" / "digits.yaml")
    if store_path is None:
        store_path = Path(tempfile.mkdtemp(prefix="noise-")) / "leanbench.db"
    store = Store.open(store_path)
    run_study(study, store)  # reuses every cell that is there
    data = load_data(study)
    keys = build_keys(study, data.fingerprints)
    models = {n: load_model(store.artifact_dir(keys[n])) for n in NAMES}
    return models, data.split("test").X, str(store_path)


def one(models: dict, X: np.ndarray, protocol: str, rounds: int, calls: int, seed: int) -> dict:
    t = time_interleaved(models, X, threads=1, batch=1, warmup=20, rounds=rounds, calls=calls, seed=seed,
                         protocol=protocol)
    ref = t["teacher"].round_medians
    out = {"protocol": protocol}
    for name in NAMES[1:]:
        s = paired_speedup(ref, t[name].round_medians, min_effect=0.05)  # leanbench's default measure.min_speedup
        out[name] = {"value": s["value"], "ci_low": s["ci_low"], "ci_high": s["ci_high"], "words": speedup_words(s),
                     "p50_ratio": float(np.median(t["teacher"].samples_ms) / np.median(t[name].samples_ms))}
    out["disturbed_rounds"] = {n: int(disturbed_rounds(t[n].round_medians).sum()) for n in NAMES}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--quiet", action="store_true", help="no neighbour (the control)")
    ap.add_argument("--busy-ms", type=float, nargs=2, default=(5.0, 50.0), help="neighbour burst length range")
    ap.add_argument("--neighbour", choices=("memory", "compute"), default="memory")
    ap.add_argument("--idle-ms", type=float, nargs=2, default=(20.0, 200.0), help="pause between bursts")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args()
    models, X, store = models_from_store(args.store)
    print(f"store: {store}; load before: {os.getloadavg()[0]:.2f}")
    cpus = sorted(os.sched_getaffinity(0))
    cpu, other = cpus[0], cpus[-1]
    os.sched_setaffinity(0, {cpu})  # the timing on one CPU, the neighbour on the other
    rows = []
    for rep in range(args.repeats):
        for protocol in ("blocks", "interleaved"):
            stop = mp.Event()
            proc = None
            if not args.quiet:
                proc = mp.Process(target=neighbour, args=(other, 100 + rep, stop, args.busy_ms, args.idle_ms,
                                                          args.neighbour), daemon=True)
                proc.start()
            try:
                row = one(models, X, protocol, args.rounds, args.calls, seed=rep)
            finally:
                stop.set()
                if proc is not None:
                    proc.join(5)
            row["repeat"] = rep
            rows.append(row)
            print(f"repeat {rep} {protocol:11s}  teacher/pruned90 {row['teacher-pruned90']['words']:42s} "
                  f"(p50 ratio {row['teacher-pruned90']['p50_ratio']:.2f})  teacher/student "
                  f"{row['student-kd']['words']:34s} disturbed rounds {row['disturbed_rounds']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
