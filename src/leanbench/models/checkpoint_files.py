"""Which weight files a Hugging Face folder holds, read without importing torch (so `leanbench validate` can
say it): leanbench loads safetensors weights only, unless a model spec sets ``allow_pickle: true``; a folder
whose weights are only in ``pytorch_model.bin`` (a pickle) is refused with one message naming the folder."""

from __future__ import annotations

from pathlib import Path

PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def pickle_only(folder: Path) -> bool:
    """Whether `folder` has a pytorch_model.bin (or its shard index) and no safetensors weights."""
    return (folder.is_dir() and not any(folder.glob("*.safetensors"))
            and any((folder / f).is_file() for f in PICKLE_FILES))


def pickle_refusal(folder: Path, option: str | None = "allow_pickle: true") -> str:
    """The message for a pickle-only folder; `option` (the spec setting that accepts it), when there is one."""
    how = (f", or set `{option}` on this model to accept it (read with torch's restricted unpickler, "
           "weights_only)") if option else ""
    return (f"{folder}: the weights are only in pytorch_model.bin (a pickle), which leanbench does not load by "
            "default; save the model as safetensors (`from_pretrained(folder)` then `save_pretrained(folder)` "
            f"writes model.safetensors){how}")
