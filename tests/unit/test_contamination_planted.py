"""Contamination on news-like text with boilerplate: planted leaks of four kinds among clean texts that share
long HTML / wire-service boilerplate with many training texts (precision and recall, per method and for the
union); the n-gram method's document-frequency cut-off and coverage; merged tokens in the exact method;
per-example flags by id, in the integrity cell's result, the typed results and the CSV / JSON export."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from leanbench.data.base import Split
from leanbench.errors import DataError, LeanbenchError
from leanbench.integrity import check_contamination
from leanbench.integrity.contamination import exact_matches, ngram_matches, normalize_text, word_ngrams
from leanbench.integrity.export import FLAG_COLUMNS, flag_rows, read_flags, write_flags
from leanbench.integrity.report import integrity_report

BOILERPLATE = [  # as found in news corpora scraped from the web (AG News carries the first two)
    '<FONT face="verdana,MS Sans Serif,arial,helvetica" size="-2" color="#666666"><B>-Reuters</B></FONT>',
    '&lt;A HREF="http://www.investor.reuters.com/FullQuote.aspx?ticker=MSFT.O target=/stocks/quickinfo/'
    'fullquote"&gt;MSFT.O&lt;/A&gt;',
    "Copyright 2004 The Associated Press. All rights reserved. This material may not be published, broadcast, "
    "rewritten or redistributed.",
    '<p><a href="http://www.reuters.co.uk/financeQuoteLookup.jhtml?ticker=GOOG.O qtype=sym infotype=info '
    'qcat=news">GOOG.O</a></p>',
    "To read the full story, click here for the latest news and analysis from our newsroom and partner wire "
    "services",
]
KINDS = ("copy", "case_punct", "window20", "drop_dup")


def _vocab(rng: np.random.Generator, size: int = 5000) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = {"".join(rng.choice(letters, rng.integers(3, 10))) for _ in range(size * 2)}
    return sorted(words)[:size]


def planted_news(seed: int = 0, n_train: int = 3000, n_leak: int = 50, n_clean: int = 800):
    """Training texts and evaluated texts with their truth (`kinds`: one of KINDS, or "clean").

    Texts are 20-60 words (news items: title and lead) drawn from a Zipf-like vocabulary; 60% carry one of
    the long boilerplate strings (at the start or the end, so each is held by hundreds of training texts),
    10% a short by-line shared by a handful. The 4 x n_leak evaluated texts of KINDS are planted into the
    training texts: as they are, with case and punctuation changed, as a 20-word window inside other text,
    with 1-3 words dropped or duplicated. Clean evaluated texts share only boilerplate and by-lines."""
    rng = np.random.default_rng(seed)
    vocab = _vocab(rng)
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** 0.8
    weights /= weights.sum()

    def words(k: int) -> list[str]:
        return [vocab[i] for i in rng.choice(len(vocab), k, p=weights)]

    bylines = [" ".join(words(int(rng.integers(4, 9)))) for _ in range(40)]

    def news(k: int) -> tuple[list[str], str]:
        content = words(k)
        text = " ".join(content)
        if rng.random() < 0.6:
            bp = BOILERPLATE[rng.integers(len(BOILERPLATE))]
            text = f"{bp} {text}" if rng.random() < 0.5 else f"{text} {bp}"
        if rng.random() < 0.1:
            text = f"{text} {bylines[rng.integers(len(bylines))]}"
        return content, text

    train = [news(int(rng.integers(20, 61)))[1] for _ in range(n_train)]
    evals, kinds, sources = [], [], []
    for kind in KINDS:
        for _ in range(n_leak):
            content, text = news(int(rng.integers(20, 61)))
            evals.append(text)
            kinds.append(kind)
            if kind == "copy":
                leaked = text
            elif kind == "case_punct":
                leaked = "".join((w.upper() if rng.random() < 0.3 else w.capitalize() if rng.random() < 0.3 else w)
                                 + str(rng.choice([" ", ", ", ". ", " - ", "!  ", " "])) for w in text.split())
            elif kind == "window20":
                start = int(rng.integers(0, len(content) - 19))
                other = words(int(rng.integers(20, 50)))
                cut = int(rng.integers(0, len(other) + 1))
                leaked = " ".join(other[:cut] + content[start:start + 20] + other[cut:])
            else:
                tokens = text.split()
                for _ in range(int(rng.integers(1, 4))):
                    pos = int(rng.integers(len(tokens)))
                    if rng.random() < 0.5:
                        del tokens[pos]
                    else:
                        tokens.insert(pos, tokens[pos])
                leaked = " ".join(tokens)
            sources.append(len(train))
            train.append(leaked)
    for _ in range(n_clean):
        evals.append(news(int(rng.integers(10, 61)))[1])
        kinds.append("clean")
        sources.append(-1)
    order = rng.permutation(len(train))  # the planted texts are scattered through the training file
    where = np.empty_like(order)
    where[order] = np.arange(order.size)
    sources = np.array([where[s] if s >= 0 else -1 for s in sources])
    return [train[i] for i in order], evals, np.array(kinds), sources


def _flagged(report, method: str | None = None) -> np.ndarray:
    n = report.n_eval
    if method is None:
        return ~report.clean_mask()
    return np.isin(np.arange(n), report.methods[method].eval_indices)


def _precision_recall(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    hits = int((flagged & truth).sum())
    return hits / max(int(flagged.sum()), 1), hits / int(truth.sum())


@pytest.fixture(scope="module")
def planted():
    train, evals, kinds, sources = planted_news(seed=0)
    return train, evals, kinds, sources, check_contamination(train, evals)


def test_planted_news_with_boilerplate_precision_and_recall(planted):
    train, evals, kinds, sources, report = planted
    leaked = kinds != "clean"
    precision, recall = _precision_recall(_flagged(report), leaked)
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)
    # per method, against the kinds it is meant to find (its precision against every planted leak)
    for method, kinds_found in (("exact", ("copy", "case_punct")), ("ngram", ("copy", "case_punct", "window20")),
                                ("near_duplicate", ("copy", "case_punct", "drop_dup"))):
        flagged = _flagged(report, method)
        precision, _ = _precision_recall(flagged, leaked)
        _, recall = _precision_recall(flagged, np.isin(kinds, kinds_found))
        assert precision >= 0.95 and recall >= 0.95, (method, precision, recall)
    assert _flagged(report, "verbatim")[kinds == "copy"].all()
    assert not _flagged(report, "verbatim")[kinds == "case_punct"].any()
    assert not _flagged(report, "exact")[kinds == "window20"].any()
    # the n-gram match names the training text the window was planted in
    ngram = report.methods["ngram"]
    windows = {int(i): int(j) for i, j in zip(ngram.eval_indices, ngram.train_indices, strict=True)
               if kinds[i] == "window20"}
    assert all(sources[i] == j for i, j in windows.items())
    params = ngram.params
    assert params["max_df"] == 20 and params["min_coverage"] == 0.3 and params["ignored_ngrams"] > 0
    assert params["below_coverage"] > 0


def test_the_plain_13gram_rule_flags_the_boilerplate(planted):
    """The user's finding, reproduced: any shared 13-gram flags most clean texts that carry boilerplate."""
    train, evals, kinds, _, report = planted
    plain = check_contamination(train, evals, ngram_max_df=None, ngram_min_coverage=0.0)
    precision, recall = _precision_recall(_flagged(plain, "ngram"), kinds != "clean")
    assert precision < 0.5 and recall >= 0.95, (precision, recall)
    assert plain.methods["ngram"].count == report.methods["ngram"].params["shared_any"]
    # each guard alone leaves false hits: the cut-off misses boilerplate-adjacent text, coverage the rest
    for kwargs in ({"ngram_max_df": None}, {"ngram_min_coverage": 0.0}):
        one = check_contamination(train, evals, **kwargs)
        assert _precision_recall(_flagged(one, "ngram"), kinds != "clean")[0] < 0.9, kwargs


