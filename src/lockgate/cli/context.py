"""What every command shares: the global options and the project, opened on first use; and
the command runner a long-running plugin command answers other command lines with
(``context.operations.run_command``: the warm path of ``lockgate watch``)."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from lockgate.core.context import PluginContext
    from lockgate.core.project import Project
    from lockgate.core.session import Session

__all__ = ["AppContext", "pass_app"]


class AppContext:
    """Global options, plus the project opened lazily so ``--help`` loads nothing.

    A plain class, not an attrs one: every command makes one before parsing its options,
    and ``--version`` and ``--help`` would otherwise import attrs for it.
    """

    __slots__ = (
        "_projects",
        "_session",
        "actor",
        "command_name",
        "command_owners",
        "distributions",
        "json",
        "pending_warnings",
        "project_dir",
        "strict_plugins",
        "verbosity",
    )

    def __init__(
        self,
        project_dir: Path | None = None,
        json: bool = False,
        verbosity: int = 0,
        strict_plugins: bool | None = None,
        actor: str | None = None,
        distributions: Sequence[Any] | None = None,
        command_name: str | None = None,
    ) -> None:
        self.project_dir = project_dir
        self.json = json
        self.verbosity = verbosity
        self.strict_plugins = strict_plugins
        self.actor = actor
        self._projects: dict[bool, Project] = {}
        self.command_owners: dict[str, str] = {}
        """Plugin command name -> the plugin that added it."""
        self.pending_warnings: list[str] = []
        """Plugins' warnings held for the JSON output (``--json``)."""
        self.distributions = distributions
        """The distributions plugins are discovered in (None: the installed ones); the
        test kit hands in builtins and the plugins under test only."""
        self._session: Session | None = None
        self.command_name = command_name
        """The kernel or plugin command being run (set when it is resolved)."""

    def warn(self, plugin: str | None, message: str) -> None:
        """The warnings channel of :class:`PluginContext`: stderr (not with ``-q``), or
        the JSON output's ``warnings`` list with ``--json``."""
        line = f"{plugin}: {message}" if plugin else message
        if self.json:
            self.pending_warnings.append(line)
        elif self.verbosity >= 0:
            click.echo(f"lockgate: warning: {line}", err=True)

    def take_warnings(self) -> list[str]:
        """The warnings held for the JSON output, handed over once."""
        taken, self.pending_warnings = self.pending_warnings, []
        return taken

    def plugin_context(self, plugin: str | None = None) -> PluginContext:
        """The context of the running plugin command: its project opened as every
        command opens it (``-C``, ``LOCKGATE_PROJECT``, the global options)."""
        if plugin is None:
            ctx = click.get_current_context(silent=True)
            while ctx is not None and ctx.parent is not None and ctx.parent.parent is not None:
                ctx = ctx.parent
            name = ctx.command.name if ctx is not None else None
            plugin = self.command_owners.get(name or "")
        from lockgate.operations.facade import ProjectOperations

        project = self.project()
        ctx = click.get_current_context(silent=True)
        group = ctx.find_root().command if ctx is not None else None
        commands = _runner(project, group) if isinstance(group, click.Group) else None
        return project.plugin_context(plugin, operations=ProjectOperations(project, commands))

    def finish(self) -> None:
        """What ends every command that opened its project: the outbox delivers what it
        can after a command that may have recorded events (within ``events.budget``,
        never failing the command), then ``on_shutdown``."""
        project = self._projects.get(True)
        if project is None:
            return
        from lockgate.operations.announce import shutdown

        session = self._session or self.session()
        events = session.config.events
        if not events.notifiers or (self.command_name in DELIVERS and events.budget == 0):
            shutdown(session)  # budget 0: a dispatcher (events deliver --follow) delivers
            return
        from lockgate.operations.events import close_notifiers, deliver_after_command

        try:
            if self.command_name in DELIVERS:
                deliver_after_command(session)
            shutdown(session)
        finally:
            close_notifiers(session)  # the command is over: its connections too

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
            warn_sink=self.warn,
            distributions=self.distributions,
        )
        project.actor_override = self.actor
        project.json_output = self.json
        project.verbosity = self.verbosity
        if strict is not False:  # the diagnosing commands show the failures themselves
            self._warn_untrusted(project)
        self._projects[require] = project
        if project.root is not None:
            self._projects[True] = project
        return project

    def _warn_untrusted(self, project: Project) -> None:
        """One line while the plugin set cannot be trusted: a plugin failed to load (its
        gates fail closed) or a ``plugins.require`` entry is unsatisfied (commands that
        change state are refused)."""
        problems = [
            f"{i.label} failed to load: {i.error}{'; gates fail closed' * i.may_validate}"
            for i in project.plugins.failures
        ]
        ctx = click.get_current_context(silent=True)
        if ctx is None or not (_reports_required(ctx) and not _dry_run(ctx)):
            problems += project.required_problems()  # else the command's error says it
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            self.warn(None, f"{problems[0]}{more}; see 'lockgate plugins'")

    def close(self) -> None:
        """Release what the opened project holds (database connections). A command-line
        process simply exits; ``lockgate.testing.run_cli`` runs many commands in one
        process and calls this after each."""
        for project in {id(p): p for p in self._projects.values()}.values():
            project.close()
        self._projects.clear()
        self._session = None

    def session(self) -> Session:
        """The command's unit of work over the project (opened on first use)."""
        from lockgate.core.session import Session

        if self._session is None:
            self._session = Session(self.project())
            ctx = click.get_current_context(silent=True)
            if ctx is not None and ctx.command.name in CHANGES_STATE and not _dry_run(ctx):
                # refused before anything runs; the state store's lock refuses it again
                # for every other caller (lockgate.core.session.Session.lock)
                self._session.project.check_required()
            if ctx is not None and ctx.command.name in DELIVERS:
                _prime(self._session)
        return self._session


