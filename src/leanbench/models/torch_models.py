"""Built-in PyTorch models (an MLP and a small CNN) and the ``torch`` model adapter.

A model is fully described by an *architecture dict* (JSON-able): its layer sizes, and for every Linear
layer an optional rank (``None`` = full matrix, ``r`` = factorised as ``Linear(in, r, bias=False)``
followed by ``Linear(r, out)``, see ``LowRankLinear``). Pruning and low-rank steps write new arch dicts,
so a saved model is ``adapter.json`` (arch, quantization, input shape) + ``model.safetensors``.

Dynamic int8 models (``torch.ao.quantization.quantize_dynamic`` of ``nn.Linear``, qint8, per-tensor) are
saved as plain tensors too: the int8 weight, its scale and zero point, and the fp32 bias of every
quantized Linear. Loading rebuilds the fp32 architecture, quantizes it and sets those weights, so the
loaded model predicts bit-identically. Nothing is ever unpickled.
"""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from leanbench.atomic import atomic_path
from leanbench.data.base import TaskData
from leanbench.errors import ModelError
from leanbench.models.base import ModelAdapter, read_adapter_file, write_adapter_file
from leanbench.models.torch_common import TorchModuleMixin, quantized_linears
from leanbench.study import CNNSpec, MLPSpec

WEIGHTS_FILE = "model.safetensors"
QUANTIZED_METHODS = ("dynamic-int8",)
Arch = dict[str, Any]


# --------------------------------------------------------------------------- layers and modules
class LowRankLinear(nn.Module):
    """A factorised Linear layer: y = second(first(x)), W (out x in) ~ W2 (out x r) @ W1 (r x in)."""

    def __init__(self, in_features: int, out_features: int, rank: int):
        super().__init__()
        self.first = nn.Linear(in_features, rank, bias=False)  # (r, in)
        self.second = nn.Linear(rank, out_features)  # (out, r) + bias (out,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


def make_linear(in_features: int, out_features: int, rank: int | None) -> nn.Module:
    """A full ``nn.Linear`` when rank is None, else a ``LowRankLinear`` of that rank."""
    if rank is None:
        return nn.Linear(in_features, out_features)
    return LowRankLinear(in_features, out_features, int(rank))


def _linear_chain(linears: nn.ModuleList, x: torch.Tensor, dropout: float, training: bool) -> torch.Tensor:
    """Linear layers with ReLU (and dropout) between them; the last layer gives the logits."""
    last = len(linears) - 1
    for i, layer in enumerate(linears):
        x = layer(x)
        if i < last:
            x = F.dropout(F.relu(x), p=dropout, training=training)
    return x


