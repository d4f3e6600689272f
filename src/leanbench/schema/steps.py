"""Build-step configs of the study schema, each with its descriptor (``leanbench.plugins.STEPS``): the
handler per model family (lazy ``"module:function"``), the methods each family supports, and the step's
traits (trains, draws random numbers, names a teacher). ``StepSpec`` is one step as written in YAML."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_serializer, model_validator

from leanbench.plugins import STEPS, Handler, StepPlugin
from leanbench.schema.base import Strict, reject_unknown_key, validate_tagged


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
    `onnxruntime-static-int8` (QDQ, activation ranges calibrated on `calibration_examples` train examples).
    `gguf` (causal LMs and GGUF models): a GGUF file of `type` run on llama.cpp (compress/gguf_quantize.py);
    `type: f16` is the runtime control (the same runtime, not quantized).
    `int4-packed` (causal LMs): weight-only-int4's weights multiplied by torch's CPU int4 kernel.
    Causal LMs on ONNX Runtime (compress/ort_lm_quantize.py): `onnx-fp32` (export with the KV cache: the runtime
    control), `onnxruntime-dynamic-int8`, `onnxruntime-int4` (MatMulNBits, blocks of `group_size`, default 32)."""

    method: Literal["dynamic-int8", "weight-only-int8", "weight-only-int4", "onnx-fp32",
                    "onnxruntime-dynamic-int8", "onnxruntime-static-int8", "gguf", "int4-packed",
                    "onnxruntime-int4"] = "dynamic-int8"
    type: str | None = Field(None, description="method gguf: the GGUF type llama.cpp writes (q8_0, q4_0, q4_k_m, "
                             "...; f16 / f32: not quantized); default q8_0")
    group_size: int | None = Field(None, gt=0, description="weight-only-int4 / int4-packed group, onnxruntime-int4 "
                                   "block (default 32); int8: per channel")
    calibration_examples: int = Field(256, gt=0, description="onnxruntime-static-int8: seeded train sample")
    per_channel: bool = Field(False, description="onnxruntime int8: one weight scale per output channel")
    opset: int = Field(18, ge=14, le=23, description="ONNX opset of the export")
    exporter: Literal["auto", "dynamo", "torchscript"] = Field(
        "auto", description="torch.onnx exporter; auto tries dynamo, then falls back to TorchScript")

    @model_validator(mode="before")
    @classmethod
    def _gguf_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("method") == "gguf" and data.get("type") is None:
            return {**data, "type": "q8_0"}
        return data

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str | None) -> str | None:
        from leanbench.models.gguf_io import GGUF_TYPES
        from leanbench.registry import did_you_mean

        if value is None or value.lower() in GGUF_TYPES:
            return None if value is None else value.lower()
        raise ValueError(f"unknown GGUF type '{value}'{did_you_mean(value.lower(), list(GGUF_TYPES))}; known: "
                         f"{', '.join(GGUF_TYPES)}")

    def lowers_precision(self) -> bool | None:
        """gguf: whether `type` quantizes (f32 / f16 / bf16 are the runtime's float weights: the runtime control,
        analysis/speed.py); None for the other methods (their names say it)."""
        from leanbench.models.gguf_io import UNQUANTIZED

        return None if self.method != "gguf" else self.type not in UNQUANTIZED

    @model_validator(mode="after")
    def _type_for_gguf(self) -> QuantizeConfig:
        if self.type is not None and self.method != "gguf":
            raise ValueError(f"'type' is for method gguf only (method is '{self.method}')")
        return self

    @model_validator(mode="after")
    def _int4_kernel_groups(self) -> QuantizeConfig:
        g = self.group_size
        if g is not None and self.method == "int4-packed" and g not in (32, 64, 128, 256):
            raise ValueError(f"group_size: torch's CPU int4 kernel (int4-packed) takes 32, 64, 128 or 256, got {g}")
        if g is not None and self.method == "onnxruntime-int4" and (g < 16 or g & (g - 1)):
            raise ValueError(f"group_size: ONNX Runtime's MatMulNBits (onnxruntime-int4) takes a power of 2 >= 16, "
                             f"got {g}")
        return self


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



# --------------------------------------------------------------------------- descriptors
_C = "leanbench.compress"
_TEXT = ("hf", "text-student")
_ORT = ("onnxruntime-dynamic-int8", "onnxruntime-static-int8")
_ORT_LM = ("onnxruntime-dynamic-int8", "onnxruntime-int4")  # causal LMs on ONNX Runtime (onnx-causal-lm)


def _has_finetune(cfg: Any) -> bool:
    return cfg.finetune is not None


def _always(cfg: Any) -> bool:
    return True


