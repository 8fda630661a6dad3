"""Every hook a lockgate plugin can implement: the plugin author's reference.

A plugin is any importable object (usually a module) named by an entry point in the
``lockgate`` group, whose functions are marked with :data:`hookimpl`::

    from lockgate.plugin import hookimpl

    @hookimpl
    def on_promote(event):
        print(f"{event.component} is now {event.revision} in {event.stage}")

How lockgate calls hooks
------------------------
The kernel calls one implementation at a time, so that every result, failure and
timeout is attributed to the plugin it came from. The order is pluggy's: implementations
marked ``tryfirst=True`` first, then unmarked ones, then ``trylast=True`` ones; within each
band, plugins run in a stable order by plugin name, which ``plugins.order`` in
``lockgate.yaml`` can override. Because calls are made one by one, ``wrapper=True`` and
``hookwrapper=True`` implementations are refused when the plugin loads.

An implementation may accept any subset of a hook's arguments, by name, so a hook that
gains an argument keeps every existing implementation working. Every lifecycle hook also
offers ``settings``: the calling plugin's own settings object, the instance of the class
it returned from :func:`register_settings` built from its ``plugins.<name>:`` section
(None when it declares none).

``on_stage``, ``on_promote``, ``on_rollback`` and ``on_metrics_collect`` also offer
``context``, a :class:`lockgate.plugin.PluginContext` built for the receiving plugin: the
project root, the actor, the plugin's settings, the stage an event is about and that
stage's configuration, the output options, a warnings channel (``context.warn(msg)``)
and the project's operations (``context.operations``). A plugin never needs a module
global to know its project. Everything a plugin may import is in :mod:`lockgate.plugin`.

There are two families:

* lifecycle hooks (``on_*``), which see what lockgate does;
* provider hooks (``register_*``), through which plugins contribute named
  implementations of a role that configuration then selects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from lockgate.contracts.models import (
    ChangeEvent,
    Issue,
    Register,
    ValidationSubject,
    ValidatorInfo,
)
from lockgate.core.context import (
    MetricsContext,
    PluginContext,
)

if TYPE_CHECKING:
    import click

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

PROJECT_NAME = "lockgate"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
"""Marks a hook specification (used only here)."""

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marks a plugin's implementation of a hook: ``@hookimpl`` or ``@hookimpl(tryfirst=True)``."""


# --------------------------------------------------------------------------- settings


@hookspec
def register_settings() -> type | None:
    """Declare the attrs class that holds this plugin's settings.

    When: once per loaded plugin, right after plugins load and before configuration is
    validated.

    Receives: nothing.

    Returns: an attrs class (every field with a default) or None. The ``plugins.<name>:``
    section of ``lockgate.yaml`` (``<name>`` is the plugin's entry-point name) is validated
    against it: an unknown key is an error naming the file, the line and the closest field.
    The resulting instance is passed as ``settings`` to this plugin's lifecycle hooks.

    Combining: each plugin answers for itself only.
    """


# --------------------------------------------------------------------------- lifecycle hooks


@hookspec
def on_config_load(
    config: Mapping[str, Any], project_root: Path | None, settings: Any
) -> Mapping[str, Any] | None:
    """Contribute defaults to the loaded configuration.

    When: once per command, after ``lockgate.yaml`` and the ``LOCKGATE__*`` environment
    overrides are merged and plugins are loaded, before anything else runs.

    Receives: ``config``, a read-only copy of the merged configuration as plain data;
    ``project_root``, the project directory (None outside a project).

    Returns: None, or a nested mapping shaped like ``lockgate.yaml`` whose values become
    defaults: a value the user set in the file or the environment always wins over a
    plugin's. Keys are validated like the file's; ``plugins.disable``, ``plugins.only``
    and ``plugins.order`` cannot be set this way (plugin selection happened already).

    Combining: contributions are merged in hook order; when two plugins set the same key,
    the first one in hook order wins. ``lockgate config show`` names the plugin behind
    each value.
    """


@hookspec
def on_stage(event: ChangeEvent, settings: Any, context: PluginContext) -> None:
    """Announce that a component was staged as a new revision.

    When: after the revision is stored and the state change is committed.

    Receives: ``event`` with ``action="stage"``, the component ref, the new revision and
    the previous one, the actor and time; ``context`` (:class:`lockgate.plugin.PluginContext`)
    with ``stage`` and ``stage_config`` set to the stage the revision is meant for.

    Returns: nothing. A plugin that raises is named in the command's error and in the
    audit log; the staging stays committed.

    Combining: every implementation is called, in hook order.
    """


