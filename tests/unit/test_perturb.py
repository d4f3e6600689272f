"""Perturbations: seeded per (seed, name, example id), shape/dtype contract, each transformation's effect,
config errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from leanbench.errors import LeanbenchError
from leanbench.evaluate.lexicon import KEYBOARD_NEIGHBOURS, load_synonyms, parse_synonyms, tokenised_form
from leanbench.evaluate.perturb import (
    PERTURBATIONS,
    default_perturbations,
    example_rng,
    input_kind,
    perturbation_from_config,
    shift_image,
    strip_punctuation_text,
)

TEXTS = np.array([
    "it 's a charming and often affecting journey . ",
    "I don't think it's GOOD, really.",
    "the film does n't work , and it is not funny",
    "a great, great movie: funny, clever and moving!",
    "bad",
    "",
], dtype=object)
TEXT_IDS = np.array([f"t{i}" for i in range(len(TEXTS))])


def _images(n: int = 6) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random((n, 1, 8, 8)).astype(np.float32)


def _tabular(n: int = 50) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(n, 7)).astype(np.float32)


def _inputs(kind: str) -> np.ndarray:
    return {"text": TEXTS, "image": _images(), "tabular": _tabular()}[kind]


def _ids(n: int) -> np.ndarray:
    return np.array([f"ex{i}" for i in range(n)])


# ---------------------------------------------------------------- contract over every registered perturbation
@pytest.mark.parametrize("name", PERTURBATIONS.names())
def test_every_perturbation_keeps_shape_dtype_and_is_seeded_per_example(name):
    p = perturbation_from_config(name, {})
    X = _inputs(p.kind)
    before = X.copy()
    ids = _ids(len(X))
    out = p.apply(X, ids, seed=3)
    assert out.shape == X.shape and out.dtype == X.dtype
    np.testing.assert_array_equal(X, before)  # input untouched
    again = p.apply(X, ids, seed=3)
    assert all(a == b for a, b in zip(out.ravel(), again.ravel(), strict=True))
    # batch-order invariance: a permuted subset gets exactly the same perturbed examples
    sub = np.array([4, 0, 2])
    part = p.apply(X[sub], ids[sub], seed=3)
    for k, i in enumerate(sub):
        assert np.array_equal(np.asarray(part[k]), np.asarray(out[i]))


@pytest.mark.parametrize("name", [n for n in PERTURBATIONS.names() if PERTURBATIONS.get(n).random])
def test_random_perturbations_depend_on_the_seed(name):
    p = perturbation_from_config(name, {})
    X = _inputs(p.kind)
    if p.kind == "text":
        text = "the quick brown fox jumps over the lazy dog and it is not a great movie , really . "
        X = np.array([text] * 8, dtype=object)
    a, b = p.apply(X, _ids(len(X)), seed=0), p.apply(X, _ids(len(X)), seed=1)
    assert any(not np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b, strict=True))
    # different ids see different draws as well (per-example streams)
    assert any(not np.array_equal(np.asarray(a[0]), np.asarray(x)) for x in a[1:])


def test_example_rng_is_a_stable_hash_of_seed_name_and_id():
    # blake2b-64 of "0:typos:ex1" seeds PCG64; numpy guarantees this stream across versions
    digest = int.from_bytes(__import__("hashlib").blake2b(b"0:typos:ex1", digest_size=8).digest(), "little")
    assert example_rng(0, "typos", "ex1").integers(1 << 30) == np.random.default_rng(digest).integers(1 << 30)
    assert example_rng(0, "typos", "ex1").random() != example_rng(0, "typos", "ex2").random()
    assert example_rng(0, "typos", "ex1").random() != example_rng(1, "typos", "ex1").random()


# ---------------------------------------------------------------- text
def test_typos_rate_zero_is_identity_and_edits_use_keyboard_neighbours():
    text = "abcdefghijklmnopqrstuvwxyz " * 40
    X, ids = np.array([text], dtype=object), np.array(["x"])
    assert perturbation_from_config("typos", {"rate": 0.0}).apply(X, ids, 0)[0] == text
    out = perturbation_from_config("typos", {"rate": 0.05}).apply(X, ids, 0)[0]
    assert out != text
    letters = sum(c.isalpha() for c in text)
    changed = sum(a != b for a, b in zip(out, text, strict=False))
    assert 0 < changed  # some positions changed; the characters introduced are letters or were there
    assert set(out) <= set(text) | set("".join(KEYBOARD_NEIGHBOURS.values()))
    # about rate * letters edits: length changes come only from drops (-1) and inserts (+1)
    assert abs(len(out) - len(text)) < 0.05 * letters


def test_typos_keeps_case_of_replaced_letters():
    X = np.array(["ABCDEFGHIJKLMNOPQRSTUVWXYZ" * 20], dtype=object)
    out = perturbation_from_config("typos", {"rate": 0.5}).apply(X, np.array(["u"]), 4)[0]
    assert out.isupper() and out != X[0]


def test_lowercase_and_strip_punctuation():
    lower = perturbation_from_config("lowercase").apply(TEXTS, TEXT_IDS, 0)
    assert list(lower) == [t.lower() for t in TEXTS]
    stripped = perturbation_from_config("strip_punctuation").apply(TEXTS, TEXT_IDS, 0)
    assert stripped[0] == "it s a charming and often affecting journey "
    assert stripped[1] == "I dont think its GOOD really"
    # the em dash is punctuation too (category Pd)
    assert strip_punctuation_text("«Hello», she said — “fine”…") == "Hello she said fine"
    assert all(not re.search(r"[.,:!']", s) for s in stripped)


def test_whitespace_noise_changes_only_whitespace():
    X = np.array(["one two three four five six seven eight nine ten"] * 5, dtype=object)
    out = perturbation_from_config("whitespace", {"rate": 1.0}).apply(X, _ids(5), 0)
    for o in out:
        assert o.split() == X[0].split()
        assert re.search(r"\s{2,}", o)  # rate 1: every gap became a run of 2-4 whitespace characters
    none = perturbation_from_config("whitespace", {"rate": 0.0}).apply(X, _ids(5), 0)
    assert list(none) == list(X)


@pytest.mark.parametrize(("text", "mode", "expected"), [
    ("I don't think it's good", "both", "I do not think it is good"),
    ("do not go, they are late", "both", "don't go, they're late"),
    ("Don't stop. We Can't", "expand", "Do not stop. We Cannot"),
    ("it does n't work and it is bad", "both", "it does not work and it 's bad"),  # tokenised style kept
    ("the film's score is not bad", "both", "the film's score isn't bad"),  # possessive 's untouched
    ("the film 's score is not bad", "both", "the film 's score is n't bad"),  # tokenised text
    ("do not go", "expand", "do not go"),
    ("I don't", "contract", "I don't"),
    ("nothing isolated here", "both", "nothing isolated here"),  # whole words only
])
def test_contractions(text, mode, expected):
    p = perturbation_from_config("contractions", {"mode": mode})
    assert p.apply(np.array([text], dtype=object), np.array(["a"]), 0)[0] == expected


def test_tokenised_form():
    assert tokenised_form("don't") == "do n't" and tokenised_form("won't") == "wo n't"
    assert tokenised_form("i'm") == "i 'm"


def test_word_dropout_keeps_a_subsequence_and_at_least_one_word():
    X = np.array(["w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12"] * 20, dtype=object)
    out = perturbation_from_config("word_dropout", {"rate": 0.3}).apply(X, _ids(20), 0)
    source = X[0].split()
    for o in out:
        words = o.split()
        it = iter(source)
        assert all(w in it for w in words)  # order-preserving subsequence
    kept = np.mean([len(o.split()) for o in out]) / len(source)
    assert 0.5 < kept < 0.9  # about 1 - rate
    all_dropped = perturbation_from_config("word_dropout", {"rate": 1.0}).apply(X, _ids(20), 0)
    assert all(len(o.split()) == 1 for o in all_dropped)
    # a larger rate drops a superset of the words (same stream per example)
    more = perturbation_from_config("word_dropout", {"rate": 0.6}).apply(X, _ids(20), 0)
    assert all(set(m.split()) <= set(o.split()) for m, o in zip(more, out, strict=True))
    # the spacing of kept words is untouched: nothing dropped, nothing changed
    tokenised = np.array(["it 's a charming  journey . "], dtype=object)
    none = perturbation_from_config("word_dropout", {"rate": 0.0})
    assert none.apply(tokenised, _ids(1), 0)[0] == tokenised[0]
    assert all_dropped[0].strip() in source


def test_synonyms_replace_listed_words_with_their_synonyms():
    table = load_synonyms()
    X = np.array(["The movie was great and very funny", "GOOD film"], dtype=object)
    out = perturbation_from_config("synonyms", {"rate": 1.0}).apply(X, np.array(["a", "b"]), 0)
    words_in, words_out = X[0].split(), out[0].split(" ")
    assert words_out[0] == "The"
    assert out[0] != X[0]
    first_syn = out[0].split(" ", 2)[1]  # "movie" -> one of its synonyms, capitalisation kept
    assert first_syn in table["movie"]
    assert out[1].split(" ")[0] in {s.upper() for s in table["good"]}
    assert perturbation_from_config("synonyms", {"rate": 0.0}).apply(X, np.array(["a", "b"]), 0)[0] == X[0]
    assert len(words_in) > 0 and len(table) > 300


def test_synonym_file_is_well_formed_and_parse_errors_are_clear():
    table = load_synonyms()
    assert all(syns and all(s and s.strip() == s for s in syns) for syns in table.values())
    assert all(head not in syns for head, syns in table.items())
    with pytest.raises(LeanbenchError, match="listed twice"):
        parse_synonyms("good\tfine\ngood\tnice\n")
    with pytest.raises(LeanbenchError, match=r"x\.tsv:1: expected"):
        parse_synonyms("good fine\n", "x.tsv")


def test_user_synonym_file(tmp_path):
    path = tmp_path / "syn.tsv"
    path.write_text("cat\tfeline\n", encoding="utf-8")
    p = perturbation_from_config("synonyms", {"rate": 1.0, "file": str(path)})
    assert p.apply(np.array(["a cat and a dog"], dtype=object), np.array(["a"]), 0)[0] == "a feline and a dog"


# ---------------------------------------------------------------- image
def test_gaussian_noise_is_clipped_and_scaled_to_the_value_range():
    X = np.full((200, 1, 8, 8), 0.5, dtype=np.float32)
    X[0, 0, 0, 0], X[0, 0, 0, 1] = 0.0, 2.0  # value range [0, 2]
    out = perturbation_from_config("gaussian_noise", {"std": 0.05}).apply(X, _ids(200), 0)
    assert out.min() >= 0.0 and out.max() <= 2.0
    assert abs(float(np.std(out[1:] - X[1:])) - 0.05 * 2.0) < 0.005
    fixed = perturbation_from_config("gaussian_noise", {"std": 1.0, "value_range": [0.4, 0.6]})
    out = fixed.apply(X, _ids(200), 0)
    assert out.min() >= 0.4 and out.max() <= 0.6


def test_blur_matches_scipy_per_channel():
    X = np.random.default_rng(0).random((3, 2, 8, 8)).astype(np.float32)
    out = perturbation_from_config("blur", {"sigma": 1.2}).apply(X, _ids(3), 0)
    for i in range(3):
        for c in range(2):
            np.testing.assert_allclose(out[i, c], gaussian_filter(X[i, c], 1.2), rtol=1e-6)
    same = perturbation_from_config("blur", {"sigma": 0.0}).apply(X, _ids(3), 0)
    np.testing.assert_allclose(same, X)


def test_shift_moves_by_pixels_in_one_of_eight_directions_with_zero_fill():
    X = _images(20)
    out = perturbation_from_config("shift", {"pixels": 2}).apply(X, _ids(20), 0)
    dirs = [(dy, dx) for dy in (-2, 0, 2) for dx in (-2, 0, 2) if (dy, dx) != (0, 0)]
    seen = set()
    for x, o in zip(X, out, strict=True):
        match = [d for d in dirs if np.array_equal(shift_image(x, *d), o)]
        assert len(match) == 1
        seen.add(match[0])
    assert len(seen) >= 4
    img = np.arange(9, dtype=np.float32).reshape(1, 3, 3)
    np.testing.assert_array_equal(shift_image(img, 1, 0), [[[0, 0, 0], [0, 1, 2], [3, 4, 5]]])
    np.testing.assert_array_equal(shift_image(img, 0, -1), [[[1, 2, 0], [4, 5, 0], [7, 8, 0]]])


def test_rotation_zero_is_identity_and_rotation_keeps_the_centre():
    X = _images(4)
    same = perturbation_from_config("rotation", {"degrees": 0.0}).apply(X, _ids(4), 0)
    np.testing.assert_allclose(same, X, atol=1e-6)
    disk = np.zeros((1, 1, 9, 9), dtype=np.float32)
    disk[0, 0, 4, 4] = 1.0
    rotated = perturbation_from_config("rotation", {"degrees": 90.0}).apply(disk, _ids(1), 0)
    assert rotated[0, 0, 4, 4] == pytest.approx(1.0)  # the centre pixel is the rotation's fixed point


# ---------------------------------------------------------------- tabular
def test_feature_noise_and_missing():
    X = np.zeros((4000, 5), dtype=np.float32)
    noisy = perturbation_from_config("feature_noise", {"std": 0.3}).apply(X, _ids(4000), 0)
    assert abs(float(noisy.std()) - 0.3) < 0.01 and abs(float(noisy.mean())) < 0.01
    X = np.ones((4000, 5), dtype=np.float32)
    miss = perturbation_from_config("missing", {"rate": 0.2}).apply(X, _ids(4000), 0)
    assert set(np.unique(miss)) == {0.0, 1.0}
    assert abs(float((miss == 0).mean()) - 0.2) < 0.02


# ---------------------------------------------------------------- config, kinds, defaults
def test_config_errors_are_clear_and_complete():
    with pytest.raises(LeanbenchError, match=r"unknown perturbation 'typo' \(did you mean 'typos'\?\)"):
        perturbation_from_config("typo", {})
    with pytest.raises(LeanbenchError) as e:
        perturbation_from_config("typos", {"rat": 0.1, "rate": 2}, where="evaluate.perturbations[0].")
    msg = str(e.value)
    prefix = "evaluate.perturbations[0].perturbation 'typos'"
    assert f"{prefix}: unknown parameter 'rat' (did you mean 'rate'?)" in msg
    assert "parameter 'rate' must be a number in [0, 1], got 2" in msg
    with pytest.raises(LeanbenchError, match="'pixels' must be an integer >= 0, got 1.5"):
        perturbation_from_config("shift", {"pixels": 1.5})
    with pytest.raises(LeanbenchError, match="'mode' must be one of"):
        perturbation_from_config("contractions", {"mode": "sometimes"})
    with pytest.raises(LeanbenchError, match="must be a number"):
        perturbation_from_config("blur", {"sigma": True})


def test_wrong_input_kind_is_a_clear_error():
    p = perturbation_from_config("typos")
    with pytest.raises(LeanbenchError, match="is for text inputs, but the data are image"):
        p.apply(_images(2), _ids(2), 0)
    with pytest.raises(LeanbenchError, match="cannot tell the input kind"):
        input_kind(np.zeros((2, 3, 4)))
    assert input_kind(TEXTS) == "text" and input_kind(_images()) == "image"
    assert input_kind(_tabular()) == "tabular"


@pytest.mark.parametrize("kind", ["text", "image", "tabular"])
def test_default_suites(kind):
    suite = default_perturbations(kind)
    assert suite and all(p.kind == kind for p in suite)
    assert len({p.label for p in suite}) == len(suite)
    out = [p.apply(_inputs(kind), _ids(len(_inputs(kind))), 0) for p in suite]
    assert all(o.shape == _inputs(kind).shape for o in out)


def test_default_suite_unknown_kind():
    with pytest.raises(LeanbenchError, match="did you mean 'image'"):
        default_perturbations("imag")


def test_label_and_key():
    p = perturbation_from_config("typos", {"rate": 0.1})
    assert p.label == "typos(rate=0.1)"
    assert json.loads(p.key()) == {"name": "typos", "params": {"rate": 0.1}}
    assert perturbation_from_config("lowercase").label == "lowercase"
    assert perturbation_from_config("gaussian_noise", {"std": 0.2}).label == "gaussian_noise(std=0.2)"
