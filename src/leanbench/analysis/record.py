"""The record base of the typed results (`leanbench.analysis.results`) and of the typed store rows
(`leanbench.analysis.stored`): dataclasses that write the JSON contract and read it back.

Every record is a dataclass built on `Record`:

- `to_dict()` gives the JSON form: fields in declared order (a field marked `omit_none` is left out while it
  is None; a `flatten` field's keys sit in its parent's dict, the whole group left out when it is None),
  then `extra`.
- `from_dict(d)` reads a JSON form back, tolerantly: a missing or null part is None, a part that is not a
  mapping where a record belongs is None, keys this version does not know go to `extra`. The keys read are
  remembered (`keys`), so `to_dict()` writes exactly those keys back, in their order (a key that was absent
  stays absent; a field set afterwards is added at the end). `has(name)` says whether a key was given.

Records built in code may pass `keys` too, to fix a layout (the reference's short `vs_reference`).
Free-form parts stay plain dicts: a model's `describe()`, build steps' `info`, the manifest's extra entries,
task metadata, duplicate statistics.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

R = TypeVar("R", bound="Record")


def fld(default: Any = None, *, key: str | None = None, omit_none: bool = False, flatten: bool = False,
        factory: Any = None) -> Any:
    """A record field: `key` is its JSON name when it differs (`from`), `omit_none` leaves it out of
    `to_dict()` while None, `flatten` writes a nested record's keys into the parent."""
    meta = {"key": key, "omit_none": omit_none, "flatten": flatten}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class _Spec:
    name: str
    key: str
    omit_none: bool
    flatten: bool
    hint: Any


_SPECS: dict[type, list[_Spec]] = {}


def _specs(cls: type) -> list[_Spec]:
    """The data fields of a record class (not `extra`/`keys`), with their JSON keys and resolved types."""
    found = _SPECS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = [_Spec(f.name, f.metadata.get("key") or f.name, bool(f.metadata.get("omit_none")),
                       bool(f.metadata.get("flatten")), hints[f.name])
                 for f in dataclasses.fields(cls) if f.name not in ("extra", "keys")]
        _SPECS[cls] = found
    return found


def _json_keys(cls: type) -> list[str]:
    """Every JSON key a record class reads, its flattened groups' keys included."""
    out: list[str] = []
    for s in _specs(cls):
        out.extend(_json_keys(_record_in(s.hint)) if s.flatten else [s.key])
    return out


def _is_record(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Record)


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return tuple(a for a in typing.get_args(tp) if a is not type(None))
    return None


def _record_in(tp: Any) -> Any:
    args = _union_args(tp)
    for a in args if args is not None else (tp,):
        if _is_record(a):
            return a
    return None


def _convert(tp: Any, value: Any) -> Any:
    """`value` (from JSON) as type `tp`: records and containers of records are read recursively; a part of
    the wrong shape (not a mapping where one belongs) becomes None; anything else is kept as it is."""
    if value is None:
        return None
    args = _union_args(tp)
    if args is not None:
        shaped = [a for a in args if _is_record(a) or typing.get_origin(a) in (dict, list)]
        for a in shaped:
            if isinstance(value, Mapping) == (_is_record(a) or typing.get_origin(a) is dict):
                return _convert(a, value)
        return None if len(shaped) == len(args) else value
    if _is_record(tp):
        return tp.from_dict(value) if isinstance(value, Mapping) else None
    origin = typing.get_origin(tp)
    if origin is dict:
        if not isinstance(value, Mapping):
            return None
        item = typing.get_args(tp)[1] if typing.get_args(tp) else Any
        return {str(k): _convert(item, v) for k, v in value.items()}
    if origin is list:
        if not isinstance(value, (list, tuple)):
            return None
        item = typing.get_args(tp)[0] if typing.get_args(tp) else Any
        if _record_in(item) is not None:
            return [_convert(item, v) for v in value if isinstance(v, Mapping)]
        return list(value)
    return value


def _dump(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


@dataclass
class Record:
    """Base of every results record (see the module docstring)."""

    extra: dict[str, Any] = field(default_factory=dict, kw_only=True, repr=False)
    keys: tuple[str, ...] | None = field(default=None, kw_only=True, repr=False, compare=False)

    @classmethod
    def from_dict(cls: type[R], data: Any) -> R | None:
        """The record read from its JSON form; None when `data` is not a mapping."""
        if not isinstance(data, Mapping):
            return None
        values: dict[str, Any] = {}
        for s in _specs(cls):
            if s.flatten:
                group = _record_in(s.hint)
                mine = {k: data[k] for k in _json_keys(group) if k in data}
                values[s.name] = group.from_dict(mine) if mine else None
            elif s.key in data:
                values[s.name] = _convert(s.hint, data[s.key])
        known = set(_json_keys(cls))
        extra = {str(k): v for k, v in data.items() if k not in known}
        return cls(**values, extra=extra, keys=tuple(str(k) for k in data))

    @classmethod
    def coerce(cls: type[R], data: Any) -> R | None:
        """`data` itself when it is already this record, else `from_dict(data)`."""
        return data if isinstance(data, cls) else cls.from_dict(data)

    def has(self, name: str) -> bool:
        """Whether the JSON key `name` is part of this record's JSON form: given when it was read (null
        included), or set since."""
        return name in self.to_dict()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see the module docstring)."""
        out: dict[str, Any] = {}
        for s in _specs(type(self)):
            value = getattr(self, s.name)
            if s.flatten:
                if value is not None:
                    out.update(value.to_dict())
                continue
            if value is None and (s.key not in self.keys if self.keys is not None else s.omit_none):
                continue
            out[s.key] = _dump(value)
        for k, v in self.extra.items():
            out.setdefault(k, _dump(v))
        if self.keys is None:
            return out
        ordered = {k: out[k] for k in self.keys if k in out}
        ordered.update((k, v) for k, v in out.items() if k not in ordered)
        return ordered
