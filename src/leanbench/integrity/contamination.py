"""Contamination between a training split and an evaluation split.

Text (object arrays of str): a normalisation, then four methods:

- **normalisation** (`normalize_text`): Unicode NFKC, lower case, every character that is neither a word
  character nor whitespace (punctuation, symbols, and "_") replaced by a space, whitespace runs collapsed
  to one space, ends stripped. Replacing (rather than deleting) punctuation makes "it's" and the tokenised
  "it 's" agree. Examples that normalise to "" are never counted as contaminated.
- **verbatim**: the raw eval string equals a raw training string, byte for byte (no normalisation).
- **exact**: the normalised eval text equals a normalised training text (hash lookup), or, failing that, the
  two are equal with every space removed (`compact_text`), where that compact form has at least
  `COMPACT_MIN_CHARS` (12) characters. Word boundaries that punctuation or tokenisation moved then still
  match: "NJ-based" normalises to "nj based" and "NJbased" to "njbased"; likewise "e-mail" / "email",
  "won't" / "wo n't", "U.S." / "US". The length floor keeps short coincidences apart ("not able" /
  "notable", "the rapist" / "therapist"); texts of 12+ letters and digits that differ only in where the
  spaces fall are the same text. `params["merged_tokens"]` counts the matches found only this way.
- **ngram**: word n-grams (n = 13) of the normalised text, after the GPT-3 / lm-evaluation-harness
  decontamination rule (Brown et al. 2020, appendix C; lm-eval `decontamination/janitor.py`), with two
  guards against boilerplate (shared HTML, wire-service by-lines, licence text), which the plain rule (any
  shared 13-gram) flags as leaks:
  1. *document-frequency cut-off*: an n-gram held by more than `max_df` distinct texts (default 20), training
     and eval texts counted together, is boilerplate and ignored: it neither flags an eval text nor counts
     in its length. Counting both sides finds the boilerplate of a small training split (a validation split)
     too, since the evaluated texts carry the same. A text leaked into the training data a few times stays
     far below the cut-off; in SST-2, whose nested phrases repeat a 13-gram in every enclosing phrase, no
     13-gram of train and validation together exceeds it.
  2. *coverage*: an eval text is contaminated when the words inside its shared (non-boilerplate) n-grams
     make up at least `min_coverage` (default 0.3) of its words, boilerplate words left out of both counts
     (token-level overlap as in Llama 2, Touvron et al. 2023, appendix A.6, which calls a sample clean only
     below 20% contaminated tokens; PaLM, Chowdhery et al. 2022, §8, counts the share of 8-grams). At 0.3
     a 20-word leaked window counts in a text of up to 66 words (news items run a few dozen words), and one
     stray shared 13-gram (a quote) only in a text of up to 43 words. A higher share trades recall for
     precision: at 0.5 a 20-word window is missed in any text over 40 words.
  A text with fewer than n words is its own single n-gram (so, for short texts, this is the exact match).
  `max_df=None, min_coverage=0` is the plain GPT-3 rule; `params["shared_any"]` says how many eval texts
  that rule would flag, `params["ignored_ngrams"]` how many distinct training n-grams the cut-off dropped.
  The `similarity` of a match is its coverage; the training index is the text holding most of its shared
  n-grams. N-grams are hashed (word ids folded with splitmix64), vectorised over all windows.
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

- **contained** (only against the documents of a corpus a step trains on, `integrity.corpora`): an eval text
  of `CONTAINED_MIN_WORDS` (8) to n-1 words whose whole normalised word sequence occurs inside a training
  document. A question is usually shorter than 13 words, so the n-gram rule compares it as a whole text and
  never finds it pasted into a longer document; 8 words keeps chance runs of common words out.

Numeric / image inputs: **exact_rows**, rows equal after rounding to `decimals` (bytes of the rounded
float64 row, -0.0 folded into 0.0, hashed).

`check_contamination(train, eval)` runs the methods for the input kind and returns a
`ContaminationReport`: per method the contaminated eval indices and their matching train index, the union,
a clean mask (for "decontaminated" metrics), counts, timings, a few example pairs, and (`flags`) every
flagged eval example per method with its matching training example, by index or by the splits' ids.
"""

