"""The operations a plugin command may run, through ``PluginContext.operations``.

:class:`ProjectOperations` implements :class:`~lockgate.contracts.models.Operations` over one
opened project; the command line hands it to the context of a plugin command (``watch``
stages and validates through it). Lifecycle hooks get no operations: a hook that staged
or promoted from inside an announcement would re-enter the operation announcing it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence

import attrs

from lockgate.contracts.models import ReadinessReport, StageResult, SyncResult
from lockgate.contracts.source import Component, Source
from lockgate.core.project import Project
from lockgate.errors import MissingCapabilityError
from lockgate.operations.stage import Stager
from lockgate.operations.validate import Validation

__all__ = ["ProjectOperations"]


class ProjectOperations:
    """:class:`~lockgate.contracts.models.Operations` over one opened project.

    ``stage`` returns the warnings plugins gave (``context.warn``) while announcing the
    new revision in the result's ``warnings``, beside hook failures: the caller (a
    long-running command such as ``watch``) reports them with the revision they are
    about, instead of the command line holding them until it exits.
    """

    def __init__(
        self,
        project: Project,
        commands: Callable[[Sequence[str], bool], tuple[bytes, bytes, int]] | None = None,
    ) -> None:
        self._project = project
        self._commands = commands

    @property
    def environ(self) -> Mapping[str, str]:
        return self._project.environ

    def source(self) -> Source:
        return self._project.source()

    def check_stage(self, name: str | None) -> str:
        return self._project.check_stage(name)

    def stage(self, component: Component | str, *, to: str | None = None) -> StageResult:
        with self._collecting() as warnings:
            if isinstance(component, str):
                result = Stager(self._project).stage(component, to=to)
            else:
                result = Stager(self._project).stage_component(component, to=to)
        if not warnings:
            return result
        return attrs.evolve(result, warnings=(*result.warnings, *warnings))

    @contextlib.contextmanager
    def _collecting(self) -> Iterator[list[str]]:
        project = self._project
        previous = project.warn_sink
        collected: list[str] = []

        def collect(plugin: str | None, message: str) -> None:
            collected.append(f"{plugin}: {message}" if plugin else message)

        project.warn_sink = collect
        try:
            yield collected
        finally:
            project.warn_sink = previous

    def sync(self, workspaces: Sequence[str] | None = None, *, to: str | None = None) -> SyncResult:
        return Stager(self._project).sync(workspaces, to=to)

    def validate(
        self, refs: Sequence[str], *, stage: str | None = None, use_cache: bool = True
    ) -> ReadinessReport:
        return Validation(self._project).run(list(refs), stage=stage, use_cache=use_cache)

    def latest_revision(self, ref: str) -> str | None:
        found = self._project.state().component(ref)
        return found.latest_revision if found is not None else None

    def run_command(
        self, argv: Sequence[str], *, terminal: bool = False
    ) -> tuple[bytes, bytes, int]:
        if self._commands is None:
            raise MissingCapabilityError(
                "this process runs no command lines (only a command started by 'lockgate' does)"
            )
        return self._commands(argv, terminal)
