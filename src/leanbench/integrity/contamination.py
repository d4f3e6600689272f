"""Contamination between a training split and an evaluation split.

Text (object arrays of str), three methods on normalised text:

- **normalisation** (`normalize_text`): Unicode NFKC, lower case, every character that is neither a word
  character nor whitespace (punctuation, symbols, and "_") replaced by a space, whitespace runs collapsed
  to one space, ends stripped. Replacing (rather than deleting) punctuation makes "it's" and the tokenised
  "it 's" agree. Examples that normalise to "" are never counted as contaminated.
- **verbatim**: the raw eval string equals a raw training string, byte for byte (no normalisation).
- **exact**: the normalised eval text equals a normalised training text (hash lookup).
- **ngram**: the GPT-3 / lm-evaluation-harness decontamination rule (Brown et al. 2020, appendix C;
  lm-eval `decontamination/janitor.py`): word n-grams (n = 13) of the normalised text; an eval example is
  contaminated if any of its n-grams occurs among the training n-grams. A text with fewer than n words is
  its own single n-gram (so, for short texts, this is the exact match).
- **near_duplicate**: MinHash (Broder 1997) + LSH banding (Indyk & Motwani 1998; Leskovec, Rajaraman &
  Ullman, *Mining of Massive Datasets*, §3.4) on shingle sets, candidates verified with the exact Jaccard
  similarity >= `near_dup_threshold`. Default shingles are the set of words (word 1-grams): for the short
  sentences of classification sets, replacing one or two words of a 20-word sentence keeps Jaccard >= 0.8
  (18/22 = 0.82), whereas char or word 5-gram shingles drop below 0.8 after two replacements. Char n-grams
  (`shingle="char"`) are available. Hashes: each distinct shingle gets an id x; permutation p maps it to
  splitmix64(x * phi + s_p) with salts s_p drawn from `seed` (`shingle_hashes`), computed once per
  distinct shingle and gathered per text (a min over uint64, `np.minimum.reduceat`). Bands x rows:
  the largest r (fewest false candidates) whose candidate probability at the threshold,
  1 - (1 - t^r)^b with b = num_perm // r, is >= 0.99 (with 128 permutations and t = 0.8: b = 21, r = 6).

Numeric / image inputs: **exact_rows**, rows equal after rounding to `decimals` (bytes of the rounded
float64 row, -0.0 folded into 0.0, hashed).

`check_contamination(train, eval)` runs the methods for the input kind and returns a
`ContaminationReport`: per method the contaminated eval indices and their matching train index, the union,
a clean mask (for "decontaminated" metrics), counts, timings, and a few example pairs.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from leanbench.errors import DataError

_NON_WORD = re.compile(r"[^\w\s]|_")
TEXT_METHODS = ("verbatim", "exact", "ngram", "near_duplicate")


def normalize_text(text: str) -> str:
    """NFKC, lower case, punctuation/symbols -> space, whitespace collapsed, stripped."""
    return " ".join(_NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower()).split())


@dataclass(frozen=True, eq=False)
class MethodResult:
    """Contaminated eval examples by one method: eval_indices[k] matched train_indices[k]."""

    method: str
    eval_indices: np.ndarray
    train_indices: np.ndarray
    similarity: np.ndarray | None = None
    seconds: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return int(self.eval_indices.size)


@dataclass(frozen=True, eq=False)
class ContaminationReport:
    """Per-method results for one (train, eval) pair of splits, plus example pairs for the report."""

    n_train: int
    n_eval: int
    methods: dict[str, MethodResult]
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def union(self) -> np.ndarray:
        """Sorted eval indices contaminated by any method."""
        parts = [m.eval_indices for m in self.methods.values()]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def clean_mask(self) -> np.ndarray:
        """bool (n_eval,): True where no method found contamination (the decontaminated subset)."""
        mask = np.ones(self.n_eval, dtype=bool)
        mask[self.union()] = False
        return mask

    def counts(self) -> dict[str, int]:
        return {**{name: m.count for name, m in self.methods.items()}, "any": int(self.union().size)}

    def as_dict(self, max_examples: int = 5) -> dict[str, Any]:
        """JSON-ready summary: sizes, counts and fractions, parameters, seconds, a few example pairs."""
        return {
            "n_train": self.n_train,
            "n_eval": self.n_eval,
            "counts": self.counts(),
            "fraction": {k: (v / self.n_eval if self.n_eval else 0.0) for k, v in self.counts().items()},
            "methods": {name: {"params": m.params, "seconds": m.seconds} for name, m in self.methods.items()},
            "examples": {k: v[:max_examples] for k, v in self.examples.items()},
        }


# --------------------------------------------------------------------------- exact and n-gram
def _first_index(keys: Sequence[Any]) -> dict[Any, int]:
    first: dict[Any, int] = {}
    for j, k in enumerate(keys):
        if k:
            first.setdefault(k, j)
    return first


def exact_matches(train_norm: Sequence[str], eval_norm: Sequence[str], method: str = "exact") -> MethodResult:
    """Eval texts equal to a training text (both already normalised); empty texts never match."""
    t0 = time.perf_counter()
    first = _first_index(train_norm)
    pairs = [(i, first[t]) for i, t in enumerate(eval_norm) if t and t in first]
    return _result(method, pairs, None, time.perf_counter() - t0, {})


def word_ngrams(text_norm: str, n: int) -> list[str]:
    """The word n-grams of a normalised text; a text of 1..n-1 words is its own single n-gram; "" has none."""
    words = text_norm.split()
    if len(words) < n:
        return [" ".join(words)] if words else []
    return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]


def ngram_matches(train_norm: Sequence[str], eval_norm: Sequence[str], n: int = 13) -> MethodResult:
    """Eval texts sharing a word n-gram with the training texts (train index: first text holding it)."""
    t0 = time.perf_counter()
    first: dict[int, int] = {}
    for j, t in enumerate(train_norm):
        for g in word_ngrams(t, n):
            first.setdefault(hash(g), j)
    pairs = []
    for i, t in enumerate(eval_norm):
        for g in word_ngrams(t, n):
            j = first.get(hash(g))
            if j is not None:
                pairs.append((i, j))
                break
    return _result("ngram", pairs, None, time.perf_counter() - t0, {"n": n})


def _result(method: str, pairs: list[tuple[int, int]], sim: list[float] | None, seconds: float,
            params: dict[str, Any]) -> MethodResult:
    arr = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return MethodResult(method, arr[:, 0], arr[:, 1], None if sim is None else np.asarray(sim, dtype=float),
                        seconds, params)


# --------------------------------------------------------------------------- MinHash + LSH
def shingles(text_norm: str, kind: str = "word", size: int = 1) -> list[str]:
    """Shingles of a normalised text: word `size`-grams or char `size`-grams; short texts are one shingle."""
    if kind == "word":
        return word_ngrams(text_norm, size)
    if not text_norm:
        return []
    if len(text_norm) < size:
        return [text_norm]
    return [text_norm[i:i + size] for i in range(len(text_norm) - size + 1)]


def lsh_bands(threshold: float, num_perm: int, target: float = 0.99) -> tuple[int, int]:
    """(bands, rows): the largest rows r with 1 - (1 - threshold^r)^(num_perm // r) >= target."""
    best = (num_perm, 1)
    for r in range(1, num_perm + 1):
        b = num_perm // r
        if 1.0 - (1.0 - threshold**r) ** b >= target:
            best = (b, r)
    return best


def _shingle_ids(texts: Sequence[str], vocab: dict[str, int], kind: str, size: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """CSR form (indptr, ids) of each text's sorted unique shingle ids; the vocabulary grows as needed."""
    indptr, ids = [0], []
    for t in texts:
        row = sorted({vocab.setdefault(s, len(vocab)) for s in shingles(t, kind, size)})
        ids.extend(row)
        indptr.append(len(ids))
    return np.asarray(indptr, dtype=np.int64), np.asarray(ids, dtype=np.int64)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser (Steele, Lea & Flood 2014), a bijection of uint64 with full avalanche."""
    x = np.asarray(x, dtype=np.uint64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def shingle_hashes(n_shingles: int, num_perm: int, seed: int) -> np.ndarray:
    """(V, P) uint64: h_p(x) = splitmix64(x * phi + s_p), phi = 2^64 / golden ratio (odd), salts from seed.

    For each p this is a pseudo-random permutation of the shingle ids (x -> x * phi + s_p is a bijection
    mod 2^64 and splitmix64 is one too), i.e. one MinHash permutation.
    """
    salts = np.random.default_rng(seed).integers(0, np.iinfo(np.int64).max, num_perm, dtype=np.int64)
    ids = np.arange(n_shingles, dtype=np.uint64)
    return splitmix64(ids[:, None] * _GOLDEN + salts.astype(np.uint64)[None, :])


def minhash_signatures(indptr: np.ndarray, ids: np.ndarray, num_perm: int = 128, seed: int = 0,
                       chunk: int = 1 << 15) -> np.ndarray:
    """(N, num_perm) uint64 MinHash signatures of CSR shingle-id sets (every set must be non-empty)."""
    if np.any(np.diff(indptr) <= 0):
        raise ValueError("minhash_signatures: every text needs at least one shingle")
    table = shingle_hashes(int(ids.max()) + 1 if ids.size else 0, num_perm, seed)
    n = indptr.size - 1
    out = np.empty((n, num_perm), dtype=np.uint64)
    start = 0
    while start < n:  # blocks of whole texts holding about `chunk` shingles
        stop = max(start + 1, int(np.searchsorted(indptr, indptr[start] + chunk, side="right")) - 1)
        lo, hi = indptr[start], indptr[stop]
        out[start:stop] = np.minimum.reduceat(table[ids[lo:hi]], indptr[start:stop] - lo, axis=0)
        start = stop
    return out


def _band_keys(sig: np.ndarray, bands: int, rows: int) -> list[np.ndarray]:
    """Per band, an int64 group id per text: equal ids <=> equal band signatures."""
    keys = []
    for k in range(bands):
        block = np.ascontiguousarray(sig[:, k * rows:(k + 1) * rows])
        _, inverse = np.unique(block.view(np.dtype((np.void, 8 * rows))).ravel(), return_inverse=True)
        keys.append(inverse.ravel())
    return keys


def _candidate_pairs(keys: list[np.ndarray], n_train: int) -> np.ndarray:
    """Unique (eval, train) row pairs sharing a bucket in any band, as int64 codes e * n_train + t."""
    codes = []
    for key in keys:
        k_train, k_eval = key[:n_train], key[n_train:]
        order = np.argsort(k_train, kind="stable")
        lo = np.searchsorted(k_train[order], k_eval, side="left")
        hi = np.searchsorted(k_train[order], k_eval, side="right")
        counts = hi - lo
        if not counts.any():
            continue
        e = np.repeat(np.arange(k_eval.size), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        t = order[np.repeat(lo, counts) + offsets]
        codes.append(e.astype(np.int64) * n_train + t)
    return np.unique(np.concatenate(codes)) if codes else np.zeros(0, dtype=np.int64)


def _jaccard(indptr: np.ndarray, ids: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Exact Jaccard of CSR sets left[k] vs right[k] (row numbers into the same CSR)."""
    from scipy.sparse import csr_matrix

    n_rows = indptr.size - 1
    width = int(ids.max()) + 1 if ids.size else 1
    m = csr_matrix((np.ones(ids.size, dtype=np.int32), ids.astype(np.int64), indptr), shape=(n_rows, width))
    inter = np.asarray(m[left].multiply(m[right]).sum(axis=1)).ravel()
    sizes = np.diff(indptr)
    return inter / (sizes[left] + sizes[right] - inter)


def near_duplicate_matches(train_norm: Sequence[str], eval_norm: Sequence[str], *, threshold: float = 0.8,
                           num_perm: int = 128, shingle: str = "word", shingle_size: int = 1,
                           seed: int = 0) -> MethodResult:
    """Eval texts whose shingle set has Jaccard >= threshold with some training text (best match kept)."""
    t0 = time.perf_counter()
    train_u, train_first = _unique_nonempty(train_norm)
    eval_keep = np.array([i for i, t in enumerate(eval_norm) if t], dtype=np.int64)
    vocab: dict[str, int] = {}
    indptr, ids = _shingle_ids([*train_u, *(eval_norm[i] for i in eval_keep)], vocab, shingle, shingle_size)
    bands, rows = lsh_bands(threshold, num_perm)
    params = {"threshold": threshold, "num_perm": num_perm, "bands": bands, "rows": rows,
              "shingle": shingle, "shingle_size": shingle_size, "seed": seed}
    if not len(train_u) or not eval_keep.size:
        return _result("near_duplicate", [], [], time.perf_counter() - t0, params)
    sig = minhash_signatures(indptr, ids, num_perm, seed)
    codes = _candidate_pairs(_band_keys(sig, bands, rows), len(train_u))
    e, t = codes // len(train_u), codes % len(train_u)
    sim = _jaccard(indptr, ids, e + len(train_u), t)
    ok = sim >= threshold - 1e-12
    e, t, sim = e[ok], t[ok], sim[ok]
    order = np.lexsort((-sim, e))  # best match first within each eval row
    e, t, sim = e[order], t[order], sim[order]
    first = np.unique(e, return_index=True)[1]
    pairs = list(zip(eval_keep[e[first]].tolist(), train_first[t[first]].tolist(), strict=True))
    params["candidate_pairs"] = int(codes.size)
    return _result("near_duplicate", pairs, sim[first].tolist(), time.perf_counter() - t0, params)


def _unique_nonempty(texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Distinct non-empty texts in first-seen order, and the index of each one's first occurrence."""
    first = _first_index(texts)
    return list(first), np.fromiter(first.values(), dtype=np.int64, count=len(first))


# --------------------------------------------------------------------------- numeric rows
def row_keys(X: np.ndarray, decimals: int = 6) -> list[bytes]:
    """One bytes key per row: the row rounded to `decimals` as float64, -0.0 folded into 0.0."""
    X = np.asarray(X)
    flat = np.round(X.reshape(len(X), -1).astype(np.float64), decimals) + 0.0
    return [r.tobytes() for r in np.ascontiguousarray(flat)]


def exact_row_matches(train_X: np.ndarray, eval_X: np.ndarray, decimals: int = 6) -> MethodResult:
    """Eval rows (features or whole images) identical to a training row after rounding."""
    t0 = time.perf_counter()
    train_X, eval_X = np.asarray(train_X), np.asarray(eval_X)
    if train_X.shape[1:] != eval_X.shape[1:]:
        raise DataError(f"contamination: train and eval examples differ in shape: {train_X.shape[1:]} vs "
                        f"{eval_X.shape[1:]}")
    first = _first_index(row_keys(train_X, decimals))
    pairs = [(i, first[k]) for i, k in enumerate(row_keys(eval_X, decimals)) if k in first]
    return _result("exact_rows", pairs, None, time.perf_counter() - t0, {"decimals": decimals})


# --------------------------------------------------------------------------- entry point
def is_text(X: Any) -> bool:
    """True for a sequence of str or an object/str array; False for numeric arrays."""
    if isinstance(X, (list, tuple)):
        return all(isinstance(s, str) for s in X)
    arr = np.asarray(X)
    return arr.dtype == object or arr.dtype.kind in "US"


def _check_params(ngram: int, near_dup_threshold: float, num_perm: int, shingle: str, shingle_size: int
                  ) -> None:
    if shingle not in ("word", "char"):
        raise DataError(f"contamination: shingle must be 'word' or 'char', got {shingle!r}")
    if int(shingle_size) != shingle_size or shingle_size < 1:
        raise DataError(f"contamination: shingle_size must be an integer >= 1, got {shingle_size!r}")
    if int(ngram) != ngram or ngram < 1:
        raise DataError(f"contamination: ngram must be an integer >= 1, got {ngram!r}")
    if not 0.0 < near_dup_threshold <= 1.0:
        raise DataError(f"contamination: near_dup_threshold must be in (0, 1], got {near_dup_threshold!r}")
    if int(num_perm) != num_perm or num_perm < 1:
        raise DataError(f"contamination: num_perm must be an integer >= 1, got {num_perm!r}")


def check_contamination(train: Any, eval_: Any, *, ngram: int = 13, near_dup_threshold: float = 0.8,
                        num_perm: int = 128, shingle: str = "word", shingle_size: int = 1, seed: int = 0,
                        decimals: int = 6, max_examples: int = 5) -> ContaminationReport:
    """Contamination of `eval_` by `train`: exact / ngram / near_duplicate for text, exact_rows otherwise.

    Text inputs are sequences or object arrays of str; numeric inputs are arrays of the same per-example
    shape (tabular rows or images). Several training splits: concatenate them (indices then refer to the
    concatenation).
    """
    if is_text(train) != is_text(eval_):
        raise DataError("contamination: one split holds text and the other numbers; compare like with like")
    if not is_text(train):
        rows = exact_row_matches(train, eval_, decimals)
        return ContaminationReport(len(train), len(eval_), {"exact_rows": rows},
                                   {"exact_rows": _row_examples(rows, max_examples)})
    _check_params(ngram, near_dup_threshold, num_perm, shingle, shingle_size)
    train_raw, eval_raw = [str(s) for s in train], [str(s) for s in eval_]
    t0 = time.perf_counter()
    train_norm, eval_norm = [normalize_text(s) for s in train_raw], [normalize_text(s) for s in eval_raw]
    norm_seconds = time.perf_counter() - t0
    methods = {
        "verbatim": exact_matches(train_raw, eval_raw, "verbatim"),
        "exact": exact_matches(train_norm, eval_norm),
        "ngram": ngram_matches(train_norm, eval_norm, ngram),
        "near_duplicate": near_duplicate_matches(
            train_norm, eval_norm, threshold=near_dup_threshold, num_perm=num_perm, shingle=shingle,
            shingle_size=shingle_size, seed=seed),
    }
    methods["exact"].params["normalize_seconds"] = norm_seconds
    examples = {name: _text_examples(m, train_raw, eval_raw, max_examples) for name, m in methods.items()}
    return ContaminationReport(len(train_raw), len(eval_raw), methods, examples)


def _text_examples(m: MethodResult, train: list[str], eval_: list[str], k: int) -> list[dict[str, Any]]:
    out = []
    for n, (i, j) in enumerate(zip(m.eval_indices[:k].tolist(), m.train_indices[:k].tolist(), strict=True)):
        row = {"eval_index": i, "train_index": j, "eval_text": eval_[i], "train_text": train[j]}
        if m.similarity is not None:
            row["similarity"] = float(m.similarity[n])
        out.append(row)
    return out


def _row_examples(m: MethodResult, k: int) -> list[dict[str, Any]]:
    return [{"eval_index": i, "train_index": j}
            for i, j in zip(m.eval_indices[:k].tolist(), m.train_indices[:k].tolist(), strict=True)]


__all__ = [
    "TEXT_METHODS",
    "ContaminationReport",
    "MethodResult",
    "check_contamination",
    "exact_matches",
    "exact_row_matches",
    "lsh_bands",
    "minhash_signatures",
    "near_duplicate_matches",
    "ngram_matches",
    "normalize_text",
    "row_keys",
    "shingles",
    "word_ngrams",
]
