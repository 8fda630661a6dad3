"""The objects that cross the hook boundary: what plugins receive and return.

They are frozen attrs classes so that a plugin can keep one without fear that the kernel
changes it later, and so that the kernel can hand the same object to every plugin.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs

__all__ = [
    "ChangeEvent",
    "ComponentStatus",
    "IntegrationStage",
    "Issue",
    "MetricsContext",
    "Register",
    "RoleContext",
    "Severity",
    "ValidationSubject",
]

T = TypeVar("T")


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


@attrs.frozen
class Issue:
    """One finding of a validator.

    ``plugin`` is filled in by the kernel with the name of the plugin that returned the
    issue, so a validator never has to (and cannot) claim another plugin's name.
    ``components`` lists the component refs an integration issue involves; it is empty for
    an issue about a single component.
    """

    severity: Severity = attrs.field(converter=Severity)
    code: str
    message: str
    path: str | None = None
    line: int | None = None
    plugin: str | None = None
    components: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    @property
    def blocking(self) -> bool:
        """True when this issue makes its component not ready."""
        return self.severity is Severity.ERROR

    @property
    def location(self) -> str | None:
        """``path:line``, ``path``, or None."""
        if self.path is None:
            return None
        return f"{self.path}:{self.line}" if self.line is not None else self.path


@attrs.frozen
class ValidationSubject:
    """What a validator looks at: one component's revision, in the context of a stage.

    ``root`` is a read-only directory holding exactly the revision's files; ``files`` lists
    their paths relative to ``root`` (POSIX separators, sorted).
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


@attrs.frozen
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


@attrs.frozen
class MetricsContext:
    """What ``on_metrics_collect`` receives: the project it collects for."""

    project_root: Path | None
    config: Mapping[str, Any]


@attrs.frozen
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
