"""Slices: named subsets of the evaluated examples, and a per-slice comparison with the reference.

Builders: `label_slices` (one per gold label), `length_slices` (text length quantiles in words),
`keyword_slices` (case-insensitive whole-word or phrase match), `regex_slices` (Python `re.search`).

`slice_report` gives per slice the metric of the candidate and of the reference with percentile CIs, the
paired difference candidate - reference with its CI, and a test of *slice-specific degradation*: does the
candidate lose more against the reference on this slice than it does overall?

    excess = o * [(m_c(S) - m_r(S)) - (m_c(all) - m_r(all))],    o = +1 (higher is better) or -1

Method: a stratified paired bootstrap (Davison & Hinkley 1997, §3.2.2 "stratified sampling"): each
replicate resamples the slice's examples and the complement's examples separately, with replacement and
with their own sizes, and evaluates both models on the same indices, the slice metrics on the slice part
and the overall metrics on both parts together. Holding the slice size fixed makes every replicate's slice
metric well defined for any metric (macro-F1, ECE, not only means). The one-sided p-value for
H0: excess >= -margin (no slice-specific loss larger than the margin) against H1: excess < -margin is

    p = (1 + #{excess*_b >= -margin}) / (B + 1)        (the +1 correction, North et al. 2002).

A slice is flagged when its Holm-adjusted p (across the slices of this call, or across slices x
candidates when the caller concatenates the rows and calls `multiplicity.apply_holm`) is <= alpha / 2, the
one-sided level that matches the two-sided (1 - alpha) CIs shown (see `stats.multiplicity`).
Slices with fewer than `min_n` (default 10) examples are reported with their CIs but get no p-value and
are never flagged: with so few examples the bootstrap distribution is too coarse to test.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from leanbench.errors import LeanbenchError
from leanbench.evaluate.metrics import Metric, check_inputs, get_metric, metric_on_index_rows
from leanbench.stats.bootstrap import CI, MAX_CHUNK_ELEMENTS, iter_bootstrap_indices, percentile_ci
from leanbench.stats.multiplicity import apply_holm

MIN_SLICE_N = 10


@dataclass(frozen=True, eq=False)
class Slice:
    """A named subset of the evaluated examples: mask[i] is True when example i belongs to it."""

    name: str
    mask: np.ndarray
    kind: str = "custom"  # "label" | "length" | "keyword" | "regex" | "custom"

    @property
    def n(self) -> int:
        return int(np.count_nonzero(self.mask))


# --------------------------------------------------------------------------- builders
def label_slices(y: np.ndarray, label_names: Sequence[str]) -> list[Slice]:
    """One slice per label that occurs in y, named "label=<name>"."""
    y = np.asarray(y)
    return [Slice(f"label={name}", y == i, "label") for i, name in enumerate(label_names) if np.any(y == i)]


def _texts(X: np.ndarray, who: str) -> np.ndarray:
    X = np.asarray(X)
    if X.dtype != object or X.ndim != 1:
        raise LeanbenchError(f"{who} slices need text inputs (a 1-d array of strings), got an array of dtype "
                             f"{X.dtype} and shape {X.shape}")
    return X


def word_counts(X: np.ndarray) -> np.ndarray:
    """Whitespace-separated words per text."""
    return np.array([len(str(s).split()) for s in _texts(X, "length")], dtype=int)


def length_slices(X: np.ndarray, n_quantiles: int = 4) -> list[Slice]:
    """Text examples grouped by word-count quantile; [] for non-text inputs (features, images).

    Cut points are the k/n_quantiles quantiles of the word counts (k = 1..n_quantiles-1), de-duplicated,
    so ties can give fewer, unequal groups; a count equal to a cut point goes to the lower group. Names
    say the word range, e.g. "length 5-9 words".
    """
    if int(n_quantiles) != n_quantiles or n_quantiles < 1:
        raise LeanbenchError(f"length slices: n_quantiles must be an integer >= 1, got {n_quantiles!r}")
    X = np.asarray(X)
    if X.dtype != object or X.ndim != 1 or X.size == 0:
        return []
    counts = word_counts(X)
    cuts = np.unique(np.quantile(counts, np.arange(1, n_quantiles) / n_quantiles))
    groups = np.searchsorted(cuts, counts, side="left")
    out = []
    for g in np.unique(groups):
        mask = groups == g
        lo, hi = int(counts[mask].min()), int(counts[mask].max())
        out.append(Slice(f"length {lo}-{hi} words" if lo != hi else f"length {lo} words", mask, "length"))
    return out


def _check_spec(spec: Mapping[str, Any], who: str) -> None:
    if not isinstance(spec, Mapping) or not spec:
        raise LeanbenchError(f"{who} slices: expected a non-empty mapping of slice name to {who}s, "
                             f"got {spec!r}")


def keyword_slices(X: np.ndarray, keywords: Mapping[str, Sequence[str]]) -> list[Slice]:
    """One slice per name: texts containing any of its words or phrases, case-insensitively, as whole words.

    "Whole word" means not preceded or followed by a letter, digit or underscore; a space inside a phrase
    matches any run of whitespace. E.g. {"negation": ["not", "n't", "never", "no"]}.
    """
    _check_spec(keywords, "keyword")
    X = _texts(X, "keyword")
    out = []
    for name, words in keywords.items():
        if isinstance(words, str) or not words or not all(isinstance(w, str) and w.strip() for w in words):
            raise LeanbenchError(f"keyword slice '{name}': expected a non-empty list of words, got {words!r}")
        ordered = sorted(words, key=len, reverse=True)  # longest first, so phrases win over their words
        alts = "|".join(re.escape(w.strip()).replace(r"\ ", r"\s+") for w in ordered)
        pattern = re.compile(rf"(?<!\w)(?:{alts})(?!\w)", re.IGNORECASE)
        out.append(Slice(name, np.array([bool(pattern.search(str(s))) for s in X], dtype=bool), "keyword"))
    return out


def regex_slices(X: np.ndarray, patterns: Mapping[str, str]) -> list[Slice]:
    """One slice per name: texts where `re.search(pattern)` finds a match (case-sensitive unless (?i))."""
    _check_spec(patterns, "pattern")
    X = _texts(X, "regex")
    out = []
    for name, pattern in patterns.items():
        try:
            compiled = re.compile(pattern)
        except (re.error, TypeError) as e:
            raise LeanbenchError(
                f"regex slice '{name}': invalid regular expression {pattern!r}: {e}"
            ) from None
        out.append(Slice(name, np.array([bool(compiled.search(str(s))) for s in X], dtype=bool), "regex"))
    return out


# --------------------------------------------------------------------------- resampled metrics
def metric_on_rows(metric: Metric, y: np.ndarray, probs: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The metric on each row of an (R, M) index array (see `metrics.metric_on_index_rows`)."""
    return metric_on_index_rows(metric, y, probs, idx)


