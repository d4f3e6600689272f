"""The `language-modeling` task kind: perplexity, bits per byte and word perplexity over documents.

Each document is scored whole with lm-eval's rolling windows (`CausalLMAdapter.loglikelihood_rolling`:
disjoint windows of the model's max length, the first conditioned on the BOS/EOS token). Stored per
document: ``[nll_sum, n_tokens, n_bytes, n_words]`` with nll_sum = -log-likelihood (nats), n_bytes the
UTF-8 bytes and n_words = len(re.split(r"\\s+", doc)) (lm-eval's count_bytes / count_words). The metrics
are ratio estimators over documents (bootstrapped by resampling documents):

    perplexity      = exp(sum nll / sum n_tokens)       (token level: depends on the tokenizer)
    bits_per_byte   = sum nll / (sum n_bytes * ln 2)     (lm-eval bits_per_byte)
    word_perplexity = exp(sum nll / sum n_words)        (lm-eval word_perplexity)

Data: a .txt file (documents separated by blank lines) or JSONL/CSV/Parquet with a `text` column; a
DataFiles mapping uses its `test` file (else `train`). The documents are the test split.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from leanbench.data.base import Split, TaskData
from leanbench.errors import DataError, ModelError
from leanbench.evaluate.metrics import METRICS, Metric, check_inputs
from leanbench.evaluate.tasks import EvalOutput

LN2 = math.log(2.0)


def _ratio(col: int, transform: Any) -> Any:
    def resampled(y: np.ndarray, scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
        nll, denom = scores[:, 0][idx].sum(axis=1), scores[:, col][idx].sum(axis=1)
        return transform(nll / np.maximum(denom, 1e-300))

    def fn(y: np.ndarray, scores: np.ndarray) -> float:
        y, s = check_inputs(y, scores)
        return float(resampled(y, s, np.arange(len(y))[None, :])[0])

    return fn, resampled


def _register(name: str, col: int, transform: Any, unit: str, description: str) -> None:
    fn, resampled = _ratio(col, transform)
    if name not in METRICS:
        METRICS.add(name, Metric(name, fn, False, unit, description, resampled, None, task="language-modeling"))


_register("perplexity", 1, np.exp, "perplexity", "exp(total NLL / total tokens), token level (rolling windows)")
_register("bits_per_byte", 2, lambda x: x / LN2, "bits/byte", "total NLL / (total UTF-8 bytes x ln 2)")
_register("word_perplexity", 3, np.exp, "perplexity", "exp(total NLL / total words), words = split on \\s+")


def count_words(doc: str) -> int:
    return len(re.split(r"\s+", doc))


def read_documents(path: Path, column: str, fmt: str | None = None) -> list[str]:
    """Documents of a .txt file (blank-line separated) or the `column` of a table file."""
    suffix = (fmt or path.suffix.lstrip(".")).lower()
    if suffix in ("txt", "text", "md"):
        docs = [d.strip("\n") for d in re.split(r"\n\s*\n", path.read_text(encoding="utf-8"))]
        return [d for d in docs if d.strip()]
    from leanbench.data.mc import read_records

    rows = read_records(path, fmt)
    if rows and column not in rows[0]:
        raise DataError(f"{path}: no column '{column}' (task.text); columns: {', '.join(map(str, rows[0]))}")
    return [str(r[column]) for r in rows if str(r[column]).strip()]


def load_lm_task(task: Any, *, seed: int, base_dir: Path) -> TaskData:
    if isinstance(task.data, str) and task.data.startswith("lm_eval:"):
        return _from_lm_eval(task, seed=seed, base_dir=Path(base_dir))
    return _load_lm_file(task, seed=seed, base_dir=Path(base_dir))


def _from_lm_eval(task: Any, *, seed: int, base_dir: Path) -> TaskData:
    """`lm_eval:<task>`: the documents of a loglikelihood_rolling task (its doc_to_target)."""
    from leanbench.data.lm_eval_tasks import load_lm_eval
    from leanbench.data.mc import empty_split, select

    docs = load_lm_eval(task, base_dir=base_dir)
    X = np.empty(len(docs.items), dtype=object)
    X[:] = docs.items
    test = select(Split("test", X, np.zeros(len(X), dtype=np.int64), np.asarray(docs.ids, dtype=object)), None,
                  task.sample, seed)
    return TaskData(empty_split("train"), empty_split("validation"), test, ["document"], (), docs.source,
                    {"task_kind": "language-modeling", **docs.meta})


def _load_lm_file(task: Any, *, seed: int, base_dir: Path) -> TaskData:
    from leanbench.data.loaders import resolve_path
    from leanbench.data.mc import empty_split, select
    from leanbench.study import DataFiles

    data = task.data
    given, fmt = ((data.test or data.train), data.format) if isinstance(data, DataFiles) else (data, None)
    path = resolve_path(given, Path(base_dir), where="task.data")
    docs = read_documents(path, task.text, fmt)[: task.limit]
    if not docs:
        raise DataError(f"{path}: no documents (a .txt file holds documents separated by blank lines)")
    X = np.empty(len(docs), dtype=object)
    X[:] = docs
    test = Split("test", X, np.zeros(len(docs), dtype=np.int64), np.array([f"d{i}" for i in range(len(docs))],
                                                                          dtype=object))
    test = select(test, None, task.sample, seed)  # task.sample: a seeded sample, in file order
    meta = {"task_kind": "language-modeling", "base_dir": str(base_dir), "dataset": str(path),
            "split_note": "one set of documents: evaluated as test; train and validation are empty"}
    return TaskData(empty_split("train"), empty_split("validation"), test, ["document"], (), str(path), meta)


class LanguageModeling:
    name = "language-modeling"

    def load(self, task: Any, *, seed: int, base_dir: Any) -> Any:
        return load_lm_task(task, seed=seed, base_dir=Path(base_dir))

    def evaluate(self, model: Any, split: Any, study: Any, data: Any) -> EvalOutput:
        if not hasattr(model, "loglikelihood_rolling"):
            raise ModelError(f"a language-modeling task needs a causal LM, got a model of adapter "
                             f"'{getattr(model, 'adapter_name', '?')}'")
        docs = [str(d) for d in split.X]
        results = model.loglikelihood_rolling(docs, batch_size=study.evaluate.batch_size,
                                              max_length=study.task.max_length)
        scores = np.array([[-ll, n, len(d.encode("utf-8")), count_words(d)]
                           for (ll, n), d in zip(results, docs, strict=True)], dtype=np.float64)
        return EvalOutput(scores=scores, pred=np.zeros(len(docs), dtype=np.int64),
                          info={"score_layout": "nll_sum, n_tokens, n_bytes, n_words"})


KIND = LanguageModeling()
