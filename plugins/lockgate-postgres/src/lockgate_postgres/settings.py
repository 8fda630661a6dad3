"""``plugins.postgres:`` — where the database is, which project's rows to use, the pool.

The connection string is a secret (it may hold a password): ``lockgate config show``
shows it without the password. Leave ``dsn`` empty to take everything from libpq's
environment (``PGHOST``, ``PGPORT``, ``PGUSER``, ``PGDATABASE``, ``PGPASSWORD`` or a
``~/.pgpass`` file, ``PGSSLMODE`` …), which keeps the password out of ``lockgate.yaml``.
"""

from __future__ import annotations

from typing import Any

import attrs

from lockgate.plugin import record, secret

__all__ = ["HIDDEN_PASSWORD", "PostgresSettings", "without_password"]

HIDDEN_PASSWORD = "***"


def without_password(dsn: str) -> str:
    """``dsn`` as it may be shown: its password replaced by ``***`` (the whole string
    when it cannot be parsed: a typo must not show what it holds)."""
    if not dsn:
        return dsn
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        parts = conninfo_to_dict(dsn)
    except Exception:
        return HIDDEN_PASSWORD
    if "password" in parts:
        parts["password"] = HIDDEN_PASSWORD
    return make_conninfo("", **parts)


def _positive(limit: float) -> list[Any]:
    return [attrs.validators.gt(0), attrs.validators.le(limit)]


@record
class PostgresSettings:
    """``plugins.postgres:``

    ``dsn``: a libpq connection string or URL (empty: libpq's ``PG*`` environment).
    ``project``: the tenant key every row carries (default: the project's name, from
    ``project.name`` or the project directory). ``role``: the role the store's queries run
    as (``SET ROLE``), one that row-level security applies to (see docs/team.md); empty
    to run as the login role itself. ``pool_size``: connections each lockgate process
    keeps at most (its held locks use one more each). ``connect_timeout``: seconds to wait
    for the server. ``chunk_size``: bytes per stored chunk of an object.
    """

    dsn: str = secret(default="", redact=without_password)
    project: str = ""
    role: str = "lockgate_app"
    pool_size: int = attrs.field(default=4, validator=_positive(100))
    connect_timeout: float = attrs.field(default=10.0, validator=_positive(600))
    chunk_size: int = attrs.field(
        default=1 << 20, validator=[attrs.validators.ge(4096), attrs.validators.le(64 << 20)]
    )

    def __attrs_post_init__(self) -> None:
        if len(self.project) > 200 or "\x00" in self.project:
            raise ValueError("'project' must be at most 200 characters, without NUL")
        if self.role and not self.role.replace("_", "a").isalnum():
            raise ValueError(
                f"'role' {self.role!r} is not a plain role name (letters, digits and _)"
            )
