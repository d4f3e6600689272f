"""Analysis: a pure function of what the store holds, producing the typed results (`StudyResults`; its
`to_dict()` is the JSON contract). `analyse` loads lazily, so the report can read the results types
without the store's and the statistics' imports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from leanbench.analysis.results import StudyResults

if TYPE_CHECKING:
    from leanbench.analysis.core import analyse

__all__ = ["StudyResults", "analyse"]


def __getattr__(name: str) -> Any:
    if name == "analyse":
        from leanbench.analysis.core import analyse

        return analyse
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
