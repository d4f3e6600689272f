"""Seeded input perturbations for robustness evaluation: text, image and tabular.

Every random choice for one example comes from its own generator,

    rng = np.random.default_rng(blake2b_64(f"{seed}:{name}:{example_id}"))

(HELM `augmentations/perturbation.py`, `get_rng(seed + instance id)`), so the perturbed input of an example
depends only on (seed, perturbation name, example id): every candidate sees the identical perturbed input,
whatever the batch order, and a run is reproducible. The hash is blake2b with an 8-byte digest (stable
across processes, unlike Python's `hash`). The parameters are not part of the hash: `word_dropout(rate=0.1)`
and `word_dropout(rate=0.3)` draw from the same stream, so the larger rate drops a superset of the words
(likewise for `whitespace`, and for `typos` up to swapped neighbours).

A `Perturbation` is a name, an input kind, its parameters and a per-example function; `apply(X, ids, seed)`
returns a new array of the same shape and dtype. Build one from a study config with
`perturbation_from_config(name, params)`; `default_perturbations(kind)` is the suite used when a study asks
for robustness without naming perturbations.

Input kinds (`input_kind(X)`): "text" = 1-d object array of str; "image" = float array (N, C, H, W);
"tabular" = float array (N, F) of standardised features (train mean 0, std 1).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from leanbench.errors import LeanbenchError
from leanbench.evaluate.lexicon import (
    CONTRACTIONS,
    KEYBOARD_NEIGHBOURS,
    load_synonyms,
    match_case,
    tokenised_form,
)
from leanbench.registry import Registry, did_you_mean

KINDS = ("text", "image", "tabular")


@dataclass(frozen=True)
class Context:
    """What a per-example function may need from the whole input: its value range (images)."""

    low: float = 0.0
    high: float = 1.0


# (one example, its generator, context) -> the perturbed example
ExampleFn = Callable[[Any, np.random.Generator, Context], Any]


def example_rng(seed: int, name: str, example_id: object) -> np.random.Generator:
    """The generator of one example: seeded by blake2b-64 of f"{seed}:{name}:{example_id}"."""
    digest = hashlib.blake2b(f"{seed}:{name}:{example_id}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def input_kind(X: np.ndarray) -> str:
    """ "text" (1-d object array), "image" (4-d numeric) or "tabular" (2-d numeric), else LeanbenchError."""
    X = np.asarray(X)
    if X.dtype == object and X.ndim == 1:
        return "text"
    if np.issubdtype(X.dtype, np.number) and X.ndim == 4:
        return "image"
    if np.issubdtype(X.dtype, np.number) and X.ndim == 2:
        return "tabular"
    raise LeanbenchError(
        f"cannot tell the input kind of an array of dtype {X.dtype} and shape {X.shape}: expected a 1-d "
        "object array of strings (text), (N, C, H, W) numbers (image) or (N, F) numbers (tabular)"
    )


@dataclass(frozen=True, eq=False)
class Perturbation:
    """A named, parameterised, seeded transformation of inputs of one kind."""

    name: str
    kind: str
    params: Mapping[str, Any]
    fn: ExampleFn = field(repr=False)
    random: bool = True
    description: str = ""

    @property
    def label(self) -> str:
        """A readable unique name for reports: "typos(rate=0.05)", or "lowercase" without parameters."""
        shown = {k: v for k, v in self.params.items() if v is not None}
        if not shown:
            return self.name
        return f"{self.name}({', '.join(f'{k}={v}' for k, v in shown.items())})"

    def key(self) -> str:
        """Canonical JSON of name and parameters, for content-addressed cell keys."""
        return json.dumps({"name": self.name, "params": dict(self.params)}, sort_keys=True)

    def apply(self, X: np.ndarray, ids: np.ndarray, seed: int) -> np.ndarray:
        """The perturbed copy of X (same shape and dtype); example i uses `example_rng(seed, name, ids[i])`.

        For images the value range [min, max] of X is the clipping range of additive noise, so pass the
        whole split at once (or set `value_range`), not batches.
        """
        X = np.asarray(X)
        kind = input_kind(X)
        if kind != self.kind:
            raise LeanbenchError(
                f"perturbation '{self.label}' is for {self.kind} inputs, but the data are {kind} "
                f"(dtype {X.dtype}, shape {X.shape}); choose one of: {', '.join(names_for(kind))}"
            )
        if len(ids) != len(X):
            raise ValueError(f"perturbation '{self.label}': {len(ids)} ids for {len(X)} examples")
        ctx = Context(*_value_range(X, self.params.get("value_range"))) if kind != "text" else Context()
        out = np.empty(len(X), dtype=object) if kind == "text" else np.empty_like(X)
        fixed = np.random.default_rng(0)  # unused by deterministic perturbations
        for i in range(len(X)):
            rng = example_rng(seed, self.name, ids[i]) if self.random else fixed
            x = str(X[i]) if kind == "text" else X[i]
            out[i] = self.fn(x, rng, ctx)
        return out


def _value_range(X: np.ndarray, given: Any) -> tuple[float, float]:
    if given is not None:
        return float(given[0]), float(given[1])
    return (float(X.min()), float(X.max())) if X.size else (0.0, 1.0)


# --------------------------------------------------------------------------- the example's own text
# A prompt of a multiple-choice or generation task holds more than the example: few-shot examples, a task
# description, a template's literal text ("Question: ... Answer:"), and (multiple choice) the answer choices.
# The loaders record, per example id, the character spans of the context / prompt that come from the example
# itself (`data.meta["input_spans"]`: split name -> example id -> [[start, end], ...]); perturbations change only
# those spans, slices and contamination checks read only them. An example without spans is its whole text.
Spans = Mapping[str, Sequence[Sequence[int]]]


def split_spans(data: Any, split: str) -> Spans | None:
    """The own-text spans the loader recorded for one split of `data` (a TaskData), or None."""
    return ((getattr(data, "meta", None) or {}).get("input_spans") or {}).get(split)


def template_spans(template: str, text: str) -> list[tuple[int, int]] | None:
    """The spans of `text` that `template`'s fields were filled into (`str.format` fields, literal text
    matched exactly, fields lazily), non-empty ones only, fields separated by whitespace alone merged into one
    span (where one field ends is ambiguous there); None when `text` is not `template` filled in."""
    import string

    pattern, fields = [], 0
    for literal, name, _, _ in string.Formatter().parse(template):
        pattern.append(re.escape(literal))
        if name is not None:
            pattern.append("(.*?)")
            fields += 1
    if fields == 0:
        return None
    m = re.fullmatch("".join(pattern), text, re.DOTALL)
    if m is None:
        return None
    out: list[tuple[int, int]] = []
    for a, b in (m.span(g) for g in range(1, fields + 1) if m.end(g) > m.start(g)):
        if out and not text[out[-1][1]:a].strip():  # fields joined by whitespace: one text ("{passage} {question}")
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def spans_of_template(template: str, texts: Sequence[str], ids: Sequence[Any], offset: int = 0
                      ) -> dict[str, list[list[int]]]:
    """`input_spans` for texts made from one template after a fixed prefix of `offset` characters (few-shot
    examples, a description); texts that do not match keep no spans (their whole text is their own)."""
    out = {}
    for text, i in zip(texts, ids, strict=True):
        found = template_spans(template, str(text)[offset:])
        if found:
            out[str(i)] = [[offset + a, offset + b] for a, b in found]
    return out


def spans_fingerprint(spans: Spans | None, ids: Sequence[Any]) -> str | None:
    """sha256 (16 hex) of the spans of the examples `ids` (in order), None when none of them has spans: what a
    perturbed cell's key adds, since the spans decide what a perturbation changes."""
    if not spans:
        return None
    chosen = [[str(i), [list(map(int, s)) for s in spans.get(str(i)) or []]] for i in ids]
    if not any(s for _, s in chosen):
        return None
    return hashlib.sha256(json.dumps(chosen, separators=(",", ":")).encode()).hexdigest()[:16]


