"""Word lists the text perturbations use: keyboard neighbours, English contractions, synonyms.

- Keyboard neighbours: the letters adjacent to each letter on a US QWERTY keyboard (same row and the rows
  above/below), as used for keyboard-typo noise in NL-Augmenter's `butter_fingers_perturbation` and HELM's
  `TyposPerturbation`.
- Contractions: common English pronoun/auxiliary contractions with their expansion (HELM
  `ContractionPerturbation`/`ExpansionPerturbation` use a similar table). Both written forms are
  recognised: attached ("don't") and Penn-Treebank tokenised ("do n't", as in SST-2).
- Synonyms: `data/synonyms.tsv`, a small hand-written list (about 435 head words: sentiment adjectives,
  intensifiers, review nouns, common verbs) whose substitutes keep the sentiment of the head word.
  NLTK WordNet is not a dependency; this list is the offline replacement.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from leanbench.errors import DataError

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_ROW_OFFSET = (0.0, 0.25, 0.75)  # horizontal stagger of each row, in key widths


def _keyboard_neighbours() -> dict[str, str]:
    """Letter -> the letters whose key centre is within one key width across and one row up or down."""
    pos = {ch: (r, c + _ROW_OFFSET[r]) for r, row in enumerate(_ROWS) for c, ch in enumerate(row)}
    out = {}
    for ch, (r, x) in pos.items():
        near = (o for o, (r2, x2) in pos.items() if o != ch and abs(r2 - r) <= 1 and abs(x2 - x) <= 1)
        out[ch] = "".join(sorted(near))
    return out


KEYBOARD_NEIGHBOURS: dict[str, str] = _keyboard_neighbours()

# (contracted, expanded), lower case, attached form. Ambiguous "'s"/"'d" forms are given one reading
# ("it's" -> "it is", "he'd" -> "he would"); possessive "'s" after a noun is never touched.
CONTRACTIONS: tuple[tuple[str, str], ...] = (
    ("don't", "do not"), ("doesn't", "does not"), ("didn't", "did not"), ("isn't", "is not"),
    ("aren't", "are not"), ("wasn't", "was not"), ("weren't", "were not"), ("haven't", "have not"),
    ("hasn't", "has not"), ("hadn't", "had not"), ("won't", "will not"), ("wouldn't", "would not"),
    ("can't", "cannot"), ("couldn't", "could not"), ("shouldn't", "should not"), ("mustn't", "must not"),
    ("i'm", "i am"), ("you're", "you are"), ("we're", "we are"), ("they're", "they are"),
    ("it's", "it is"), ("that's", "that is"), ("there's", "there is"), ("here's", "here is"),
    ("he's", "he is"), ("she's", "she is"), ("what's", "what is"), ("who's", "who is"),
    ("i've", "i have"), ("you've", "you have"), ("we've", "we have"), ("they've", "they have"),
    ("i'll", "i will"), ("you'll", "you will"), ("he'll", "he will"), ("she'll", "she will"),
    ("we'll", "we will"), ("they'll", "they will"), ("it'll", "it will"), ("that'll", "that will"),
    ("i'd", "i would"), ("you'd", "you would"), ("he'd", "he would"), ("she'd", "she would"),
    ("we'd", "we would"), ("they'd", "they would"), ("let's", "let us"),
)


def tokenised_form(contraction: str) -> str:
    """The Penn-Treebank form of an attached contraction: "don't" -> "do n't", "it's" -> "it 's"."""
    if contraction.endswith("n't"):
        return f"{contraction[:-3]} n't"
    head, _, tail = contraction.partition("'")
    return f"{head} '{tail}"


SYNONYMS_FILE = "synonyms.tsv"


def parse_synonyms(text: str, source: str = SYNONYMS_FILE) -> dict[str, tuple[str, ...]]:
    """Parse `word<TAB>syn, syn, ...` lines ('#' starts a comment line) into {word: synonyms}."""
    table: dict[str, tuple[str, ...]] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        head, sep, rest = line.partition("\t")
        syns = tuple(s.strip() for s in rest.split(",") if s.strip())
        if not sep or not head.strip() or not syns:
            raise DataError(f"{source}:{lineno}: expected 'word<TAB>synonym, synonym, ...', got {line!r}")
        if head.strip().lower() in table:
            raise DataError(f"{source}:{lineno}: head word {head.strip()!r} is listed twice")
        table[head.strip().lower()] = syns
    return table


@functools.lru_cache(maxsize=4)
def load_synonyms(path: str | None = None) -> dict[str, tuple[str, ...]]:
    """The synonym table: the shipped `data/synonyms.tsv`, or a user file at `path` (same format)."""
    if path is None:
        text = resources.files("leanbench.evaluate").joinpath("data", SYNONYMS_FILE).read_text("utf-8")
        return parse_synonyms(text)
    p = Path(path)
    if not p.is_file():
        raise DataError(f"synonyms file not found: {p}")
    return parse_synonyms(p.read_text("utf-8"), str(p))


def match_case(word: str, like: str) -> str:
    """`word` written with the capitalisation of `like`: "UPPER", "Title" or unchanged."""
    if len(like) > 1 and like.isupper():
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


__all__ = [
    "CONTRACTIONS",
    "KEYBOARD_NEIGHBOURS",
    "load_synonyms",
    "match_case",
    "parse_synonyms",
    "tokenised_form",
]
