"""The base of every config class of the study schema, and the one-key union mechanism that lets the
plugin registries (``leanbench.plugins``) extend the schema without editing it."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


@cache
def _tagged(tag: str, cls: type[BaseModel]) -> type[BaseModel]:
    return create_model(f"Tagged_{cls.__name__}", __config__=ConfigDict(extra="forbid"),
                        value=(cls, Field(alias=tag)))


def validate_tagged(tag: str, cls: type[BaseModel], value: Any) -> Any:
    """`value` validated as `cls`, its errors located under `tag` (``steps[0].distill.temperature``; a tag
    starting with "~" is left out of the user's path, as pydantic's union tags)."""
    if isinstance(value, cls):
        return value
    return _tagged(tag, cls).model_validate({tag: value}).value


@cache
def _unknown() -> type[BaseModel]:
    return create_model("Unknown", __config__=ConfigDict(extra="forbid"))


def reject_unknown_key(key: str, value: Any) -> None:
    """Raises pydantic's "extra_forbidden" error at `key` (the study loader words it with a "did you mean")."""
    _unknown().model_validate({key: value})
