"""lockgate: stage, validate, approve, promote and roll back workspace components.

The public API, re-exported from private modules; ``__all__`` is kept exact by a test.
Names are imported on first use (PEP 562), so ``lockgate --version`` and ``--help`` stay
fast: importing this package imports nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lockgate._version import __version__

if TYPE_CHECKING:
    from lockgate.core.context import (
        MetricsContext,
    )
    from lockgate.core.models import (
        ChangeEvent,
        ComponentStatus,
        Decision,
        IntegrationStage,
        Issue,
        PeerComponent,
        RoleContext,
        Severity,
        ValidationContext,
        ValidationSubject,
        ValidatorInfo,
    )
    from lockgate.core.project import Project
    from lockgate.core.session import Session
    from lockgate.errors import (
        ConfigError,
        ConflictError,
        CorruptStateError,
        EnvironmentFault,
        InputError,
        LockedError,
        LockgateError,
        MissingCapabilityError,
        NotFoundError,
        NotReadyError,
        PluginError,
        PluginHookError,
        PluginLoadError,
        ProjectNotFoundError,
        RefusedError,
    )
    from lockgate.hookspecs import hookimpl
    from lockgate.integration import (
        IntegrationPipeline,
        StagedComponent,
        WorkspaceIntegrationManager,
        WorkspaceManager,
    )
    from lockgate.operations.validate import ReadinessReport, Validation

_EXPORTS: dict[str, str] = {
    "ChangeEvent": "lockgate.core.models",
    "ComponentStatus": "lockgate.core.models",
    "IntegrationStage": "lockgate.core.models",
    "Issue": "lockgate.core.models",
    "MetricsContext": "lockgate.core.context",
    "RoleContext": "lockgate.core.models",
    "Severity": "lockgate.core.models",
    "ValidationSubject": "lockgate.core.models",
    "Decision": "lockgate.core.models",
    "PeerComponent": "lockgate.core.models",
    "ValidationContext": "lockgate.core.models",
    "ValidatorInfo": "lockgate.core.models",
    "Project": "lockgate.core.project",
    "Session": "lockgate.core.session",
    "ReadinessReport": "lockgate.operations.validate",
    "Validation": "lockgate.operations.validate",
    "IntegrationPipeline": "lockgate.integration",
    "StagedComponent": "lockgate.integration",
    "WorkspaceIntegrationManager": "lockgate.integration",
    "WorkspaceManager": "lockgate.integration",
    "ConfigError": "lockgate.errors",
    "ConflictError": "lockgate.errors",
    "EnvironmentFault": "lockgate.errors",
    "CorruptStateError": "lockgate.errors",
    "InputError": "lockgate.errors",
    "LockedError": "lockgate.errors",
    "LockgateError": "lockgate.errors",
    "MissingCapabilityError": "lockgate.errors",
    "NotFoundError": "lockgate.errors",
    "NotReadyError": "lockgate.errors",
    "PluginError": "lockgate.errors",
    "PluginHookError": "lockgate.errors",
    "PluginLoadError": "lockgate.errors",
    "ProjectNotFoundError": "lockgate.errors",
    "RefusedError": "lockgate.errors",
    "hookimpl": "lockgate.hookspecs",
}

__all__ = [
    "ChangeEvent",
    "ComponentStatus",
    "ConfigError",
    "ConflictError",
    "CorruptStateError",
    "Decision",
    "EnvironmentFault",
    "InputError",
    "IntegrationPipeline",
    "IntegrationStage",
    "Issue",
    "LockedError",
    "LockgateError",
    "MetricsContext",
    "MissingCapabilityError",
    "NotFoundError",
    "NotReadyError",
    "PeerComponent",
    "PluginError",
    "PluginHookError",
    "PluginLoadError",
    "Project",
    "ProjectNotFoundError",
    "ReadinessReport",
    "RefusedError",
    "RoleContext",
    "Session",
    "Severity",
    "StagedComponent",
    "Validation",
    "ValidationContext",
    "ValidationSubject",
    "ValidatorInfo",
    "WorkspaceIntegrationManager",
    "WorkspaceManager",
    "__version__",
    "hookimpl",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lockgate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
