"""The in-memory twins as a plugin a project can select in ``lockgate.yaml``.

:class:`MemoryRoles` holds one :class:`MemoryContentStore`, one :class:`MemorySource` and
one :class:`MemoryTarget` per stage, and registers them under the name ``memory``
(content store, source, target kind); the state store ``memory`` is builtin. Hand its
:meth:`MemoryRoles.distribution` to :func:`~lockgate.testing.open_project`::

    roles = MemoryRoles()
    project = open_project(root, extra=[roles.distribution()])
    roles.source.create("alice:etl")
    roles.source.write("alice:etl", "run.py", b"print(1)\\n")

with ``lockgate.yaml`` selecting them::

    state: {store: memory}
    content: {store: memory}
    source: {name: memory}
    stages:
      staging: {targets: [{kind: memory}]}

Everything lives in this object, so one project (one process) sees it all, and nothing
is written to disk.
"""

from __future__ import annotations

from typing import Any

from lockgate.contracts.models import RoleContext
from lockgate.hookspecs import hookimpl
from lockgate.testing._memory_content import MemoryContentStore
from lockgate.testing._memory_source import MemorySource
from lockgate.testing._memory_target import MemoryTarget
from lockgate.testing._project import FakeDistribution, fake_distribution

__all__ = ["MemoryRoles"]


class MemoryRoles:
    """The in-memory content store, source and targets, registered as ``memory``."""

    def __init__(self) -> None:
        self.content = MemoryContentStore()
        self.source = MemorySource()
        self.targets: dict[str, MemoryTarget] = {}
        """One target per stage, by stage name, made when the stage first needs it."""

    def target(self, ctx: RoleContext) -> MemoryTarget:
        """The target of the stage ``ctx.options["stage"]`` (the same every time)."""
        stage = str(ctx.options.get("stage", "stage"))
        return self.targets.setdefault(stage, MemoryTarget(stage))

    @hookimpl
    def register_content_stores(self, register: Any) -> None:
        register("memory", lambda ctx: self.content)

    @hookimpl
    def register_sources(self, register: Any) -> None:
        register("memory", lambda ctx: self.source)

    @hookimpl
    def register_targets(self, register: Any) -> None:
        register("memory", self.target)

    def distribution(self, name: str = "lockgate-memory-roles") -> FakeDistribution:
        """A fake distribution whose ``memory-roles`` entry point is this object (the
        plugin name ``memory`` is the builtin memory state store's)."""
        return fake_distribution(name, {"memory-roles": self})
