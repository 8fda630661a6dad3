"""Discover, select and load plugins from the ``lockgate`` entry-point group.

One pass over the group yields every candidate with its distribution and version, before
anything is imported. Selection decides which candidates load (a blocked plugin is never
imported); each allowed one is then imported and registered in isolation, so one broken
plugin is recorded and the others still load.

Selection, one rule: **a plugin loads unless a disable list names it, or an allowlist
that is set does not name it.** The disable lists are ``plugins.disable`` in
``lockgate.yaml`` and ``LOCKGATE_DISABLE_PLUGINS``; the allowlists are ``plugins.only``
and, for third-party plugins only, ``LOCKGATE_LOAD_PLUGINS`` (set to "" it loads no
third-party plugin). Disable always wins.

Order: pluggy calls ``tryfirst`` implementations, then normal ones, then ``trylast`` ones,
and within a band the most recently registered first. Plugins are therefore registered in
the reverse of the desired order: the names listed in ``plugins.order`` first, in that
order, then all others sorted by name.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import types
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs
import pluggy

from lockgate import hookspecs
from lockgate._startup import scan_entry_points
from lockgate.contracts.records import record
from lockgate.errors import ConfigError, PluginLoadError
from lockgate.hookspecs import PROJECT_NAME
from lockgate.schema.structure import did_you_mean

if TYPE_CHECKING:
    if sys.version_info >= (3, 12):
        from importlib import metadata
    else:
        import importlib_metadata as metadata

__all__ = [
    "ENTRY_POINT_GROUP",
    "Candidate",
    "PluginInfo",
    "PluginSet",
    "Selection",
    "discover",
    "load_plugins",
    "make_plugin_manager",
]

ENTRY_POINT_GROUP = PROJECT_NAME
BUILTIN_DISTRIBUTION = "lockgate"

Status = Literal["loaded", "disabled", "failed"]


class _PluginManager(pluggy.PluginManager):
    """pluggy's manager, quicker to register module plugins.

    pluggy looks at every name a plugin has with :func:`inspect.getattr_static` (some
    10 microseconds each), and a builtin plugin module has dozens: everything it imports
    from :mod:`lockgate.plugin`. A module attribute is never a descriptor, so a name whose
    value in the module's dict is not a function or method is skipped by a dict lookup;
    the rest goes through pluggy's own parsing, unchanged.
    """

    def parse_hookimpl_opts(self, plugin: object, name: str) -> Any:
        if type(plugin) is types.ModuleType and not isinstance(
            plugin.__dict__.get(name), _HOOKABLE
        ):
            return None
        return super().parse_hookimpl_opts(plugin, name)


_HOOKABLE = (types.FunctionType, types.MethodType, staticmethod, classmethod)


def make_plugin_manager() -> pluggy.PluginManager:
    """A fresh plugin manager that knows lockgate's hook specifications (no plugins yet)."""
    pm = _PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


@record
class Candidate:
    """An entry point in the ``lockgate`` group, not yet imported."""

    name: str
    value: str
    distribution: str | None
    version: str | None
    entry_point: Any = attrs.field(eq=False, repr=False)
    location: str | None = None  # the distribution's metadata directory (….dist-info)

    @property
    def builtin(self) -> bool:
        """True for the plugins shipped inside the ``lockgate`` distribution itself."""
        return self.distribution == BUILTIN_DISTRIBUTION

    @property
    def label(self) -> str:
        """``'name' (distribution version)``, the way errors name a plugin."""
        dist = (
            f"{self.distribution} {self.version}" if self.distribution else "unknown distribution"
        )
        return f"plugin '{self.name}' ({dist})"


@record
class PluginInfo:
    """What ``lockgate plugins`` shows for one plugin."""

    name: str
    value: str
    distribution: str | None
    version: str | None
    builtin: bool
    status: Status
    hooks: tuple[str, ...] = ()
    reason: str | None = None
    error: str | None = None
    may_validate: bool = True
    """False only for a plugin known to make no checks: one that failed after it had
    registered, with no ``on_validate``. Gates fail closed for every other failed one."""
    location: str | None = None  # the distribution's metadata directory, when known

    @property
    def label(self) -> str:
        """``'name' (distribution version)``, the way errors name a plugin."""
        dist = (
            f"{self.distribution} {self.version}" if self.distribution else "unknown distribution"
        )
        return f"plugin '{self.name}' ({dist})"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "status": self.status,
            "hooks": list(self.hooks),
            "reason": self.reason,
            "error": self.error,
            "entry_point": self.value,
        }


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


