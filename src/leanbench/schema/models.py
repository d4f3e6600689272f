"""Model specs of the study schema (``model:`` of a candidate) and the model kinds and families built from
them. A model kind is a spec class plus its descriptor (``MODEL_KINDS``); a family is what one saved-model
adapter loads (``FAMILIES``)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, Field, field_validator
from pydantic_core import PydanticCustomError

from leanbench.plugins import FAMILIES, MODEL_KINDS, Family, ModelKind, model_kind_of_mapping
from leanbench.schema.base import Strict, validate_tagged


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
    allow_pickle: bool = Field(
        False, description="accept a checkpoint whose weights are only in pytorch_model.bin (read with torch's "
                           "restricted unpickler, weights_only); by default only safetensors weights load")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    keep_layers: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, description="initialise a shallower student from these encoder layers (DistilBERT-style)")

    def file_problems(self, base_dir: Any, caps: dict[str, float], where: str) -> list[str]:
        """Found at validate time: a local folder whose weights are only pytorch_model.bin, without
        `allow_pickle: true` (a hub id is not looked up: offline)."""
        from pathlib import Path

        from leanbench.models.checkpoint_files import pickle_only, pickle_refusal

        folder = Path(self.hf).expanduser()
        if not folder.is_absolute() and base_dir is not None and (Path(base_dir) / folder).is_dir():
            folder = Path(base_dir) / folder
        return [] if self.allow_pickle or not pickle_only(folder) else [f"{where}.hf: {pickle_refusal(folder)}"]


class GGUFSpec(Strict):
    """A GGUF file as a candidate (no build step), run on llama.cpp: a model quantized or converted elsewhere,
    or a checkpoint shipped as GGUF. (`hf: <folder>, gguf_file: <file>` instead dequantizes it into PyTorch.)"""

    pretrained: ClassVar[bool] = True
    gguf: str = Field(min_length=1, description="the .gguf file (relative to the study folder), or "
                                                "python-package:<package>/<file>.gguf")
    runtime: Literal["llama.cpp"] = "llama.cpp"
    n_ctx: int | None = Field(None, gt=0, description="context length llama.cpp opens (lm-eval's max_length); "
                              "default: the model's training context, at most 2048")
    n_batch: int = Field(512, gt=0, description="tokens per llama.cpp decode call (prompt processing)")

    def file_problems(self, base_dir: Any, caps: dict[str, float], where: str) -> list[str]:
        """What is wrong with the file, found at validate time: missing, not a readable GGUF, or larger than a
        profile's memory cap (`caps`: profile name -> memory_cap_mb)."""
        from leanbench.errors import ModelError
        from leanbench.models.gguf_io import check_gguf, resolve_gguf

        try:
            path = check_gguf(resolve_gguf(self.gguf, base_dir), where=f"{where}.gguf")
        except ModelError as exc:
            return [str(exc)]
        size_mb = path.stat().st_size / 1e6
        return [f"{where}.gguf: the GGUF file '{path.name}' is {size_mb:,.1f} MB, more than profile '{name}''s "
                f"memory_cap_mb of {cap:g} (its weights alone would not fit)"
                for name, cap in caps.items() if size_mb > cap]


class OnnxFileSpec(Strict):
    """A sequence classifier exported to ONNX elsewhere, run on ONNX Runtime as it is (no build step): the
    file, its tokenizer folder and, for its label order, a config.json with id2label (`config`, else beside the
    file, else in the tokenizer folder)."""

    pretrained: ClassVar[bool] = True
    onnx: str = Field(min_length=1, description="the .onnx file (logits output)")
    tokenizer: str = Field(min_length=1, description="the model's tokenizer folder or id")
    config: str | None = Field(None, min_length=1, description="config.json (or its folder) with id2label")
    max_length: int | None = Field(None, gt=0, description="tokens per example (default: the task's, else 128)")


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



# --------------------------------------------------------------------------- the union
def _validate_model(value: Any) -> Any:
    """A ``model:`` mapping validated as the spec class of the kind it names."""
    if value is None or isinstance(value, BaseModel):
        return value
    if not isinstance(value, dict):
        raise PydanticCustomError("model_type", "a model is a mapping (`hf: <folder or id>` or `arch: <name>`)")
    name = model_kind_of_mapping(value)
    if name not in MODEL_KINDS:
        archs = [n for n in MODEL_KINDS.in_order() if MODEL_KINDS.get(n).key is None]
        keys = [f"`{k.key}: <folder or id>`" for k in map(MODEL_KINDS.get, MODEL_KINDS.in_order()) if k.key]
        raise PydanticCustomError("unknown_arch", f"unknown model: give {' or '.join(keys)} or `arch:` one of "
                                                  f"{', '.join(archs)}")
    return validate_tagged("~" + name, MODEL_KINDS.get(name).spec, value)


