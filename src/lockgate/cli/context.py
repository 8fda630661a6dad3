"""What every command shares: the global options and the project, opened on first use."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import click

if TYPE_CHECKING:
    from lockgate.core.project import Project
    from lockgate.core.session import Session

__all__ = ["AppContext", "pass_app"]


@attrs.define
class AppContext:
    """Global options, plus the project opened lazily so ``--help`` loads nothing."""

    project_dir: Path | None = None
    json: bool = False
    verbosity: int = 0
    strict_plugins: bool | None = None
    actor: str | None = None
    _projects: dict[bool, Project] = attrs.field(factory=dict)
    _session: Session | None = attrs.field(default=None, init=False)

    def project(self, *, require: bool = True, strict: bool | None = None) -> Project:
        """The project (``require=False``: the defaults when there is none).

        ``strict=False`` opens it without failing on plugin load errors, for the commands
        that diagnose them.
        """
        from lockgate.core.project import Project

        if require in self._projects:
            return self._projects[require]
        if not require and True in self._projects:
            return self._projects[True]
        project = Project.open(
            self.project_dir,
            strict_plugins=self.strict_plugins if strict is None else strict,
            require=require,
        )
        project.actor_override = self.actor
        self._projects[require] = project
        if project.root is not None:
            self._projects[True] = project
        return project

    def session(self) -> Session:
        """The command's unit of work over the project (opened on first use)."""
        from lockgate.core.session import Session

        if self._session is None:
            self._session = Session(self.project())
        return self._session


pass_app = click.make_pass_decorator(AppContext)