from __future__ import annotations

import itertools
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
COMPACT_MIN_CHARS = 12  # the shortest space-free form the exact method compares (see the module docstring)
NGRAM_MAX_DF = 20  # defaults of the n-gram method's boilerplate guards (IntegrityConfig repeats them)
NGRAM_MIN_COVERAGE = 0.3
CONTAINED_MIN_WORDS = 8  # the shortest eval text the `contained` method looks for inside training documents


def normalize_text(text: str) -> str:
    """NFKC, lower case, punctuation/symbols -> space, whitespace collapsed, stripped."""
    return " ".join(_NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower()).split())


def compact_text(text_norm: str) -> str:
    """A normalised text with its spaces removed: "nj based" and "njbased" agree."""
    return text_norm.replace(" ", "")


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

    def flags(self, eval_ids: Sequence[Any] | None = None, train_ids: Sequence[Any] | None = None
              ) -> dict[str, dict[str, list[Any]]]:
        """Every flagged eval example, per method and in eval order: `flagged` (eval ids, or indices without
        `eval_ids`; "any" for the union), `flagged_train` (the matching training example of each, parallel),
        `flagged_score` (parallel, for methods with a score: n-gram coverage, near-duplicate Jaccard)."""
        def name(ids: Sequence[Any] | None, idx: np.ndarray) -> list[Any]:
            return idx.tolist() if ids is None else [str(ids[i]) for i in idx.tolist()]

        out: dict[str, dict[str, list[Any]]] = {"flagged": {}, "flagged_train": {}, "flagged_score": {}}
        for method, m in self.methods.items():
            order = np.argsort(m.eval_indices, kind="stable")
            out["flagged"][method] = name(eval_ids, m.eval_indices[order])
            out["flagged_train"][method] = name(train_ids, m.train_indices[order])
            if m.similarity is not None:
                out["flagged_score"][method] = [round(float(v), 4) for v in m.similarity[order]]
        out["flagged"]["any"] = name(eval_ids, self.union())
        return out

    def as_dict(self, max_examples: int = 5, eval_ids: Sequence[Any] | None = None,
                train_ids: Sequence[Any] | None = None) -> dict[str, Any]:
        """JSON-ready summary: sizes, counts and fractions, parameters, seconds, a few example pairs, and
        every flagged example (`flags`: by id where the ids are given, else by index)."""
        return {
            "n_train": self.n_train,
            "n_eval": self.n_eval,
            "counts": self.counts(),
            "fraction": {k: (v / self.n_eval if self.n_eval else 0.0) for k, v in self.counts().items()},
            "methods": {name: {"params": m.params, "seconds": m.seconds} for name, m in self.methods.items()},
            "examples": {k: v[:max_examples] for k, v in self.examples.items()},
            **self.flags(eval_ids, train_ids),
        }


# --------------------------------------------------------------------------- exact and n-gram
def _first_index(keys: Sequence[Any]) -> dict[Any, int]:
    first: dict[Any, int] = {}
    for j, k in enumerate(keys):
        if k:
            first.setdefault(k, j)
    return first


def exact_matches(train_norm: Sequence[str], eval_norm: Sequence[str], method: str = "exact", *,
                  compact_min_chars: int | None = None) -> MethodResult:
    """Eval texts equal to a training text (both already normalised); empty texts never match.

    With `compact_min_chars`, an eval text that matches no training text is compared again with its spaces
    removed (`compact_text`), where that form has at least `compact_min_chars` characters (merged or split
    tokens: "nj based" / "njbased"); `params["merged_tokens"]` counts those matches."""
    t0 = time.perf_counter()
    first = _first_index(train_norm)
    pairs = [(i, first[t]) for i, t in enumerate(eval_norm) if t and t in first]
    params: dict[str, Any] = {}
    if compact_min_chars is not None:
        compact = _first_index([c if len(c) >= compact_min_chars else "" for c in map(compact_text, train_norm)])
        done = {i for i, _ in pairs}
        extra = [(i, compact[c]) for i, t in enumerate(eval_norm)
                 if i not in done and len(c := compact_text(t)) >= compact_min_chars and c in compact]
        pairs = sorted(pairs + extra)
        params = {"compact_min_chars": compact_min_chars, "merged_tokens": len(extra)}
    return _result(method, pairs, None, time.perf_counter() - t0, params)


