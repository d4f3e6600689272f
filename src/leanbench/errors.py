"""User-facing errors. The CLI prints their message, exits with code 2 and shows no traceback."""

from __future__ import annotations

import importlib
from types import ModuleType


class LeanbenchError(Exception):
    """Something the user can fix: bad config, missing file, unwritable store."""

    exit_code = 2


MAX_LISTED = 50  # problems listed in one error; the rest are counted (800,000 unknown keys: 45 MB otherwise)


class ConfigError(LeanbenchError):
    """One or more problems in a study file, all reported at once: at most ``MAX_LISTED`` listed
    (``problems``), the others counted (``more``, with any the caller counted without describing)."""

    def __init__(self, problems: list[str], source: str | None = None, more: int = 0):
        problems = list(problems)
        self.problems = problems[:MAX_LISTED]
        self.more = more + len(problems) - len(self.problems)
        self.source = source
        where = f" in {source}" if source else ""
        total = len(self.problems) + self.more
        head = f"{total:,} problem{'s' if total != 1 else ''}{where}"
        lines = [f"  - {p}" for p in self.problems]
        if self.more:
            head += f" (the first {len(self.problems)} listed)"
            lines.append(f"  ... and {self.more:,} more problems")
        super().__init__("\n".join([head + ":", *lines]))


class DataError(LeanbenchError):
    """Data that cannot be read or used: missing file or column, empty split, unseen label."""


class StoreError(LeanbenchError):
    """The result store cannot be opened or written."""


class ModelError(LeanbenchError):
    """A model that cannot be built, loaded or saved."""


class MissingExtraError(LeanbenchError):
    """An optional package that a feature needs is not installed: the message names the extra that installs it
    (``pip install 'leanbench[parquet]'``). ``validate`` reports the same, before anything runs."""

    def __init__(self, what: str, module: str, extra: str):
        self.what, self.module, self.extra = what, module, extra
        super().__init__(f"{what} {missing_package(module, extra)}")


def missing_package(module: str, extra: str) -> str:
    """The one wording of a missing optional package, for errors and for validate's problem lines."""
    return f"needs the package '{module}', which is not installed: pip install 'leanbench[{extra}]'"


def require(module: str, extra: str, what: str) -> ModuleType:
    """`import module`, or a MissingExtraError saying that `what` needs it and which extra installs it. An
    ImportError from inside an installed package (a broken install) is raised as it is."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != module.split(".")[0]:
            raise
        raise MissingExtraError(what, module.split(".")[0], extra) from None