# ---------------------------------------------------------------- the n-gram method's pieces
def _brute_force_ngram(train_norm, eval_norm, n):
    """The plain rule, written the obvious way (as before the boilerplate guards)."""
    grams = {g for t in train_norm for g in word_ngrams(t, n)}
    return [i for i, t in enumerate(eval_norm) if any(g in grams for g in word_ngrams(t, n))]


def test_hashed_ngrams_agree_with_the_plain_rule():
    rng = np.random.default_rng(5)
    vocab = [f"w{i}" for i in range(30)]
    train = [" ".join(rng.choice(vocab, rng.integers(0, 25))) for _ in range(300)]
    evals = [" ".join(rng.choice(vocab, rng.integers(0, 25))) for _ in range(200)]
    evals += [t for t in train[:40]] + [t.split(" ", 3)[-1] for t in train[40:80]]
    for n in (3, 5, 13):
        got = ngram_matches(train, evals, n, max_df=None, min_coverage=0.0)
        assert got.eval_indices.tolist() == _brute_force_ngram(train, evals, n), n
        assert got.params["shared_any"] == got.count
        for i, j in zip(got.eval_indices.tolist(), got.train_indices.tolist(), strict=True):
            assert set(word_ngrams(evals[i], n)) & set(word_ngrams(train[j], n))


