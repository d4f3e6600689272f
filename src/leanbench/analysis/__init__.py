"""Analysis: a pure function of what the store holds, producing the results dict (the JSON contract)."""

from leanbench.analysis.core import analyse

__all__ = ["analyse"]
