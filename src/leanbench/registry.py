"""One generic registry: named entries, a duplicate error, "did you mean" for unknown names, and lazy
``"module:attr"`` targets resolved on first use (so ``import leanbench`` stays light)."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
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
    """Maps names to objects. `kind` names what is registered, for error messages.

    An entry given as a ``"module:attr"`` string is lazy: the first ``get`` imports the module and keeps the
    object (``lazy=True``). A module that registers its entries when imported (a decorator) is named with
    ``add_module``: ``get`` imports it first.
    """

    def __init__(self, kind: str, *, lazy: bool = False):
        self.kind = kind
        self.lazy = lazy
        self._entries: dict[str, Any] = {}
        self._modules: dict[str, str] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if self._modules.get(name) and name not in self._entries:
                self._entries[name] = obj  # the module named for it is registering it now
            else:
                self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T | str) -> None:
        if name in self._entries or name in self._modules:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._entries[name] = obj

    def add_module(self, name: str, module: str) -> None:
        """`name` is registered by importing `module` (imported on first use)."""
        if name in self._entries or name in self._modules:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._modules[name] = module

    def remove(self, name: str) -> None:
        """Forgets `name` (tests that register a toy plugin clean up with this)."""
        self._entries.pop(name, None)
        self._modules.pop(name, None)

    def get(self, name: str) -> T:
        if name not in self._entries and name in self._modules:
            importlib.import_module(self._modules[name])  # registers it
        try:
            obj = self._entries[name]
        except KeyError:
            known = ", ".join(self.names())
            raise LeanbenchError(
                f"unknown {self.kind} '{name}'{did_you_mean(name, self.names())}; known: {known}"
            ) from None
        if self.lazy and isinstance(obj, str):
            obj = self._entries[name] = resolve(obj)
        return obj

    def names(self) -> list[str]:
        return sorted(self.in_order())

    def in_order(self) -> list[str]:
        """Names in registration order."""
        return list(dict.fromkeys([*self._modules, *self._entries]))

    def values(self) -> list[T]:
        """Every entry (lazy ones resolved), in registration order."""
        return [self.get(n) for n in self.in_order()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._modules

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
