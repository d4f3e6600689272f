"""Model specs and build-step configs of the study schema: each step is a config class here plus a handler
registered in `leanbench.compress`. `leanbench.study` re-exports every name, so either import works."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --------------------------------------------------------------------------- models
class MLPSpec(Strict):
    """A multi-layer perceptron over flat features (images are flattened)."""

    pretrained: ClassVar[bool] = False  # built from scratch: needs a train or distill step
    arch: Literal["mlp"] = "mlp"
    hidden: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [256, 128])
    dropout: float = Field(0.0, ge=0, lt=1)


class CNNSpec(Strict):
    """A small CNN for square single-channel images (8x8 digits, 28x28 MNIST-like)."""

    pretrained: ClassVar[bool] = False
    arch: Literal["cnn"] = "cnn"
    channels: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [16, 32], min_length=1)
    fc_hidden: int = Field(64, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)


class HFSpec(Strict):
    """A Hugging Face model: a local folder or a hub id, loaded through transformers' Auto classes."""

    pretrained: ClassVar[bool] = True  # may be evaluated as it is, without steps
    hf: str = Field(min_length=1, description="local folder or hub id")
    revision: str | None = None
    gguf_file: str | None = Field(None, description="a GGUF checkpoint file inside `hf` (causal LMs)")
    tokenizer: str | None = Field(None, description="tokenizer folder or id, when not beside the weights")
    trust_remote_code: bool = False
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    keep_layers: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, description="initialise a shallower student from these encoder layers (DistilBERT-style)")


def model_kind(spec: Any) -> str:
    """The builder name of a model spec: its `arch`, or "hf" for Hugging Face specs."""
    return "hf" if isinstance(spec, HFSpec) else spec.arch


def _arch_tag(v: Any) -> str | None:
    if isinstance(v, dict):
        return "~hf" if "hf" in v else "~" + str(v.get("arch", "mlp"))
    return "~" + (model_kind(v) if isinstance(v, BaseModel) else "mlp")


class TextStudentSpec(Strict):
    """A tiny non-transformer text classifier over a Hugging Face tokenizer (usually the teacher's):
    `textcnn` (1-D CNN, Kim 2014), `embedbag` (mean of token embeddings, fastText-style) or `bilstm` (one
    bidirectional LSTM layer and an MLP head, the student of Tang et al. 2019)."""

    pretrained: ClassVar[bool] = False
    arch: Literal["textcnn", "embedbag", "bilstm"] = "textcnn"
    tokenizer: str = Field(min_length=1, description="tokenizer folder or hub id (e.g. the teacher's)")
    embed_dim: int = Field(48, gt=0)
    channels: int = Field(100, gt=0, description="textcnn: filters per kernel size")
    kernel_sizes: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [3, 4, 5], min_length=1)
    hidden: int = Field(128, gt=0, description="bilstm: LSTM units per direction (and the head's width)")
    dropout: float = Field(0.1, ge=0, lt=1)
    max_length: int | None = Field(None, gt=0, description="tokens per example (default: the task's, else 128)")
    init_embeddings: str | None = Field(
        None, min_length=1, description="model folder or hub id whose input-embedding table (same tokenizer) "
                                        "initialises the student's: its leading principal components when "
                                        "embed_dim is smaller, scaled to unit variance (usually the teacher's)")
    vocab: Literal["tokenizer", "train"] = Field(
        "tokenizer", description="`train`: embedding rows only for the tokens the training split uses (and the "
                                 "special tokens), any other token read as the unknown token: a smaller table, "
                                 "or a wider embedding at the same size")