def discover(distributions: Iterable[metadata.Distribution] | None = None) -> list[Candidate]:
    """Every entry point in the ``lockgate`` group, without importing any of them.

    ``distributions`` replaces the installed set (tests hand in fake distributions).
    The same (name, distribution) seen twice, as editable installs can cause, counts once.
    """
    if distributions is None:
        return _scan_sys_path()
    seen: set[tuple[str, str | None]] = set()
    found: list[Candidate] = []
    for dist in distributions:
        dist_name = dist.metadata["Name"]
        where = getattr(dist, "_path", None)  # a PathDistribution's metadata directory
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or (ep.name, dist_name) in seen:
                continue
            seen.add((ep.name, dist_name))
            loader, location = _EntryPoint(ep.value), str(where) if where else None
            found.append(Candidate(ep.name, ep.value, dist_name, dist.version, loader, location))
    return found


def _scan_sys_path() -> list[Candidate]:
    """Every entry point of the group on ``sys.path``, read directly (a start-up trick:
    see :func:`lockgate._startup.scan_entry_points`, which also finds ``.egg-info``)."""
    return [
        Candidate(name, value, dist, version, _EntryPoint(value), location)
        for name, value, dist, version, location in scan_entry_points(ENTRY_POINT_GROUP)
    ]


@record
class _EntryPoint:
    """Loads ``module:attr.path [extras]`` the way an importlib.metadata EntryPoint does."""

    value: str

    def load(self) -> Any:
        module_name, _, attr_path = self.value.partition("[")[0].strip().partition(":")
        obj: Any = importlib.import_module(module_name.strip())
        for part in filter(None, attr_path.strip().split(".")):
            obj = getattr(obj, part)
        return obj


@attrs.define
class PluginSet:
    """The outcome of loading: the plugin manager plus what happened to every candidate."""

    pm: pluggy.PluginManager
    infos: dict[str, PluginInfo]
    selection: Selection

    @property
    def loaded(self) -> list[PluginInfo]:
        """Plugins that loaded, in call order."""
        names = sorted(
            (i.name for i in self.infos.values() if i.status == "loaded"),
            key=self.selection.sort_key,
        )
        return [self.infos[n] for n in names]

    @property
    def failures(self) -> list[PluginInfo]:
        """Plugins that failed to load."""
        return [i for i in self.infos.values() if i.status == "failed"]

    def info(self, name: str) -> PluginInfo:
        """The record of plugin ``name`` (KeyError if no such candidate)."""
        return self.infos[name]

    def mark_failed(self, name: str, error: str) -> None:
        """Unload plugin ``name`` and record ``error`` (a load-time hook raised)."""
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin, name=name)
        info = self.infos[name]
        may_validate = info.status != "loaded" or "on_validate" in info.hooks
        self.infos[name] = attrs.evolve(
            info, status="failed", error=error, hooks=(), may_validate=may_validate
        )

    def required_problems(self, require: Sequence[str]) -> list[str]:
        """One line per ``plugins.require`` entry the loaded set does not satisfy: not
        installed, disabled, failed, or of a version outside the specifier."""
        problems = []
        for text in require:
            wanted = parse_requirement(text)
            found = [i for i in self.infos.values() if i.name == wanted.name]
            if not found:
                found = [i for i in self.infos.values() if _same_dist(i.distribution, wanted.name)]
            if not found:
                names = sorted({i.name for i in self.infos.values()})
                hint = did_you_mean(wanted.name, names, "installed plugins")
                problems.append(f"required plugin {text!r} is not installed{hint}")
            for info in found:
                if info.status != "loaded":
                    why = info.reason if info.status == "disabled" else info.error
                    problems.append(f"required {info.label} is {info.status}: {why}")
                elif wanted.specifier and not wanted.specifier.contains(
                    info.version or "0", prereleases=True
                ):
                    problems.append(
                        f"required {info.label} does not match {text!r}: install a version "
                        f"{wanted.specifier}"
                    )
        return problems

    def check_strict(self) -> None:
        """Raise :class:`PluginLoadError` if any plugin failed (strict mode)."""
        failures = self.failures
        if failures:
            first = failures[0]
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            raise PluginLoadError(
                f"{first.label} failed to load: {first.error}{more}; fix or disable it "
                "(plugins.disable or LOCKGATE_DISABLE_PLUGINS), or drop --strict-plugins"
            )