def _context(x: Any) -> str:
    """The text of an input: a multiple-choice (context, choices) pair gives its context."""
    return str(x[0]) if isinstance(x, tuple) else str(x)


def own_text(x: Any, spans: Sequence[Sequence[int]] | None) -> str:
    """The example's own text: its spans joined by a space, or its whole text (context, for multiple choice)."""
    text = _context(x)
    return " ".join(text[a:b] for a, b in spans) if spans else text


def own_texts(X: np.ndarray, ids: np.ndarray, spans: Spans | None) -> np.ndarray:
    """`own_text` of every example, as a 1-d object array (what slices and contamination checks read)."""
    spans = spans or {}
    out = np.empty(len(X), dtype=object)
    for k, (x, i) in enumerate(zip(X, ids, strict=True)):
        out[k] = own_text(x, spans.get(str(i)))
    return out


def perturb_inputs(p: Perturbation, X: np.ndarray, ids: np.ndarray, seed: int, spans: Spans | None = None
                   ) -> np.ndarray:
    """A text perturbation applied to each example's own spans only, the rest of its prompt (few-shot
    examples, description, template text) and a multiple-choice example's choices unchanged; an example
    without spans has its whole text (context) perturbed. Spans are perturbed in order with the example's
    one generator (`example_rng(seed, name, id)`), so the result depends on (seed, perturbation, id) only.
    Inputs of other kinds go to `p.apply`."""
    X = np.asarray(X)
    if p.kind != "text" or X.dtype != object or X.ndim != 1:
        return p.apply(X, ids, seed)
    if len(ids) != len(X):
        raise ValueError(f"perturbation '{p.label}': {len(ids)} ids for {len(X)} examples")
    spans, fixed = spans or {}, np.random.default_rng(0)
    out = np.empty(len(X), dtype=object)
    for k, (x, i) in enumerate(zip(X, ids, strict=True)):
        rng = example_rng(seed, p.name, i) if p.random else fixed
        text = _context(x)
        parts, at = [], 0
        for a, b in spans.get(str(i)) or [(0, len(text))]:
            parts += [text[at:a], p.fn(text[a:b], rng, Context())]
            at = b
        new = "".join(parts) + text[at:]
        out[k] = (new, x[1]) if isinstance(x, tuple) else new
    return out