@hookspec
def on_validate(subject: ValidationSubject, settings: Any) -> Iterable[Issue] | None:
    """Inspect one component revision and report issues: validators are the gates.

    When: by ``lockgate validate`` and before every promotion, once per component and
    implementation, with ``subject.stage`` set to the stage being entered. Calls run in
    parallel threads (one component's validators and other components' at once) and
    each is subject to ``validation.timeout``. Only components of the types declared by
    :func:`describe_validator` are passed (every type when it declares none). Results of a
    validator that declares ``cache=True`` (the default) are cached per revision, stage,
    validator version and settings, so it is not called again for an unchanged revision.

    Receives: ``subject``, the component's revision as read-only files plus metadata and
    a :class:`~lockgate.ValidationContext` (the other components involved, what the
    stage holds, approvals).

    Returns: issues (any iterable, or None for none). An issue of severity ``error``
    blocks readiness. The kernel sets each issue's ``plugin`` to the implementing plugin.
    An implementation that raises or times out counts as an error issue from that plugin
    (validation fails closed), and the other validators' results are still reported.

    Combining: issues from every implementation are concatenated in hook order.
    """


@hookspec
def describe_validator(settings: Any) -> ValidatorInfo | None:
    """Say which component types a validator handles and whether its results may be cached.

    When: once per run of the validators, before any ``on_validate`` call, for plugins
    that implement ``on_validate``.

    Receives: ``settings``, the plugin's own settings (so the types can be configurable).

    Returns: a :class:`~lockgate.ValidatorInfo`, or None for the defaults (every type,
    cacheable, the distribution's version). A validator whose result depends on anything
    besides the revision's files, the stage and its settings (approvals, other
    components, the clock) must return ``ValidatorInfo(cache=False)``.

    Combining: each plugin describes only its own ``on_validate``.
    """


@hookspec
def on_promote(event: ChangeEvent, settings: Any, context: PluginContext) -> None:
    """Announce that a revision became current in a stage.

    When: after every target of the stage switched and the state change is committed.

    Receives: ``event`` with ``action="promote"``, the stage, the new and previous
    revisions, the actor, the time and the reason (if any); ``context`` with ``stage`` and
    ``stage_config`` set to the stage entered. ``context.warn`` reports a warning that
    does not fail the command (a failed delivery the plugin will retry, say).

    Returns: nothing. A plugin that raises is named in the error and the audit log; the
    promotion is never undone because of it.

    Combining: every implementation is called, in hook order.
    """


@hookspec
def on_rollback(event: ChangeEvent, settings: Any, context: PluginContext) -> None:
    """Announce that a stage was switched back to an earlier revision (or cleared).

    When: after the switch is committed.

    Receives: ``event`` with ``action="rollback"`` (``"remove"`` when ``lockgate
    remove`` took a retired component out of the stage), the stage, the revision now
    current (None when the component was removed from the stage) and the one rolled back;
    ``context`` with ``stage`` and ``stage_config`` set to that stage.

    Returns: nothing; failures are reported as for :func:`on_promote`.

    Combining: every implementation is called, in hook order.
    """


@hookspec
def on_failure(event: ChangeEvent, settings: Any, context: PluginContext) -> None:
    """Announce that an attempt failed or was refused, after its audit event is recorded.

    When: after lockgate records an attempt that did not happen: a promotion or rollback
    a gate or a protected stage refused (``outcome="refused"``), a stage target that
    failed (the switch was undone; ``outcome="failed"``), a staging that failed, a
    validation that did not pass (a validator failed, raised or timed out), a pipeline
    run that did not complete (``action="pipeline"``, its report in
    ``details["report"]``), a plugin that raised while hearing an announcement.

    Receives: ``event``: ``action`` is the attempted action (``promote``, ``rollback``,
    ``stage``, ``validate``, ``pipeline``, ``announce``), the component, stage and
    revisions involved, the actor and time, the reason given, and ``details`` with
    ``outcome`` and what went wrong (``error``, ``refused``, ``step``, ``plugin``, ...);
    ``context`` as for :func:`on_promote`. The same event reaches the configured
    notifiers through the outbox as ``dev.lockgate.<noun>.<action>_<outcome>``.

    Returns: nothing. A plugin that raises here is reported as a warning only (a
    failure about a failure is not recorded again).

    Combining: every implementation is called, in hook order.
    """


@hookspec
def on_shutdown(settings: Any, context: PluginContext) -> None:
    """Say that the command (or a long-running process such as ``lockgate events
    deliver --follow`` or ``lockgate watch``) is ending: flush buffers, close
    connections.

    When: once, when a ``lockgate`` command that opened its project ends (after its
    output, after the outbox delivered what it could within ``events.budget``),
    whether it succeeded or failed. The Python API calls it when
    ``lockgate.operations.events.shutdown(session)`` is called.

    Receives: ``context`` (no stage).

    Returns: nothing. A plugin that raises is reported as a warning; the command's exit
    code does not change.

    Combining: every implementation is called, in hook order.
    """


@hookspec
def on_metrics_collect(context: MetricsContext, settings: Any) -> Mapping[str, float] | None:
    """Report metrics.

    When: by ``lockgate metrics`` and by anything that exports metrics.

    Receives: ``context``, a :class:`~lockgate.plugin.MetricsContext`: the plugin's
    :class:`~lockgate.plugin.PluginContext` (project root, actor, settings, warnings)
    plus ``config``, the resolved configuration as plain data, and ``state``, the
    project's state store to read (None outside a project).

    Returns: a flat mapping of metric name to number, or None. A name may carry labels,
    Prometheus style (``components{status="staged"}``). Names are attributed by
    the kernel: metric ``x`` of plugin ``p`` is reported as ``p.x``, so two plugins never
    overwrite each other.

    Combining: merged into one mapping, keyed by ``<plugin>.<metric>``.
    """


