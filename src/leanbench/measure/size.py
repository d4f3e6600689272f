"""Size of a model: parameter counts from the adapter and bytes of its saved folder on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leanbench.errors import ModelError
from leanbench.models.base import ModelAdapter, dir_size_bytes


def model_size(model: ModelAdapter, saved_dir: str | Path) -> dict[str, Any]:
    """``{"params", "nonzero_params", "size_bytes"}``; size is every file in the saved folder."""
    if not Path(saved_dir).is_dir():
        raise ModelError(f"model_size: saved model folder {str(saved_dir)!r} does not exist")
    return {"params": int(model.num_params()), "nonzero_params": int(model.nonzero_params()),
            "size_bytes": dir_size_bytes(saved_dir)}