# --------------------------------------------------------------------------- parameters and registry
@dataclass(frozen=True)
class Param:
    """A parameter: default value, a check, and what it expects (for the error message)."""

    default: Any
    check: Callable[[Any], bool]
    expects: str


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


def _rate() -> Callable[[Any], bool]:
    return lambda v: _is_num(v) and 0.0 <= v <= 1.0


def _nonneg() -> Callable[[Any], bool]:
    return lambda v: _is_num(v) and v >= 0.0


def _range_or_none(v: Any) -> bool:
    if v is None:
        return True
    return isinstance(v, (list, tuple)) and len(v) == 2 and all(map(_is_num, v)) and v[0] < v[1]


RATE = "a number in [0, 1]"
NONNEG = "a number >= 0"


@dataclass(frozen=True)
class PerturbationSpec:
    """A registered perturbation: `make(**params)` returns the per-example function."""

    name: str
    kind: str
    params: Mapping[str, Param]
    make: Callable[..., ExampleFn]
    random: bool
    description: str


PERTURBATIONS: Registry[PerturbationSpec] = Registry("perturbation")


def _register(name: str, kind: str, params: dict[str, Param], random: bool, description: str):
    def decorator(make: Callable[..., ExampleFn]) -> Callable[..., ExampleFn]:
        PERTURBATIONS.add(name, PerturbationSpec(name, kind, params, make, random, description))
        return make

    return decorator


def names_for(kind: str) -> list[str]:
    """Registered perturbation names for one input kind."""
    return [n for n in PERTURBATIONS if PERTURBATIONS.get(n).kind == kind]


def _check_params(spec: PerturbationSpec, given: Mapping[str, Any], where: str) -> list[str]:
    problems = []
    for key in given:
        if key not in spec.params:
            known = ", ".join(spec.params) or "none"
            problems.append(f"{where}perturbation '{spec.name}': unknown parameter '{key}'"
                            f"{did_you_mean(str(key), list(spec.params))}; parameters: {known}")
    for key, p in spec.params.items():
        if key in given and not p.check(given[key]):
            problems.append(f"{where}perturbation '{spec.name}': parameter '{key}' must be {p.expects}, "
                            f"got {given[key]!r}")
    return problems