class TfidfLogRegSpec(Strict):
    """TF-IDF of word n-grams + logistic regression (scikit-learn): the baseline users forget.
    A list of C values is searched on the validation split."""

    pretrained: ClassVar[bool] = False
    deterministic: ClassVar[bool] = True  # lbfgs on a fixed vocabulary: the seed changes nothing
    arch: Literal["tfidf-logreg"] = "tfidf-logreg"
    ngram_max: int = Field(2, ge=1, le=5)
    min_df: int = Field(1, ge=1)
    max_features: int | None = Field(None, gt=0)
    sublinear_tf: bool = False
    lowercase: bool = True
    C: float | list[Annotated[float, Field(gt=0)]] = Field(1.0, description="inverse regularisation, or "
                                                               "candidates chosen on validation accuracy")
    max_iter: int = Field(1000, gt=0)

    @field_validator("C")
    @classmethod
    def _positive(cls, c: float | list[float]) -> float | list[float]:
        if isinstance(c, list) and not c:
            raise ValueError("give at least one C value")
        if not isinstance(c, list) and c <= 0:
            raise ValueError(f"C must be > 0, got {c}")
        return c


ModelSpec = Annotated[
    Annotated[MLPSpec, Tag("~mlp")] | Annotated[CNNSpec, Tag("~cnn")] | Annotated[HFSpec, Tag("~hf")]
    | Annotated[TextStudentSpec, Tag("~textcnn")] | Annotated[TextStudentSpec, Tag("~embedbag")]
    | Annotated[TextStudentSpec, Tag("~bilstm")]
    | Annotated[TfidfLogRegSpec, Tag("~tfidf-logreg")],
    Discriminator(_arch_tag, custom_error_type="unknown_arch",
                  custom_error_message="unknown model: give `hf: <folder or id>` or `arch:` one of mlp, cnn, "
                                       "textcnn, embedbag, bilstm, tfidf-logreg"),
]


# --------------------------------------------------------------------------- steps
class TrainConfig(Strict):
    """Train from the current weights on the training split, early-stopping on validation loss."""

    epochs: int = Field(30, gt=0)
    batch_size: int = Field(64, gt=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    patience: int = Field(5, ge=0, description="epochs without validation improvement; 0 = never stop early")
    seed: int | None = None
    group_by_length: bool = Field(False, description="text models: batches of similar length (megabatches of 50 "
                                  "batches sorted by length, batch order shuffled; as transformers' "
                                  "group_by_length): less padding, faster on short texts")
    max_steps: int | None = Field(None, gt=0, description="text models: stop after this many optimizer steps "
                                  "(e.g. a hard-label ablation given a distilled student's step budget)")


class AugmentConfig(Strict):
    """A transfer set for distillation (Tang et al. 2019, "Distilling Task-Specific Knowledge from BERT
    into Simple Neural Networks", sec. 3.3): from every training text of at least `min_words` words,
    `copies` variants, each word masked with probability `mask_prob`, the variant then cut to a random
    n-gram (1..`max_ngram` words) with probability `ngram_prob`. The teacher labels the variants (its
    logits, cached); the student learns them by the distillation term only (they have no hard label)."""

    copies: int = Field(4, gt=0, description="variants drawn per source text (duplicates are dropped)")
    min_words: int = Field(8, ge=1, description="only training texts with at least this many words are sources")
    mask_prob: float = Field(0.1, ge=0, le=1, description="each word replaced by the mask token")
    ngram_prob: float = Field(0.25, ge=0, le=1, description="the variant cut to a random n-gram of itself")
    max_ngram: int = Field(5, ge=1)
    mask_token: str | None = Field(None, min_length=1, description="default: the teacher's tokenizer's mask "
                                   "token, else the student's, else its unknown token")
    seed: int | None = Field(None, description="seed of the draw; default: the build's seed (a new transfer set, "
                             "labelled anew, per seed). Fixed, every seed of every student shares one set")


class DistillConfig(TrainConfig):
    """Knowledge distillation (Hinton et al., 2015): alpha * T^2 * KL(teacher_T || student_T)
    + (1 - alpha) * cross-entropy on hard labels. Teacher outputs are computed once and cached."""

    teacher: str
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.5, ge=0, le=1)
    data: str | None = Field(None, description="causal LMs: text corpus (.txt / JSONL with a 'text' column) "
                             "for token-level KL on the teacher's logits")
    seq_len: int = Field(128, gt=1, description="causal LMs: tokens per training sequence")
    hidden_weight: float = Field(0.0, ge=0, description="text students from `keep_layers`: weight of the "
                                 "hidden-state MSE to the teacher layers they were copied from")
    augment: AugmentConfig | None = Field(None, description="text students: distil on the training split and a "
                                          "transfer set of its masked / n-gram variants labelled by the teacher")
    max_train_examples: int | None = Field(None, gt=0, description="text students: a seeded training subset")