class MLP(nn.Module):
    """in_features -> hidden[0] -> ... -> n_classes, ReLU between layers; images are flattened."""

    def __init__(self, arch: Arch):
        super().__init__()
        dims = [arch["in_features"], *arch["hidden"], arch["n_classes"]]
        self.linears = nn.ModuleList(
            make_linear(a, b, r) for a, b, r in zip(dims[:-1], dims[1:], arch["ranks"], strict=True)
        )
        self.dropout = float(arch["dropout"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # (B, F)
        return _linear_chain(self.linears, x, self.dropout, self.training)  # (B, n_classes)


def cnn_feature_shape(arch: Arch) -> tuple[int, int, list[bool]]:
    """(height, width) of the last conv feature map and, per conv, whether a 2x2 max-pool follows it
    (only while both spatial sizes are >= 2)."""
    _, h, w = arch["in_shape"]
    pools = []
    for _ in arch["channels"]:
        pool = h >= 2 and w >= 2
        pools.append(pool)
        if pool:
            h, w = h // 2, w // 2
    return h, w, pools


class SmallCNN(nn.Module):
    """[conv 3x3 (padding 1) + ReLU + 2x2 max-pool] per channel count, flatten, fc_hidden, n_classes."""

    def __init__(self, arch: Arch):
        super().__init__()
        in_c = arch["in_shape"][0]
        chans = [in_c, *arch["channels"]]
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, 3, padding=1) for a, b in zip(chans[:-1], chans[1:], strict=True)
        )
        h, w, pools = cnn_feature_shape(arch)
        self.pools = tuple(pools)
        flat = chans[-1] * h * w
        dims = [flat, arch["fc_hidden"], arch["n_classes"]]
        self.linears = nn.ModuleList(
            make_linear(a, b, r) for a, b, r in zip(dims[:-1], dims[1:], arch["ranks"], strict=True)
        )
        self.dropout = float(arch["dropout"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        for conv, pool in zip(self.convs, self.pools, strict=True):
            x = F.relu(conv(x))
            if pool:
                x = F.max_pool2d(x, 2)
        x = x.flatten(1)  # (B, C_last * H' * W'), channel-major
        return _linear_chain(self.linears, x, self.dropout, self.training)


# --------------------------------------------------------------------------- arch dicts
def _n_linears(arch: Arch) -> int:
    return len(arch["hidden"]) + 1 if arch["arch"] == "mlp" else 2


def normalize_arch(arch: Arch) -> Arch:
    """A checked copy of an arch dict, with defaults (dropout 0, full-rank layers) filled in."""
    kind = arch.get("arch")
    if kind not in ("mlp", "cnn"):
        raise ModelError(f"unknown torch model arch {kind!r} in {arch!r}; known: mlp, cnn")
    needed = ("in_features", "hidden", "n_classes") if kind == "mlp" else (
        "in_shape", "channels", "fc_hidden", "n_classes")
    missing = [k for k in needed if k not in arch]
    if missing:
        raise ModelError(f"{kind} arch dict lacks {', '.join(missing)}: {arch!r}")
    out = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in arch.items()}
    out["dropout"] = float(out.get("dropout", 0.0))
    n = _n_linears(out)
    out["ranks"] = list(out.get("ranks") or [None] * n)
    if len(out["ranks"]) != n:
        raise ModelError(f"{kind} arch has {n} Linear layers but {len(out['ranks'])} ranks: {arch!r}")
    if kind == "cnn" and len(out["in_shape"]) != 3:
        raise ModelError(f"cnn arch needs in_shape [channels, height, width], got {out['in_shape']!r}")
    return out


def arch_from_spec(spec: MLPSpec | CNNSpec, input_shape: tuple[int, ...], n_classes: int) -> Arch:
    """The arch dict for a study's model spec on inputs of `input_shape`."""
    if spec.arch == "mlp":
        return normalize_arch({"arch": "mlp", "in_features": int(math.prod(input_shape)),
                               "hidden": list(spec.hidden), "n_classes": n_classes, "dropout": spec.dropout})
    if len(input_shape) != 3:
        raise ModelError(
            f"model arch 'cnn' needs image inputs of shape (channels, height, width), got input shape "
            f"{tuple(input_shape)}; use arch 'mlp' for tabular data"
        )
    return normalize_arch({"arch": "cnn", "in_shape": list(input_shape), "channels": list(spec.channels),
                           "fc_hidden": spec.fc_hidden, "n_classes": n_classes, "dropout": spec.dropout})


def module_from_arch(arch: Arch) -> nn.Module:
    """A freshly initialised module (torch's default init, global RNG) for an arch dict."""
    arch = normalize_arch(arch)
    return MLP(arch) if arch["arch"] == "mlp" else SmallCNN(arch)


def seeded_module(arch: Arch, seed: int) -> nn.Module:
    """``module_from_arch`` with weights drawn from `seed`, leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return module_from_arch(arch)


def build_model(spec: MLPSpec | CNNSpec, data: TaskData, seed: int) -> TorchAdapter:
    """A freshly initialised (untrained) model for `data`, deterministic in `seed`."""
    if data.train.X.dtype == object or len(data.input_shape) == 0:
        raise ModelError(
            f"model arch '{spec.arch}' needs numeric features or images; task data from {data.source} "
            f"has input shape {tuple(data.input_shape)} (text?)"
        )
    arch = arch_from_spec(spec, tuple(data.input_shape), data.n_classes)
    return TorchAdapter(seeded_module(arch, seed), arch, tuple(data.input_shape))


# --------------------------------------------------------------------------- dynamic int8
def quantize_module(module: nn.Module) -> nn.Module:
    """``quantize_dynamic`` of every nn.Linear to qint8 (per-tensor weights); conv layers stay fp32.
    torch's deprecation warnings for torch.ao.quantization are silenced here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(module).eval(), {nn.Linear},
                                                      dtype=torch.qint8)