def paired_resampled_diffs(
    metric: Metric | str, y_true: np.ndarray, probs_a: np.ndarray, probs_b: np.ndarray, *,
    n_resamples: int = 1000, seed: int = 0,
) -> tuple[float, np.ndarray]:
    """(metric(a) - metric(b), the same on each resample): the resamples behind `paired_metric_diff`.

    Same indices (`iter_bootstrap_indices(N, n_resamples, seed)`), hence the same percentile CI; feed the
    oriented array to `stats.multiplicity.comparison_p_values` or `stats.equivalence.tost_from_resamples`.
    """
    metric = get_metric(metric) if isinstance(metric, str) else metric
    y, pa = check_inputs(y_true, probs_a)
    _, pb = check_inputs(y_true, probs_b)
    diffs = [metric_on_rows(metric, y, pa, idx) - metric_on_rows(metric, y, pb, idx)
             for idx in iter_bootstrap_indices(y.size, n_resamples, seed)]
    return metric.fn(y, pa) - metric.fn(y, pb), np.concatenate(diffs)


def _stratified_rows(members: np.ndarray, rest: np.ndarray, n_resamples: int, rng: np.random.Generator
                     ) -> Iterator[np.ndarray]:
    """Chunks of (r, n) index rows: the first len(members) columns resample the slice, the rest the
    complement."""
    n = members.size + rest.size
    rows = max(1, MAX_CHUNK_ELEMENTS // n)
    for start in range(0, n_resamples, rows):
        r = min(rows, n_resamples - start)
        part = members[rng.integers(0, members.size, (r, members.size))]
        if rest.size:
            part = np.hstack([part, rest[rng.integers(0, rest.size, (r, rest.size))]])
        yield part


def _ci_dict(ci: CI) -> dict[str, float]:
    return {"value": ci.value, "ci_low": ci.low, "ci_high": ci.high}


def _slice_row(sl: Slice, metric: Metric, y: np.ndarray, pc: np.ndarray, pr: np.ndarray, *, margin: float,
               n_resamples: int, confidence: float, seed: int, min_n: int) -> dict[str, Any]:
    mask = np.asarray(sl.mask, dtype=bool)
    members, rest = np.flatnonzero(mask), np.flatnonzero(~mask)
    row: dict[str, Any] = {"slice": sl.name, "kind": sl.kind, "n": int(members.size), "metric": metric.name,
                           "candidate": None, "reference": None, "diff": None, "excess": None,
                           "p_value": None, "testable": False, "note": None}
    if members.size == 0:
        row["note"] = "empty slice"
        return row
    rng = np.random.default_rng([seed, zlib.crc32(sl.name.encode())])
    k = members.size
    parts = {key: [] for key in ("c_s", "r_s", "c_all", "r_all")}
    for idx in _stratified_rows(members, rest, n_resamples, rng):
        for key, probs in (("c", pc), ("r", pr)):
            parts[f"{key}_s"].append(metric_on_rows(metric, y, probs, idx[:, :k]))
            parts[f"{key}_all"].append(metric_on_rows(metric, y, probs, idx))
    c_s, r_s, c_all, r_all = (np.concatenate(parts[key]) for key in ("c_s", "r_s", "c_all", "r_all"))
    v_cs, v_rs = metric.fn(y[members], pc[members]), metric.fn(y[members], pr[members])
    v_all = metric.fn(y, pc) - metric.fn(y, pr)
    sign = 1.0 if metric.higher_is_better else -1.0
    excess = sign * ((c_s - r_s) - (c_all - r_all))
    row.update({
        "candidate": _ci_dict(percentile_ci(v_cs, c_s, confidence)),
        "reference": _ci_dict(percentile_ci(v_rs, r_s, confidence)),
        "diff": _ci_dict(percentile_ci(v_cs - v_rs, c_s - r_s, confidence)),
        "overall_diff": float(v_all),
        "excess": _ci_dict(percentile_ci(sign * ((v_cs - v_rs) - v_all), excess, confidence)),
    })
    if k < min_n:
        row["note"] = f"fewer than {min_n} examples: shown, not tested"
    elif rest.size == 0:
        row["note"] = "the slice is the whole evaluation set: nothing to compare with"
    else:
        row["p_value"] = float((1 + np.count_nonzero(excess >= -margin)) / (excess.size + 1))
        row["testable"] = True
    return row


def slice_report(
    y: np.ndarray,
    probs_cand: np.ndarray,
    probs_ref: np.ndarray,
    slices: Sequence[Slice],
    metric: Metric | str,
    *,
    margin: float = 0.0,
    alpha: float = 0.05,
    n_resamples: int = 1000,
    confidence: float | None = None,
    seed: int = 0,
    min_n: int = MIN_SLICE_N,
) -> list[dict[str, Any]]:
    """Per slice: candidate and reference metric with CIs, the paired difference, and the degradation test.

    Row keys: slice, kind, n, metric, candidate / reference / diff / excess ({value, ci_low, ci_high};
    diff = candidate - reference in the metric's own direction, excess oriented higher-is-better, see the
    module docstring), overall_diff, p_value (one-sided, None when not tested), testable, note,
    p_adjusted and flagged (Holm across this call's testable slices at level alpha / 2).
    `confidence` defaults to 1 - alpha. The random stream of a slice depends on (seed, slice name) only.
    """
    metric = get_metric(metric) if isinstance(metric, str) else metric
    yy, pc = check_inputs(y, probs_cand)
    _, pr = check_inputs(y, probs_ref)
    if pc.shape != pr.shape:
        raise ValueError(f"slice_report: candidate and reference scores differ in shape: {pc.shape} vs "
                         f"{pr.shape}")
    if not 0.0 < alpha < 1.0 or not np.isfinite(margin) or margin < 0:
        raise ValueError(f"slice_report: need 0 < alpha < 1 and margin >= 0, got alpha={alpha}, "
                         f"margin={margin}")
    for sl in slices:
        if np.shape(sl.mask) != yy.shape:
            raise ValueError(f"slice '{sl.name}': mask of shape {np.shape(sl.mask)} for {yy.size} examples")
    confidence = 1.0 - alpha if confidence is None else confidence
    rows = [_slice_row(sl, metric, yy, pc, pr, margin=margin, n_resamples=n_resamples, confidence=confidence,
                       seed=seed, min_n=min_n) for sl in slices]
    return apply_holm(rows, alpha / 2.0, p_key="p_value", adjusted_key="p_adjusted", reject_key="flagged")


__all__ = [
    "MIN_SLICE_N",
    "Slice",
    "keyword_slices",
    "label_slices",
    "length_slices",
    "metric_on_rows",
    "paired_resampled_diffs",
    "regex_slices",
    "slice_report",
    "word_counts",
]