ModelSpec = Annotated[Any, BeforeValidator(_validate_model)]


# --------------------------------------------------------------------------- descriptors
_TORCH = "leanbench.models.torch_models:build_model"
_STUDENT = "leanbench.models.text_students:build_text_student"
for _name, _spec, _builder, _family in [
    ("mlp", MLPSpec, _TORCH, "torch"),
    ("cnn", CNNSpec, _TORCH, "torch"),
    ("textcnn", TextStudentSpec, _STUDENT, "text-student"),
    ("embedbag", TextStudentSpec, _STUDENT, "text-student"),
    ("bilstm", TextStudentSpec, _STUDENT, "text-student"),
    ("tfidf-logreg", TfidfLogRegSpec, "leanbench.models.sklearn_models:build_tfidf_logreg", "sklearn"),
]:
    MODEL_KINDS.add(_name, ModelKind(_name, _spec, _builder, _family))
# an `hf:` model on a multiple-choice, language-modeling or generation task is a causal LM, else a sequence classifier
MODEL_KINDS.add("hf", ModelKind(
    "hf", HFSpec, key="hf",
    builder={"multiple-choice": "leanbench.models.causal_lm:build_model",
             "language-modeling": "leanbench.models.causal_lm:build_model",
             "generation": "leanbench.models.causal_lm:build_model", "*": "leanbench.models.hf:build_hf_model"},
    family={"multiple-choice": "causal-lm", "language-modeling": "causal-lm", "generation": "causal-lm", "*": "hf"}))

MODEL_KINDS.add("gguf", ModelKind("gguf", GGUFSpec, key="gguf", builder="leanbench.models.llamacpp:build_model",
                                  family="llama.cpp"))

# a sequence classifier exported to ONNX elsewhere: a candidate of the onnx family without a build step
MODEL_KINDS.add("onnx", ModelKind("onnx", OnnxFileSpec, key="onnx",
                                  builder={"classification": "leanbench.models.onnx:build_onnx_file"},
                                  family={"classification": "onnx"}))

_CLASSIFICATION = ("classification",)
_TORCH_DEVICES = ("cpu", "cuda")  # a PyTorch module moves to the GPU (`device: cuda`, models/device.py)
_TRANSFORMERS = (("transformers", "text"),)
for _family in [
    Family("torch", "leanbench.models.torch_models:TorchAdapter", _CLASSIFICATION, "a leanbench torch model",
           devices=_TORCH_DEVICES),
    Family("hf", "leanbench.models.hf:HFClassifierAdapter", _CLASSIFICATION, "a Hugging Face classifier",
           _TRANSFORMERS, devices=_TORCH_DEVICES),
    Family("hf-dynamic-int8", "leanbench.models.hf_int8:HFDynamicInt8Adapter", _CLASSIFICATION,
           "a Hugging Face classifier already quantized to dynamic int8", _TRANSFORMERS),
    Family("onnx", "leanbench.models.onnx:OnnxAdapter", _CLASSIFICATION, "an ONNX Runtime classifier",
           (("onnxruntime", "text"), ("onnx", "text"))),
    Family("text-student", "leanbench.models.text_students:TextStudentAdapter", _CLASSIFICATION,
           "a tiny text student", _TRANSFORMERS, devices=_TORCH_DEVICES),  # _TRANSFORMERS: its tokenizer
    Family("sklearn", "leanbench.models.sklearn_models:TfidfLogRegAdapter", _CLASSIFICATION,
           "a scikit-learn TF-IDF + logistic regression"),
    Family("causal-lm", "leanbench.models.causal_lm:CausalLMAdapter", ("multiple-choice", "language-modeling",
                                                                      "generation"),
           "a causal language model", _TRANSFORMERS, generates=True, devices=_TORCH_DEVICES),
    Family("llama.cpp", "leanbench.models.llamacpp:LlamaCppAdapter",
           ("multiple-choice", "language-modeling", "generation"), "a GGUF model on llama.cpp",
           (("llama_cpp", "llama"), ("gguf", "llama")), generates=True),
    Family("onnx-causal-lm", "leanbench.models.onnx_causal_lm:OnnxCausalLMAdapter",
           ("multiple-choice", "language-modeling", "generation"), "a causal LM on ONNX Runtime (KV cache)",
           (("onnxruntime", "text"), ("onnx", "text"), ("transformers", "text")), generates=True),
]:
    FAMILIES.add(_family.name, _family)
