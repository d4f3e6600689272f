"""Tiny non-transformer text classifiers over a Hugging Face tokenizer (adapter ``text-student``).

- ``textcnn`` (Kim 2014, "Convolutional Neural Networks for Sentence Classification"): token embeddings
  (B, T, E) -> per kernel size k a Conv1d(E, C, k) + ReLU -> max over the valid positions -> concatenated
  (B, C · |kernels|) -> dropout -> Linear to the classes.
- ``embedbag`` (fastText-style, Joulin et al. 2017): mean of the token embeddings over non-padding
  tokens -> dropout -> Linear.
- ``bilstm`` (the student of Tang et al. 2019, "Distilling Task-Specific Knowledge from BERT into Simple
  Neural Networks"): token embeddings -> one bidirectional LSTM layer over the real tokens only (packed
  sequences) -> [last forward state, last backward state, max over time of the outputs] (B, 4H) ->
  dropout -> Linear(4H, H) + ReLU -> dropout -> Linear to the classes.

Padding never changes a prediction: padded positions are masked out of the max / mean, so a text gets
the same logits alone or in any batch. With the teacher's tokenizer (MiniLM: 30,522 tokens) and
``embed_dim`` 48 a textcnn has ~1.5M parameters, ~1/15 of MiniLM-L6; most of it is the embedding table.
``vocab: train`` keeps rows only for the tokens the training split uses (SST-2: 11,544 of 30,522): the
module then maps tokenizer ids to rows itself (buffer ``id_map``), so it still reads the tokenizer's ids.

Saved folder: ``adapter.json`` (arch dict, max_length, labels) + ``model.safetensors`` + tokenizer files.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from leanbench.atomic import atomic_path
from leanbench.data.base import TaskData
from leanbench.errors import ModelError
from leanbench.models.base import ModelAdapter, read_adapter_file, write_adapter_file
from leanbench.models.hf import DEFAULT_MAX_LENGTH, load_tokenizer, quiet_transformers, sorted_logits, tokenize
from leanbench.models.torch_common import TorchModuleMixin

WEIGHTS_FILE = "model.safetensors"
ARCHS = ("textcnn", "embedbag", "bilstm")
Arch = dict[str, Any]


class _TokenModel(nn.Module):
    """The embedding table; with a vocabulary cut (arch ``tokenizer_size``) a buffer ``id_map`` maps each
    tokenizer id to its row (a token outside the kept vocabulary to the unknown token's row)."""

    def _init_embedding(self, arch: Arch) -> None:
        self.embedding = nn.Embedding(arch["vocab_size"], arch["embed_dim"], padding_idx=arch["pad_id"])
        if arch.get("tokenizer_size"):
            self.register_buffer("id_map", torch.zeros(int(arch["tokenizer_size"]), dtype=torch.long))

    def rows(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Tokenizer ids -> embedding rows."""
        return self.id_map[input_ids] if "id_map" in self._buffers else input_ids


class TextCNN(_TokenModel):
    """Embedding -> parallel Conv1d + ReLU + masked max-pool over time -> dropout -> Linear."""

    def __init__(self, arch: Arch):
        super().__init__()
        self._init_embedding(arch)
        self.kernel_sizes = [int(k) for k in arch["kernel_sizes"]]
        self.convs = nn.ModuleList(nn.Conv1d(arch["embed_dim"], arch["channels"], k) for k in self.kernel_sizes)
        self.dropout = nn.Dropout(arch["dropout"])
        self.fc = nn.Linear(arch["channels"] * len(self.kernel_sizes), arch["n_classes"])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> torch.Tensor:
        input_ids = self.rows(input_ids)
        pad = max(0, max(self.kernel_sizes) - input_ids.shape[1])
        if pad:  # every kernel needs at least k positions
            input_ids = F.pad(input_ids, (0, pad), value=self.embedding.padding_idx or 0)
            attention_mask = F.pad(attention_mask, (0, pad), value=0)
        x = self.embedding(input_ids) * attention_mask.unsqueeze(-1)  # (B, T, E)
        x = x.transpose(1, 2)  # (B, E, T)
        lengths = attention_mask.sum(1)  # (B,)
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs, strict=True):
            h = F.relu(conv(x))  # (B, C, T - k + 1)
            valid = torch.clamp(lengths - k + 1, min=1)  # windows inside the text (one if shorter than k)
            pos = torch.arange(h.shape[2], device=h.device)
            h = h.masked_fill((pos[None, :] >= valid[:, None]).unsqueeze(1), float("-inf"))
            pooled.append(h.max(dim=2).values)  # (B, C)
        return self.fc(self.dropout(torch.cat(pooled, dim=1)))  # (B, n_classes)


class EmbedBag(_TokenModel):
    """Mean of token embeddings over non-padding tokens -> dropout -> Linear."""

    def __init__(self, arch: Arch):
        super().__init__()
        self._init_embedding(arch)
        self.dropout = nn.Dropout(arch["dropout"])
        self.fc = nn.Linear(arch["embed_dim"], arch["n_classes"])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).float()  # (B, T, 1)
        mean = (self.embedding(self.rows(input_ids)) * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, E)
        return self.fc(self.dropout(mean))


class BiLSTM(_TokenModel):
    """Embedding -> BiLSTM (packed: padding is never read) -> [h_fwd, h_bwd, masked max] -> MLP head."""

    def __init__(self, arch: Arch):
        super().__init__()
        e, h = arch["embed_dim"], arch["hidden"]
        self._init_embedding(arch)
        self.lstm = nn.LSTM(e, h, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(arch["dropout"])
        self.fc1 = nn.Linear(4 * h, h)
        self.fc = nn.Linear(h, arch["n_classes"])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> torch.Tensor:
        lengths = attention_mask.sum(1).clamp(min=1).cpu()  # (B,); an empty text reads its first position
        packed = nn.utils.rnn.pack_padded_sequence(self.embedding(self.rows(input_ids)), lengths, batch_first=True,
                                                   enforce_sorted=False)
        out, (last, _) = self.lstm(packed)  # last: (2, B, H), forward then backward direction
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, padding_value=float("-inf"))
        features = torch.cat([last[0], last[1], out.max(dim=1).values], dim=1)  # (B, 4H)
        return self.fc(self.dropout(F.relu(self.fc1(self.dropout(features)))))


def module_from_arch(arch: Arch) -> nn.Module:
    kinds = {"textcnn": TextCNN, "embedbag": EmbedBag, "bilstm": BiLSTM}
    if arch.get("arch") not in kinds:
        raise ModelError(f"unknown text student arch {arch.get('arch')!r}; known: {', '.join(ARCHS)}")
    return kinds[arch["arch"]](arch)


class TextStudentAdapter(TorchModuleMixin, ModelAdapter):
    """A TextCNN / EmbedBag, its arch dict and the Hugging Face tokenizer it reads."""

    adapter_name = "text-student"
    # trained from scratch: a train / distill step's every setting applies (epochs, lr 1e-3, no warm-up),
    # not only the ones the user set over the fine-tuning defaults as for a pretrained transformer
    takes_train_settings = True

    def __init__(self, module: nn.Module, arch: Arch, tokenizer: Any, max_length: int = DEFAULT_MAX_LENGTH,
                 label_names: list[str] | None = None):
        if max_length <= 0:
            raise ModelError(f"max_length must be > 0, got {max_length}")
        self.module = module.eval()
        self.arch = dict(arch)
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.label_names = list(label_names) if label_names else [str(i) for i in range(arch["n_classes"])]

    @property
    def n_classes(self) -> int:
        return int(self.arch["n_classes"])

    def prepare(self, X: np.ndarray) -> dict[str, torch.Tensor]:
        enc = tokenize(self.tokenizer, X, self.max_length)
        return self.on_model_device({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode():
            return self.module(**inputs)

    def logits(self, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Logits (N, n_classes) float32; batches in order of length, rows in the order of X."""
        self.module.eval()
        return sorted_logits(self, X, batch_size)

    def predict_proba(self, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Softmax of the logits, in float64."""
        return torch.softmax(torch.from_numpy(self.logits(X, batch_size)).double(), dim=1).numpy()

    # num_params, nonzero_params, torch_module from TorchModuleMixin

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.adapter_name, "arch": self.arch, "max_length": self.max_length,
                "dtype": "float32"}

    def copy(self) -> TextStudentAdapter:
        return TextStudentAdapter(copy.deepcopy(self.module), self.arch, self.tokenizer, self.max_length,
                                  self.label_names)

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous() for k, v in self.module.state_dict().items()}
        with atomic_path(path / WEIGHTS_FILE) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "pt"})
        with quiet_transformers():
            self.tokenizer.save_pretrained(str(path))
        write_adapter_file(path, self.adapter_name, {"arch": self.arch, "max_length": self.max_length,
                                                     "label_names": self.label_names})

    @classmethod
    def load(cls, path: Path) -> TextStudentAdapter:
        path = Path(path)
        info = read_adapter_file(path)
        weights = path / WEIGHTS_FILE
        if not weights.is_file():
            raise ModelError(f"{path}: no {WEIGHTS_FILE}")
        module = module_from_arch(info["arch"])
        tensors = load_file(str(weights))
        want = module.state_dict()
        if set(want) != set(tensors) or any(want[k].shape != tensors[k].shape for k in want):
            raise ModelError(f"{path}: weights do not match the arch {info['arch']}")
        module.load_state_dict(tensors)
        return cls(module, info["arch"], load_tokenizer(str(path)), int(info["max_length"]),
                   info.get("label_names"))


def build_text_student(spec: Any, data: TaskData, seed: int) -> TextStudentAdapter:
    """A freshly initialised (seeded) student over `spec.tokenizer`'s vocabulary."""
    if data.train.X.dtype != object:
        raise ModelError(f"model arch '{spec.arch}' reads text; task data from {data.source} is numeric "
                         f"(input shape {tuple(data.input_shape)})")
    tokenizer = load_tokenizer(spec.tokenizer)
    max_length = spec.max_length or int((data.meta or {}).get("max_length") or DEFAULT_MAX_LENGTH)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    keep = id_map = None
    if spec.vocab == "train":  # tokenizer id -> row; a token outside the kept ones -> the unknown token's row
        keep = kept_tokens(tokenizer, data.train.X, max_length, pad_id)
        unk = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else pad_id
        id_map = torch.full((len(tokenizer),), int(np.searchsorted(keep, unk)), dtype=torch.long)
        id_map[torch.from_numpy(keep)] = torch.arange(len(keep))
    arch = {"arch": spec.arch, "vocab_size": len(tokenizer) if keep is None else len(keep),
            "embed_dim": spec.embed_dim, "channels": spec.channels, "kernel_sizes": list(spec.kernel_sizes),
            "dropout": spec.dropout, "n_classes": data.n_classes,
            "pad_id": int(pad_id if id_map is None else id_map[pad_id])}
    if spec.arch == "bilstm":
        arch["hidden"] = spec.hidden
    if keep is not None:
        arch["tokenizer_size"] = len(tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = module_from_arch(arch)
    with torch.no_grad():
        if id_map is not None:
            module.id_map.copy_(id_map)
        if spec.init_embeddings is not None:
            module.embedding.weight.copy_(pretrained_embeddings(spec.init_embeddings, len(tokenizer),
                                                                spec.embed_dim, keep))
    return TextStudentAdapter(module, arch, tokenizer, max_length, [str(v) for v in data.label_names])


def kept_tokens(tokenizer: Any, texts: np.ndarray, max_length: int, pad_id: int) -> np.ndarray:
    """Sorted tokenizer ids that occur in `texts` (as the student reads them), plus the special tokens and
    `pad_id` (the padding id even when the tokenizer has no pad token)."""
    seen = {int(pad_id), *(int(i) for i in tokenizer.all_special_ids)}
    for start in range(0, len(texts), 4096):
        enc = tokenize(tokenizer, texts[start:start + 4096], max_length)
        seen.update(torch.unique(enc["input_ids"]).tolist())
    return np.array(sorted(seen), dtype=np.int64)


def pretrained_embeddings(name: str, vocab_size: int, dim: int, keep: np.ndarray | None = None) -> torch.Tensor:
    """(vocab_size, dim) initial embeddings from a pretrained model's input-embedding table: the centred
    table projected on its `dim` leading principal components, scaled to unit variance like
    ``nn.Embedding``'s default initialisation. With `keep` (a vocabulary cut), only those rows, in order:
    the components are those of the kept tokens."""
    from transformers import AutoModel

    from leanbench.models.hf import _hub_error, check_local_folder, safetensors_only

    local = Path(name).expanduser()
    if local.is_dir():
        check_local_folder(local)
    weights = safetensors_only(name, option=None)
    try:
        with quiet_transformers():
            model = AutoModel.from_pretrained(str(local) if local.is_dir() else name, **weights)
    except (OSError, ValueError) as exc:
        if local.is_dir():
            raise ModelError(f"{local}: cannot load the model for init_embeddings "
                             f"({str(exc).splitlines()[0][:200]})") from None
        raise _hub_error(name, exc) from None
    table = model.get_input_embeddings().weight.detach().to(torch.float32)
    if table.shape[0] != vocab_size:
        raise ModelError(f"init_embeddings: '{name}' has {table.shape[0]} token embeddings but the student's "
                         f"tokenizer has {vocab_size} tokens; use the tokenizer of the same model")
    if keep is not None:
        table = table[torch.from_numpy(keep)]
    centred = table - table.mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    k = min(dim, v.shape[0])
    out = torch.zeros(table.shape[0], dim)
    out[:, :k] = centred @ v[:k].T  # a wider student gets every component and zeros after them
    return out / out.std().clamp_min(1e-12)
