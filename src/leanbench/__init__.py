"""leanbench: prove or disprove that a smaller model does the job, and show the whole bill.

Importing the package stays lean: torch, transformers and Ray load only when a command needs them. The Python
API (`load_study`, `run`, `results`, `render`) is documented in docs/api.md.
"""

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load_study", "render", "results", "run"]


def __getattr__(name: str) -> Any:
    if name in ("load_study", "run", "results", "render"):
        from leanbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'leanbench' has no attribute {name!r}")