def _words(prefix: str, k: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(k)]


def test_document_frequency_cut_off_ignores_boilerplate():
    boiler = _words("bp", 15)
    train = [" ".join(_words(f"t{d}x", 20) + boiler) for d in range(25)]  # boilerplate in 25 texts
    evals = [" ".join(_words("e0x", 10) + boiler), " ".join(_words("e1x", 30) + boiler)]
    assert ngram_matches(train, evals, 13, max_df=20).count == 0
    kept = ngram_matches(train, evals, 13, max_df=27, min_coverage=0.0)  # 25 training + 2 eval texts hold it
    assert kept.eval_indices.tolist() == [0, 1] and kept.params["ignored_ngrams"] == 0
    assert ngram_matches(train, evals, 13, max_df=26).params["ignored_ngrams"] == 3  # 15 - 13 + 1
    # without the cut-off, coverage alone lets boilerplate through: 15 of 25 words, 15 of 45
    assert ngram_matches(train, evals, 13, max_df=None).eval_indices.tolist() == [0, 1]
    # a small training split (a validation split) holds the boilerplate a few times, the eval texts often
    small = [" ".join(_words(f"v{d}x", 20) + boiler) for d in range(3)] + [" ".join(_words("v9x", 30))]
    many = [" ".join(_words(f"e{d}x", 12) + boiler) for d in range(30)]
    assert ngram_matches(small, many, 13).count == 0
    assert ngram_matches(small, many, 13, max_df=None).count == 30
    # a leaked text keeps its coverage: its boilerplate words count neither way
    leak = " ".join(_words("leak", 12) + boiler)
    res = ngram_matches([*train, leak], [leak], 13, max_df=20)
    assert res.count == 1 and res.similarity[0] == pytest.approx(1.0) and res.train_indices[0] == 25
    # near copies of one text (the same leak held 5 times) are far below the cut-off
    res = ngram_matches([leak] * 5 + [*train], [leak], 13, max_df=20)
    assert res.count == 1


def test_coverage_separates_a_stray_shared_phrase_from_a_leaked_window():
    quote = _words("q", 13)
    train = [" ".join(_words("a", 20) + quote + _words("b", 20)), " ".join(_words("c", 10) + _words("w", 20))]
    stray = " ".join(_words("d", 37) + quote)  # 13 of 50 words: 0.26
    window = " ".join(_words("e", 20) + _words("w", 20))  # 20 of 40 words: 0.5
    res = ngram_matches(train, [stray, window], 13)
    assert res.eval_indices.tolist() == [1] and res.train_indices.tolist() == [1]
    assert res.similarity.tolist() == pytest.approx([0.5]) and res.params["below_coverage"] == 1
    assert ngram_matches(train, [stray, window], 13, min_coverage=0.25).count == 2
    assert ngram_matches(train, [stray, window], 13, min_coverage=0.6).count == 0
    short = " ".join(_words("f", 30) + quote)  # 13 of 43 words: 0.302, still counts
    assert ngram_matches(train, [short], 13).count == 1


