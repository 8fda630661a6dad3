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
order, then all others sorted by name. The kernel walks the implementations itself
(:class:`~lockgate.core.hooks.HookRunner`), in that same order whenever each was imported.

Lazy import: a plugin that declares, in the ``lockgate.hooks`` entry-point group of its
distribution, which hooks it implements (and the names it registers through provider
hooks) is discovered and selected as any other, but imported only when the kernel first
needs one of those hooks (or one of those names): ``lockgate stage`` does not import the
validators nor the watcher. A plugin that declares nothing is imported at once, as
always. A declaration is read from the same ``entry_points.txt`` as the plugin's entry
point, so it changes exactly when the installed distributions do, and needs no cache of
its own. When a plugin is imported, the hooks it implements must be ones it declared
(else it fails, with the hook named): a declaration that is not true is found the
first time it matters. See docs/plugins.md, "Imported when needed".
"""

from __future__ import annotations

import inspect
import sys
import threading
import types
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs
import pluggy

from lockgate import hookspecs
from lockgate._startup import scan_entry_points
from lockgate.contracts.records import record
from lockgate.core.selection import Declaration, Selection
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
    "HOOKS_GROUP",
    "Candidate",
    "Declaration",
    "PluginInfo",
    "PluginSet",
    "Selection",
    "discover",
    "load_plugins",
    "make_plugin_manager",
]

ENTRY_POINT_GROUP = PROJECT_NAME
HOOKS_GROUP = f"{PROJECT_NAME}.hooks"
"""Where a distribution declares what each of its plugins implements (see
:class:`Declaration`), under the plugin's own name."""
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
    declaration: str | None = None  # its entry in the lockgate.hooks group, if any

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
    imported: bool = True
    """False for a plugin whose declared hooks no command needed yet (``hooks`` are then
    the declared ones); it may still fail when it is imported."""

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
        declared = {ep.name: ep.value for ep in dist.entry_points if ep.group == HOOKS_GROUP}
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or (ep.name, dist_name) in seen:
                continue
            seen.add((ep.name, dist_name))
            loader, location = _EntryPoint(ep.value), str(where) if where else None
            found.append(
                Candidate(
                    ep.name,
                    ep.value,
                    dist_name,
                    dist.version,
                    loader,
                    location,
                    declared.get(ep.name),
                )
            )
    return found


def _scan_sys_path() -> list[Candidate]:
    """Every entry point of the group on ``sys.path``, read directly (a start-up trick:
    see :func:`lockgate._startup.scan_entry_points`, which also finds ``.egg-info``)."""
    return [
        Candidate(name, value, dist, version, _EntryPoint(value), location, declared)
        for name, value, dist, version, location, declared in scan_entry_points(
            ENTRY_POINT_GROUP, HOOKS_GROUP
        )
    ]


@record
class _EntryPoint:
    """Loads ``module:attr.path [extras]`` the way an importlib.metadata EntryPoint does."""

    value: str

    def load(self) -> Any:
        module_name, _, attr_path = self.value.partition("[")[0].strip().partition(":")
        # __import__, not importlib.import_module: only the former goes through the
        # import statement's machinery, which ``python -X importtime`` reports.
        __import__(module_name.strip())
        obj: Any = sys.modules[module_name.strip()]
        for part in filter(None, attr_path.strip().split(".")):
            obj = getattr(obj, part)
        return obj


