"""Turn plain data (from YAML or the environment) into attrs instances, with located errors.

cattrs structures attrs classes well, but its errors carry neither the file line nor a
suggestion for a misspelled key, and both are what a user needs; the types configuration
uses are few (scalars, lists, string-keyed dicts, optionals, literals, enums, nested attrs
classes), so this small structurer owns the whole message.

Values that came from the environment arrive as :class:`EnvValue` strings and are
converted by the field's type (``"true"`` for a bool, ``"a,b"`` for a list of strings).
"""

from __future__ import annotations

import enum
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from lockgate.errors import ConfigError, MissingKeyError
from lockgate.schema.settings import missing_key, refused_key

__all__ = ["EnvValue", "Locator", "did_you_mean", "structure"]

T = TypeVar("T")
KeyPath = tuple[str, ...]
Locator = Callable[[KeyPath], str]
"""Maps a key path to where it was written, e.g. ``lockgate.yaml:12`` or an env var name."""

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class EnvValue(str):
    """A raw string from an environment variable; converted by the target field's type."""

    __slots__ = ()


def did_you_mean(word: str, candidates: Sequence[str], choices: str = "valid keys") -> str:
    """``; did you mean 'x'?`` for the closest candidate, else ``; <choices>: a, b``."""
    import difflib  # only on this path: ~2 ms of every command's start-up otherwise

    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    if candidates:
        return f"; {choices}: {', '.join(sorted(candidates))}"
    return "; this section takes no keys"


def structure(cls: type[T], data: Any, path: KeyPath, where: Locator) -> T:
    """Build ``cls`` (an attrs class) from ``data``; raise :class:`ConfigError` on any mismatch."""
    return typing.cast(T, _structure_attrs(cls, data, path, where))


def _dotted(path: KeyPath) -> str:
    return ".".join(path) if path else "(top level)"


def _describe(value: Any) -> str:
    if isinstance(value, EnvValue):
        return f"{str(value)!r}"
    if value is None:
        return "nothing (null)"
    kind = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}"
    )
    return f"{value!r} ({kind})" if not isinstance(value, dict | list) else kind


def _fail(path: KeyPath, where: Locator, message: str) -> typing.NoReturn:
    raise ConfigError(f"{where(path)}: {_dotted(path)}: {message}")


def _structure_attrs(cls: type, data: Any, path: KeyPath, where: Locator) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        _fail(path, where, f"expected a mapping of settings, got {_describe(data)}")
    attrs.resolve_types(cls)
    fields = {f.name: f for f in attrs.fields(cls)}
    for key in data:
        if key not in fields:
            suggestion = did_you_mean(str(key), list(fields))
            child = (*path, str(key))
            raise ConfigError(f"{where(child)}: unknown key '{_dotted(child)}'{suggestion}")
    missing = missing_key(cls, data, path)  # a required key not set: say which, and how
    if missing is not None:
        raise MissingKeyError(f"{where(path)}: {missing}")
    kwargs = {
        name: _convert(f.type, data[name], (*path, name), where)
        for name, f in fields.items()
        if name in data
    }
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        named = refused_key(exc, kwargs)  # point at the key a validator refused
        _fail(path if named is None else (*path, named), where, str(exc))


def _convert(tp: Any, value: Any, path: KeyPath, where: Locator) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any or tp is object:
        return value
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        empty = value is None or (isinstance(value, EnvValue) and value.strip() in ("", "null"))
        if empty and len(non_none) < len(args):
            return None
        if len(non_none) == 1:
            return _convert(non_none[0], value, path, where)
        for option in non_none:
            try:
                return _convert(option, value, path, where)
            except ConfigError:
                continue
        _fail(path, where, f"{_describe(value)} matches none of the allowed types")
    if isinstance(value, EnvValue):
        value = _from_env(tp, value, path, where)
    if attrs.has(tp):
        return _structure_attrs(tp, value, path, where)
    if origin is typing.Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            _fail(path, where, f"{_describe(value)} is not one of {choices}")
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            choices = ", ".join(repr(m.value) for m in tp)
            _fail(path, where, f"{_describe(value)} is not one of {choices}")
    if tp is bool:
        if not isinstance(value, bool):
            _fail(path, where, f"expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(path, where, f"expected a whole number, got {_describe(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            _fail(path, where, f"expected a number, got {_describe(value)}")
        if not math.isfinite(value):
            _fail(path, where, f"expected a finite number, got {_describe(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            _fail(path, where, f"expected a string, got {_describe(value)}; quote it")
        return str(value)
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if not isinstance(value, list):
            _fail(path, where, f"expected a list, got {_describe(value)}")
        item_type = args[0] if args else Any
        items = [_convert(item_type, v, (*path, str(i)), where) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or tp is tuple else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            _fail(path, where, f"expected a mapping, got {_describe(value)}")
        value_type = args[1] if len(args) == 2 else Any
        return {str(k): _convert(value_type, v, (*path, str(k)), where) for k, v in value.items()}
    raise TypeError(f"configuration type {tp!r} at {_dotted(path)} is not supported")


def _from_env(tp: Any, raw: EnvValue, path: KeyPath, where: Locator) -> Any:
    """Interpret an environment string according to the type it must become."""
    text = str(raw).strip()
    origin = typing.get_origin(tp)
    if tp is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        _fail(path, where, f"expected true or false, got {_describe(raw)}")
    if tp in (int, float):
        try:
            return tp(text)
        except ValueError:
            _fail(path, where, f"expected a number, got {_describe(raw)}")
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if text.startswith("["):
            return _yaml_value(text, path, where)
        return [part.strip() for part in text.split(",") if part.strip()]
    if origin in (dict, Mapping) or tp is dict or attrs.has(tp):
        return _yaml_value(text, path, where)
    return str(raw)


def _yaml_value(text: str, path: KeyPath, where: Locator) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        _fail(path, where, f"cannot parse {text!r} as YAML: {exc}")