def _reports_required(ctx: click.Context) -> bool:
    """Whether the command itself says, as its error, which ``plugins.require`` entries
    are unmet: one that changes state, and ``lockgate config validate``."""
    parent = ctx.parent.command.name if ctx.parent is not None else None
    return ctx.command.name in CHANGES_STATE or (parent, ctx.command.name) == (
        "config",
        "validate",
    )


CHANGES_STATE = frozenset(
    {"stage", "sync", "approve", "reject", "promote", "rollback", "gc", "recover"}
)
"""The commands that change state: refused up front while ``plugins.require`` is not met."""

DELIVERS = CHANGES_STATE | {"validate", "pipeline", "unlock", "watch"}
"""The commands after which the outbox delivers what their events (within a budget)."""


def _prime(session: Session) -> None:
    """Before a command that may record events: a notifier seen for the first time starts
    here (its cursor: the newest event now), so this command's events reach it. A
    problem is the warning line the delivery after the command gives again."""
    if not session.config.events.notifiers:
        return
    from lockgate.errors import LockgateError
    from lockgate.operations.events import Outbox

    try:
        Outbox(session).prime()
    except LockgateError as exc:
        session.project.warn(f"events: {exc.message}")


def _dry_run(ctx: click.Context) -> bool:
    return bool(ctx.params.get("dry_run"))


pass_app = click.make_pass_decorator(AppContext)


CommandRunner = Callable[[Sequence[str], bool], tuple[bytes, bytes, int]]


class _Capture(io.TextIOWrapper):
    """A text stream into memory that says whether the caller's stream is a terminal."""

    def __init__(self, terminal: bool) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8", errors="surrogateescape", newline="")
        self._terminal = terminal

    def isatty(self) -> bool:
        return self._terminal

    def value(self) -> bytes:
        self.flush()
        buffer = self.buffer
        assert isinstance(buffer, io.BytesIO)
        return buffer.getvalue()


class _Borrowed(AppContext):
    """An AppContext over a project opened already: the global options of this command
    line (``--json``, ``-v``, ``-q``, ``--actor``) are set on it as an opening would."""

    __slots__ = ("_borrowed",)

    def __init__(self, project: Project) -> None:
        super().__init__()
        self._borrowed = project

    def project(self, *, require: bool = True, strict: bool | None = None) -> Project:
        project = self._borrowed
        if True not in self._projects:
            project.warn_sink = self.warn
            project.actor_override = self.actor
            project.json_output = self.json
            project.verbosity = self.verbosity
            if strict is not False:
                self._warn_untrusted(project)
            self._projects[True] = self._projects[False] = project
        return project

    def close(self) -> None:
        self._projects.clear()  # the project stays open: it is its owner's
        self._session = None


def _runner(project: Project, group: click.Group) -> CommandRunner:
    """Run ``lockgate ARGV`` on ``project`` in this process, through ``group`` (the
    command line's own): (stdout, stderr, exit code). What ``context.operations.run_command``
    runs: the warm path of ``lockgate watch`` (docs/watcher.md) answers with it. The
    command line runs on a fresh :class:`AppContext` that borrows the open project (its
    plugins, roles and the workspace source's stat cache) instead of opening it again,
    stdout and stderr captured: what it prints, its warnings, errors and exit code are the
    cold command's."""

    def run(argv: Sequence[str], terminal: bool) -> tuple[bytes, bytes, int]:
        saved = (
            project.warn_sink,
            project.actor_override,
            project.json_output,
            project.verbosity,
        )
        app = _Borrowed(project)
        out, err = _Capture(terminal), _Capture(False)
        streams = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        try:
            code = group.main(list(argv), prog_name="lockgate", standalone_mode=False, obj=app)
        finally:
            sys.stdout, sys.stderr = streams
            app.close()
            (
                project.warn_sink,
                project.actor_override,
                project.json_output,
                project.verbosity,
            ) = saved
        return out.value(), err.value(), int(code or 0)

    return run