@attrs.define
class PluginSet:
    """The outcome of loading: the plugin manager plus what happened to every candidate."""

    pm: pluggy.PluginManager
    infos: dict[str, PluginInfo]
    selection: Selection
    pending: dict[str, tuple[Candidate, Declaration]] = attrs.field(factory=dict)
    """Selected plugins not imported yet, with what they declare, in call order."""
    on_import: Callable[[list[str]], None] | None = None
    """Called with the names of plugins just imported and registered (the project
    settles their settings)."""
    generation: int = 0
    """Counts imports, so what was asked of the registered plugins can be cached."""
    declarations: dict[str, Declaration] = attrs.field(factory=dict)
    """What each selected plugin that declares its hooks declares."""

    _lock: threading.RLock = attrs.field(factory=threading.RLock, init=False, repr=False)
    """Held while pending plugins are imported: threads of one process (the server)
    share a plugin set, and a plugin is imported and registered once."""

    def declaration_names(self, plugin: str, hook: str) -> frozenset[str] | None:
        """The names ``plugin`` declares it registers through ``hook`` (None: not said)."""
        declaration = self.declarations.get(plugin)
        return declaration.names_for(hook) if declaration is not None else None

    def need(self, hook: str, name: str | None = None, *, unnamed_only: bool = False) -> None:
        """Import every pending plugin that declares ``hook``; with ``name``, only those
        that register ``name`` through it or did not say which names they register; with
        ``unnamed_only``, only the latter."""
        if not self.pending:
            return
        with self._lock:
            wanted = []
            for cand, declaration in self.pending.values():
                if hook not in declaration.hooks:
                    continue
                names = declaration.names_for(hook)
                if names is None or (not unnamed_only and (name is None or name in names)):
                    wanted.append((cand, declaration))
            if wanted:
                self._import(wanted)

    def load(self, names: Iterable[str]) -> None:
        """Import the pending plugins among ``names`` (the others are left as they are)."""
        wanted_names = set(names)
        with self._lock:
            wanted = [self.pending[n] for n in self.pending if n in wanted_names]
            if wanted:
                self._import(wanted)

    def load_all(self) -> None:
        """Import every pending plugin (``lockgate plugins``, strict mode)."""
        with self._lock:
            if self.pending:
                self._import(list(self.pending.values()))

    def declared_names(self, hook: str) -> dict[str, str]:
        """Names that pending plugins declare they register through ``hook``: name ->
        plugin."""
        found: dict[str, str] = {}
        for plugin, (_, declaration) in self.pending.items():
            for name in declaration.names_for(hook) or ():
                found.setdefault(name, plugin)
        return found

    def _import(self, wanted: Sequence[tuple[Candidate, Declaration | None]]) -> list[str]:
        """Import and register ``wanted`` (in call order), each in isolation."""
        objects: dict[str, object] = {}
        declared: dict[str, Declaration | None] = {}
        for cand, declaration in wanted:
            self.pending.pop(cand.name, None)
            try:
                objects[cand.name] = cand.entry_point.load()
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                self._fail(cand.name, _one_line(exc))
                continue
            declared[cand.name] = declaration
        # Register in reverse of the call order: pluggy calls the latest registered first.
        for name in reversed(list(objects)):
            error = _register(self.pm, name, objects[name])
            hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(objects[name]) or ()))
            declaration = declared[name]
            if error is None and declaration is not None:
                undeclared = sorted(set(hooks) - declaration.hooks)
                if undeclared:
                    self.pm.unregister(objects[name], name=name)
                    error = (
                        f"implements {', '.join(undeclared)}, which its {HOOKS_GROUP} entry "
                        "point does not declare; add them there (or remove that entry)"
                    )
            if error is not None:
                self._fail(name, error)
            else:
                self.infos[name] = attrs.evolve(self.infos[name], hooks=hooks, imported=True)
        self.generation += 1
        imported = [n for n in objects if self.infos[n].status == "loaded"]
        if imported and self.on_import is not None:
            self.on_import(imported)
        return imported

    def _fail(self, name: str, error: str) -> None:
        self.infos[name] = attrs.evolve(
            self.infos[name], status="failed", error=error, hooks=(), imported=True
        )

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
    *,
    eager: Collection[str] | None = None,
) -> PluginSet:
    """Select every candidate; import and register, each in isolation, those that
    ``selection`` allows and that declare nothing or are named in ``eager`` (None: all
    of them). The others wait in :attr:`PluginSet.pending` until one of their declared
    hooks is needed (see the module docstring)."""
    pm = pm or make_plugin_manager()
    known = {name for name in vars(pm.hook) if getattr(pm.hook, name).spec is not None}
    infos: dict[str, PluginInfo] = {}
    now: list[tuple[Candidate, Declaration | None]] = []
    pending: dict[str, tuple[Candidate, Declaration]] = {}
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
        declaration = None
        if cand.declaration is not None:
            try:
                declaration = Declaration.parse(cand.declaration, known)
            except ValueError as exc:
                infos[cand.name] = attrs.evolve(
                    base,
                    status="failed",
                    error=f"its {HOOKS_GROUP} entry point {exc}; fix it in the distribution's "
                    "entry points (docs/plugins.md)",
                )
                continue
        if declaration is not None and eager is not None and cand.name not in eager:
            infos[cand.name] = attrs.evolve(
                base, hooks=tuple(sorted(declaration.hooks)), imported=False
            )
            pending[cand.name] = (cand, declaration)
            continue
        infos[cand.name] = base
        now.append((cand, declaration))
    plugins = PluginSet(
        pm=pm,
        infos=infos,
        selection=selection,
        pending=pending,
        declarations={c.name: d for c, d in [*now, *pending.values()] if d is not None},
    )
    plugins._import(now)
    return plugins


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
