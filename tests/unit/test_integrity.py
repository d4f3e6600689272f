"""Integrity: contamination (planted recall/precision, MinHash/LSH pieces, numeric rows, real SST-2),
duplicates and conflicting labels, holdout-reuse warnings."""

from __future__ import annotations

import csv
import json
import time

import numpy as np
import pytest

from leanbench.errors import DataError, LeanbenchError
from leanbench.integrity import (
    EvaluationRecord,
    check_contamination,
    find_duplicates,
    holdout_summary,
    holdout_warnings,
)
from leanbench.integrity.contamination import (
    exact_row_matches,
    lsh_bands,
    minhash_signatures,
    normalize_text,
    shingles,
    word_ngrams,
)


# ---------------------------------------------------------------- normalisation, n-grams, LSH pieces
@pytest.mark.parametrize(("raw", "expected"), [
    ("  Hello,   World!! ", "hello world"),
    ("it 's", "it s"),
    ("it's", "it s"),  # tokenised and attached forms agree
    ("ＦＵＬＬ　ｗｉｄｔｈ", "full width"),  # NFKC
    ("snake_case -- dash", "snake case dash"),
    ("...", ""),
])
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


def test_word_ngrams_and_shingles():
    words = " ".join(f"w{i}" for i in range(15))
    grams = word_ngrams(words, 13)
    assert len(grams) == 3 and grams[0].split() == [f"w{i}" for i in range(13)]
    assert word_ngrams("a short text", 13) == ["a short text"]  # shorter than n: the whole text
    assert word_ngrams("", 13) == []
    assert shingles("abcdef", "char", 5) == ["abcde", "bcdef"] and shingles("abc", "char", 5) == ["abc"]