def _plain_tensors(module: nn.Module, skip: set[str]) -> dict[str, torch.Tensor]:
    """Parameters and buffers of every module not in `skip` (the quantized layers)."""
    out = {}
    for name, m in module.named_modules():
        if name in skip:
            continue
        for key, t in [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)]:
            out[f"{name}.{key}" if name else key] = t.detach().contiguous()
    return out


def quantized_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Plain tensors of a dynamically quantized module: per quantized Linear, ``weight_int8`` (int8),
    ``weight_scale`` (float64, 1 value), ``weight_zero_point`` (int64, 1 value) and ``bias`` (fp32)."""
    out: dict[str, torch.Tensor] = {}
    names = set()
    for name, layer in quantized_linears(module):
        w = layer.weight()
        if w.qscheme() != torch.per_tensor_affine:
            raise ModelError(f"quantized layer {name}: only per-tensor weights can be saved, "
                             f"got {w.qscheme()}")
        out[f"{name}.weight_int8"] = w.int_repr().contiguous()
        out[f"{name}.weight_scale"] = torch.tensor([w.q_scale()], dtype=torch.float64)
        out[f"{name}.weight_zero_point"] = torch.tensor([w.q_zero_point()], dtype=torch.int64)
        if layer.bias() is not None:
            out[f"{name}.bias"] = layer.bias().detach().contiguous()
        names.add(name)
    return {**_plain_tensors(module, names), **out}


def load_quantized_state(module: nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Sets the weights of a quantized module from ``quantized_state`` tensors."""
    names = set()
    remaining = dict(tensors)
    for name, layer in quantized_linears(module):
        try:
            q = torch._make_per_tensor_quantized_tensor(
                remaining.pop(f"{name}.weight_int8"),
                float(remaining.pop(f"{name}.weight_scale")[0]),
                int(remaining.pop(f"{name}.weight_zero_point")[0]),
            )
        except KeyError as exc:
            raise ModelError(f"{where}: quantized weights of layer '{name}' are missing ({exc})") from None
        layer.set_weight_bias(q, remaining.pop(f"{name}.bias", None))
        names.add(name)
    plain = _plain_tensors(module, names)
    if set(plain) != set(remaining):
        raise ModelError(f"{where}: weights do not match the architecture "
                         f"(missing {sorted(set(plain) - set(remaining))}, "
                         f"unexpected {sorted(set(remaining) - set(plain))})")
    with torch.no_grad():
        for key, t in plain.items():
            _check_shape(where, key, t, remaining[key])
            t.copy_(remaining[key])


def _check_shape(where: str, key: str, want: torch.Tensor, got: torch.Tensor) -> None:
    if want.shape != got.shape:
        raise ModelError(f"{where}: tensor '{key}' has shape {tuple(got.shape)}, "
                         f"the arch needs {tuple(want.shape)}")