def perturbation_from_config(
    name: str, params: Mapping[str, Any] | None = None, *, where: str = ""
) -> Perturbation:
    """The perturbation `name` with `params` (defaults for the rest).

    LeanbenchError for an unknown name (with "did you mean") or parameter, or a bad value; all problems of
    one call at once. `where` prefixes messages with the config path, e.g. "evaluate.perturbations[1].".
    """
    if not isinstance(name, str) or name not in PERTURBATIONS:
        known = ", ".join(PERTURBATIONS.names())
        hint = did_you_mean(str(name), PERTURBATIONS.names())
        raise LeanbenchError(f"{where}unknown perturbation {name!r}{hint}; known: {known}")
    spec = PERTURBATIONS.get(name)
    given = dict(params or {})
    problems = _check_params(spec, given, where)
    if problems:
        raise LeanbenchError("\n".join(problems))
    values = {k: given.get(k, p.default) for k, p in spec.params.items()}
    clean = {k: (float(v) if _is_num(v) and not isinstance(spec.params[k].default, int) else v)
             for k, v in values.items()}
    return Perturbation(spec.name, spec.kind, clean, spec.make(**clean), spec.random, spec.description)


DEFAULTS: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    "text": (("typos", {"rate": 0.05}), ("lowercase", {}), ("strip_punctuation", {}),
             ("whitespace", {"rate": 0.1}), ("contractions", {}), ("word_dropout", {"rate": 0.1}),
             ("synonyms", {"rate": 0.3})),
    "image": (("gaussian_noise", {"std": 0.1}), ("blur", {"sigma": 0.7}), ("shift", {"pixels": 1}),
              ("rotation", {"degrees": 15.0})),
    "tabular": (("feature_noise", {"std": 0.25}), ("missing", {"rate": 0.1})),
}


def default_perturbations(kind: str) -> list[Perturbation]:
    """The default robustness suite for an input kind ("text", "image" or "tabular")."""
    if kind not in DEFAULTS:
        raise LeanbenchError(
            f"unknown input kind {kind!r}{did_you_mean(str(kind), KINDS)}; kinds: {', '.join(KINDS)}"
        )
    return [perturbation_from_config(n, p) for n, p in DEFAULTS[kind]]


# --------------------------------------------------------------------------- text
@_register("typos", "text", {"rate": Param(0.05, _rate(), RATE)}, True,
           "each letter with probability `rate`: swapped with the next character, dropped, doubled by a "
           "keyboard neighbour, or replaced by a keyboard neighbour (QWERTY), each 1/4")
def _typos(rate: float) -> ExampleFn:
    def fn(s: str, rng: np.random.Generator, ctx: Context) -> str:
        n = len(s)
        hit, op, pick = rng.random(n) < rate, rng.integers(0, 4, n), rng.random(n)
        out, i = [], 0
        while i < n:
            ch = s[i]
            near = KEYBOARD_NEIGHBOURS.get(ch.lower())
            if not (hit[i] and near):
                out.append(ch)
                i += 1
                continue
            sub = near[int(pick[i] * len(near))]
            sub = sub.upper() if ch.isupper() else sub
            if op[i] == 0 and i + 1 < n:  # swap with the next character
                out += [s[i + 1], ch]
                i += 2
                continue
            out += {1: [], 2: [ch, sub]}.get(int(op[i]), [sub])  # drop / insert neighbour / replace
            i += 1
        return "".join(out)

    return fn


@_register("lowercase", "text", {}, False, "the text in lower case")
def _lowercase() -> ExampleFn:
    return lambda s, rng, ctx: s.lower()


_SPACES = re.compile(r" {2,}")


def strip_punctuation_text(s: str) -> str:
    """Remove every Unicode punctuation character (category P*), then collapse the doubled spaces left."""
    kept = "".join(ch for ch in s if not unicodedata.category(ch).startswith("P"))
    return _SPACES.sub(" ", kept)


@_register("strip_punctuation", "text", {}, False,
           "every Unicode punctuation character removed (runs of spaces left behind collapsed to one)")
def _strip_punctuation() -> ExampleFn:
    return lambda s, rng, ctx: strip_punctuation_text(s)


_WHITESPACE = (" ", " ", "\t", "\n")


@_register("whitespace", "text", {"rate": Param(0.1, _rate(), RATE)}, True,
           "each space with probability `rate` becomes a run of 2-4 spaces, tabs or newlines")
