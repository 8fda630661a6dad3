"""lockgate: stage, validate, approve, promote and roll back workspace components.

The public API, re-exported from private modules. Each public name is written once, in
the ``if TYPE_CHECKING:`` block below: type checkers read it there, and
:func:`lockgate._startup.lazy_exports` reads the same block for ``__getattr__``,
``__dir__`` and ``__all__`` (kept exact by a test). Names are imported on first use
(PEP 562), so ``lockgate --version`` and ``--help`` stay fast: importing this package
imports nothing heavy.
"""

from __future__ import annotations

from lockgate._startup import lazy_exports
from lockgate._version import __version__ as __version__

# Not ``typing.TYPE_CHECKING``: the command line's first import, and typing costs the
# warm path's client (which imports only os, sys, socket and json) a tenth of its start.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from lockgate.contracts.models import (
        ChangeEvent as ChangeEvent,
    )
    from lockgate.contracts.models import (
        ComponentStatus as ComponentStatus,
    )
    from lockgate.contracts.models import (
        Decision as Decision,
    )
    from lockgate.contracts.models import (
        IntegrationStage as IntegrationStage,
    )
    from lockgate.contracts.models import (
        Issue as Issue,
    )
    from lockgate.contracts.models import (
        PeerComponent as PeerComponent,
    )
    from lockgate.contracts.models import (
        RoleContext as RoleContext,
    )
    from lockgate.contracts.models import (
        Severity as Severity,
    )
    from lockgate.contracts.models import (
        ValidationContext as ValidationContext,
    )
    from lockgate.contracts.models import (
        ValidationSubject as ValidationSubject,
    )
    from lockgate.contracts.models import (
        ValidatorInfo as ValidatorInfo,
    )
    from lockgate.core.context import (
        MetricsContext as MetricsContext,
    )
    from lockgate.core.project import Project as Project
    from lockgate.core.session import Session as Session
    from lockgate.errors import (
        ConfigError as ConfigError,
    )
    from lockgate.errors import (
        ConflictError as ConflictError,
    )
    from lockgate.errors import (
        CorruptStateError as CorruptStateError,
    )
    from lockgate.errors import (
        EnvironmentFault as EnvironmentFault,
    )
    from lockgate.errors import (
        InputError as InputError,
    )
    from lockgate.errors import (
        LockedError as LockedError,
    )
    from lockgate.errors import (
        LockgateError as LockgateError,
    )
    from lockgate.errors import (
        MissingCapabilityError as MissingCapabilityError,
    )
    from lockgate.errors import (
        NotFoundError as NotFoundError,
    )
    from lockgate.errors import (
        NotReadyError as NotReadyError,
    )
    from lockgate.errors import (
        PluginError as PluginError,
    )
    from lockgate.errors import (
        PluginHookError as PluginHookError,
    )
    from lockgate.errors import (
        PluginLoadError as PluginLoadError,
    )
    from lockgate.errors import (
        ProjectNotFoundError as ProjectNotFoundError,
    )
    from lockgate.errors import (
        RefusedError as RefusedError,
    )
    from lockgate.hookspecs import hookimpl as hookimpl
    from lockgate.integration import (
        IntegrationPipeline as IntegrationPipeline,
    )
    from lockgate.integration import (
        StagedComponent as StagedComponent,
    )
    from lockgate.integration import (
        WorkspaceIntegrationManager as WorkspaceIntegrationManager,
    )
    from lockgate.integration import (
        WorkspaceManager as WorkspaceManager,
    )
    from lockgate.operations.validate import (
        ReadinessReport as ReadinessReport,
    )
    from lockgate.operations.validate import (
        Validation as Validation,
    )


__getattr__, __dir__ = lazy_exports(globals())
