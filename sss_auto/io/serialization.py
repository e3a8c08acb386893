"""Dataclasses to and from JSON-ready dicts, strictly: unknown or missing keys are errors."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path


class SchemaError(ValueError):
    """A dict does not match a dataclass; the message names the key path."""


def to_dict(obj: object) -> dict:
    """A dataclass as a dict in field order (paths become strings; tuples become lists when written as JSON)."""
    return dataclasses.asdict(obj, dict_factory=lambda items: {k: str(v) if isinstance(v, Path) else v for k, v in items})


def from_dict(cls: type, data: object, where: str = "") -> object:
    """Build dataclass `cls` from `data`, converting nested dataclasses, tuples and dicts.

    Raises:
        SchemaError: naming the key (e.g. "configurations.2d.patch_size") that is unknown,
            missing or of the wrong type.
    """
    return _convert(cls, data, where or cls.__name__)


def _convert(tp, value, where: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise SchemaError(f"{where}: expected an object, got {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp)}
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise SchemaError(f"{where}: unknown key(s) {', '.join(unknown)}")
        kwargs = {}
        for name, field in fields.items():
            if name in value:
                kwargs[name] = _convert(hints[name], value[name], f"{where}.{name}")
            elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise SchemaError(f"{where}: missing key {name}")
        return tp(**kwargs)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(option, value, where)
            except SchemaError as err:
                errors.append(str(err))
        raise SchemaError(errors[0] if errors else f"{where}: null is not allowed")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise SchemaError(f"{where}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise SchemaError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is list:
        if not isinstance(value, list):
            raise SchemaError(f"{where}: expected a list, got {type(value).__name__}")
        return [_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise SchemaError(f"{where}: expected an object, got {type(value).__name__}")
        return {k: _convert(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SchemaError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SchemaError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise SchemaError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise SchemaError(f"{where}: expected a string, got {value!r}")
        return value
    if tp is Path:
        return Path(value)
    raise TypeError(f"{where}: unsupported field type {tp!r}")
