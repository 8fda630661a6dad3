"""The objects that cross the hook boundary: what plugins receive and return.

They are frozen attrs classes so that a plugin can keep one without fear that the kernel
changes it later, and so that the kernel can hand the same object to every plugin.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs

from lockgate.core.records import record

if TYPE_CHECKING:
    from lockgate.core.contracts import Component, Source
    from lockgate.core.staging import StageResult, SyncResult
    from lockgate.core.validation import ReadinessReport

__all__ = [
    "ChangeEvent",
    "ComponentStatus",
    "Decision",
    "IntegrationStage",
    "Issue",
    "MetricsContext",
    "Operations",
    "PeerComponent",
    "PluginContext",
    "Register",
    "RoleContext",
    "Severity",
    "ValidationContext",
    "ValidationSubject",
    "ValidatorInfo",
]

T = TypeVar("T")


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


class IntegrationStage(str, enum.Enum):
    """The names users know from the integration manager; the ladder itself is configurable."""

    DEVELOPMENT = "development"
    STAGING = "staging"
    INTEGRATION = "integration"
    PRODUCTION = "production"


class ComponentStatus(str, enum.Enum):
    """Where a component's latest revision stands."""

    PENDING = "pending"
    STAGED = "staged"
    APPROVED = "approved"
    REJECTED = "rejected"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"


class Severity(str, enum.Enum):
    """How much an :class:`Issue` matters: only ``error`` blocks readiness."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@record
class Issue:
    """One finding of a validator.

    ``plugin`` is filled in by the kernel with the name of the plugin that returned the
    issue, so a validator never has to (and cannot) claim another plugin's name.
    ``components`` lists the component refs an integration issue involves; it is empty for
    an issue about a single component. ``hint`` is what to do about it; the readiness
    report gathers hints into its recommendations. A message must never contain a secret.
    """

    severity: Severity = attrs.field(converter=Severity)
    code: str
    message: str
    path: str | None = None
    line: int | None = None
    plugin: str | None = None
    components: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    hint: str | None = None

    @property
    def blocking(self) -> bool:
        """True when this issue makes its component not ready."""
        return self.severity is Severity.ERROR

    def describe(self) -> str:
        """One line for people: ``error syntax-python x.py:3: message [plugin]``."""
        where = f" {self.location}:" if self.location else ":"
        by = f" [{self.plugin}]" if self.plugin else ""
        return f"{self.severity.value} {self.code}{where} {self.message}{by}"

    @property
    def location(self) -> str | None:
        """``path:line``, ``path``, or None."""
        if self.path is None:
            return None
        return f"{self.path}:{self.line}" if self.line is not None else self.path


@record
class PeerComponent:
    """Another component a validator may need to know about (see :class:`ValidationContext`)."""

    component: str
    component_id: str
    component_type: str
    revision: str | None
    status: str
    depends_on: tuple[str, ...] = attrs.field(default=(), converter=_strings)


@record
class Decision:
    """An approval or rejection recorded for the subject's revision."""

    actor: str
    decision: str  # "approve" or "reject"
    at: str
    comment: str | None = None


@record
class ValidationContext:
    """What a validator may need beyond the revision's own files.

    ``batch``: the components validated together in this run (the subject among them).
    ``current``: component id -> revision current in the subject's stage.
    ``staged``: the latest revision of every component the project knows, in every
    workspace. ``graph``: component id -> ``depends_on`` for the batch and for everything
    reachable from it in the stage (the batch's own specs win). ``author``: who staged the
    subject's revision first. ``authors``: everyone who counts as its author (declared
    owners and stagers, see docs/validation.md), none of whom may approve it.
    ``decisions``: approvals and rejections of that revision.

    A validator that reads the context depends on more than the revision, so it must
    declare ``cache=False`` in :class:`ValidatorInfo`.
    """

    batch: tuple[PeerComponent, ...] = ()
    current: Mapping[str, str] = attrs.field(factory=dict)
    staged: tuple[PeerComponent, ...] = ()
    graph: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    author: str | None = None
    decisions: tuple[Decision, ...] = ()
    authors: tuple[str, ...] = ()


@record
class ValidationSubject:
    """What a validator looks at: one component's revision, in the context of a stage.

    ``root`` is a directory holding exactly the revision's files (read-only for a staged
    revision; the workspace itself with ``lockgate validate --workspace``); ``files``
    lists their paths relative to ``root`` (POSIX separators, sorted) and ``sizes`` their
    sizes in bytes. ``metadata`` is what ``component.yaml`` says (version, description,
    owners, depends_on, metadata). ``revision`` is None when validating a workspace.
    ``digests`` gives each regular file's content digest where it is known (always for a
    revision): a validator may remember per-file results by digest, so that a new
    revision costs only its changed files.
    """

    component: str
    workspace: str
    component_id: str
    component_type: str
    stage: str
    root: Path
    files: tuple[str, ...]
    revision: str | None = None
    metadata: Mapping[str, Any] = attrs.field(factory=dict)
    sizes: Mapping[str, int] = attrs.field(factory=dict)
    context: ValidationContext = attrs.field(factory=ValidationContext)
    digests: Mapping[str, str] = attrs.field(factory=dict)


@record
class ValidatorInfo:
    """What a validator declares about itself (hook ``describe_validator``).

    ``types``: the component types it validates (empty: every type). ``cache``: its
    result depends only on the revision's files, the stage and its own settings, so it may
    be cached per (revision, validator, version, settings, stage); a validator that reads
    ``subject.context`` or anything outside the revision must say False. ``version``:
    part of the cache key (default: the plugin's distribution version); change it when
    the validator's rules change.
    """

    types: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    cache: bool = True
    version: str | None = None


@record
class ChangeEvent:
    """A committed change, announced through ``on_stage``, ``on_promote`` or ``on_rollback``."""

    action: str
    component: str
    stage: str | None
    revision: str | None
    previous_revision: str | None
    actor: str
    at: _dt.datetime
    reason: str | None = None
    details: Mapping[str, Any] = attrs.field(factory=dict)


class Operations(Protocol):
    """The few project operations a plugin may run, through :attr:`PluginContext.operations`.

    Each runs exactly as the kernel command of the same name would (locks, recovery,
    audit, hooks), on the project the context belongs to.
    """

    @property
    def environ(self) -> Mapping[str, str]:
        """The environment the project was opened with (``LOCKGATE_*`` variables)."""

    def source(self) -> Source:
        """The configured component source (``workspaces.source``)."""

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
            from lockgate.errors import MissingCapabilityError

            raise MissingCapabilityError(
                f"plugin '{self.plugin}' needs a project, but none is open; "
                "run it inside a project, or pass -C DIR / set LOCKGATE_PROJECT"
            )
        return self._operations


@record
class MetricsContext(PluginContext):
    """What ``on_metrics_collect`` receives: a :class:`PluginContext` plus ``config``, the
    resolved configuration as plain data."""

    config: Mapping[str, Any] = attrs.field(factory=dict)


@record
class RoleContext:
    """Handed to a role factory (state store, content store, target) when the kernel builds it.

    ``settings`` is the providing plugin's own settings object (or None when it declares
    none); ``options`` are the options configured for this particular use of the role,
    for example one stage target's options.
    """

    project_root: Path
    state_dir: Path
    settings: Any
    options: Mapping[str, Any] = attrs.field(factory=dict)


Register = Callable[[str, Callable[[RoleContext], T]], None]
"""The callback provider hooks receive: ``register(name, factory)``."""