def test_ngram_settings_are_checked():
    with pytest.raises(DataError, match="ngram_max_df must be an integer >= 1 or None"):
        check_contamination(["a"], ["a"], ngram_max_df=0)
    with pytest.raises(DataError, match="ngram_min_coverage must be in"):
        check_contamination(["a"], ["a"], ngram_min_coverage=1.5)


# ---------------------------------------------------------------- merged tokens
MERGED = [
    ("NJ-based Acme Corp files for bankruptcy protection", "NJbased Acme Corp files for bankruptcy protection"),
    ("Send us an e-mail with your questions", "Send us an email with your questions"),
    ("It won't rain in the city tomorrow", "it wo n't rain in the city tomorrow"),
    ("U.S. stocks fell sharply on Monday", "US stocks fell sharply on Monday"),
    ("The Wal-Mart store opened in New York", "the WalMart store opened in NewYork"),
]


def test_merged_and_split_tokens_match_exactly():
    train = [b for _, b in MERGED] + ["an unrelated sentence about the weather"]
    evals = [a for a, _ in MERGED]
    assert all(normalize_text(a) != normalize_text(b) for a, b in MERGED)  # what the user found
    report = check_contamination(train, evals)
    exact = report.methods["exact"]
    assert exact.eval_indices.tolist() == [0, 1, 2, 3, 4] and exact.train_indices.tolist() == [0, 1, 2, 3, 4]
    assert exact.params["compact_min_chars"] == 12 and exact.params["merged_tokens"] == 5
    assert exact_matches([normalize_text(t) for t in train], [normalize_text(t) for t in evals]).count == 0


def test_merged_tokens_make_no_new_matches_on_unrelated_texts():
    # short coincidences stay apart (under 12 characters), and so do unrelated texts
    report = check_contamination(["notable", "therapist", "nowhere", "a bout of flu"],
                                 ["not able", "the rapist", "now here", "about of flu"])
    assert report.methods["exact"].count == 0
    train, evals, kinds, _ = planted_news(seed=3, n_train=600, n_leak=0, n_clean=300)
    clean = check_contamination(train, evals)
    assert clean.methods["exact"].count == 0 and clean.methods["exact"].params["merged_tokens"] == 0


def _read_sentences(path):
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        col = next(reader).index("sentence")
        return [row[col] for row in reader]


def test_merged_tokens_on_sst2_add_no_match(shared_data):
    folder = shared_data / "sst2"
    if not folder.is_dir():
        pytest.skip(f"no SST-2 at {folder}")
    train = [normalize_text(s) for s in _read_sentences(folder / "train.tsv")]
    val = [normalize_text(s) for s in _read_sentences(folder / "validation.tsv")]
    res = exact_matches(train, val, compact_min_chars=12)
    assert res.count == 1553 and res.params["merged_tokens"] == 0


# ---------------------------------------------------------------- per-example flags
def _split(name: str, texts: list[str]) -> Split:
    return Split(name, np.array(texts, dtype=object), np.zeros(len(texts), dtype=np.int64),
                 np.array([f"{name}-{i:04d}" for i in range(len(texts))], dtype=object))


