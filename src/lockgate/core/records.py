"""``@record``: ``attrs.frozen`` with shared ``__repr__``, ``__eq__`` and ``__hash__``.

attrs writes and compiles the source of every method of every class it builds, about
0.6 ms per frozen class here, and a command imports some seventy of them before doing
anything. ``__repr__`` and ``__eq__`` are more than half of that, and neither is on a hot
path, so :func:`record` builds the class with ``repr=False, eq=False`` and gives it
generic ones that behave as attrs' own: ``ClassName(field=value, ...)`` over the fields
with ``repr=True``; equality and hashing over the fields with ``eq=True``, only between
instances of the very same class. Type checkers see ``attrs.frozen`` itself.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

__all__ = ["record"]

_C = TypeVar("_C", bound=type)

if TYPE_CHECKING:
    from attrs import frozen as record
else:

    def record(maybe_cls: _C | None = None, /, **options: Any) -> Any:
        """``attrs.frozen`` (same options), with shared repr, eq and hash."""
        if options.get("order") or "repr" in options or "eq" in options:
            return attrs.frozen(maybe_cls, **options)  # pragma: no cover - not used so

        def wrap(cls: _C) -> _C:
            built: Any = attrs.frozen(cls, repr=False, eq=False, **options)
            _share_methods(built)
            return built  # type: ignore[no-any-return]

        return wrap if maybe_cls is None else wrap(maybe_cls)


def _share_methods(cls: Any) -> None:
    fields = attrs.fields(cls)
    shown = tuple((f.name, f.repr) for f in fields if f.repr is not False)
    compared = [f.name for f in fields if f.eq]
    hashed = [f.name for f in fields if (f.hash if f.hash is not None else f.eq)]
    name = cls.__qualname__.rsplit(">.", 1)[-1]
    values = _getter(compared)
    hash_values = _getter(hashed)

    def __repr__(self: Any) -> str:
        parts = []
        for field, how in shown:
            value = getattr(self, field, attrs.NOTHING)
            parts.append(f"{field}={how(value) if callable(how) else repr(value)}")
        return f"{name}({', '.join(parts)})"

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return bool(values(self) == values(other))

    def __hash__(self: Any) -> int:
        return hash((cls, hash_values(self)))

    for method in (__repr__, __eq__, __hash__):
        method.__qualname__ = f"{cls.__qualname__}.{method.__name__}"
        setattr(cls, method.__name__, method)


def _getter(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    if not names:
        return lambda _: ()
    if len(names) == 1:
        one = operator.attrgetter(names[0])
        return lambda obj: (one(obj),)
    return operator.attrgetter(*names)
