"""Role objects as the kernel holds them: a fault in a plugin's code names the plugin.

Every object a plugin supplies for a role (state store, content store, source, target)
reaches the kernel inside a :class:`Guarded` proxy, and its factory is called through
:func:`build`. A call that raises anything but a :class:`~lockgate.errors.LockgateError`
becomes a :class:`~lockgate.errors.PluginCallError` naming the plugin, its distribution
and version, the role and the method (exit 3), with the original exception as its
``__cause__``. What passes through unchanged:

- every ``LockgateError``: a plugin raises those on purpose, and the kernel relies on
  them (``ConflictError`` from a compare-and-swap, ``NotFoundError`` from a store);
- an environment fault (disk full, permission denied, read-only storage: see
  :func:`~lockgate.errors.environment_fault`), which is the machine's, not the plugin's
  (exit 4, as before), and ``FileNotFoundError``, which the kernel reports as a file
  that went away.

What it costs: a method is wrapped on its first use and the wrapper kept on the proxy,
so a call is one Python call more (under a microsecond). Staging makes one guarded call
per file (the content store's ``ingest``), so 10,000 files pay a few milliseconds.

What it does not cover: an exception raised later by an object a call returned (a
stream being read, an iterator being consumed) is reported as before. ``isinstance``
and ``obj.__class__`` see the plugin's own class; ``type(obj)`` is the proxy's.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

from lockgate.errors import LockgateError, PluginCallError, environment_fault

__all__ = ["Guarded", "Owner", "build", "unguarded"]


class Owner:
    """Who supplied a role object: the plugin, as errors name it, and what it plays."""

    __slots__ = ("label", "plugin", "role")

    def __init__(self, plugin: str, label: str, role: str) -> None:
        self.plugin = plugin
        self.label = label  # "plugin 'x' (distribution version)"
        self.role = role  # "stage target 'flaky'"

    def fault(self, method: str, exc: BaseException) -> PluginCallError:
        """The one-line error for ``exc`` raised in ``method``."""
        return PluginCallError(
            f"{self.label} failed in {method}() of {self.role}: {type(exc).__name__}: {exc}",
            plugin=self.plugin,
            method=method,
        )


def _passes(exc: Exception) -> bool:
    return isinstance(exc, LockgateError | FileNotFoundError) or environment_fault(exc) is not None


def build(owner: Owner, factory: Callable[[Any], Any], context: Any) -> Guarded:
    """Call a role's ``factory`` and guard what it returns (a factory that rejects its
    options with a ``ValueError`` is the plugin's error, naming it)."""
    try:
        built = factory(context)
    except Exception as exc:
        if _passes(exc):
            raise
        raise owner.fault("factory", exc) from exc
    return Guarded(built, owner)


def _wrap(method: Callable[..., Any], owner: Owner, name: str) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            if _passes(exc):
                raise
            raise owner.fault(name, exc) from exc

    return call


class Guarded:
    """A role object whose method calls are attributed to the plugin that supplied it."""

    def __init__(self, wrapped: Any, owner: Owner) -> None:
        object.__setattr__(self, "_guarded", wrapped)
        object.__setattr__(self, "_guard_owner", owner)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance() sees the plugin's class
        return type(object.__getattribute__(self, "_guarded"))

    def __getattr__(self, name: str) -> Any:
        wrapped = object.__getattribute__(self, "_guarded")
        value = getattr(wrapped, name)
        if name.startswith("__") or not callable(value) or isinstance(value, type):
            return value
        guarded = _wrap(value, object.__getattribute__(self, "_guard_owner"), name)
        if isinstance(value, types.MethodType) and value.__self__ is wrapped:
            object.__setattr__(self, name, guarded)  # found directly from now on
        return guarded

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__.pop(name, None)
        setattr(object.__getattribute__(self, "_guarded"), name, value)

    def __delattr__(self, name: str) -> None:
        self.__dict__.pop(name, None)
        delattr(object.__getattribute__(self, "_guarded"), name)

    def __repr__(self) -> str:
        return repr(object.__getattribute__(self, "_guarded"))


def unguarded(obj: Any) -> Any:
    """The plugin's own object behind ``obj`` (``obj`` itself when it is not guarded)."""
    return obj.__dict__["_guarded"] if type(obj) is Guarded else obj
