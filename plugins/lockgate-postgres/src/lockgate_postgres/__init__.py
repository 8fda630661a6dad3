"""lockgate on PostgreSQL: the state store and the content store ``postgres``.

Select them in ``lockgate.yaml``::

    state:
      store: postgres
    content:
      store: postgres        # optional: the local object store works beside it
    plugins:
      postgres:
        dsn: "host=db.internal dbname=lockgate user=lockgate_runner"   # or PG* variables
        project: payments     # default: project.name, else the project directory's name

Many runners share one project through the database (its rows, its advisory locks), and
many projects share one database (row-level security keeps each to its own rows). The
tables live in schema ``lockgate``; an empty database is set up at first use, an older
one is upgraded by ``lockgate postgres upgrade``. Setting up the server, the roles and
backups: docs/team.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from lockgate.plugin import PluginContext, RoleContext, hookimpl, pass_context
from lockgate_postgres.settings import PostgresSettings

if TYPE_CHECKING:
    from lockgate_postgres.content import PostgresContentStore
    from lockgate_postgres.db import Database
    from lockgate_postgres.state import PostgresStateStore

__all__ = ["Database", "PostgresContentStore", "PostgresSettings", "PostgresStateStore"]

# The driver is imported when a store is built, not when lockgate loads the plugin: a
# command that uses neither store does not pay for it.
_LAZY = {
    "Database": "lockgate_postgres.db",
    "PostgresContentStore": "lockgate_postgres.content",
    "PostgresStateStore": "lockgate_postgres.state",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def project_key(settings: PostgresSettings, project_name: str | None, root: Any) -> str:
    """The tenant key: ``plugins.postgres.project``, else the project's name."""
    return settings.project or project_name or root.name


def _database(ctx: RoleContext) -> Database:
    from lockgate_postgres.db import Database

    settings = ctx.settings or PostgresSettings()
    return Database.shared(settings, project_key(settings, ctx.project_name, ctx.project_root))


def _state_store(ctx: RoleContext) -> PostgresStateStore:
    from lockgate_postgres.state import PostgresStateStore

    return PostgresStateStore(_database(ctx))


def _content_store(ctx: RoleContext) -> PostgresContentStore:
    from lockgate_postgres.content import PostgresContentStore

    return PostgresContentStore(_database(ctx))


@hookimpl
def register_settings() -> type:
    return PostgresSettings


@hookimpl
def register_state_stores(register: Any) -> None:
    register("postgres", _state_store)


@hookimpl
def register_content_stores(register: Any) -> None:
    register("postgres", _content_store)


@click.group("postgres")
def postgres() -> None:
    """The PostgreSQL stores: the database's schema."""


@postgres.command("upgrade")
@pass_context
def upgrade(context: PluginContext) -> None:
    """Upgrade the database's lockgate schema to the version this plugin needs.

    Run it once, as a role that may change the schema, after every runner that shares the
    database has the new lockgate-postgres."""
    from lockgate_postgres.db import admin_connection, describe_server
    from lockgate_postgres.schema import schema_version
    from lockgate_postgres.schema import upgrade as apply

    settings = context.settings or PostgresSettings()
    with admin_connection(settings) as conn:
        before = schema_version(conn)
        after = apply(conn, settings.role)
    click.echo(f"{describe_server(settings.dsn)}: lockgate schema version {before} -> {after}")


@hookimpl
def register_commands(register: Any) -> None:
    register(postgres)
