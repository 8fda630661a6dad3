"""The ``lockgate`` command group: global options, plugin commands, and error handling.

Every error reaches the user as one line on stderr and a documented exit code:
0 ok, 1 refused or not ready, 2 bad input or usage, 3 plugin failure, 4 conflict,
locked or an environment fault (disk full, permission denied, read-only storage),
5 internal error (a bug; ``-v`` shows the traceback). ``--version`` and ``--help`` load
no plugin.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from lockgate._startup import collector_back, collector_frozen, collector_off
from lockgate._version import __version__
from lockgate.cli.context import AppContext

__all__ = ["EXIT_INTERNAL", "cli", "main"]

EXIT_USAGE = 2
EXIT_INTERNAL = 5
EXIT_INTERRUPTED = 130


def _err(message: str) -> None:
    click.echo(f"lockgate: error: {message}", err=True)


def _print_traceback() -> None:
    import traceback

    traceback.print_exc()


def _app(ctx: click.Context) -> AppContext:
    """The shared AppContext, filled from the parsed global options.

    click resolves the subcommand before it runs the group's callback, so plugin command
    lookup needs the global options before the callback has stored them.
    """
    app = ctx.find_object(AppContext)
    if app is None:
        app = AppContext()
        ctx.obj = app
    params = ctx.find_root().params
    if params.get("project_dir") is not None:
        app.project_dir = Path(params["project_dir"])
    app.json = bool(params.get("json_output", app.json))
    app.verbosity = int(params.get("verbose", 0)) - int(params.get("quiet", 0))
    if params.get("actor"):
        app.actor = str(params["actor"])
    if params.get("strict_plugins"):
        app.strict_plugins = True
    return app


class LockgateGroup(click.Group):
    """A group that finds plugin commands on demand and reports errors in one line."""

    collecting: bool | None = None
    """Whether the cyclic collector was on before the console script turned it off
    (:mod:`lockgate.cli.launch`); ``None``: its state when :meth:`main` is called."""
    _collecting = True

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name) or self._kernel_command(cmd_name)
        if command is not None:
            return command
        return self.plugin_commands(ctx).get(cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *KERNEL_COMMANDS})

    def kernel_names(self) -> set[str]:
        """Every kernel command name, imported or not (plugins may take none of them)."""
        return {*self.commands, *KERNEL_COMMANDS}

    def _kernel_command(self, name: str) -> click.Command | None:
        """A kernel command, its module imported on first use (a command imports only its
        own module: a few ms of every start-up otherwise)."""
        where = KERNEL_COMMANDS.get(name)
        if where is None:
            return None
        import importlib

        module, _, attr = where.partition(":")
        command: click.Command = getattr(importlib.import_module(f"lockgate.cli.{module}"), attr)
        self.add_command(command, name)
        return command

    def plugin_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        """Commands added by plugins (loads plugins; never used by --help)."""
        app = _app(ctx)
        project = app.project(require=False)
        added = project.hooks.register_commands(taken=self.kernel_names())
        app.command_owners = {name: plugin for name, (plugin, _) in added.items()}
        return {name: command for name, (_, command) in added.items()}

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = click.utils.make_str(args[0])
        if self.get_command(ctx, name) is None and not name.startswith("-"):
            import difflib

            known = [*self.kernel_names(), *self.plugin_commands(ctx)]
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else "; see 'lockgate --help'"
            raise click.UsageError(f"no command '{name}'{hint}", ctx)
        _app(ctx).command_name = name
        if name not in self.commands:
            collector_back(self._collecting)  # a plugin's command may run for hours (watch)
        return super().resolve_command(ctx, args)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        app = extra.setdefault("obj", AppContext())
        # Kernel commands run with the cyclic collector off, plugin commands get it back
        # (see resolve_command); what it buys: lockgate._startup.
        owned = self.collecting is not None  # run by the console script: ends the process
        was_on = collector_off()
        self._collecting = was_on if self.collecting is None else self.collecting
        try:
            code = self._run(app, args, prog_name, complete_var, extra)
        finally:
            if owned and standalone_mode:
                collector_frozen()
            else:
                collector_back(self._collecting)
        if standalone_mode:
            sys.exit(code)
        return code

    def _run(
        self,
        app: AppContext,
        args: Sequence[str] | None,
        prog_name: str | None,
        complete_var: str | None,
        extra: dict[str, Any],
    ) -> int:

        try:
            code = self._invoke(app, args, prog_name, complete_var, extra)
            _finish(app)
            return code
        finally:
            # Plugins' warnings no JSON output took (an error, a command that prints its
            # own JSON) still reach the user, unless -q.
            if app.verbosity >= 0:
                for warning in app.take_warnings():
                    click.echo(f"lockgate: warning: {warning}", err=True)

    def _invoke(
        self,
        app: AppContext,
        args: Sequence[str] | None,
        prog_name: str | None,
        complete_var: str | None,
        extra: dict[str, Any],
    ) -> int:
        from lockgate.errors import LockgateError

        try:
            rv = super().main(
                args, prog_name or "lockgate", complete_var, standalone_mode=False, **extra
            )
            return rv if isinstance(rv, int) else 0
        except click.Abort:
            _err("interrupted")
            return EXIT_INTERRUPTED
        except click.UsageError as exc:
            where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
            _err(f"{where}{exc.format_message()}")
            return EXIT_USAGE
        except click.ClickException as exc:
            _err(exc.format_message())
            return exc.exit_code
        except LockgateError as exc:
            _err(exc.message)
            if app.verbosity > 0:
                _print_traceback()
            return exc.exit_code
        except Exception as exc:
            from lockgate.errors import environment_fault

            fault = environment_fault(exc)
            if fault is not None:  # disk full, no permission, read-only: not a bug
                _err(fault.message)
                if app.verbosity > 0:
                    _print_traceback()
                return fault.exit_code
            _err(
                f"internal error: {type(exc).__name__}: {exc} "
                "(a bug in lockgate; run with -v for the traceback and report it)"
            )
            if app.verbosity > 0:
                _print_traceback()
            return EXIT_INTERNAL


def _finish(app: AppContext) -> None:
    """Deliver events and say ``on_shutdown`` (:meth:`AppContext.finish`): the command is
    done, so a problem here is one warning line and never changes its exit code."""
    from lockgate.errors import LockgateError

    try:
        app.finish()
    except LockgateError as exc:
        app.warn(None, f"after the command: {exc.message}")
    except Exception as exc:
        app.warn(None, f"after the command: internal error: {type(exc).__name__}: {exc}")


@click.group(
    cls=LockgateGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Plugins may add more commands: 'lockgate plugins' lists what each provides.",
)
@click.version_option(
    __version__, "--version", prog_name="lockgate", message="%(prog)s %(version)s"
)
@click.option(
    "-C",
    "--project",
    "project_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Project directory (default: LOCKGATE_PROJECT, else the nearest lockgate.yaml upwards).",
)
@click.option("--json", "json_output", is_flag=True, help="Print JSON instead of tables.")
@click.option("-v", "--verbose", count=True, help="More output; -v shows tracebacks of errors.")
@click.option("-q", "--quiet", count=True, help="Less output.")
@click.option(
    "--actor",
    metavar="NAME",
    help=(
        "Who is acting, for the audit log (default: LOCKGATE_ACTOR, else the OS user; "
        "a claimed name needs identity.allow_override)."
    ),
)
@click.option(
    "--strict-plugins",
    is_flag=True,
    help="Fail (exit 3) when any plugin fails to load (also LOCKGATE_STRICT_PLUGINS=1).",
)
@click.pass_context
def cli(ctx: click.Context, /, **_: Any) -> None:
    """lockgate: stage, validate, approve, promote and roll back workspace components."""
    _app(ctx)


KERNEL_COMMANDS: dict[str, str] = {
    "init": "init_cmd:command",
    "plugins": "plugins_cmd:command",
    "plugin": "plugin_cmd:group",
    "config": "config_cmd:command",
    "metrics": "metrics_cmd:command",
    "ls": "ls_cmd:command",
    "diff": "diff_cmd:command",
    "stage": "stage_cmd:stage",
    "sync": "stage_cmd:sync",
    "validate": "validate_cmd:validate",
    "approve": "validate_cmd:approve",
    "reject": "validate_cmd:reject",
    "promote": "promote_cmd:promote",
    "rollback": "promote_cmd:rollback",
    "remove": "promote_cmd:remove",
    "recover": "promote_cmd:recover",
    "pipeline": "pipeline_cmd:group",
    "unlock": "promote_cmd:unlock",
    "verify": "promote_cmd:verify",
    "gc": "promote_cmd:gc",
    "history": "history_cmd:history",
    "log": "history_cmd:log",
    "summary": "report_cmd:summary",
    "stats": "report_cmd:stats",
    "audit": "report_cmd:audit",
    "state": "state_cmd:command",
    "token": "token_cmd:group",
    "serve": "serve_cmd:command",
    "events": "events_cmd:command",
}
"""The kernel's commands: name → ``module:attribute`` under ``lockgate.cli``."""


def main() -> None:
    """Run the command line in this process (the console script is
    :func:`lockgate.cli.launch.main`, which starts with the collector off)."""
    cli.main(prog_name="lockgate")
