"""Test helpers for people who write lockgate plugins: fixtures, twins, conformance suites.

Installed as a pytest plugin (the ``pytest11`` entry point), so in any test suite that
has lockgate installed the fixtures ``lockgate_project`` and ``lockgate_cli`` are
available without an import, and ``lockgate_kit``, which makes an isolated project for
testing one plugin (a :class:`PluginKit`: only lockgate's builtins and the plugins under
test load, no ambient ``LOCKGATE_*`` variable; one line each to make a component, stage,
validate and promote it). Everything else is imported from here:

* project helpers — :func:`fake_distribution`, :func:`open_project`, :func:`run_cli`;
* one **conformance suite** per role, a class a plugin's tests subclass with one fixture:
  :class:`StateStoreConformance` (fixture ``store``), :class:`ContentStoreConformance`
  (``content_store``), :class:`SourceConformance` (``source``, a :class:`SourceFixture`)
  and :class:`TargetConformance` (``target``);
* tests that need a server: :func:`require_tcp_service` and :func:`service_missing`
  skip with a one-line reason when it is not running, and fail instead when
  ``LOCKGATE_REQUIRE_SERVICES=1`` is set (CI);
* the **in-memory twins** of the roles, each passing its suite:
  :class:`MemoryStateStore`, :class:`MemoryContentStore`, :class:`MemorySource`,
  :class:`MemoryTarget`; :class:`MemoryRoles` registers the content store, source and
  target twins as ``memory`` for a project to select in ``lockgate.yaml``.

The suites and twins are imported on first use, so loading this pytest plugin costs a
test session next to nothing; their asserts are rewritten by pytest like a test's own.
See ``docs/conformance.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from lockgate._startup import lazy_names
from lockgate.testing._project import (
    CliResult,
    FakeDistribution,
    fake_distribution,
    lockgate_cli,
    lockgate_project,
    open_project,
    run_cli,
)

if TYPE_CHECKING:
    from lockgate.builtin_plugins.memory_state import MemoryStateStore
    from lockgate.testing._content_suite import ContentStoreConformance
    from lockgate.testing._files import ComponentFiles, DirectoryComponentFiles, SourceFixture
    from lockgate.testing._kit import PluginKit, PluginShadowWarning
    from lockgate.testing._memory_content import MemoryContentStore
    from lockgate.testing._memory_plugin import MemoryRoles
    from lockgate.testing._memory_source import MemorySource
    from lockgate.testing._memory_target import MemoryTarget
    from lockgate.testing._services import (
        REQUIRE_SERVICES,
        require_tcp_service,
        service_missing,
        services_required,
    )
    from lockgate.testing._source_suite import SourceConformance
    from lockgate.testing._state_suite import StateStoreConformance, at
    from lockgate.testing._target_suite import TargetConformance

__all__ = [
    "REQUIRE_SERVICES",
    "CliResult",
    "ComponentFiles",
    "ContentStoreConformance",
    "DirectoryComponentFiles",
    "FakeDistribution",
    "MemoryContentStore",
    "MemoryRoles",
    "MemorySource",
    "MemoryStateStore",
    "MemoryTarget",
    "PluginKit",
    "PluginShadowWarning",
    "SourceConformance",
    "SourceFixture",
    "StateStoreConformance",
    "TargetConformance",
    "at",
    "fake_distribution",
    "lockgate_cli",
    "lockgate_kit",
    "lockgate_project",
    "open_project",
    "require_tcp_service",
    "run_cli",
    "service_missing",
    "services_required",
]


@pytest.fixture
def lockgate_kit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Make isolated projects for testing a plugin: ``lockgate_kit(extra=[...],
    only=[...], environ={...}, config="...")`` returns a :class:`PluginKit` (builtins and
    the plugins under test only, no ambient ``LOCKGATE_*`` variable). Its module is
    imported when the fixture is first used."""
    from lockgate.testing._kit import kits

    yield from kits(tmp_path, monkeypatch)


_SUITES = (
    "_state_suite",
    "_state_builders",
    "_state_records_suite",
    "_state_pointer_suite",
    "_state_approval_suite",
    "_state_audit_suite",
    "_state_outbox_suite",
    "_lock_suite",
    "_content_suite",
    "_source_suite",
    "_target_suite",
)
# A suite's failures should read like a test's own: registered before any is imported.
pytest.register_assert_rewrite(*(f"{__name__}.{m}" for m in _SUITES))

_LAZY = {
    "ComponentFiles": "lockgate.testing._files",
    "ContentStoreConformance": "lockgate.testing._content_suite",
    "DirectoryComponentFiles": "lockgate.testing._files",
    "MemoryContentStore": "lockgate.testing._memory_content",
    "MemoryRoles": "lockgate.testing._memory_plugin",
    "MemorySource": "lockgate.testing._memory_source",
    "MemoryStateStore": "lockgate.builtin_plugins.memory_state",
    "MemoryTarget": "lockgate.testing._memory_target",
    "PluginKit": "lockgate.testing._kit",
    "PluginShadowWarning": "lockgate.testing._kit",
    "REQUIRE_SERVICES": "lockgate.testing._services",
    "require_tcp_service": "lockgate.testing._services",
    "service_missing": "lockgate.testing._services",
    "services_required": "lockgate.testing._services",
    "SourceConformance": "lockgate.testing._source_suite",
    "SourceFixture": "lockgate.testing._files",
    "StateStoreConformance": "lockgate.testing._state_suite",
    "TargetConformance": "lockgate.testing._target_suite",
    "at": "lockgate.testing._state_suite",
}


# A suite or twin is imported when it is first asked for (PEP 562).
__getattr__, __dir__ = lazy_names(globals(), _LAZY)
