"""Open a project: find ``lockgate.yaml``, load configuration and plugins, build roles.

:meth:`Project.open` is the kernel's front door; the CLI and the Python API both go
through it. Opening runs, in this order: find the project; read the file and the
environment layers; validate the kernel's sections; discover plugins (no import); select
and load them; validate plugin names and settings; run ``on_config_load``; re-validate
with the plugins' contributions. A plugin whose ``register_settings`` or
``on_config_load`` raises is treated like one that failed to import: recorded, unloaded,
and reported (fatal only in strict mode).

A plugin that declares its hooks (``lockgate.hooks``) is imported when opening only if
the configuration has a ``plugins.<name>:`` section for it (its settings are checked at
once, as always), ``plugins.require`` names it, it implements ``on_config_load``, or
plugin loading is strict; otherwise when a command first needs one of its hooks, its
names or its settings (:class:`PluginSettings`).
"""

from __future__ import annotations

import os
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs

from lockgate.contracts.content import ContentStore
from lockgate.contracts.identity import Identity, resolve_identity
from lockgate.contracts.secrets import redacted, redacted_raw
from lockgate.contracts.source import Source
from lockgate.contracts.state import StateStore
from lockgate.core.config import CONFIG_FILENAME, Config, ConfigLayers, read_layers
from lockgate.core.context import Operations, PluginContext
from lockgate.core.hooks import HookRunner
from lockgate.core.plugins import (
    PluginSet,
    Selection,
    discover,
    load_plugins,
    parse_requirement,
)
from lockgate.core.roles import ROLES, Roles
from lockgate.errors import (
    ConfigError,
    MissingCapabilityError,
    MissingKeyError,
    NotFoundError,
    PluginHookError,
    PluginLoadError,
    ProjectNotFoundError,
)
from lockgate.schema.structure import did_you_mean

__all__ = ["STATE_DIRNAME", "Project", "find_project_root"]

STATE_DIRNAME = ".lockgate"
_TRUTHY = {"1", "true", "yes", "on"}
_STRICT = "LOCKGATE_STRICT_PLUGINS"
T = TypeVar("T")