def _whitespace(rate: float) -> ExampleFn:
    def fn(s: str, rng: np.random.Generator, ctx: Context) -> str:
        parts = s.split(" ")
        if len(parts) == 1:
            return s
        hit, lengths = rng.random(len(parts) - 1) < rate, rng.integers(2, 5, len(parts) - 1)
        glue = ["".join(_WHITESPACE[j] for j in rng.integers(0, 4, k)) if h else " "
                for h, k in zip(hit, lengths, strict=True)]
        return parts[0] + "".join(g + p for g, p in zip(glue, parts[1:], strict=True))

    return fn


def _contraction_tables() -> tuple[re.Pattern, dict[str, str], dict[str, str]]:
    """A regex matching any contraction (attached or tokenised) or expansion, and the two lookups."""
    expand, contract = {}, {}
    for short, long in CONTRACTIONS:
        expand[short] = long
        expand[tokenised_form(short)] = long
        contract[long] = short
    alts = sorted(set(expand) | set(contract), key=len, reverse=True)
    body = "|".join(re.escape(a).replace("'", "['\u2019]").replace(r"\ ", r"\s+") for a in alts)
    return re.compile(rf"(?<![\w'\u2019])(?:{body})(?![\w'\u2019])", re.IGNORECASE), expand, contract


_CONTRACTION_RE, _EXPAND, _CONTRACT = _contraction_tables()
_TOKENISED = re.compile(r"\w n['\u2019]t\b|\w ['\u2019](?:s|re|ve|ll|d|m)\b", re.IGNORECASE)


@_register("contractions", "text",
           {"mode": Param("both", lambda v: v in ("both", "expand", "contract"), "one of 'both', 'expand', "
                          "'contract'")}, False,
           "contractions expanded (\"don't\" / \"do n't\" -> \"do not\") and/or expansions contracted "
           "(\"do not\" -> \"don't\", or \"do n't\" in Penn-Treebank tokenised text)")
def _contractions(mode: str) -> ExampleFn:
    def fn(s: str, rng: np.random.Generator, ctx: Context) -> str:
        tokenised = bool(_TOKENISED.search(s))

        def repl(m: re.Match) -> str:
            found = re.sub(r"\s+", " ", m.group(0).lower().replace("\u2019", "'"))
            if found in _EXPAND and mode in ("both", "expand"):
                return match_case(_EXPAND[found], m.group(0))
            if found in _CONTRACT and mode in ("both", "contract"):
                short = _CONTRACT[found]
                return match_case(tokenised_form(short) if tokenised else short, m.group(0))
            return m.group(0)

        return _CONTRACTION_RE.sub(repl, s)

    return fn


_TOKENS = re.compile(r"(\S+)")


@_register("word_dropout", "text", {"rate": Param(0.1, _rate(), RATE)}, True,
           "each whitespace-separated word dropped with probability `rate`, with the whitespace after it "
           "(at least one word kept; the rest of the text unchanged)")
def _word_dropout(rate: float) -> ExampleFn:
    def fn(s: str, rng: np.random.Generator, ctx: Context) -> str:
        parts = _TOKENS.split(s)  # [space, word, space, word, ..., space]: words at odd positions
        n_words = len(parts) // 2
        if n_words == 0:
            return s
        u = rng.random(n_words)
        keep = u >= rate
        if not keep.any():
            keep[int(np.argmax(u))] = True
        out = [parts[0]]
        for k in range(n_words):
            if keep[k]:
                out += [parts[2 * k + 1], parts[2 * k + 2]]
        return "".join(out)

    return fn


_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


@_register("synonyms", "text",
           {"rate": Param(0.3, _rate(), RATE),
            "file": Param(None, lambda v: v is None or isinstance(v, str), "a path to a synonyms TSV file")},
           True,
           "each word found in the synonym list replaced with probability `rate` by one of its synonyms "
           "(uniform), keeping its capitalisation; the shipped list is leanbench/evaluate/data/synonyms.tsv")
def _synonyms(rate: float, file: str | None) -> ExampleFn:
    table = load_synonyms(file)

    def fn(s: str, rng: np.random.Generator, ctx: Context) -> str:
        def repl(m: re.Match) -> str:
            syns = table.get(m.group(0).lower())
            if syns is None or rng.random() >= rate:
                return m.group(0)
            return match_case(syns[int(rng.integers(len(syns)))], m.group(0))

        return _WORD.sub(repl, s)

    return fn