def test_lsh_bands_for_threshold_08():
    b, r = lsh_bands(0.8, 128)
    assert (b, r) == (21, 6)
    assert 1 - (1 - 0.8**r) ** b >= 0.99 and 1 - (1 - 0.8 ** (r + 1)) ** (128 // (r + 1)) < 0.99


def test_minhash_estimates_jaccard():
    a, b = np.arange(0, 300), np.arange(100, 400)  # |A n B| = 200, |A u B| = 400 -> J = 0.5
    indptr = np.array([0, 300, 600])
    sig = minhash_signatures(indptr, np.concatenate([a, b]), num_perm=1024, seed=3)
    assert abs(float(np.mean(sig[0] == sig[1])) - 0.5) < 0.05
    same = minhash_signatures(np.array([0, 3, 6]), np.array([5, 9, 2, 2, 5, 9]), num_perm=64)
    np.testing.assert_array_equal(same[0], same[1])


# ---------------------------------------------------------------- planted contamination
def _vocab(rng: np.random.Generator, size: int = 3000) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = {"".join(rng.choice(letters, rng.integers(3, 9))) for _ in range(size * 2)}
    return sorted(words)[:size]


def _sentence(rng, vocab, n):
    return [vocab[i] for i in rng.choice(len(vocab), n, replace=False)]


def _planted_set(seed: int = 0):
    rng = np.random.default_rng(seed)
    vocab = _vocab(rng)
    train = [_sentence(rng, vocab, 20) for _ in range(400)]
    kinds, evals = [], []

    def add(kind, words_or_text):
        kinds.append(kind)
        evals.append(words_or_text if isinstance(words_or_text, str) else " ".join(words_or_text))

    for j in rng.choice(400, 60, replace=False):
        add("copy", train[j])
    for j in rng.choice(400, 60, replace=False):  # case, punctuation and spacing changes
        words = [w.upper() if rng.random() < 0.3 else w.capitalize() if rng.random() < 0.3 else w
                 for w in train[j]]
        text = "".join(w + rng.choice([" ", ", ", ". ", " - ", "!  ", " "]) for w in words)
        add("case_punct", text)
    for j in rng.choice(400, 60, replace=False):  # a 13-word span inside a longer new text
        start = rng.integers(0, 8)
        add("ngram13", _sentence(rng, vocab, 6) + train[j][start:start + 13] + _sentence(rng, vocab, 6))
    for j in rng.choice(400, 60, replace=False):  # light paraphrase: one or two words replaced
        words = list(train[j])
        for pos in rng.choice(20, rng.integers(1, 3), replace=False):
            words[pos] = vocab[rng.integers(len(vocab))]
        add("paraphrase", words)
    for _ in range(300):  # genuinely different sentences
        add("clean", _sentence(rng, vocab, int(rng.integers(8, 26))))
    return [" ".join(t) for t in train], evals, np.array(kinds)


def test_planted_contamination_recall_and_precision():
    train, evals, kinds = _planted_set()
    report = check_contamination(train, np.array(evals, dtype=object))
    flagged = ~report.clean_mask()
    planted = kinds != "clean"
    recall = (flagged & planted).sum() / planted.sum()
    precision = (flagged & planted).sum() / max(flagged.sum(), 1)
    assert recall >= 0.95 and precision >= 0.95, (recall, precision)
    by_method = {m: np.isin(np.arange(len(evals)), r.eval_indices) for m, r in report.methods.items()}
    for kind, method in (("copy", "exact"), ("case_punct", "exact"), ("ngram13", "ngram"),
                         ("paraphrase", "near_duplicate")):
        assert by_method[method][kinds == kind].mean() >= 0.95, kind
    assert by_method["verbatim"][kinds == "copy"].all()
    assert not by_method["verbatim"][kinds == "case_punct"].any()
    assert not by_method["exact"][kinds == "ngram13"].any()  # a 13-gram inside a longer text is not a copy
    # the matched training index is the source sentence
    res = report.methods["exact"]
    for i, j in zip(res.eval_indices, res.train_indices, strict=True):
        assert normalize_text(evals[i]) == normalize_text(train[j])
    sims = report.methods["near_duplicate"].similarity
    assert np.all(sims >= 0.8) and np.all(sims <= 1.0)


def test_report_dict_is_json_and_counts_are_consistent():
    train, evals, _ = _planted_set(seed=1)
    report = check_contamination(train, evals[:250], max_examples=2)
    d = report.as_dict()
    json.dumps(d)
    assert d["counts"]["any"] == int((~report.clean_mask()).sum())
    assert d["counts"]["exact"] >= d["counts"]["verbatim"] and d["counts"]["ngram"] >= d["counts"]["exact"]
    ex = d["examples"]["exact"][0]
    assert {"eval_index", "train_index", "eval_text", "train_text"} <= set(ex)
    assert len(d["examples"]["near_duplicate"]) <= 2 and "similarity" in d["examples"]["near_duplicate"][0]


def test_empty_texts_are_never_contamination():
    report = check_contamination(["...", "a b c"], ["!!", "", "a b c"])
    assert report.union().tolist() == [2]


def test_numeric_rows_exact_after_rounding():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(50, 4)).astype(np.float32)
    ev = rng.normal(size=(20, 4)).astype(np.float32)
    ev[3] = train[7] + 1e-9
    ev[5] = train[0]
    ev[6] = np.where(train[1] == 0, -0.0, train[1])
    report = check_contamination(train, ev)
    assert set(report.methods) == {"exact_rows"}
    assert report.union().tolist() == [3, 5, 6]
    assert report.methods["exact_rows"].train_indices.tolist() == [7, 0, 1]
    images = rng.random((10, 1, 8, 8))
    assert exact_row_matches(images, images[[2, 4]]).train_indices.tolist() == [2, 4]
    zero = np.zeros((1, 3))
    assert exact_row_matches(zero, -zero).count == 1  # -0.0 folded into 0.0
    with pytest.raises(DataError, match="differ in shape"):
        exact_row_matches(train, ev[:, :3])
    with pytest.raises(DataError, match="one split holds text"):
        check_contamination(["a"], np.zeros((1, 2)))
    with pytest.raises(DataError, match="shingle must be 'word' or 'char'"):
        check_contamination(["a"], ["a"], shingle="letters")


def test_char_shingles_find_near_duplicates_too():
    train = ["the quick brown fox jumps over the lazy dog near the river bank today"]
    evals = ["the quick brown fox jumps over the lazy dog near the river banks today",
             "completely different words here"]
    report = check_contamination(train, evals, shingle="char", shingle_size=5)
    assert report.methods["near_duplicate"].eval_indices.tolist() == [0]