def word_ngrams(text_norm: str, n: int) -> list[str]:
    """The word n-grams of a normalised text; a text of 1..n-1 words is its own single n-gram; "" has none."""
    words = text_norm.split()
    if len(words) < n:
        return [" ".join(words)] if words else []
    return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]


def _token_ids(texts: Sequence[str], vocab: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """CSR form (indptr, word ids) of each text's words, in order. A new word's id is its position among all
    the words seen so far (unique, not dense); `vocab` grows as needed and keeps that count under ""."""
    lengths = np.fromiter(map(len, map(str.split, texts)), dtype=np.int64, count=len(texts))
    words = " ".join(texts).split()
    start = vocab.get("", 0)
    ids = np.fromiter(map(vocab.setdefault, words, itertools.count(start + 1)), dtype=np.int64, count=len(words))
    vocab[""] = start + len(words)
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), ids


def _windows(indptr: np.ndarray, ids: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every word n-gram of CSR texts as (text, flat start, size, hash); a text of 1..n-1 words is one window
    of its own size. Hash: the window's word ids folded with splitmix64, then its size mixed in."""
    lengths = np.diff(indptr)
    short = (lengths > 0) & (lengths < n)
    count = np.where(short, 1, np.maximum(lengths - n + 1, 0))
    text = np.repeat(np.arange(lengths.size), count)
    offset = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    start = indptr[:-1][text] + offset
    size = np.where(short[text], lengths[text], n)
    words = ids.astype(np.uint64) + np.uint64(1)
    h = np.zeros(start.size, dtype=np.uint64)
    for k in range(n):
        live = size > k
        if not live.any():
            break
        pos = np.where(live, start + k, 0)
        h = np.where(live, splitmix64((h ^ words[pos]) * _GOLDEN), h)
    return text, start, size, splitmix64(h ^ size.astype(np.uint64))


def _covered(n_tokens: int, start: np.ndarray, size: np.ndarray) -> np.ndarray:
    """bool (n_tokens,): the tokens inside at least one of the windows [start, start + size)."""
    depth = np.bincount(start, minlength=n_tokens + 1) - np.bincount(start + size, minlength=n_tokens + 1)
    return np.cumsum(depth[:n_tokens]) > 0


def _distinct_pairs(hashes: np.ndarray, texts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (hash, text) pairs -> per distinct hash: the hash (sorted), its number of texts, its first text."""
    order = np.lexsort((texts, hashes))
    hashes, texts = hashes[order], texts[order]
    keep = np.ones(hashes.size, dtype=bool)
    keep[1:] = (hashes[1:] != hashes[:-1]) | (texts[1:] != texts[:-1])
    grams, first_at, df = np.unique(hashes[keep], return_index=True, return_counts=True)
    return grams, df, texts[keep][first_at]


def _lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position in sorted_keys, found) for each key."""
    if not sorted_keys.size:
        return np.zeros(keys.size, dtype=np.int64), np.zeros(keys.size, dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    return at, sorted_keys[at] == keys


def ngram_matches(train_norm: Sequence[str], eval_norm: Sequence[str], n: int = 13, *,
                  max_df: int | None = NGRAM_MAX_DF, min_coverage: float = NGRAM_MIN_COVERAGE) -> MethodResult:
    """Eval texts whose shared word n-grams cover at least `min_coverage` of their words, n-grams held by more
    than `max_df` distinct texts (boilerplate: training and eval texts counted together) ignored; see the
    module docstring. The training index is the (first) text holding most of the eval text's shared n-grams;
    `similarity` is the coverage."""
    t0 = time.perf_counter()
    train_u, train_first = _unique_nonempty(train_norm)
    eval_u, _ = _unique_nonempty(eval_norm)
    row_of = {t: k for k, t in enumerate(eval_u)}
    vocab: dict[str, int] = {}
    t_ptr, t_ids = _token_ids(train_u, vocab)
    e_ptr, e_ids = _token_ids(eval_u, vocab)
    t_text, _, _, t_hash = _windows(t_ptr, t_ids, n)
    e_text, e_start, e_size, e_hash = _windows(e_ptr, e_ids, n)
    # distinct (n-gram, text) pairs over training texts (0..T-1) and the eval texts not among them (T..):
    # per n-gram its document frequency, and its first text, a training one where any holds it
    in_train = set(train_u)
    new = np.array([t not in in_train for t in eval_u], dtype=bool)[e_text]
    grams, df, first_text = _distinct_pairs(np.concatenate([t_hash, e_hash[new]]),
                                            np.concatenate([t_text, e_text[new] + len(train_u)]))
    at, _ = _lookup(grams, e_hash)  # every eval n-gram is among them
    found = first_text[at] < len(train_u)
    frequent = found & (df[at] > max_df) if max_df is not None else np.zeros(e_hash.size, dtype=bool)
    ignored = int(((first_text < len(train_u)) & (df > max_df)).sum()) if max_df is not None else 0
    shared = found & ~frequent
    # per eval text: its words outside boilerplate n-grams, and the share of them inside shared n-grams
    n_u = len(eval_u)
    tok_text = np.repeat(np.arange(n_u), np.diff(e_ptr))
    boiler = _covered(e_ids.size, e_start[frequent], e_size[frequent])
    matched = _covered(e_ids.size, e_start[shared], e_size[shared]) & ~boiler
    n_matched = np.bincount(tok_text[matched], minlength=n_u)
    n_counted = np.diff(e_ptr) - np.bincount(tok_text[boiler], minlength=n_u)
    coverage = np.divide(n_matched, n_counted, out=np.zeros(n_u), where=n_counted > 0)
    hit = (n_matched > 0) & (coverage >= min_coverage - 1e-12)
    # the training text holding most of each eval text's shared n-grams (ties: the first one)
    width = max(len(train_u), 1)
    codes, votes = np.unique(e_text[shared] * width + first_text[at[shared]], return_counts=True)
    e_of, t_of = codes // width, codes % width
    best = np.lexsort((t_of, -votes, e_of))
    e_of, t_of = e_of[best], t_of[best]
    lead = np.unique(e_of, return_index=True)[1]
    source = dict(zip(e_of[lead].tolist(), t_of[lead].tolist(), strict=True))
    any_shared = np.bincount(e_text[found], minlength=n_u) > 0
    rows = [(i, row_of[t]) for i, t in enumerate(eval_norm) if t]
    pairs = [(i, int(train_first[source[k]])) for i, k in rows if hit[k]]
    params = {"n": n, "max_df": max_df, "min_coverage": min_coverage, "ignored_ngrams": ignored,
              "shared_any": sum(bool(any_shared[k]) for _, k in rows),
              "below_coverage": sum(bool(n_matched[k] > 0 and not hit[k]) for _, k in rows)}
    sim = [float(coverage[k]) for _, k in rows if hit[k]]
    return _result("ngram", pairs, sim, time.perf_counter() - t0, params)


def contained_matches(train_norm: Sequence[str], eval_norm: Sequence[str], n: int = 13, *,
                      min_words: int = CONTAINED_MIN_WORDS) -> MethodResult:
    """Eval texts of `min_words`..n-1 words found whole, as a contiguous run of words, inside a training text:
    the n-gram rule's counterpart for texts shorter than n (for which it is an exact match of whole texts),
    used against corpora of long documents (a question pasted into a distillation corpus). The training index
    is the first text that holds it; hashes as the n-gram method's (`_windows`), one pass per eval length."""
    t0 = time.perf_counter()
    vocab: dict[str, int] = {}
    t_ptr, t_ids = _token_ids(list(train_norm), vocab)
    e_ptr, e_ids = _token_ids(list(eval_norm), vocab)
    lengths = np.diff(e_ptr)
    pairs: list[tuple[int, int]] = []
    for m in np.unique(lengths[(lengths >= min_words) & (lengths < n)]).tolist():
        text, _, size, h = _windows(t_ptr, t_ids, int(m))
        grams, _, first = _distinct_pairs(h[size == m], text[size == m])
        e_text, _, _, e_h = _windows(e_ptr, e_ids, int(m))
        mine = lengths[e_text] == m  # an eval text of exactly m words is one window
        at, found = _lookup(grams, e_h[mine])
        pairs += list(zip(e_text[mine][found].tolist(), first[at[found]].tolist(), strict=True))
    pairs.sort()
    return _result("contained", pairs, None, time.perf_counter() - t0, {"min_words": min_words, "n": n})


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


def _check_params(ngram: int, near_dup_threshold: float, num_perm: int, shingle: str, shingle_size: int,
                  ngram_max_df: int | None = None, ngram_min_coverage: float = 0.0) -> None:
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
    if ngram_max_df is not None and (int(ngram_max_df) != ngram_max_df or ngram_max_df < 1):
        raise DataError(f"contamination: ngram_max_df must be an integer >= 1 or None, got {ngram_max_df!r}")
    if not 0.0 <= ngram_min_coverage <= 1.0:
        raise DataError(f"contamination: ngram_min_coverage must be in [0, 1], got {ngram_min_coverage!r}")


def check_contamination(train: Any, eval_: Any, *, ngram: int = 13, ngram_max_df: int | None = NGRAM_MAX_DF,
                        ngram_min_coverage: float = NGRAM_MIN_COVERAGE, near_dup_threshold: float = 0.8,
                        num_perm: int = 128, shingle: str = "word", shingle_size: int = 1, seed: int = 0,
                        decimals: int = 6, max_examples: int = 5, documents: bool = False) -> ContaminationReport:
    """Contamination of `eval_` by `train`: verbatim / exact / ngram / near_duplicate for text, exact_rows
    otherwise. `ngram_max_df=None, ngram_min_coverage=0` give the plain GPT-3 n-gram rule. `documents`: the
    training texts are documents of a corpus, not examples: `contained` (`contained_matches`) is added.

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
    _check_params(ngram, near_dup_threshold, num_perm, shingle, shingle_size, ngram_max_df, ngram_min_coverage)
    train_raw, eval_raw = [str(s) for s in train], [str(s) for s in eval_]
    t0 = time.perf_counter()
    train_norm, eval_norm = [normalize_text(s) for s in train_raw], [normalize_text(s) for s in eval_raw]
    norm_seconds = time.perf_counter() - t0
    methods = {
        "verbatim": exact_matches(train_raw, eval_raw, "verbatim"),
        "exact": exact_matches(train_norm, eval_norm, compact_min_chars=COMPACT_MIN_CHARS),
        "ngram": ngram_matches(train_norm, eval_norm, ngram, max_df=ngram_max_df, min_coverage=ngram_min_coverage),
        "near_duplicate": near_duplicate_matches(
            train_norm, eval_norm, threshold=near_dup_threshold, num_perm=num_perm, shingle=shingle,
            shingle_size=shingle_size, seed=seed),
    }
    if documents:
        methods["contained"] = contained_matches(train_norm, eval_norm, ngram)
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
    "COMPACT_MIN_CHARS",
    "NGRAM_MAX_DF",
    "NGRAM_MIN_COVERAGE",
    "TEXT_METHODS",
    "ContaminationReport",
    "MethodResult",
    "CONTAINED_MIN_WORDS",
    "check_contamination",
    "compact_text",
    "contained_matches",
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