for _plugin in [
    StepPlugin(
        "train", TrainConfig, starts_model=True, trains=_always,
        key_neutral={"max_steps": None},
        handlers={"torch": Handler(f"{_C}.train:train"),
                  **{f: Handler(f"{_C}.finetune:train_text_step") for f in _TEXT},
                  "sklearn": Handler("leanbench.models.sklearn_models:train_sklearn")},
        description="train from the current weights on the training split"),
    StepPlugin(
        "distill", DistillConfig, starts_model=True, trains=_always, names=("teacher",), corpora=("data",),
        nested_key_neutral={"augment": {"seed": None}},
        handlers={"torch": Handler(f"{_C}.distill:distill"),
                  **{f: Handler(f"{_C}.hf_distill:distill_text") for f in _TEXT},
                  "causal-lm": Handler(f"{_C}.lm_distill:distill_lm")},
        description="knowledge distillation from a teacher candidate"),
    StepPlugin(
        "prune", PruneConfig, trains=_has_finetune,
        handlers={"torch": Handler(f"{_C}.prune:prune", methods=("magnitude", "structured")),
                  "hf": Handler(f"{_C}.hf_prune:prune_hf", methods=("magnitude", "heads", "ffn", "layers")),
                  "causal-lm": Handler(f"{_C}.lm_compress:prune_lm", methods=("magnitude", "2:4"))},
        description="remove weights, units, heads or layers"),
    StepPlugin(
        "quantize", QuantizeConfig,
        # static int8 calibrates on a sample of the training split drawn by the seed
        stochastic=lambda cfg: "static" in cfg.method,
        handlers={"torch": Handler(f"{_C}.quantize:quantize", methods=("dynamic-int8",)),
                  "hf": Handler(f"{_C}.hf_quantize:quantize_hf", methods=("dynamic-int8", "onnx-fp32", *_ORT),
                                produces={"dynamic-int8": "hf-dynamic-int8", "onnx-fp32": "onnx",
                                          **{m: "onnx" for m in _ORT}}),
                  "onnx": Handler(f"{_C}.hf_quantize:quantize_onnx", methods=_ORT),
                  "causal-lm": Handler(f"{_C}.lm_compress:quantize_lm",
                                       methods=("dynamic-int8", "weight-only-int8", "weight-only-int4", "gguf",
                                                "int4-packed", "onnx-fp32", *_ORT_LM),
                                       produces={"gguf": "llama.cpp", "onnx-fp32": "onnx-causal-lm",
                                                 **{m: "onnx-causal-lm" for m in _ORT_LM}}),
                  "onnx-causal-lm": Handler(f"{_C}.ort_lm_quantize:quantize_onnx_lm", methods=_ORT_LM),
                  "llama.cpp": Handler(f"{_C}.gguf_quantize:quantize_llamacpp", methods=("gguf",))},
        key_neutral={"type": None},
        description="lower-precision weights (and activations)"),
    StepPlugin(
        "lowrank", LowRankConfig, trains=_has_finetune,
        handlers={"torch": Handler(f"{_C}.lowrank:lowrank")},
        description="truncated SVD of Linear layers"),
    StepPlugin(
        "finetune", FinetuneConfig, trains=_always,
        handlers={f: Handler(f"{_C}.finetune:finetune") for f in _TEXT},
        description="fine-tune a Hugging Face model or a text student"),
    StepPlugin(
        "lora", LoraConfig, trains=_always, requires=(("peft", "text"),),
        handlers={"hf": Handler(f"{_C}.lora:lora")},
        description="LoRA adapters, merged after training"),
]:
    STEPS.add(_plugin.name, _plugin)


# --------------------------------------------------------------------------- one step in a study
class StepSpec(Strict):
    """One build step, written in YAML as a one-key mapping: ``{distill: {teacher: t, alpha: 0.5}}``; any
    registered step (``leanbench.plugins.STEPS``). Dumped in the same one-key form."""

    name: str
    config: Any

    @model_validator(mode="before")
    @classmethod
    def _one_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and set(data) == {"name", "config"} and isinstance(data["name"], str):
            data = {data["name"]: data["config"]}
        if isinstance(data, str) and data in STEPS:
            data = {data: {}}
        if isinstance(data, dict) and len(data) > 1:  # an old dump of every step field: the others are None
            given = {k: v for k, v in data.items() if v is not None}
            data = given if len(given) == 1 else data
        if not isinstance(data, dict) or len(data) != 1:
            raise ValueError(f"a step is a mapping with one key, the step name "
                             f"({', '.join(STEPS.in_order())}), got {data!r}")
        name, value = next(iter(data.items()))
        if name not in STEPS:
            reject_unknown_key(str(name), value)
        return {"name": name, "config": validate_tagged(name, STEPS.get(name).config, {} if value is None else value)}

    @model_serializer(mode="plain")
    def _dump(self, info: Any) -> dict[str, Any]:
        return {self.name: self.config.model_dump(mode=info.mode, by_alias=info.by_alias,
                                                  exclude_defaults=info.exclude_defaults)}

    @property
    def plugin(self) -> StepPlugin:
        return STEPS.get(self.name)
