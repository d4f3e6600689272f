"""Time the contamination check on SST-2: train (60,614) vs validation (6,735) and vs test (872).

Usage:
    .venv/bin/python benchmarks/contamination_sst2.py [SST2_FOLDER]

The folder holds train.tsv, validation.tsv, test.tsv (columns sentence, label). It comes from the argument,
else the env var LEANBENCH_SST2, else ../shared/data/sst2 relative to the repository root. TSVs are read
with csv.QUOTE_NONE so that quote characters in sentences stay verbatim (as leanbench's TSV loader does).
Prints, per pair: the verbatim (byte-equal) repeats, the counts per method with each method's settings and
side counts (exact: `merged_tokens`, matches found only with spaces removed; n-gram: `max_df`,
`min_coverage`, `ignored_ngrams` dropped as boilerplate, `shared_any` = what the plain GPT-3 rule would flag,
`below_coverage`), the seconds per stage and in total, and a few example pairs.
"""

from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path

from leanbench.integrity.contamination import check_contamination

ROOT = Path(__file__).resolve().parents[1]


def read_sentences(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        col = header.index("sentence")
        return [row[col] for row in reader]


def sst2_folder(argv: list[str]) -> Path:
    if len(argv) > 1:
        return Path(argv[1])
    return Path(os.environ.get("LEANBENCH_SST2", ROOT.parent / "shared" / "data" / "sst2"))


def run_pair(train: list[str], eval_: list[str], name: str) -> None:
    train_set = set(train)
    verbatim = len(train_set.intersection(eval_))
    verbatim_examples = sum(s in train_set for s in eval_)
    t0 = time.perf_counter()
    report = check_contamination(train, eval_)
    total = time.perf_counter() - t0
    print(f"\n== train ({len(train):,}) vs {name} ({len(eval_):,})")
    print(f"verbatim repeats (byte-equal): {verbatim_examples} examples ({verbatim} distinct sentences)")
    for method, res in report.methods.items():
        extra = {k: v for k, v in res.params.items() if k != "normalize_seconds"}
        print(f"  {method:15s} {res.count:6d} eval examples  {res.seconds:6.2f} s  {extra}")
    print(f"  {'any':15s} {report.counts()['any']:6d}")
    print(f"  normalisation {report.methods['exact'].params['normalize_seconds']:.2f} s; total {total:.2f} s")
    for method, rows in report.examples.items():
        for r in rows[:3]:
            label = "coverage" if method == "ngram" else "J"
            sim = f" ({label}={r['similarity']:.2f})" if "similarity" in r else ""
            print(f"    {method}{sim}: eval {r['eval_text']!r} <- train {r['train_text']!r}")


def main(argv: list[str]) -> int:
    folder = sst2_folder(argv)
    if not folder.is_dir():
        print(f"SST-2 folder not found: {folder} (pass it as an argument or set LEANBENCH_SST2)",
              file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    train = read_sentences(folder / "train.tsv")
    validation, test = read_sentences(folder / "validation.tsv"), read_sentences(folder / "test.tsv")
    print(f"read {folder} in {time.perf_counter() - t0:.2f} s; cores: {os.cpu_count()}")
    run_pair(train, validation, "validation")
    run_pair(train, test, "test")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
