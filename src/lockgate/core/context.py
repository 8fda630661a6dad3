"""Build the :class:`~lockgate.core.models.PluginContext` hooks and plugin commands receive.

The context is how a plugin reaches its project without importing the kernel: the root,
the actor, its own settings, the stage an event is about, a warnings channel and a small
facade over the operations (:class:`ProjectOperations`). The kernel builds one per plugin
and call, lazily: only for implementations that take a ``context`` argument.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from lockgate.core.models import PluginContext

if TYPE_CHECKING:
    from lockgate.core.contracts import Component, Source
    from lockgate.core.project import Project
    from lockgate.core.staging import StageResult, SyncResult
    from lockgate.core.validation import ReadinessReport

__all__ = ["ProjectOperations", "Sink", "plugin_context"]

Sink = Callable[[str | None, str], None]
"""Where :meth:`PluginContext.warn` goes: ``sink(plugin, message)``."""


class ProjectOperations:
    """:class:`~lockgate.core.models.Operations` over one opened project.

    ``stage`` returns the warnings plugins gave (``context.warn``) while announcing the
    new revision in the result's ``warnings``, beside hook failures: the caller (a
    long-running command such as ``watch``) reports them with the revision they are
    about, instead of the command line holding them until it exits.
    """

    def __init__(self, project: Project) -> None:
        self._project = project

    @property
    def environ(self) -> Mapping[str, str]:
        return self._project.environ

    def source(self) -> Source:
        return self._project.source()

    def check_stage(self, name: str | None) -> str:
        return self._project.check_stage(name)

    def stage(self, component: Component | str, *, to: str | None = None) -> StageResult:
        from lockgate.core.staging import Stager

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
        from lockgate.core.staging import Stager

        return Stager(self._project).sync(workspaces, to=to)

    def validate(
        self, refs: Sequence[str], *, stage: str | None = None, use_cache: bool = True
    ) -> ReadinessReport:
        from lockgate.core.validation import Validation

        return Validation(self._project).run(list(refs), stage=stage, use_cache=use_cache)

    def latest_revision(self, ref: str) -> str | None:
        found = self._project.state().component(ref)
        return found.latest_revision if found is not None else None


def plugin_context(
    project: Project,
    plugin: str | None,
    *,
    stage: str | None = None,
    sink: Sink | None = None,
) -> PluginContext:
    """The context of ``plugin`` in ``project`` (for an event about ``stage``, if any).

    The output options and the warnings channel are the project's (the command line sets
    them from its global options when it opens the project).
    """
    stage_config: Any = None
    if stage is not None:
        stage_config = project.config.stages.get(stage)
    extra: dict[str, Any] = {}
    chosen = sink or project.warn_sink
    if chosen is not None:
        extra["sink"] = chosen
    return PluginContext(
        project_root=project.root,
        plugin=plugin,
        actor=project.actor,
        settings=project.settings.get(plugin) if plugin is not None else None,
        stage=stage,
        stage_config=stage_config,
        json=project.json_output,
        verbosity=project.verbosity,
        operations=ProjectOperations(project) if project.root is not None else None,
        **extra,
    )
