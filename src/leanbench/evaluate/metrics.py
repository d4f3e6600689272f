"""Classification metrics: one metric, one object (after lighteval's `metric_utils.py`).

Each `Metric` maps gold labels `y_true` (int, shape (N,)) and predicted class probabilities `probs`
(float, shape (N, C)) to one number. Metrics are evaluated thousands of times inside bootstrap loops, so
they are vectorized numpy (`np.bincount` with per-resample offsets) rather than calls into scikit-learn;
the tests check them against scikit-learn. Every metric also has a `resampled` form that evaluates a
whole block of bootstrap index rows at once, shape (R, M) -> (R,), used by `metric_ci` and
`paired_metric_diff`.

Definitions
- accuracy: mean of [argmax_c probs[i, c] == y_i] (ties go to the lowest class index, as np.argmax).
- macro_f1: unweighted mean over the classes present in y_true or y_pred of F1_c = 2 TP_c / (2 TP_c + FP_c
  + FN_c), with F1_c = 0 when it is 0/0 — `sklearn.metrics.f1_score(average='macro')`.
- nll: mean of -log(max(probs[i, y_i], 1e-15)) (natural log; the clip as in scikit-learn's `log_loss`).
- ece: expected calibration error with 15 equal-width bins on the top-class probability, bin b holding
  confidences in (b/15, (b+1)/15] and the first bin also holding 0:
  ECE = sum_b (n_b / N) |acc_b - conf_b| (Guo et al. 2017, "On calibration of modern neural networks", eq. 3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from leanbench.registry import Registry
from leanbench.stats.bootstrap import CI, iter_bootstrap_indices, percentile_ci

NLL_CLIP = 1e-15
ECE_BINS = 15

# (y_true (N,), probs (N, C), idx (R, M)) -> (R,): the metric on each row of indices.
ResampledFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Metric:
    """A named metric: fn(y_true (N,), probs (N, C)) -> float, its direction, unit and meaning.

    `resampled(y_true, probs, idx)` computes the metric on each row of an (R, M) index array at once.
    `correct(y_true, scores) -> bool (N,)` is given for metrics that are a share of correct examples; the
    paired exact McNemar test uses it. `task` names the task kind whose stored scores the metric reads
    (classification: class probabilities; other kinds define their own score layout).
    """

    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    higher_is_better: bool
    unit: str
    description: str
    resampled: ResampledFn | None = None
    correct: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    task: str = "classification"

    def __call__(self, y_true: np.ndarray, probs: np.ndarray) -> float:
        return self.fn(y_true, probs)


METRICS: Registry[Metric] = Registry("metric")


def get_metric(name: str) -> Metric:
    """The registered metric called `name` (LeanbenchError with a suggestion when unknown).
    Metrics of other task kinds register when their (numpy-only) task module is imported."""
    if name not in METRICS:
        from leanbench.plugins import TASK_KINDS
        from leanbench.schema import tasks  # noqa: F401  (registers the built-in task kinds)

        for kind in TASK_KINDS.values():
            kind.implementation()  # importing a task kind's module registers its metrics
    return METRICS.get(name)


def predictions_from_probs(probs: np.ndarray) -> np.ndarray:
    """Predicted classes, argmax over the last axis (first maximum on ties): (N, C) -> (N,)."""
    return np.asarray(probs).argmax(axis=-1)


def check_inputs(y_true: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated (y_true as intp (N,), probs as float (N, C)); ValueError saying what is wrong."""
    y, p = np.asarray(y_true), np.asarray(probs, dtype=float)
    if p.ndim != 2 or y.ndim != 1 or y.shape[0] != p.shape[0] or y.size == 0:
        raise ValueError(
            f"metric inputs: need y_true of shape (N,) and probs of shape (N, C) with N >= 1, "
            f"got y_true {y.shape} and probs {p.shape}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"metric inputs: y_true must hold integer class ids, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(
            f"metric inputs: y_true must be in [0, {p.shape[1]}) (probs has {p.shape[1]} columns), "
            f"got labels from {y.min()} to {y.max()}"
        )
    return y.astype(np.intp, copy=False), p


def _offsets(idx: np.ndarray, width: int) -> np.ndarray:
    """Per-row offsets r * width, shape (R, 1), so one bincount counts every resample separately."""
    return (np.arange(idx.shape[0]) * width)[:, None]


def _accuracy_resampled(y: np.ndarray, probs: np.ndarray, idx: np.ndarray) -> np.ndarray:
    correct = predictions_from_probs(probs) == y
    return correct[idx].mean(axis=1)


def _macro_f1_resampled(y: np.ndarray, probs: np.ndarray, idx: np.ndarray) -> np.ndarray:
    n_rows, n_classes = idx.shape[0], probs.shape[1]
    size = n_rows * n_classes
    off = _offsets(idx, n_classes)
    yt, yp = y[idx] + off, predictions_from_probs(probs)[idx] + off  # (R, M) keys r * C + class
    tp = np.bincount(yt[yt == yp], minlength=size).reshape(n_rows, n_classes)
    support = np.bincount(yt.ravel(), minlength=size) + np.bincount(yp.ravel(), minlength=size)
    support = support.reshape(n_rows, n_classes)  # 2 TP + FP + FN per class
    present = support > 0  # classes in y_true U y_pred of this resample
    f1 = 2.0 * tp / np.maximum(support, 1)
    return f1.sum(axis=1) / present.sum(axis=1)


def _nll_resampled(y: np.ndarray, probs: np.ndarray, idx: np.ndarray) -> np.ndarray:
    gold = probs[np.arange(y.size), y]
    losses = -np.log(np.clip(gold, NLL_CLIP, None))
    return losses[idx].mean(axis=1)


def ece_bins(confidence: np.ndarray, n_bins: int = ECE_BINS) -> np.ndarray:
    """Bin of each confidence: b such that edges[b] < conf <= edges[b+1], 0 included in bin 0."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)


def _ece_resampled(y: np.ndarray, probs: np.ndarray, idx: np.ndarray) -> np.ndarray:
    conf = probs.max(axis=1)
    correct = (predictions_from_probs(probs) == y).astype(float)
    n_rows, size = idx.shape[0], idx.shape[0] * ECE_BINS
    keys = (ece_bins(conf)[idx] + _offsets(idx, ECE_BINS)).ravel()
    sum_acc = np.bincount(keys, weights=correct[idx].ravel(), minlength=size)
    sum_conf = np.bincount(keys, weights=conf[idx].ravel(), minlength=size)
    # sum_b (n_b / M) |acc_b - conf_b| = sum_b |sum_acc_b - sum_conf_b| / M
    return np.abs(sum_acc - sum_conf).reshape(n_rows, ECE_BINS).sum(axis=1) / idx.shape[1]


def _full_sample(resampled: ResampledFn) -> Callable[[np.ndarray, np.ndarray], float]:
    """The plain metric: the resampled form on the single row 0..N-1."""

    def fn(y_true: np.ndarray, probs: np.ndarray) -> float:
        y, p = check_inputs(y_true, probs)
        return float(resampled(y, p, np.arange(y.size)[None, :])[0])

    fn.__name__ = resampled.__name__.removeprefix("_").removesuffix("_resampled")
    return fn


def _register(name: str, resampled: ResampledFn, higher_is_better: bool, unit: str, description: str,
              correct: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> None:
    METRICS.add(name, Metric(name, _full_sample(resampled), higher_is_better, unit, description, resampled,
                             correct))


def _argmax_correct(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    return predictions_from_probs(probs) == np.asarray(y_true)


_register("accuracy", _accuracy_resampled, True, "fraction",
          "share of examples whose argmax class is the gold one", correct=_argmax_correct)
_register("macro_f1", _macro_f1_resampled, True, "fraction",
          "unweighted mean of per-class F1 over classes in gold or predicted labels")
_register("nll", _nll_resampled, False, "nats", "mean negative log-likelihood of the gold class")
_register("ece", _ece_resampled, False, "fraction",
          "expected calibration error, 15 equal-width bins on top-class confidence (Guo et al. 2017)")


def metric_on_index_rows(metric: Metric, y: np.ndarray, scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The metric on each row of an (R, M) index array: the batched `resampled` path when the metric has one."""
    if metric.resampled is not None:
        return np.asarray(metric.resampled(y, scores, idx), dtype=float)
    return np.array([metric.fn(y[row], scores[row]) for row in idx], dtype=float)


def resampled_values(
    metric: Metric, y: np.ndarray, probs: np.ndarray, n_resamples: int, seed: int
) -> np.ndarray:
    """The metric on each bootstrap resample (indices as `bootstrap_indices(N, n_resamples, seed)`)."""
    chunks = iter_bootstrap_indices(y.size, n_resamples, seed)
    return np.concatenate([metric_on_index_rows(metric, y, probs, idx) for idx in chunks])


def metric_ci(
    metric: Metric | str,
    y_true: np.ndarray,
    probs: np.ndarray,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> CI:
    """Percentile bootstrap CI of a metric; the same interval as `bootstrap_ci` on the same seed."""
    metric = get_metric(metric) if isinstance(metric, str) else metric
    y, p = check_inputs(y_true, probs)
    values = resampled_values(metric, y, p, n_resamples, seed)
    return percentile_ci(metric.fn(y, p), values, confidence)


def paired_metric_diff(
    metric: Metric | str,
    y_true: np.ndarray,
    probs_a: np.ndarray,
    probs_b: np.ndarray,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> CI:
    """Paired bootstrap CI of metric(a) - metric(b) on the same examples and resamples.

    Raw difference, not oriented: for lower-is-better metrics flip it (`stats.decision.orient`).
    """
    metric = get_metric(metric) if isinstance(metric, str) else metric
    y, pa = check_inputs(y_true, probs_a)
    _, pb = check_inputs(y_true, probs_b)
    diff = resampled_values(metric, y, pa, n_resamples, seed)
    diff -= resampled_values(metric, y, pb, n_resamples, seed)
    return percentile_ci(metric.fn(y, pa) - metric.fn(y, pb), diff, confidence)


__all__ = [
    "ECE_BINS",
    "METRICS",
    "NLL_CLIP",
    "Metric",
    "check_inputs",
    "ece_bins",
    "get_metric",
    "metric_ci",
    "paired_metric_diff",
    "predictions_from_probs",
]