class FinetuneConfig(Strict):
    """Fine-tune a Hugging Face model: AdamW, linear warm-up then linear decay, early stopping on the
    validation loss (evaluated every `eval_every` steps, else once per epoch), best weights restored."""

    epochs: int = Field(1, gt=0)
    max_steps: int | None = Field(None, gt=0, description="optimizer steps; overrides epochs when given")
    batch_size: int = Field(32, gt=0)
    lr: float = Field(5e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    max_grad_norm: float | None = Field(1.0, gt=0)
    patience: int = Field(0, ge=0, description="evaluations without improvement; 0 = never stop early")
    eval_every: int | None = Field(None, gt=0, description="steps between validation passes; default: each epoch")
    max_train_examples: int | None = Field(None, gt=0, description="a seeded subset of the training split")
    max_eval_examples: int | None = Field(2000, gt=0, description="a seeded subset of validation for early "
                                          "stopping (null = all)")
    seed: int | None = None
    group_by_length: bool = Field(False, description="text models: batches of similar length (megabatches of 50 "
                                  "batches sorted by length, batch order shuffled; as transformers' "
                                  "group_by_length): less padding, faster on short texts")


class LoraConfig(FinetuneConfig):
    """LoRA (Hu et al. 2021) via peft: W + (alpha / r) * B A on `target_modules`, the classifier head
    trained in full; merged into the weights after training."""

    lr: float = Field(5e-4, gt=0)
    r: int = Field(8, gt=0)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    target_modules: list[str] | None = Field(None, min_length=1, description="default: query, value "
                                             "(BERT-style attention)")
    lr_ratio: float = Field(1.0, gt=0, description="LoRA+ (Hayou et al. 2024, \"LoRA+: Efficient Low Rank "
                            "Adaptation of Large Models\"): the B matrices learn at lr * lr_ratio (the paper "
                            "uses 16); 1 = plain LoRA")
    use_dora: bool = Field(False, description="DoRA (Liu et al. 2024, \"DoRA: Weight-Decomposed Low-Rank "
                           "Adaptation\"): each target W is trained as a magnitude (one value per output "
                           "feature, no weight decay) times the direction of W + (alpha / r) B A; merged like LoRA")
    init: Literal["default", "gaussian", "pissa", "olora"] = Field(
        "default", description="peft's init_lora_weights: 'default' (A Kaiming-uniform, B zero), 'gaussian', "
        "'pissa' (Meng et al. 2024: A, B from the top-r singular vectors of W, which keeps the residual; the "
        "paper trains it without dropout) or 'olora' (Buyukakyuz 2024: from a QR decomposition of W)")


class PruneConfig(Strict):
    """`magnitude`: global unstructured magnitude pruning (weights zeroed, shape kept).
    `structured`: removes whole hidden neurons / conv channels by L2 norm (the model really shrinks).
    Transformers: `heads` (attention heads), `ffn` (FFN neurons), `layers` (whole encoder layers)."""

    method: Literal["magnitude", "structured", "2:4", "heads", "ffn", "layers"] = "magnitude"
    sparsity: float = Field(0.5, ge=0, lt=1)
    layers: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, min_length=1, description="method layers: encoder layers to drop (default: the top `sparsity` share)")
    finetune: TrainConfig | FinetuneConfig | None = Field(
        None, description="transformers: FinetuneConfig fields (max_steps, warmup_ratio, ...) allowed")


