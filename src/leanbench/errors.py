"""User-facing errors. The CLI prints their message, exits with code 2 and shows no traceback."""

from __future__ import annotations


class LeanbenchError(Exception):
    """Something the user can fix: bad config, missing file, unwritable store."""

    exit_code = 2


class ConfigError(LeanbenchError):
    """One or more problems in a study file, all reported at once."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        head = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}{where}:"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


class DataError(LeanbenchError):
    """Data that cannot be read or used: missing file or column, empty split, unseen label."""


class StoreError(LeanbenchError):
    """The result store cannot be opened or written."""


class ModelError(LeanbenchError):
    """A model that cannot be built, loaded or saved."""