def parse_requirement(text: str) -> Any:
    """A ``plugins.require`` entry as a :class:`packaging.requirements.Requirement`
    (a plugin name, or a distribution with version specifiers); ConfigError when it is
    neither."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return Requirement(text)
    except InvalidRequirement as exc:
        raise ConfigError(
            f"plugins.require: {text!r} is not a plugin name or a requirement such as "
            f"'lockgate-licence-header>=1.2,<2' ({str(exc).splitlines()[0]})"
        ) from None


def _same_dist(distribution: str | None, name: str) -> bool:
    from packaging.utils import canonicalize_name

    return distribution is not None and canonicalize_name(distribution) == canonicalize_name(name)


_UNSUPPORTED_OPTS = ("wrapper", "hookwrapper")


def load_plugins(
    candidates: Sequence[Candidate],
    selection: Selection,
    pm: pluggy.PluginManager | None = None,
) -> PluginSet:
    """Import and register every candidate ``selection`` allows, each in isolation."""
    pm = pm or make_plugin_manager()
    infos: dict[str, PluginInfo] = {}
    objects: dict[str, object] = {}
    for cand in sorted(candidates, key=lambda c: selection.sort_key(c.name)):
        base = PluginInfo(
            name=cand.name,
            value=cand.value,
            distribution=cand.distribution,
            version=cand.version,
            builtin=cand.builtin,
            status="loaded",
            location=cand.location,
        )
        if cand.name in infos:
            other = infos[cand.name]
            infos[f"{cand.name}@{cand.distribution}"] = attrs.evolve(
                base,
                status="failed",
                error=f"the name '{cand.name}' is already used by {other.label}; "
                "uninstall one of the two distributions",
            )
            continue
        reason = selection.blocked_by(cand)
        if reason is not None:
            infos[cand.name] = attrs.evolve(base, status="disabled", reason=reason)
            continue
        try:
            objects[cand.name] = cand.entry_point.load()
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            infos[cand.name] = attrs.evolve(base, status="failed", error=_one_line(exc))
            continue
        infos[cand.name] = base
    # Register in reverse of the call order: pluggy calls the latest registered first.
    for name in reversed(list(objects)):
        error = _register(pm, name, objects[name])
        info = infos[name]
        if error is not None:
            infos[name] = attrs.evolve(info, status="failed", error=error)
        else:
            hooks = tuple(sorted(h.name for h in pm.get_hookcallers(objects[name]) or ()))
            infos[name] = attrs.evolve(info, hooks=hooks)
    return PluginSet(pm=pm, infos=infos, selection=selection)


def _register(pm: pluggy.PluginManager, name: str, plugin: object) -> str | None:
    """Register ``plugin``; return an error message instead of raising."""
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        return _argument_problem(pm, plugin) or _one_line(exc)
    except ValueError as exc:
        return _one_line(exc)
    problem = _check_registered(pm, name, plugin)
    if problem is not None:
        pm.unregister(plugin, name=name)
    return problem


def _argument_problem(pm: pluggy.PluginManager, plugin: object) -> str | None:
    """One line when a hook implementation names an argument its specification does not
    have, with the closest real one (pluggy's own message is three lines, no hint)."""
    import difflib

    for attr in dir(plugin):
        impl = getattr(plugin, attr, None)
        opts = getattr(impl, "lockgate_impl", None)
        if not callable(impl) or not isinstance(opts, dict):
            continue
        hook = opts.get("specname") or attr
        spec = getattr(getattr(pm.hook, hook, None), "spec", None)
        if spec is None:
            continue
        wanted = list(spec.argnames)
        for arg in inspect.signature(impl).parameters:
            if arg not in wanted:
                close = difflib.get_close_matches(arg, wanted, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                return f"hook '{hook}' has no argument '{arg}' (it takes {', '.join(wanted)}){hint}"
    return None


def _check_registered(pm: pluggy.PluginManager, name: str, plugin: object) -> str | None:
    known = sorted(n for n in vars(pm.hook) if getattr(pm.hook, n).spec is not None)
    for caller in pm.get_hookcallers(plugin) or ():
        for impl in caller.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            if caller.spec is None:
                import difflib

                close = difflib.get_close_matches(caller.name, known, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                return f"implements unknown hook '{caller.name}'{hint}"
            if any(impl.opts.get(opt) for opt in _UNSUPPORTED_OPTS):
                return (
                    f"hook '{caller.name}' is a wrapper; lockgate calls implementations one "
                    "at a time to attribute results, so wrapper=True/hookwrapper=True are "
                    "not supported"
                )
            if inspect.iscoroutinefunction(impl.function):
                return f"hook '{caller.name}' is async; lockgate hooks are plain functions"
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