# --------------------------------------------------------------------------- adapter
class TorchAdapter(TorchModuleMixin, ModelAdapter):
    """A leanbench MLP / SmallCNN: the module, its arch dict, the input shape of one example and, when
    quantized, the method (``"dynamic-int8"``). The module is kept in eval mode."""

    adapter_name = "torch"

    def __init__(self, module: nn.Module, arch: Arch, input_shape: tuple[int, ...],
                 quantized: str | None = None):
        if quantized is not None and quantized not in QUANTIZED_METHODS:
            raise ModelError(f"unknown quantization {quantized!r}; known: {', '.join(QUANTIZED_METHODS)}")
        self.module = module.eval()
        self.arch = normalize_arch(arch)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.quantized = quantized

    # ---- inference
    def prepare(self, X: np.ndarray) -> torch.Tensor:
        """Rows of X -> float32 tensor of shape (N, *input_shape)."""
        X = np.asarray(X)
        if X.dtype == object or math.prod(X.shape[1:]) != math.prod(self.input_shape):
            raise ModelError(f"torch model expects examples of shape {self.input_shape}, "
                             f"got an array of shape {X.shape} and dtype {X.dtype}")
        return self.on_model_device(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
                                    .reshape(-1, *self.input_shape))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.module(inputs)

    def predict_proba(self, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Softmax of the logits, computed in float64, in batches of `batch_size`."""
        self.module.eval()
        inputs = self.prepare(X)
        chunks = [torch.softmax(self.forward(inputs[i:i + batch_size]).double(), dim=1)
                  for i in range(0, len(inputs), batch_size)]
        if not chunks:
            return np.zeros((0, self.arch["n_classes"]), dtype=np.float64)
        return torch.cat(chunks).cpu().numpy()

    # ---- size: num_params, nonzero_params, torch_module from TorchModuleMixin
    def flops_per_example(self) -> int:
        """Forward FLOPs of one example (FlopCounterMode: 2 per multiply-add of matmuls and convs).
        A quantized model is counted on its fp32 architecture: it does the same multiply-adds in int8."""
        module = module_from_arch(self.arch).eval() if self.quantized else self.module
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(torch.zeros(1, *self.input_shape))
        return int(counter.get_total_flops())

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.adapter_name, "arch": self.arch, "quantized": self.quantized,
                "input_shape": list(self.input_shape),
                "dtype": "int8 Linear, fp32 other" if self.quantized else "float32"}

    def copy(self) -> TorchAdapter:
        """A deep copy (steps never change the model they were given)."""
        return TorchAdapter(copy.deepcopy(self.module), self.arch, self.input_shape, self.quantized)

    # ---- save / load
    def save(self, path: Path) -> None:
        path = Path(path)
        tensors = quantized_state(self.module) if self.quantized else _plain_tensors(self.module, set())
        write_adapter_file(path, self.adapter_name, {"arch": self.arch, "quantized": self.quantized,
                                                     "input_shape": list(self.input_shape)})
        with atomic_path(path / WEIGHTS_FILE) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "pt"})

    @classmethod
    def load(cls, path: Path) -> TorchAdapter:
        path = Path(path)
        info = read_adapter_file(path)
        weights = path / WEIGHTS_FILE
        if not weights.is_file():
            raise ModelError(f"{path}: no {WEIGHTS_FILE}")
        tensors = load_file(str(weights))
        module = module_from_arch(info["arch"])
        if info.get("quantized"):
            module = quantize_module(module)
            load_quantized_state(module, tensors, str(path))
        else:
            _load_plain(module, tensors, str(path))
        return cls(module, info["arch"], tuple(info["input_shape"]), info.get("quantized"))


def _load_plain(module: nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    want = module.state_dict()
    if set(want) != set(tensors):
        missing, unexpected = sorted(set(want) - set(tensors)), sorted(set(tensors) - set(want))
        raise ModelError(f"{where}: weights do not match the architecture "
                         f"(missing {missing}, unexpected {unexpected})")
    for key, t in want.items():
        _check_shape(where, key, t, tensors[key])
    module.load_state_dict(tensors, strict=True)