def find_project_root(start: Path) -> Path | None:
    """The nearest directory from ``start`` upwards that holds ``lockgate.yaml``."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        if (candidate / CONFIG_FILENAME).is_file():
            return candidate
    return None


@attrs.define
class Project:
    """A loaded project (or, outside any project, the defaults with every plugin)."""

    root: Path | None
    layers: ConfigLayers
    config: Config
    plugins: PluginSet
    hooks: HookRunner
    settings: Mapping[str, Any]
    environ: Mapping[str, str]
    roles: Roles = attrs.field(init=False)
    actor_override: str | None = None
    override_via: str = "--actor"
    """How ``actor_override`` was given (``--actor``, ``python-api``)."""
    authenticated: Identity | None = None
    """The identity a server authenticated (its token's): the actor, no override."""
    # False: operations on this project leave interrupted operations open instead of
    # settling them first (``lockgate recover`` settles itself; crash tests look at them).
    recover_on_open: bool = True
    warn_sink: Callable[[str | None, str], None] | None = None
    """Where plugins' warnings go (:meth:`PluginContext.warn`); None: the log."""
    json_output: bool = False
    verbosity: int = 0
    before_change: Callable[[str], None] | None = None
    """Called with the operation's name each time a lock of the project is taken, before
    the operation changes anything (a server refuses there an operation whose request it
    already answered 504, see ``lockgate.server.timeouts``); may raise to stop it."""
    _built: dict[str, Any] = attrs.field(init=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        self.roles = Roles(self)
        self.hooks.context_factory = self.plugin_context

    def plugin_context(
        self,
        plugin: str | None,
        stage: str | None = None,
        *,
        operations: Operations | None = None,
    ) -> PluginContext:
        """The context ``plugin`` receives: in a hook (about ``stage``, for a stage-bound
        event), or in a plugin command, which the command line gives ``operations``.

        The output options and the warnings channel are the project's (the command line
        sets them from its global options when it opens the project). The kernel builds
        one per plugin and call, lazily: only for implementations that take ``context``.
        """
        extra: dict[str, Any] = {}
        if self.warn_sink is not None:
            extra["sink"] = self.warn_sink
        return PluginContext(
            project_root=self.root,
            plugin=plugin,
            actor=self.actor,
            settings=self.settings.get(plugin) if plugin is not None else None,
            stage=stage,
            stage_config=self.config.stages.get(stage) if stage is not None else None,
            json=self.json_output,
            verbosity=self.verbosity,
            operations=operations,
            **extra,
        )

    @classmethod
    def open(
        cls,
        project_dir: Path | str | None = None,
        *,
        cwd: Path | None = None,
        environ: Mapping[str, str] | None = None,
        strict_plugins: bool | None = None,
        distributions: Iterable[Any] | None = None,
        require: bool = True,
        warn_sink: Callable[[str | None, str], None] | None = None,
    ) -> Project:
        """Open the project at ``project_dir`` (else ``LOCKGATE_PROJECT``, else walk up).

        ``require=False`` opens the defaults when no project is found (for ``plugins``
        and ``config`` outside a project). ``distributions`` replaces the installed
        distributions, for tests. ``warn_sink`` receives the warnings channel's lines
        (deprecated configuration keys first; None: the ``lockgate`` log).
        """
        env = os.environ if environ is None else environ
        root = _locate(project_dir, env, cwd or Path.cwd(), require)
        layers = read_layers(root / CONFIG_FILENAME if root else None, env)
        config = layers.kernel_config()
        candidates = discover(distributions)
        selection = Selection.from_settings(
            disable=config.plugins.disable,
            only=config.plugins.only,
            order=config.plugins.order,
            environ=env,
        )
        known = {c.name for c in candidates}
        selection.check_names(known)
        layers.check_plugin_names(known, config)
        for entry in config.plugins.require:
            _requirement(layers, entry)
        strict = strict_plugins or (strict_plugins is None and _truthy(env, _STRICT))
        eager = None if strict else _needed_at_open(candidates, layers, config.plugins.require)
        plugins = load_plugins(candidates, selection, eager=eager)
        hooks = HookRunner(plugins)
        settings = PluginSettings(plugins)
        settings.update(_plugin_settings(hooks, plugins, layers))
        hooks.set_settings(settings)
        # A plugin imported later (its hook or settings needed) gets its settings then.
        plugins.on_import = lambda names: settings.update(
            _plugin_settings(hooks, plugins, layers, names)
        )
        contributions = _config_contributions(hooks, plugins, layers, root)
        for plugin, contribution in contributions:
            layers.add_plugin_contribution(plugin, contribution)
        if contributions:  # validate again with the plugins' defaults in place
            config = layers.kernel_config()
            settings.update(_plugin_settings(hooks, plugins, layers))
        project = cls(
            root=root,
            layers=layers,
            config=config,
            plugins=plugins,
            hooks=hooks,
            settings=settings,
            environ=env,
            warn_sink=warn_sink,
        )
        for line in layers.deprecations:  # one line per deprecated key: where, old, new
            project.warn(line)
        if strict:
            plugins.check_strict()
        if root is not None:
            project.check_role_names()
        return project

    def required_problems(self) -> list[str]:
        """One line per ``plugins.require`` entry this plugin set does not satisfy."""
        return self.plugins.required_problems(self.config.plugins.require)

    def check_required(self) -> None:
        """Refuse to change state while a required plugin is missing, failed, disabled or
        of the wrong version (read-only commands only warn: see the CLI)."""
        problems = self.required_problems()
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            where = self.layers.where(("plugins", "require"))
            raise PluginLoadError(
                f"{problems[0]}{more}; nothing was changed: install or enable it, or remove "
                f"it from plugins.require ({where})"
            )

    def check_role_names(self, *, strict: bool = False) -> None:
        """Refuse a role name no installed plugin provides. When the project opens
        (``strict=False``) only a likely typo is refused, one close to a name that is
        available (``directroy``), so every command catches it, not a promotion whose
        earlier rungs moved; a name provided by a plugin not installed on this machine
        (a deploy target on a laptop that only stages) is left to the role's first use.
        ``lockgate config validate`` is strict: every name must resolve here."""
        config = self.config
        wanted: list[tuple[str, str, tuple[str, ...]]] = [
            ("state", config.state.store, ("state", "store")),
            ("content", config.content.store, ("content", "store")),
            ("source", config.source.name, ("source", "name")),
        ]
        for stage, section in config.stages.items():
            kinds = {t.kind for t in section.target_list()}
            wanted += [("target", kind, ("stages", stage, "targets")) for kind in sorted(kinds)]
        for role, name, path in wanted:
            available = sorted(self.roles.available(role))
            if name in available:
                continue
            hint = did_you_mean(name, available, "available")
            if not strict and not hint.startswith("; did you mean"):
                continue
            info = self.plugins.infos.get(name)
            if info is not None and info.status != "loaded":
                raise MissingCapabilityError(
                    f"{self.layers.where(path)}: {self.roles.explain_missing(role, name)}"
                )
            raise ConfigError(
                f"{self.layers.where(path)}: {ROLES[role].config_key}: no {ROLES[role].title} "
                f"is named {name!r}{hint}"
            )

    def strict_from_env(self) -> bool:
        """True when ``LOCKGATE_STRICT_PLUGINS`` asks for strict plugin loading."""
        return _truthy(self.environ, _STRICT)

    def warn(self, message: str) -> None:
        """A warning of the kernel's own on the warnings channel (see ``warn_sink``)."""
        if self.warn_sink is not None:
            self.warn_sink(None, message)
        else:
            import logging

            logging.getLogger("lockgate").warning("%s", message)

    @property
    def actor(self) -> str:
        """Who is acting: the name of :attr:`identity`."""
        return self.identity.name

    @property
    def identity(self) -> Identity:
        """Who is acting and how that is known: the authenticated identity (the server),
        else ``--actor``/``LOCKGATE_ACTOR`` when the project allows overrides, else the
        OS user (see :mod:`lockgate.contracts.identity`)."""
        if self.authenticated is not None:
            return self.authenticated
        claimed, via = self.actor_override, self.override_via
        if not claimed:
            claimed, via = self.environ.get("LOCKGATE_ACTOR", "").strip(), "LOCKGATE_ACTOR"
        allowed, why_not = self.overrides_allowed() if claimed else (True, "")
        return resolve_identity(claimed, via, allowed=allowed, why_not=why_not)

    def overrides_allowed(self) -> tuple[bool, str]:
        """Whether the actor may be claimed (``identity.allow_override``, from
        ``lockgate.yaml`` only; unset: unless a stage requires approvals), and why not."""
        key = ("identity", "allow_override")
        if self.layers.source(key).kind == "environment":
            raise ConfigError(
                f"{self.layers.where(key)}: identity.allow_override is read from "
                "lockgate.yaml only; unset the variable"
            )
        explicit = self.config.identity.allow_override
        if explicit is not None:
            return explicit, "identity.allow_override is false"
        # The approvals plugin's settings say which stages need approvals; read by duck
        # type, as the kernel imports no plugin (absent or disabled: none do).
        for_stage = getattr(self.settings.get("approvals"), "for_stage", None)
        needing = [s for s in self.stage_names if for_stage and for_stage(s)[0] > 0]
        return not needing, f"stage {', '.join(needing)} requires approvals"

    @property
    def stage_names(self) -> list[str]:
        """The ladder, in order."""
        return list(self.config.stages)

    def check_stage(self, name: str | None) -> str:
        """``name`` if it is a configured stage (None: the first stage), else an error."""

        ladder = self.stage_names
        if name is None:
            return ladder[0]
        if name not in ladder:
            hint = did_you_mean(name, ladder)
            hint = hint if hint.startswith("; did you mean") else ""
            raise NotFoundError(f"no stage '{name}' (stages: {' → '.join(ladder)}){hint}")
        return name

    def source(self) -> Source:
        """The component source (role ``source``, ``source.name``); it reads its own
        settings (``plugins.workspace:`` for the builtin one)."""
        return typing.cast(Source, self._role("source", self.config.source.name))

    def content(self) -> ContentStore:
        """The content store (role ``content``, ``content.store``)."""
        return typing.cast(ContentStore, self._role("content", self.config.content.store))

    def state(self) -> StateStore:
        """The state store (role ``state``, ``state.store``).

        Opening it has no side effect: settling the operations a crash interrupted is the
        first step of every operation (``lockgate.operations.recover.settle``), not of
        this accessor.
        """
        return typing.cast(StateStore, self._role("state", self.config.state.store))

    def kept(self, key: str, build: Callable[[], T]) -> T:
        """``build()``, once per project: kept (``key``) and closed with the project."""
        if key not in self._built:
            self._built[key] = build()
        return typing.cast(T, self._built[key])

    def forget(self, prefix: str) -> None:
        """Close and drop what :meth:`kept` holds under keys starting with ``prefix``."""
        for key in [k for k in self._built if k.startswith(prefix)]:
            close = getattr(self._built.pop(key), "close", None)
            if close is not None:
                close()

    def _role(self, role: str, name: str, options: Mapping[str, Any] | None = None) -> Any:
        if role not in self._built:
            self._built[role] = self.roles.build(role, name, options)
        return self._built[role]

    def close(self) -> None:
        """Release what roles hold open (database connections)."""
        for built in self._built.values():
            close = getattr(built, "close", None)
            if close is not None:
                close()
        self._built.clear()

    @property
    def state_dir(self) -> Path:
        """``.lockgate/`` beside ``lockgate.yaml``, where the embedded state lives."""
        return self.require_root() / STATE_DIRNAME

    @property
    def name(self) -> str:
        """``project.name`` from the configuration, else the project directory's name."""
        return self.config.project.name or self.require_root().name

    def require_root(self) -> Path:
        """The project root, or a clear error when there is no project."""
        if self.root is None:
            raise ProjectNotFoundError(
                f"no {CONFIG_FILENAME} in {Path.cwd()} or any parent directory; "
                "run 'lockgate init' there, or pass -C DIR / set LOCKGATE_PROJECT"
            )
        return self.root

    def resolved(self) -> dict[str, Any]:
        """The resolved configuration as plain data, plugin settings under ``plugins``."""
        data = attrs.asdict(self.config)
        for notifier in data["events"]["notifiers"]:  # a *_env option names a variable
            shown = redacted_raw({k: v for k, v in notifier["options"].items() if k[-4:] != "_env"})
            notifier["options"].update(shown if isinstance(shown, dict) else {})
        for name, value in sorted(self.settings.items()):
            data["plugins"][name] = redacted(value)  # a secret field is never shown
        for name, raw in self.layers.plugin_sections().items():
            data["plugins"].setdefault(name, redacted_raw(raw))  # no class: keys decide
        return data


def _locate(
    project_dir: Path | str | None, environ: Mapping[str, str], cwd: Path, require: bool
) -> Path | None:
    explicit = project_dir if project_dir is not None else environ.get("LOCKGATE_PROJECT")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_absolute():
            path = cwd / path
        origin = "-C" if project_dir is not None else "LOCKGATE_PROJECT"
        if not (path / CONFIG_FILENAME).is_file():
            raise ProjectNotFoundError(
                f"{origin} {explicit}: no {CONFIG_FILENAME} there; "
                "run 'lockgate init' in it or point to the project directory"
            )
        return path.resolve()
    root = find_project_root(cwd)
    if root is None and require:
        raise ProjectNotFoundError(
            f"no {CONFIG_FILENAME} in {cwd} or any parent directory; "
            "run 'lockgate init' there, or pass -C DIR / set LOCKGATE_PROJECT"
        )
    return root


def _requirement(layers: ConfigLayers, entry: str) -> None:
    """A ``plugins.require`` entry that cannot be read is an error at its line."""
    try:
        parse_requirement(entry)
    except ConfigError as exc:
        raise ConfigError(f"{layers.where(('plugins', 'require'))}: {exc.message}") from None


class PluginSettings(Mapping[str, Any]):
    """Each plugin's structured settings, by plugin name. The settings of a plugin that
    was not imported yet (see :mod:`lockgate.core.plugins`) are read when it is: looking
    one up imports it; iterating imports every plugin that declares settings."""

    def __init__(self, plugins: PluginSet) -> None:
        self._plugins = plugins
        self._values: dict[str, Any] = {}

    def update(self, values: Mapping[str, Any]) -> None:
        """Add or replace the settings of the plugins in ``values``."""
        self._values.update(values)

    def __getitem__(self, name: str) -> Any:
        if name not in self._values:
            self._plugins.load([name])  # waits for another thread importing it
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        try:
            self[name]  # type: ignore[index]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        self._plugins.need("register_settings")
        return iter(dict(self._values))

    def __len__(self) -> int:
        self._plugins.need("register_settings")
        return len(self._values)


def _truthy(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() in _TRUTHY


def _needed_at_open(
    candidates: Iterable[Any], layers: ConfigLayers, require: Iterable[str]
) -> set[str]:
    """The plugins imported when the project opens whatever they declare: those with a
    ``plugins.<name>:`` section (their settings are checked now, as ever) and those
    ``plugins.require`` names, by name or distribution."""
    eager = set(layers.plugin_sections())
    require = list(require)
    if not require:
        return eager
    from packaging.utils import canonicalize_name

    wanted = {canonicalize_name(parse_requirement(text).name) for text in require}
    for cand in candidates:
        if canonicalize_name(cand.name) in wanted or (
            cand.distribution and canonicalize_name(cand.distribution) in wanted
        ):
            eager.add(cand.name)
    return eager


def _plugin_settings(
    hooks: HookRunner,
    plugins: PluginSet,
    layers: ConfigLayers,
    only: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The settings of the imported plugins (of ``only``, if given)."""
    names = set(only) if only is not None else None
    settings: dict[str, Any] = {}
    for plugin, cls in _isolated(plugins, lambda: hooks.register_settings(names)).items():
        try:
            settings[plugin] = layers.plugin_settings(plugin, cls)
        except MissingKeyError as exc:  # that plugin fails, not every command
            plugins.mark_failed(plugin, exc.message)
    return settings


def _config_contributions(
    hooks: HookRunner, plugins: PluginSet, layers: ConfigLayers, root: Path | None
) -> list[tuple[str, Mapping[str, Any]]]:
    frozen = _readonly(layers.merged())

    def collect() -> list[tuple[str, Mapping[str, Any]]]:
        contributions = hooks.on_config_load(frozen, root)
        for plugin, contribution in contributions:
            ConfigLayers.check_contribution(plugin, contribution)
        return contributions

    return _isolated(plugins, collect)


def _isolated(plugins: PluginSet, call: Callable[[], T]) -> T:
    """Run a load-time hook; a plugin that raises is marked failed and the call retried."""
    while True:
        try:
            return call()
        except PluginHookError as exc:
            plugins.mark_failed(exc.plugin, str(exc.__cause__ or exc))


def _readonly(data: Any) -> Any:
    from types import MappingProxyType

    if isinstance(data, dict):
        return MappingProxyType({k: _readonly(v) for k, v in data.items()})
    if isinstance(data, list):
        return tuple(_readonly(v) for v in data)
    return data