# --------------------------------------------------------------------------- provider hooks


@hookspec
def register_state_stores(register: Register[Any]) -> None:
    """Provide state stores (where components, pointers, approvals and audit events live).

    When: once, the first time a command needs the state store.

    Receives: ``register(name, factory)``; ``factory(context: RoleContext)`` returns the
    store (a :class:`lockgate.plugin.StateStore`, which also provides the project's
    locks: ``lock``, ``holder``, ``break_lock``; see docs/hooks.md). ``state.store`` in
    ``lockgate.yaml`` selects one by name.

    Returns: nothing. Registering a name another plugin already registered is a plugin
    error naming both plugins.
    """


@hookspec
def register_content_stores(register: Register[Any]) -> None:
    """Provide content stores (where revision bytes live, addressed by digest).

    When: once, the first time a command needs the content store.

    Receives: ``register(name, factory)``. ``content.store`` selects one by name.

    Returns: nothing; duplicate names are refused as for :func:`register_state_stores`.
    """


@hookspec
def register_targets(register: Register[Any]) -> None:
    """Provide stage target kinds (where a stage's current revisions are deployed).

    When: once, the first time a command deploys or inspects a stage.

    Receives: ``register(kind, factory)``; each stage's ``targets`` list names a kind and
    its options, handed to the factory as ``context.options`` (plus ``stage``, the stage's
    name). The factory returns a :class:`lockgate.plugin.Target`:
    ``prepare(component_id, revision, release)`` returns a :class:`lockgate.plugin.Prepared`
    (slow, invisible); ``commit(prepared)`` makes it visible in one atomic switch;
    ``abort(prepared)`` drops it; ``deployed()`` maps component id to the revision deployed
    now; ``location(component_id)`` says where it is deployed (shown after a promote and by
    ``ls``); ``check(component_id, revision)`` returns a list of problems (empty: the entry
    is that revision). Every method in full: docs/hooks.md. The builtin ``directory``
    target swaps symlinks; see docs/promotion.md.

    Returns: nothing; duplicate kinds are refused as for :func:`register_state_stores`.
    """


@hookspec
def register_sources(register: Register[Any]) -> None:
    """Provide component sources (where components are discovered and scanned).

    When: once, the first time a command looks for components.

    Receives: ``register(name, factory)``; the factory receives its plugin's own
    settings as ``context.settings`` (``plugins.<name>:``). ``source.name`` selects one
    by name (builtin:
    ``workspace``, directories on disk). The factory returns a
    :class:`lockgate.plugin.Source`; one that also has ``watch_paths()`` (see
    :class:`lockgate.plugin.Watchable`) can be watched by ``lockgate watch``.

    Returns: nothing; duplicate names are refused as for :func:`register_state_stores`.
    """


@hookspec
def register_notifiers(register: Register[Any]) -> None:
    """Provide notifier kinds (what delivers events out of lockgate: the outbox).

    When: once, the first time a command delivers or lists events.

    Receives: ``register(kind, factory)``; each ``events.notifiers[]`` entry names a
    kind and its ``options``, handed to the factory as ``context.options`` (plus
    ``name``, the notifier's name). The factory returns a
    :class:`lockgate.plugin.Notifier`: ``deliver(message, timeout)`` sends one
    :class:`lockgate.plugin.Message` (a CloudEvent and its bytes) or raises
    :class:`lockgate.plugin.DeliveryError` (``retry_after``, ``permanent``); ``close()``;
    optionally ``deliver_batch(messages, timeout)`` (:class:`lockgate.plugin.
    BatchNotifier`: several at once, one outcome each). The project keeps a notifier
    between deliveries and closes it with itself. Builtin: ``log`` and ``webhook``;
    see docs/events.md.

    Returns: nothing; duplicate kinds are refused as for :func:`register_state_stores`.
    """


@hookspec
def register_commands(register: Callable[[click.Command], None]) -> None:
    """Add commands to the ``lockgate`` command line.

    When: when the command line is built for a command that is not one of the kernel's
    own (``lockgate --help`` and ``--version`` load no plugin).

    Receives: ``register(command)``, taking a ``click.Command`` or ``click.Group``.
    A command reaches its project through :func:`lockgate.plugin.current_context` (or the
    :func:`lockgate.plugin.pass_context` decorator): the project opened as the kernel's
    own commands open it, honouring ``-C``, ``LOCKGATE_PROJECT``, ``--actor``,
    ``--json``, ``-v``/``-q`` and ``--strict-plugins``.

    Returns: nothing. A name already taken by the kernel or another plugin is refused
    with an error naming both.
    """
