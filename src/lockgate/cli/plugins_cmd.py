"""``lockgate plugins``: every discovered plugin, what it does, and what is missing."""

from __future__ import annotations

from typing import Any

import click

from lockgate.cli.context import AppContext
from lockgate.cli.output import emit_json, json_option, table, wants_json

__all__ = ["command"]


@click.command("plugins")
@json_option
@click.pass_context
def command(ctx: click.Context, json_flag: bool) -> None:
    """List plugins: distribution, version, hooks, status (loaded/disabled/failed).

    With -v, also each third-party distribution's summary, author and home page (always
    in --json).

    Works even when plugins fail to import, so a broken one can be found and disabled.
    Exits 3 in strict mode (--strict-plugins) if any plugin failed.
    """
    from lockgate.core.roles import ROLES

    app = ctx.ensure_object(AppContext)
    project = app.project(require=False, strict=False)
    plugins = project.plugins
    plugins.load_all()  # a plugin no command needed yet is imported here, so it is checked
    commands = _commands_by_plugin(ctx, project)
    infos = sorted(plugins.infos.values(), key=lambda i: (not i.builtin, i.name))
    roles = _roles(project)
    as_json = wants_json(ctx, json_flag)
    # Reading installed metadata costs a scan of sys.path per distribution: only when shown.
    shown = {i.distribution for i in infos if as_json or (app.verbosity > 0 and not i.builtin)}
    about = {d: _about(d) for d in shown if d}
    if as_json:
        emit_json(
            {
                "plugins": [
                    {
                        **i.to_dict(),
                        "commands": commands.get(i.name, []),
                        **about.get(i.distribution or "", _NO_ABOUT),
                    }
                    for i in infos
                ],
                "roles": roles,
            }
        )
    else:
        table(
            None,
            ["name", "distribution", "version", "kind", "status", "hooks / detail"],
            [
                (
                    i.name,
                    i.distribution or "?",
                    i.version or "?",
                    "builtin" if i.builtin else "third-party",
                    i.status,
                    _detail(i, commands.get(i.name, [])),
                )
                for i in infos
            ],
        )
        if not infos:
            click.echo("no plugins installed")
        if app.verbosity > 0:  # -v: what each third-party distribution says of itself
            for dist in sorted({i.distribution for i in infos if not i.builtin and i.distribution}):
                facts = about[dist]
                said = [facts["summary"], facts["author"], facts["home_page"]]
                click.echo(f"{dist}: " + " | ".join(s or "?" for s in said))
        for role in roles:
            if role["provider"] is None:
                click.echo(f"missing {ROLES[role['role']].title}: {role['problem']}")
    if app.strict_plugins or project.strict_from_env():
        plugins.check_strict()


_NO_ABOUT: dict[str, str | None] = {"summary": None, "author": None, "home_page": None}


def _about(distribution: str) -> dict[str, str | None]:
    """The distribution's summary, author and home page, from its installed metadata."""
    from importlib import metadata

    try:
        meta = metadata.distribution(distribution).metadata
    except metadata.PackageNotFoundError:
        return dict(_NO_ABOUT)

    def field(name: str) -> str | None:
        return meta[name] if name in meta else None  # noqa: SIM401 (no .get in its type)

    urls = [u.split(",", 1) for u in meta.get_all("Project-URL") or [] if "," in u]
    home = field("Home-page") or next(
        (url.strip() for label, url in urls if label.strip().lower() in {"homepage", "home"}),
        urls[0][1].strip() if urls else None,
    )
    return {
        "summary": field("Summary"),
        "author": field("Author") or field("Author-email"),
        "home_page": home,
    }


def _detail(info: Any, commands: list[str]) -> str:
    if info.status == "failed":
        return f"error: {info.error}"
    if info.status == "disabled":
        return str(info.reason)
    parts = [", ".join(info.hooks) or "(no hooks)"]
    if commands:
        parts.append("commands: " + ", ".join(commands))
    return "; ".join(parts)


def _commands_by_plugin(ctx: click.Context, project: Any) -> dict[str, list[str]]:
    from lockgate.errors import PluginHookError

    root = ctx.find_root().command
    taken = root.list_commands(ctx) if isinstance(root, click.Group) else []
    try:
        added = project.hooks.register_commands(taken=taken)
    except PluginHookError as exc:
        click.echo(f"warning: {exc}", err=True)
        return {}
    result: dict[str, list[str]] = {}
    for name, (plugin, _) in sorted(added.items()):
        result.setdefault(plugin, []).append(name)
    return result


def _roles(project: Any) -> list[dict[str, Any]]:
    from lockgate.errors import PluginHookError

    wanted = [("state", project.config.state.store), ("content", project.config.content.store)]
    rows = []
    for role, name in wanted:
        try:
            available = project.roles.available(role)
        except PluginHookError as exc:
            rows.append({"role": role, "name": name, "provider": None, "problem": str(exc)})
            continue
        if name in available:
            rows.append({"role": role, "name": name, "provider": available[name], "problem": None})
        else:
            problem = project.roles.explain_missing(role, name)
            rows.append({"role": role, "name": name, "provider": None, "problem": problem})
    return rows