def _read_sentences(path):
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        col = next(reader).index("sentence")
        return [row[col] for row in reader]


def test_sst2_train_vs_validation_and_test(shared_data):
    folder = shared_data / "sst2"
    if not folder.is_dir():
        pytest.skip(f"no SST-2 at {folder}")
    train = _read_sentences(folder / "train.tsv")
    t0 = time.perf_counter()
    val = check_contamination(train, _read_sentences(folder / "validation.tsv"))
    seconds = time.perf_counter() - t0
    assert val.counts()["verbatim"] == 75  # the 75 byte-equal repeats
    assert val.counts()["exact"] >= 75
    # no boilerplate in SST-2: its nested phrases hold a 13-gram at most 15 times, under the cut-off of 20, and
    # every validation text sharing one is covered to 30% or more, so the guards keep the plain rule's count
    ngram = val.methods["ngram"].params
    assert ngram["ignored_ngrams"] == 0 and ngram["shared_any"] == val.counts()["ngram"]
    assert val.methods["exact"].params["merged_tokens"] == 0
    test = check_contamination(train, _read_sentences(folder / "test.tsv"))
    assert test.counts()["verbatim"] == 0
    assert seconds < 30


# ---------------------------------------------------------------- duplicates
def test_duplicates_and_conflicting_labels():
    X = np.array(["Great movie!", "great movie", "bad", "BAD.", "bad ", "unique", "...", "", "other"],
                 dtype=object)
    y = np.array([1, 1, 0, 1, 0, 1, 0, 1, 0])
    rep = find_duplicates(X, y)
    groups = [g.tolist() for g in rep.groups]
    assert groups == [[2, 3, 4], [0, 1]]  # largest first; "..." and "" (empty after normalising) ignored
    assert [g.tolist() for g in rep.conflicting] == [[2, 3, 4]]
    assert (rep.n_duplicated, rep.n_redundant, rep.n_conflicting) == (5, 3, 3)
    d = rep.as_dict()
    json.dumps(d)
    assert d["examples"][0] == {"indices": [2, 3, 4], "labels": [0, 1, 0], "input": "bad"}


def test_duplicates_numeric_and_length_mismatch():
    X = np.array([[1.0, 2.0], [1.0, 2.0000000001], [3.0, 4.0]])
    rep = find_duplicates(X, np.array([0, 0, 1]))
    assert [g.tolist() for g in rep.groups] == [[0, 1]] and rep.conflicting == []
    with pytest.raises(DataError, match="3 inputs but 2 labels"):
        find_duplicates(X, np.array([0, 1]))


# ---------------------------------------------------------------- holdout reuse
def test_holdout_warnings():
    fp = "abc123"
    clean = [EvaluationRecord(fp, "report", "digits/teacher", "digits"),
             EvaluationRecord(fp, "report", "digits/student", "digits"),
             EvaluationRecord("other", "selection", "digits/student/train", "digits")]
    assert holdout_warnings(clean, fp) == []
    selected = [*clean, {"fingerprint": fp, "purpose": "selection", "who": "digits/student/early-stopping",
                         "study": "digits"}]
    (warning,) = holdout_warnings(selected, fp)
    assert "used for selection 1 time" in warning and "digits/student/early-stopping" in warning
    assert warning.startswith("The test split") and "Select on the validation split" in warning
    (screen,) = holdout_warnings(selected, fp, split="validation")  # a screen evaluated on validation
    assert screen.startswith("The validation split") and "confirm the choice on the test split" in screen
    reused = [*clean, EvaluationRecord(fp, "report", "digits-v2/teacher", "digits-v2")]
    (warning,) = holdout_warnings(reused, fp)
    assert "evaluated 3 times" in warning and "2 studies" in warning
    assert holdout_warnings(reused, fp, max_studies=2) == []
    summary = holdout_summary(selected, fp)
    assert summary == {"fingerprint": fp, "n_evaluations": 2, "n_selection": 1, "studies": ["digits"],
                       "selected_by": ["digits/student/early-stopping"]}
    with pytest.raises(LeanbenchError, match="purpose must be one of report, selection"):
        EvaluationRecord(fp, "tuning", "x")