# --------------------------------------------------------------------------- image, (C, H, W) per example
@_register("gaussian_noise", "image",
           {"std": Param(0.1, _nonneg(), NONNEG),
            "value_range": Param(None, _range_or_none, "null or [low, high] with low < high")}, True,
           "additive N(0, (std * (high - low))^2) noise per pixel, clipped to [low, high], the value range "
           "of the evaluated split unless `value_range` is given")
def _gaussian_noise(std: float, value_range: Any) -> ExampleFn:
    def fn(x: np.ndarray, rng: np.random.Generator, ctx: Context) -> np.ndarray:
        noise = rng.normal(0.0, std * (ctx.high - ctx.low), size=x.shape)
        return np.clip(x + noise, ctx.low, ctx.high)

    return fn


@_register("blur", "image", {"sigma": Param(0.7, _nonneg(), NONNEG)}, False,
           "Gaussian blur of each channel with standard deviation `sigma` pixels "
           "(scipy.ndimage.gaussian_filter, reflect mode)")
def _blur(sigma: float) -> ExampleFn:
    from scipy.ndimage import gaussian_filter

    return lambda x, rng, ctx: gaussian_filter(x, sigma=(0.0, sigma, sigma))


_DIRECTIONS = np.array([(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)])


def shift_image(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """x (C, H, W) moved dy pixels down and dx right; uncovered pixels are 0."""
    out = np.zeros_like(x)
    h, w = x.shape[-2:]
    if abs(dy) >= h or abs(dx) >= w:
        return out
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = x[:, max(-dy, 0):h + min(-dy, 0),
                                                                      max(-dx, 0):w + min(-dx, 0)]
    return out


@_register("shift", "image", {"pixels": Param(1, lambda v: isinstance(v, int) and not isinstance(v, bool)
                                              and v >= 0, "an integer >= 0")}, True,
           "the image moved `pixels` pixels in one of the 8 compass directions (uniform per example); "
           "uncovered pixels are 0 (the background of images scaled to [0, 1])")
def _shift(pixels: int) -> ExampleFn:
    def fn(x: np.ndarray, rng: np.random.Generator, ctx: Context) -> np.ndarray:
        dy, dx = _DIRECTIONS[int(rng.integers(len(_DIRECTIONS)))] * pixels
        return shift_image(x, int(dy), int(dx))

    return fn


@_register("rotation", "image", {"degrees": Param(15.0, lambda v: _is_num(v) and 0 <= v <= 180,
                                                  "a number in [0, 180]")}, True,
           "rotation by an angle uniform in [-degrees, degrees] about the centre (scipy.ndimage.rotate, "
           "reshape=False, bilinear, 0 outside)")
def _rotation(degrees: float) -> ExampleFn:
    from scipy.ndimage import rotate

    def fn(x: np.ndarray, rng: np.random.Generator, ctx: Context) -> np.ndarray:
        angle = rng.uniform(-degrees, degrees)
        return rotate(x, angle, axes=(1, 2), reshape=False, order=1, mode="constant", cval=0.0)

    return fn


# --------------------------------------------------------------------------- tabular, (F,) per example
@_register("feature_noise", "tabular", {"std": Param(0.1, _nonneg(), NONNEG)}, True,
           "additive N(0, std^2) noise on every feature; features are standardised, so `std` is in units of "
           "each feature's training standard deviation")
def _feature_noise(std: float) -> ExampleFn:
    return lambda x, rng, ctx: x + rng.normal(0.0, std, size=x.shape)


@_register("missing", "tabular", {"rate": Param(0.1, _rate(), RATE)}, True,
           "each feature value with probability `rate` replaced by 0, which is the training mean after "
           "standardisation (mean imputation of a missing value)")
def _missing(rate: float) -> ExampleFn:
    def fn(x: np.ndarray, rng: np.random.Generator, ctx: Context) -> np.ndarray:
        return np.where(rng.random(x.shape) < rate, 0.0, x)

    return fn


__all__ = [
    "DEFAULTS",
    "KINDS",
    "PERTURBATIONS",
    "Perturbation",
    "PerturbationSpec",
    "default_perturbations",
    "example_rng",
    "input_kind",
    "names_for",
    "own_text",
    "own_texts",
    "perturb_inputs",
    "perturbation_from_config",
    "shift_image",
    "spans_fingerprint",
    "split_spans",
    "spans_of_template",
    "strip_punctuation_text",
    "template_spans",
]
