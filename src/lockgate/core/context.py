"""The context a plugin receives: :class:`PluginContext`, :class:`MetricsContext`, and
:class:`Operations`, the operations a plugin command may run through it.

Apart from :mod:`lockgate.contracts.models` because the context names role contracts
(:mod:`lockgate.contracts`), which themselves use the models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs

from lockgate.contracts.models import ReadinessReport, StageResult, SyncResult
from lockgate.contracts.records import record
from lockgate.contracts.source import Component, Source
from lockgate.errors import MissingCapabilityError

__all__ = ["MetricsContext", "Operations", "PluginContext"]


class Operations(Protocol):
    """The few project operations a plugin may run, through :attr:`PluginContext.operations`.

    Each runs exactly as the kernel command of the same name would (locks, recovery,
    audit, hooks), on the project the context belongs to.
    """

    @property
    def environ(self) -> Mapping[str, str]:
        """The environment the project was opened with (``LOCKGATE_*`` variables)."""

    def source(self) -> Source:
        """The configured component source (``source.name``)."""

    def check_stage(self, name: str | None) -> str:
        """``name`` if it is a configured stage (None: the first), else NotFoundError."""

    def stage(self, component: Component | str, *, to: str | None = None) -> StageResult:
        """Stage one component (a ref, or a :class:`Component` its source found) for
        stage ``to``; an unchanged component creates no revision (``result.created``)."""

    def sync(self, workspaces: Sequence[str] | None = None, *, to: str | None = None) -> SyncResult:
        """Stage every changed component of ``workspaces`` (None: all), as ``lockgate sync``."""

    def validate(
        self, refs: Sequence[str], *, stage: str | None = None, use_cache: bool = True
    ) -> ReadinessReport:
        """Validate the latest revision of each ref for ``stage``, as ``lockgate validate``."""

    def latest_revision(self, ref: str) -> str | None:
        """The latest staged revision of component ``ref`` (None: never staged)."""

    def run_command(
        self, argv: Sequence[str], *, terminal: bool = False
    ) -> tuple[bytes, bytes, int]:
        """Run the command line ``lockgate ARGV`` in this process on this project, as a new
        process would run it: its stdout and stderr (bytes) and its exit code. ``terminal``:
        whether stdout is a terminal. The warm path of ``lockgate watch`` answers ``stage``,
        ``sync`` and ``ls`` with it; a context made outside the command line raises
        :class:`~lockgate.errors.MissingCapabilityError`."""


def _no_sink(plugin: str | None, message: str) -> None:
    import logging

    logging.getLogger("lockgate.plugins").warning("%s: %s", plugin or "plugin", message)


@record
class PluginContext:
    """What lifecycle hooks (argument ``context``) and plugin commands receive.

    ``project_root``: the project directory (None outside a project). ``plugin``: the
    name of the plugin receiving the context. ``actor``: who is acting (``--actor``,
    ``LOCKGATE_ACTOR`` or the OS user). ``settings``: the plugin's own settings object
    (see ``register_settings``). ``stage`` and ``stage_config``: for a stage-bound event
    (``on_stage``, ``on_promote``, ``on_rollback``), the stage's name and its
    configuration (``description``, ``targets``, ``gates``, ``protected``); None
    otherwise. ``json`` and ``verbosity``: the global ``--json`` and ``-v``/``-q``
    options of the running command (False and 0 outside the command line).

    :meth:`warn` is the warnings channel; :attr:`operations` runs project operations.
    """

    project_root: Path | None = None
    plugin: str | None = None
    actor: str | None = None
    settings: Any = attrs.field(default=None, eq=False, repr=False)
    stage: str | None = None
    stage_config: Any = attrs.field(default=None, eq=False, repr=False)
    json: bool = False
    verbosity: int = 0
    _sink: Callable[[str | None, str], None] = attrs.field(
        default=_no_sink, eq=False, repr=False, alias="sink"
    )
    _operations: Operations | None = attrs.field(
        default=None, eq=False, repr=False, alias="operations"
    )

    def warn(self, message: str) -> None:
        """Report a warning that does not fail the command.

        On the command line it is printed on stderr as ``lockgate: warning: <plugin>:
        <message>`` (not with ``-q``); with ``--json`` it is added to the output's
        ``warnings`` list instead. From the Python API it is logged on logger
        ``lockgate.plugins``.
        """
        self._sink(self.plugin, str(message))

    @property
    def operations(self) -> Operations:
        """The project's operations (stage, sync, validate); a plugin error outside a
        project."""
        if self._operations is None:
            raise MissingCapabilityError(
                f"plugin '{self.plugin}' needs a project, but none is open; "
                "run it inside a project, or pass -C DIR / set LOCKGATE_PROJECT"
            )
        return self._operations


@record
class MetricsContext(PluginContext):
    """What ``on_metrics_collect`` receives: a :class:`PluginContext` plus ``config``, the
    resolved configuration as plain data, and ``state``, the project's state store (to
    read, never to write; None outside a project)."""

    config: Mapping[str, Any] = attrs.field(factory=dict)
    state: Any = attrs.field(default=None, repr=False)
