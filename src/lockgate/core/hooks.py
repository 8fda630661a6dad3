"""Call hooks one implementation at a time, with one typed method per hook.

pluggy's own hook caller runs every implementation in one go, so an exception does not
say which plugin raised it, and a result cannot be attributed. The kernel instead walks the
implementations in pluggy's call order and calls each itself; every call site in the
kernel goes through a typed method here, so mypy checks what each hook receives and
returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import pluggy

from lockgate.contracts.models import (
    ChangeEvent,
    Issue,
    Severity,
    ValidationSubject,
    ValidatorInfo,
)
from lockgate.contracts.records import record
from lockgate.core.context import (
    MetricsContext,
    PluginContext,
)
from lockgate.errors import PluginHookError

if TYPE_CHECKING:
    import click

    from lockgate.core.plugins import PluginSet

__all__ = ["HookRunner", "Validator"]

T = TypeVar("T")


@record
class Validator:
    """One ``on_validate`` implementation, callable on its own (for timeouts and caching)."""

    plugin: str
    version: str | None
    call: Callable[[ValidationSubject], list[Issue]] = attrs.field(eq=False, repr=False)
    info: ValidatorInfo = attrs.field(factory=ValidatorInfo)
    settings: Any = attrs.field(default=None, eq=False, repr=False)
    module: str | None = None  # the module that defines the implementation
    location: str | None = None  # its distribution's metadata directory (PluginInfo)

    def applies_to(self, component_type: str) -> bool:
        """True when this validator handles components of ``component_type``."""
        return not self.info.types or component_type in self.info.types


class HookRunner:
    """The kernel's typed view of the hooks of one :class:`PluginSet`."""

    def __init__(self, plugins: PluginSet, settings: Mapping[str, Any] | None = None) -> None:
        self._plugins = plugins
        self._settings: Mapping[str, Any] = settings or {}
        self.trace: Callable[[str, str, float], None] | None = None
        self.context_factory: Callable[[str, str | None], PluginContext] | None = None
        """Builds the ``context`` a lifecycle hook receives: ``(plugin, stage)``."""

    def set_settings(self, settings: Mapping[str, Any]) -> None:
        """Install each plugin's structured settings (known only after config validation;
        the project's mapping, which grows as plugins are imported)."""
        self._settings = settings

    # ------------------------------------------------------------------ machinery

    def _impls(self, hook: str, *, imported_only: bool = False) -> list[pluggy.HookImpl]:
        """The implementations of ``hook`` in call order: ``tryfirst`` ones, then the
        others, then ``trylast`` ones, each band in the plugins' order (``plugins.order``,
        then by name), whenever each plugin was imported. The plugins that declare
        ``hook`` and were not imported yet are imported first, unless ``imported_only``."""
        if not imported_only:
            self._plugins.need(hook)
        caller: pluggy.HookCaller = getattr(self._plugins.pm.hook, hook)
        key = self._plugins.selection.sort_key
        return sorted(
            caller.get_hookimpls(),
            key=lambda i: (0 if i.tryfirst else 2 if i.trylast else 1, key(i.plugin_name)),
        )

    def _label(self, plugin: str) -> str:
        try:
            return self._plugins.info(plugin).label
        except KeyError:
            return f"plugin '{plugin}'"

    def context(self, plugin: str, stage: str | None = None) -> PluginContext:
        """The :class:`PluginContext` of ``plugin`` (about ``stage``, if stage-bound)."""
        if self.context_factory is not None:
            return self.context_factory(plugin, stage)
        return PluginContext(plugin=plugin, settings=self._settings.get(plugin), stage=stage)

    def _call(self, hook: str, impl: pluggy.HookImpl, **kwargs: Any) -> Any:
        kwargs.setdefault("settings", self._settings.get(impl.plugin_name))
        if "context" not in kwargs and "context" in impl.argnames:
            # Built only for implementations that take it (most take ``event`` alone).
            kwargs["context"] = self.context(impl.plugin_name, kwargs.get("_stage"))
        args = [kwargs[name] for name in impl.argnames]
        started = time.perf_counter()
        try:
            return impl.function(*args)
        except PluginHookError:
            raise
        except Exception as exc:
            raise PluginHookError(
                f"{self._label(impl.plugin_name)} failed in hook {hook}: "
                f"{type(exc).__name__}: {exc}",
                plugin=impl.plugin_name,
                hook=hook,
            ) from exc
        finally:
            if self.trace is not None:
                self.trace(hook, impl.plugin_name, time.perf_counter() - started)

    def _each(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        return [(impl.plugin_name, self._call(hook, impl, **kwargs)) for impl in self._impls(hook)]

    def _announce(self, hook: str, event: ChangeEvent) -> list[PluginHookError]:
        failures: list[PluginHookError] = []
        for impl in self._impls(hook):
            try:
                self._call(hook, impl, event=event, _stage=event.stage)
            except PluginHookError as exc:
                failures.append(exc)
        return failures

    # ------------------------------------------------------------------ typed hooks

    def register_settings(self, only: Collection[str] | None = None) -> dict[str, type]:
        """The settings class of each imported plugin (of those in ``only``, if given;
        plugins that declare none are absent). Imports nothing: a plugin's settings are
        read when it is imported."""
        classes: dict[str, type] = {}
        for impl in self._impls("register_settings", imported_only=True):
            plugin = impl.plugin_name
            if only is not None and plugin not in only:
                continue
            cls = self._call("register_settings", impl)
            if cls is None:
                continue
            if not (isinstance(cls, type) and attrs.has(cls)):
                raise PluginHookError(
                    f"{self._label(plugin)}: register_settings returned {cls!r}, "
                    "expected an attrs class or None",
                    plugin=plugin,
                    hook="register_settings",
                )
            classes[plugin] = cls
        return classes

    def on_config_load(
        self, config: Mapping[str, Any], project_root: Path | None
    ) -> list[tuple[str, Mapping[str, Any]]]:
        """Each plugin's config contribution, in hook order (Nones dropped)."""
        result: list[tuple[str, Mapping[str, Any]]] = []
        for plugin, contribution in self._each(
            "on_config_load", config=config, project_root=project_root
        ):
            if contribution is None:
                continue
            if not isinstance(contribution, Mapping):
                raise PluginHookError(
                    f"{self._label(plugin)}: on_config_load returned {type(contribution).__name__}"
                    ", expected a mapping or None",
                    plugin=plugin,
                    hook="on_config_load",
                )
            result.append((plugin, contribution))
        return result

    def on_stage(self, event: ChangeEvent) -> list[PluginHookError]:
        """Announce a staging; failures are returned, never raised (the change stands)."""
        return self._announce("on_stage", event)

    def on_promote(self, event: ChangeEvent) -> list[PluginHookError]:
        """Announce a promotion; failures are returned, never raised."""
        return self._announce("on_promote", event)

    def on_rollback(self, event: ChangeEvent) -> list[PluginHookError]:
        """Announce a rollback; failures are returned, never raised."""
        return self._announce("on_rollback", event)

    def on_failure(self, event: ChangeEvent) -> list[PluginHookError]:
        """Announce a failed or refused attempt; failures are returned, never raised."""
        return self._announce("on_failure", event)

    def on_shutdown(self) -> list[PluginHookError]:
        """Say the command ends; failures are returned, never raised."""
        failures: list[PluginHookError] = []
        for impl in self._impls("on_shutdown"):
            try:
                self._call("on_shutdown", impl)
            except PluginHookError as exc:
                failures.append(exc)
        return failures

    def on_metrics_collect(self, context: MetricsContext) -> dict[str, float]:
        """Every plugin's metrics, keyed ``<plugin>.<metric>``."""
        merged: dict[str, float] = {}
        for impl in self._impls("on_metrics_collect"):
            plugin = impl.plugin_name
            own = self.context(plugin)
            fields: dict[str, Any] = {
                str(a.alias): getattr(own, a.name) for a in attrs.fields(PluginContext)
            }
            fields.update(
                project_root=context.project_root, config=context.config, state=context.state
            )
            metrics = self._call("on_metrics_collect", impl, context=MetricsContext(**fields))
            if metrics is None:
                continue
            if not isinstance(metrics, Mapping):
                raise PluginHookError(
                    f"{self._label(plugin)}: on_metrics_collect returned "
                    f"{type(metrics).__name__}, expected a mapping of name to number",
                    plugin=plugin,
                    hook="on_metrics_collect",
                )
            for name, value in metrics.items():
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise PluginHookError(
                        f"{self._label(plugin)}: metric {name!r} is {value!r}, expected a number",
                        plugin=plugin,
                        hook="on_metrics_collect",
                    )
                merged[f"{plugin}.{name}"] = value
        return merged

    def validators(self) -> list[Validator]:
        """Every ``on_validate`` implementation as a separately callable :class:`Validator`.

        Each carries what its plugin says of it through ``describe_validator``.
        """
        described: dict[str, ValidatorInfo] = {}
        for plugin, info in self._each("describe_validator"):
            if info is None:
                continue
            if not isinstance(info, ValidatorInfo):
                raise PluginHookError(
                    f"{self._label(plugin)}: describe_validator returned "
                    f"{type(info).__name__}, expected lockgate.ValidatorInfo or None",
                    plugin=plugin,
                    hook="describe_validator",
                )
            described[plugin] = info
        found = []
        for impl in self._impls("on_validate"):
            loaded = self._plugins.infos.get(impl.plugin_name)
            info = described.get(impl.plugin_name, ValidatorInfo())
            found.append(
                Validator(
                    plugin=impl.plugin_name,
                    version=info.version or (loaded.version if loaded else None),
                    call=self._validator_call(impl),
                    info=info,
                    settings=self._settings.get(impl.plugin_name),
                    module=getattr(impl.function, "__module__", None),
                    location=loaded.location if loaded else None,
                )
            )
        return found

    def _validator_call(self, impl: pluggy.HookImpl) -> Callable[[ValidationSubject], list[Issue]]:
        def call(subject: ValidationSubject) -> list[Issue]:
            raw = self._call("on_validate", impl, subject=subject)
            return _attribute(impl.plugin_name, raw)

        return call

    def register_role(
        self, hook: str, *, imported_only: bool = False
    ) -> dict[str, tuple[str, Callable[..., Any]]]:
        """Names registered through provider hook ``hook``: name -> (plugin, factory)."""
        registered: dict[str, tuple[str, Callable[..., Any]]] = {}
        for impl in self._impls(hook, imported_only=imported_only):
            declared = self._plugins.declaration_names(impl.plugin_name, hook)

            def register(
                name: str,
                factory: Callable[..., Any],
                _plugin: str = impl.plugin_name,
                _declared: frozenset[str] | None = declared,
            ) -> None:
                if _declared is not None and name not in _declared:
                    raise PluginHookError(
                        f"{self._label(_plugin)} registers '{name}' through {hook}, which "
                        f"its lockgate.hooks entry point does not declare; add it there",
                        plugin=_plugin,
                        hook=hook,
                    )
                if name in registered:
                    raise PluginHookError(
                        f"{self._label(_plugin)} registers '{name}' through {hook}, but "
                        f"{self._label(registered[name][0])} already did; disable one of them",
                        plugin=_plugin,
                        hook=hook,
                    )
                registered[name] = (_plugin, factory)

            self._call(hook, impl, register=register)
        return registered

    def register_commands(self, taken: Iterable[str]) -> dict[str, tuple[str, click.Command]]:
        """Commands plugins add: name -> (plugin, command); clashes are plugin errors."""
        owners: dict[str, str] = dict.fromkeys(taken, "the lockgate kernel")
        commands: dict[str, tuple[str, click.Command]] = {}
        for impl in self._impls("register_commands"):
            plugin = impl.plugin_name

            def register(command: click.Command, _plugin: str = plugin) -> None:
                name = command.name or ""
                if name in owners:
                    raise PluginHookError(
                        f"{self._label(_plugin)} adds command '{name}', which "
                        f"{owners[name]} already provides; disable one of them",
                        plugin=_plugin,
                        hook="register_commands",
                    )
                owners[name] = self._label(_plugin)
                commands[name] = (_plugin, command)

            self._call("register_commands", impl, register=register)
        return commands


def _attribute(plugin: str, raw: Iterable[Any] | None) -> list[Issue]:
    if raw is None:
        return []
    issues = []
    for item in raw:
        if not isinstance(item, Issue):
            item = Issue(
                Severity.ERROR,
                "validator-bad-result",
                f"returned {type(item).__name__} instead of lockgate.Issue",
            )
        issues.append(attrs.evolve(item, plugin=plugin))
    return issues
