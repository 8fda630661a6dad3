"""Resolve roles — state store, content store, stage targets — to the plugins that play them.

Plugins register named factories through the ``register_*`` provider hooks; configuration
names which one plays each role. When the named implementation is missing, the error
says in one line which capability is missing and how to get it back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lockgate.contracts.models import RoleContext
from lockgate.contracts.records import record
from lockgate.core.guard import Owner, build
from lockgate.errors import MissingCapabilityError

if TYPE_CHECKING:
    from lockgate.core.hooks import HookRunner
    from lockgate.core.plugins import PluginSet

__all__ = ["ROLES", "Role", "Roles"]


@record
class Role:
    """A role some plugin must play: its provider hook and the config key that picks one."""

    title: str
    hook: str
    config_key: str


ROLES: dict[str, Role] = {
    "state": Role("state store", "register_state_stores", "state.store"),
    "content": Role("content store", "register_content_stores", "content.store"),
    "source": Role("component source", "register_sources", "source.name"),
    "target": Role("stage target", "register_targets", "stages.<stage>.targets[].kind"),
    "notifier": Role("notifier", "register_notifiers", "events.notifiers[].kind"),
}


class RoleHost(Protocol):
    """What building a role needs of the project (which plugins, their settings, where)."""

    plugins: PluginSet
    hooks: HookRunner
    settings: Mapping[str, Any]
    environ: Mapping[str, str]

    @property
    def state_dir(self) -> Path: ...

    @property
    def name(self) -> str: ...

    def require_root(self) -> Path: ...

    def content(self) -> Any: ...


class Roles:
    """Per-project cache of what each provider hook registered."""

    def __init__(self, project: RoleHost) -> None:
        self._project = project
        self._registered: dict[str, tuple[int, dict[str, tuple[str, Callable[..., Any]]]]] = {}

    def available(self, role: str) -> dict[str, str]:
        """Names registered for ``role``, each with the plugin that registered it. A plugin
        not imported yet that declares the names it registers is not imported for this."""
        plugins = self._project.plugins
        hook = ROLES[role].hook
        plugins.need(hook, unnamed_only=True)
        found = {name: plugin for name, (plugin, _) in self._registered_now(role).items()}
        for name, plugin in plugins.declared_names(hook).items():
            found.setdefault(name, plugin)
        return found

    def build(self, role: str, name: str, options: Mapping[str, Any] | None = None) -> Any:
        """Build ``name`` of ``role`` (see :data:`ROLES`), guarded: a fault names its plugin."""
        providers = self._providers(role, name)
        if name not in providers:
            raise MissingCapabilityError(self.explain_missing(role, name))
        plugin, factory = providers[name]
        project = self._project
        context = RoleContext(
            project_root=project.require_root(),
            state_dir=project.state_dir,
            project_name=project.name,
            settings=project.settings.get(plugin),
            options=dict(options or {}),
            content=project.content if role == "target" else None,
            environ=project.environ if role == "notifier" else {},
        )
        owner = Owner(plugin, project.plugins.info(plugin).label, f"{ROLES[role].title} '{name}'")
        return build(owner, factory, context)

    def explain_missing(self, role: str, name: str) -> str:
        """One line: which capability is missing, why, and how to get it back."""
        spec = ROLES[role]
        infos = self._project.plugins.infos
        others = sorted(self.available(role))
        choice = f"available: {', '.join(others)}" if others else "no enabled plugin provides one"
        info = infos.get(name)
        if info is not None and info.status == "disabled":
            return (
                f"no {spec.title} '{name}' is available: plugin '{name}' is {info.reason}; "
                f"enable it, or set {spec.config_key} to another ({choice})"
            )
        if info is not None and info.status == "failed":
            return (
                f"no {spec.title} '{name}' is available: {info.label} failed to load "
                f"({info.error}); fix it or set {spec.config_key} to another ({choice})"
            )
        return (
            f"no {spec.title} named '{name}' ({spec.config_key}); {choice}; "
            "install a plugin that provides it or pick an available one"
        )

    def _providers(self, role: str, name: str) -> dict[str, tuple[str, Callable[..., Any]]]:
        """What the plugins that may register ``name`` for ``role`` registered (the
        plugins that declare it, or say nothing of their names, imported first)."""
        self._project.plugins.need(ROLES[role].hook, name)
        return self._registered_now(role)

    def _registered_now(self, role: str) -> dict[str, tuple[str, Callable[..., Any]]]:
        """What the imported plugins register for ``role``, asked again only when more
        plugins were imported since."""
        generation = self._project.plugins.generation
        cached = self._registered.get(role)
        if cached is None or cached[0] != generation:
            found = self._project.hooks.register_role(ROLES[role].hook, imported_only=True)
            cached = self._registered[role] = (generation, found)
        return cached[1]