def test_flags_by_id_in_the_integrity_result(planted):
    train, evals, kinds, sources, _ = planted
    result = integrity_report({"train": _split("train", train), "validation": _split("validation", [])},
                              _split("test", evals), ngram=13, near_dup_threshold=0.8, seed=0)
    json.dumps(result)
    against = result["against"]["train"]
    assert set(against["flagged"]) == {"verbatim", "exact", "ngram", "near_duplicate", "any"}
    assert set(against["flagged_score"]) == {"ngram", "near_duplicate"}
    rows = result["contaminated_rows"]
    assert result["contaminated_ids"] == [f"test-{i:04d}" for i in rows] == against["flagged"]["any"]
    assert len(against["flagged"]["ngram"]) == against["counts"]["ngram"]
    for method in ("verbatim", "exact", "ngram", "near_duplicate"):
        ids, train_ids = against["flagged"][method], against["flagged_train"][method]
        assert len(ids) == len(train_ids) and ids == sorted(ids)
    for eval_id, train_id in zip(against["flagged"]["exact"], against["flagged_train"]["exact"], strict=True):
        i, j = int(eval_id.split("-")[1]), int(train_id.split("-")[1])
        assert kinds[i] in ("copy", "case_punct") and sources[i] == j
    assert all(0.3 <= s <= 1 for s in against["flagged_score"]["ngram"])
    assert all(0.8 <= s <= 1 for s in against["flagged_score"]["near_duplicate"])


def test_flags_export_to_csv_and_json_and_read_back(planted, tmp_path):
    from leanbench.analysis.results import Integrity, StudyResults

    train, evals, _, _, _ = planted
    result = integrity_report({"train": _split("train", train), "validation": _split("validation", train[:300])},
                              _split("test", evals), ngram=13, near_dup_threshold=0.8, seed=0)
    integ = Integrity.from_dict({"holdout": {}, **result})
    assert integ.to_dict()["against"]["train"]["flagged"] == result["against"]["train"]["flagged"]
    results = StudyResults(study="news", integrity=integ)
    expected = flag_rows(integ)
    n_rows = sum(len(v) for rep in result["against"].values() for m, v in rep["flagged"].items() if m != "any")
    assert len(expected) == n_rows > 0 and {r["against"] for r in expected} == {"train", "validation"}
    for suffix in (".csv", ".json"):
        path = tmp_path / "out" / f"flagged{suffix}"
        assert write_flags(results, path) == len(expected)
        back = read_flags(path)
        assert back == expected, suffix
        assert list(back[0]) == list(FLAG_COLUMNS)
    doc = json.loads((tmp_path / "out" / "flagged.json").read_text())
    assert doc["contaminated_ids"] == result["contaminated_ids"] and doc["evaluated"] == "test"
    # from the results JSON too
    assert write_flags(results.to_dict(), tmp_path / "again.csv") == len(expected)
    with pytest.raises(LeanbenchError, match="write a .csv or .json file"):
        write_flags(results, tmp_path / "flags.txt")
    old = {k: v for k, v in result["against"]["train"].items() if not k.startswith("flagged")}
    with pytest.raises(LeanbenchError, match="predates per-example flags"):
        write_flags({"study": "old", "integrity": {"against": {"train": old}}}, tmp_path / "old.csv")
    with pytest.raises(LeanbenchError, match="has no contamination results"):
        write_flags({"study": "none", "integrity": {"holdout": {}}}, tmp_path / "none.csv")


def test_integrity_config_settings():
    from pydantic import ValidationError

    from leanbench.study import IntegrityConfig

    cfg = IntegrityConfig()
    assert (cfg.ngram, cfg.ngram_max_df, cfg.ngram_min_coverage) == (13, 20, 0.3)
    plain = IntegrityConfig(ngram_max_df=None, ngram_min_coverage=0)
    assert plain.model_dump(mode="json")["ngram_max_df"] is None
    for bad in ({"ngram_max_df": 0}, {"ngram_min_coverage": 1.5}, {"ngram_min_coverage": -0.1}):
        with pytest.raises(ValidationError):
            IntegrityConfig(**bad)
    # the settings reach the check, and their values are in the result
    train, evals, _, _ = planted_news(seed=1, n_train=400, n_leak=10, n_clean=100)
    result = integrity_report({"train": _split("train", train)}, _split("test", evals), ngram=13,
                              near_dup_threshold=0.8, seed=0, ngram_max_df=plain.ngram_max_df,
                              ngram_min_coverage=plain.ngram_min_coverage)
    params = result["against"]["train"]["methods"]["ngram"]["params"]
    assert params["max_df"] is None and params["min_coverage"] == 0 and params["ignored_ngrams"] == 0
