"""Which plugins load, and what a plugin declares before it is imported.

:class:`Selection` is the one rule that decides whether a discovered plugin loads (see
:mod:`lockgate.core.plugins`); :class:`Declaration` is what a plugin says it implements in
the ``lockgate.hooks`` entry-point group, so that it is imported only when needed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Protocol

from lockgate.contracts.records import record
from lockgate.errors import ConfigError
from lockgate.schema.structure import did_you_mean


class Candidate(Protocol):
    """What selection reads of a discovered plugin (a :class:`lockgate.core.plugins.Candidate`)."""

    @property
    def name(self) -> str: ...

    @property
    def builtin(self) -> bool: ...


__all__ = ["Declaration", "Selection"]


@record
class Selection:
    """Which plugins may load; see the module docstring for the one precedence rule."""

    disable: frozenset[str] = frozenset()
    env_disable: frozenset[str] = frozenset()
    only: frozenset[str] | None = None
    load_third_party: frozenset[str] | None = None
    order: tuple[str, ...] = ()

    @classmethod
    def from_settings(
        cls,
        *,
        disable: Iterable[str] = (),
        only: Iterable[str] | None = None,
        order: Iterable[str] = (),
        environ: Mapping[str, str],
    ) -> Selection:
        """Combine the ``plugins:`` settings with ``LOCKGATE_DISABLE_PLUGINS``/``_LOAD_PLUGINS``."""
        env_load = environ.get("LOCKGATE_LOAD_PLUGINS")
        return cls(
            disable=frozenset(disable),
            env_disable=frozenset(_split(environ.get("LOCKGATE_DISABLE_PLUGINS", ""))),
            only=frozenset(only) if only is not None else None,
            load_third_party=frozenset(_split(env_load)) if env_load is not None else None,
            order=tuple(order),
        )

    def check_names(self, known: Collection[str]) -> None:
        """Refuse a name in ``LOCKGATE_DISABLE_PLUGINS``/``_LOAD_PLUGINS`` that no
        installed plugin has: a typo there would load (or drop) a gate silently."""
        lists: list[tuple[str, frozenset[str]]] = [("LOCKGATE_DISABLE_PLUGINS", self.env_disable)]
        if self.load_third_party is not None:
            lists.append(("LOCKGATE_LOAD_PLUGINS", self.load_third_party))
        for variable, names in lists:
            for name in sorted(names):
                if name not in known:
                    hint = did_you_mean(name, sorted(known), "installed plugins")
                    raise ConfigError(
                        f"environment {variable}: no installed plugin is named {name!r}{hint}"
                    )

    def blocked_by(self, candidate: Candidate) -> str | None:
        """Why ``candidate`` must not load, or None when it may."""
        if candidate.name in self.disable:
            return "disabled by plugins.disable"
        if candidate.name in self.env_disable:
            return "disabled by LOCKGATE_DISABLE_PLUGINS"
        if self.only is not None and candidate.name not in self.only:
            return "not listed in plugins.only"
        if (
            not candidate.builtin
            and self.load_third_party is not None
            and candidate.name not in self.load_third_party
        ):
            return "not listed in LOCKGATE_LOAD_PLUGINS"
        return None

    def sort_key(self, name: str) -> tuple[int, str]:
        """Position of ``name`` in the call order within a tryfirst/normal/trylast band."""
        try:
            return (self.order.index(name), "")
        except ValueError:
            return (len(self.order), name)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@record
class Declaration:
    """What a plugin says it implements, before it is imported: its ``lockgate.hooks``
    entry, hook names separated by spaces, a provider hook followed by the names it
    registers in parentheses::

        sqlite = "register_settings register_state_stores(sqlite)"
    """

    hooks: frozenset[str]
    names: tuple[tuple[str, frozenset[str]], ...] = ()

    @classmethod
    def parse(cls, text: str, known: Collection[str]) -> Declaration:
        """The declaration ``text``; ValueError (one line) when it cannot be read or names
        a hook lockgate does not have."""
        import re

        hooks: set[str] = set()
        names: list[tuple[str, frozenset[str]]] = []
        for match in re.finditer(r"(\w+)(?:\(([^()]*)\))?|(\S)", text):
            hook, listed, stray = match.groups()
            if stray is not None:
                break
            if hook not in known:
                close = did_you_mean(hook, sorted(known), "hooks")
                raise ValueError(f"declares unknown hook '{hook}'{close}")
            hooks.add(hook)
            if listed is not None:
                found = frozenset(n.strip() for n in listed.split(",") if n.strip())
                names.append((hook, found))
        else:
            if hooks:
                return cls(frozenset(hooks), tuple(names))
        raise ValueError(
            f"{text!r} is not a list of hook names such as "
            "'register_settings register_targets(directory)'"
        )

    def names_for(self, hook: str) -> frozenset[str] | None:
        """The names declared for provider hook ``hook`` (None: not said)."""
        return next((found for h, found in self.names if h == hook), None)