class QuantizeConfig(Strict):
    """`dynamic-int8`: torch dynamic int8 Linear layers (a causal LM keeps a tied lm_head in fp32).
    `weight-only-int8` / `weight-only-int4` (causal LMs): symmetric int weights, per output channel
    (int8) or per `group_size` input weights (int4), dequantized in forward; activations stay fp32.
    Hugging Face classifiers also run on ONNX Runtime: `onnx-fp32` (export only: the runtime-change
    control), `onnxruntime-dynamic-int8` (int8 weights, activations quantized per batch) and
    `onnxruntime-static-int8` (QDQ, activation ranges calibrated on `calibration_examples` train examples)."""

    method: Literal["dynamic-int8", "weight-only-int8", "weight-only-int4", "onnx-fp32",
                    "onnxruntime-dynamic-int8", "onnxruntime-static-int8"] = "dynamic-int8"
    group_size: int | None = Field(None, gt=0, description="weight-only-int4 group (default 32); int8: per channel")
    calibration_examples: int = Field(256, gt=0, description="onnxruntime-static-int8: seeded train sample")
    per_channel: bool = Field(False, description="onnxruntime int8: one weight scale per output channel")
    opset: int = Field(18, ge=14, le=23, description="ONNX opset of the export")
    exporter: Literal["auto", "dynamo", "torchscript"] = Field(
        "auto", description="torch.onnx exporter; auto tries dynamo, then falls back to TorchScript")


class LowRankConfig(Strict):
    """Truncated SVD of Linear layers: W (out x in) ~ U_r S_r V_r^T, kept by `rank` or kept `energy`
    (fraction of the squared singular values). Layers where the factorisation would not save
    parameters are left whole."""

    rank: int | None = Field(None, gt=0)
    energy: float | None = Field(None, gt=0, le=1)
    finetune: TrainConfig | None = None

    @model_validator(mode="after")
    def _one_of(self) -> LowRankConfig:
        if (self.rank is None) == (self.energy is None):
            raise ValueError("give exactly one of 'rank' or 'energy'")
        return self


STEP_CONFIGS: dict[str, type[Strict]] = {
    "train": TrainConfig,
    "distill": DistillConfig,
    "prune": PruneConfig,
    "quantize": QuantizeConfig,
    "lowrank": LowRankConfig,
    "finetune": FinetuneConfig,
    "lora": LoraConfig,
}
TRAINING_STEPS = ("train", "distill")


class StepSpec(Strict):
    """One build step, written in YAML as a one-key mapping: ``{distill: {teacher: t, alpha: 0.5}}``."""

    train: TrainConfig | None = None
    finetune: FinetuneConfig | None = None
    lora: LoraConfig | None = None
    distill: DistillConfig | None = None
    prune: PruneConfig | None = None
    quantize: QuantizeConfig | None = None
    lowrank: LowRankConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_key(cls, data: Any) -> Any:
        if isinstance(data, str) and data in STEP_CONFIGS:
            return {data: {}}
        if isinstance(data, dict) and len(data) > 1:  # a dumped StepSpec: the other step fields are None
            given = {k: v for k, v in data.items() if v is not None}
            data = given if len(given) == 1 else data
        if not isinstance(data, dict) or len(data) != 1:
            raise ValueError(
                f"a step is a mapping with one key, the step name ({', '.join(STEP_CONFIGS)}), got {data!r}"
            )
        name, value = next(iter(data.items()))
        return {name: {} if value is None else value}

    @property
    def name(self) -> str:
        return next(k for k in STEP_CONFIGS if getattr(self, k) is not None)

    @property
    def config(self) -> Strict:
        return getattr(self, self.name)
