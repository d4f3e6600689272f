"""One generic registry: named entries, a duplicate error, "did you mean" for unknown names; and `resolve`,
the one lookup of lazy ``"module:attr"`` targets (so ``import leanbench`` stays light)."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from leanbench.errors import LeanbenchError

T = TypeVar("T")


def did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """A suggestion suffix like " (did you mean 'distill'?)", or "" when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def resolve(target: Any) -> Any:
    """A ``"module:attr"`` string imported and looked up (``"module"`` alone: the module); anything else as it is."""
    if not isinstance(target, str):
        return target
    module, _, attr = target.partition(":")
    mod = importlib.import_module(module)
    return getattr(mod, attr) if attr else mod


class Registry(Generic[T]):
    """Maps names to objects (plugin descriptors, metrics, perturbations). `kind` names what is registered,
    for error messages. Descriptors hold their implementations as lazy ``"module:attr"`` targets
    (``resolve``), so registering a plugin imports nothing heavy."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, obj: T) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._entries[name] = obj

    def remove(self, name: str) -> None:
        """Forgets `name` (tests that register a toy plugin clean up with this)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self.names())
            raise LeanbenchError(
                f"unknown {self.kind} '{name}'{did_you_mean(name, self.names())}; known: {known}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def in_order(self) -> list[str]:
        """Names in registration order."""
        return list(self._entries)

    def values(self) -> list[T]:
        """Every entry, in registration order."""
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
