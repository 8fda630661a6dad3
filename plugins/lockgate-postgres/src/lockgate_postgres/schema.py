"""The tables in schema ``lockgate``, their row-level security, and forward migrations.

Every table carries ``project``: the tenant key, filled from the session setting
``lockgate.project`` (the column's default) and checked against it by a policy on every
table, for reads and for writes. A query that names no project therefore sees only the
rows of the project its session was set to, and cannot write another's.

Row-level security does not apply to superusers, to roles with ``BYPASSRLS``, or to a
table's owner unless the table says ``FORCE ROW LEVEL SECURITY``. So the tables are
forced, and the store's queries run as a role made for them (``plugins.postgres.role``,
default ``lockgate_app``: ``NOLOGIN``, ``NOBYPASSRLS``, owning nothing), which a login
role becomes with ``SET ROLE``; see docs/team.md.

The version is the one row of ``lockgate.schema_version``. ``MIGRATIONS[n-1]`` takes the
schema from version ``n-1`` to ``n``; an empty database is set up to the latest at first
use, and a database at an older version is upgraded only when asked
(``lockgate postgres upgrade``), since every runner sharing it must then be new enough.
"""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from lockgate.plugin import ConfigError

__all__ = ["LATEST", "MIGRATIONS", "TABLES", "ensure_schema", "schema_version", "upgrade"]

_PROJECT = "project TEXT NOT NULL DEFAULT current_setting('lockgate.project')"

MIGRATIONS: tuple[str, ...] = (
    # 1: the state store
    f"""
    CREATE TABLE lockgate.heads (
        {_PROJECT} PRIMARY KEY,
        seq BIGINT NOT NULL DEFAULT 0,
        hash TEXT NOT NULL,
        at TEXT
    );
    CREATE TABLE lockgate.components (
        {_PROJECT},
        component TEXT NOT NULL,
        workspace TEXT NOT NULL,
        component_id TEXT NOT NULL,
        component_type TEXT NOT NULL,
        status TEXT NOT NULL,
        latest_revision TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (project, component)
    );
    CREATE INDEX components_by_workspace ON lockgate.components (project, workspace, component);
    CREATE INDEX components_by_status ON lockgate.components (project, status);
    CREATE INDEX components_by_type ON lockgate.components (project, component_type);
    CREATE TABLE lockgate.revisions (
        {_PROJECT},
        component TEXT NOT NULL,
        revision TEXT NOT NULL,
        created_at TEXT NOT NULL,
        actor TEXT NOT NULL,
        stage TEXT NOT NULL,
        files BIGINT NOT NULL,
        size BIGINT NOT NULL,
        parent TEXT,
        seq BIGSERIAL,
        PRIMARY KEY (project, component, revision)
    );
    CREATE INDEX revisions_by_component ON lockgate.revisions (project, component, seq);
    CREATE TABLE lockgate.events (
        {_PROJECT},
        seq BIGINT NOT NULL,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        component TEXT,
        stage TEXT,
        revision TEXT,
        previous_revision TEXT,
        reason TEXT,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        outcome TEXT NOT NULL,
        PRIMARY KEY (project, seq)
    );
    CREATE INDEX events_by_component ON lockgate.events (project, component, seq);
    CREATE INDEX events_by_stage ON lockgate.events (project, stage, seq);
    CREATE INDEX events_by_actor ON lockgate.events (project, actor, seq);
    CREATE INDEX events_by_action ON lockgate.events (project, action, seq);
    CREATE INDEX events_by_at ON lockgate.events (project, at);
    CREATE TABLE lockgate.event_counts (
        {_PROJECT},
        action TEXT NOT NULL,
        outcome TEXT NOT NULL,
        n BIGINT NOT NULL,
        PRIMARY KEY (project, action, outcome)
    );
    CREATE TABLE lockgate.pointers (
        {_PROJECT},
        stage TEXT NOT NULL,
        component_id TEXT NOT NULL,
        component TEXT NOT NULL,
        revision TEXT,
        generation BIGINT NOT NULL,
        updated_at TEXT NOT NULL,
        actor TEXT NOT NULL,
        PRIMARY KEY (project, stage, component_id)
    );
    CREATE TABLE lockgate.pointer_history (
        {_PROJECT},
        seq BIGSERIAL,
        stage TEXT NOT NULL,
        component_id TEXT NOT NULL,
        component TEXT NOT NULL,
        revision TEXT,
        previous_revision TEXT,
        generation BIGINT NOT NULL,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        reason TEXT,
        valid_until TEXT,
        event_seq BIGINT,
        PRIMARY KEY (project, seq)
    );
    CREATE INDEX pointer_history_by_component
        ON lockgate.pointer_history (project, stage, component_id, seq);
    CREATE INDEX pointer_history_by_time ON lockgate.pointer_history (project, stage, at);
    CREATE TABLE lockgate.approvals (
        {_PROJECT},
        id BIGSERIAL,
        component TEXT NOT NULL,
        revision TEXT NOT NULL,
        actor TEXT NOT NULL,
        decision TEXT NOT NULL,
        at TEXT NOT NULL,
        stage TEXT,
        comment TEXT,
        PRIMARY KEY (project, id)
    );
    CREATE INDEX approvals_by_revision ON lockgate.approvals (project, component, revision, id);
    CREATE TABLE lockgate.intents (
        {_PROJECT},
        id TEXT NOT NULL,
        operation TEXT NOT NULL,
        owner TEXT NOT NULL,
        created_at TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (project, id)
    );
    CREATE INDEX intents_open ON lockgate.intents (project, state);
    CREATE TABLE lockgate.lock_epochs (
        {_PROJECT},
        name TEXT NOT NULL,
        epoch BIGINT NOT NULL,
        PRIMARY KEY (project, name)
    );
    CREATE TABLE lockgate.lock_owners (
        {_PROJECT},
        name TEXT NOT NULL,
        epoch BIGINT NOT NULL,
        backend_pid INTEGER NOT NULL,
        token TEXT NOT NULL,
        owner TEXT NOT NULL,
        PRIMARY KEY (project, name, token)
    );
    """,
    # 2: the content store
    f"""
    CREATE TABLE lockgate.objects (
        {_PROJECT},
        digest TEXT NOT NULL,
        blob TEXT NOT NULL,
        size BIGINT NOT NULL,
        chunks INTEGER NOT NULL,
        stored_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (project, digest)
    );
    CREATE TABLE lockgate.chunks (
        {_PROJECT},
        blob TEXT NOT NULL,
        n INTEGER NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (project, blob, n)
    );
    ALTER TABLE lockgate.chunks ALTER COLUMN data SET STORAGE EXTERNAL;
    """,
    # 3: validators' verdicts per revision (the ValidationResults capability)
    f"""
    CREATE TABLE lockgate.validation_results (
        {_PROJECT},
        revision TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (project, revision, key)
    );
    """,
    # 4: the outbox's delivery state per notifier and event (the EventDeliveries capability)
    f"""
    CREATE TABLE lockgate.deliveries (
        {_PROJECT},
        notifier TEXT NOT NULL,
        seq BIGINT NOT NULL,
        component TEXT,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_at TEXT NOT NULL,
        last_error TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (project, notifier, seq)
    );
    CREATE INDEX deliveries_by_state ON lockgate.deliveries (project, state, notifier, seq);
    CREATE TABLE lockgate.delivery_cursors (
        {_PROJECT},
        notifier TEXT NOT NULL,
        seq BIGINT NOT NULL,
        PRIMARY KEY (project, notifier)
    );
    """,
    # 5: components counted by status, type and workspace, kept by triggers (``stats`` and
    # ``summary`` read a few rows instead of grouping every component); the table is
    # filled from the components already there
    f"""
    CREATE TABLE lockgate.component_counts (
        {_PROJECT},
        dimension TEXT NOT NULL,
        value TEXT NOT NULL,
        n BIGINT NOT NULL,
        PRIMARY KEY (project, dimension, value)
    );
    CREATE FUNCTION lockgate.count_components() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        -- One statement per firing, over the statement's transition tables: the rows
        -- an UPDATE leaves alone in a dimension count -1 and +1, which sum to nothing.
        IF TG_OP = 'INSERT' THEN
            INSERT INTO lockgate.component_counts AS c (project, dimension, value, n)
            SELECT project, d.dimension, d.value, count(*)
            FROM new_rows, LATERAL (VALUES ('status', status), ('type', component_type),
                ('workspace', workspace)) AS d (dimension, value)
            GROUP BY 1, 2, 3
            ON CONFLICT (project, dimension, value) DO UPDATE SET n = c.n + excluded.n;
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO lockgate.component_counts AS c (project, dimension, value, n)
            SELECT project, d.dimension, d.value, -count(*)
            FROM old_rows, LATERAL (VALUES ('status', status), ('type', component_type),
                ('workspace', workspace)) AS d (dimension, value)
            GROUP BY 1, 2, 3
            ON CONFLICT (project, dimension, value) DO UPDATE SET n = c.n + excluded.n;
        ELSE
            INSERT INTO lockgate.component_counts AS c (project, dimension, value, n)
            SELECT project, d.dimension, d.value, sum(delta)
            FROM (SELECT *, -1 AS delta FROM old_rows UNION ALL
                  SELECT *, 1 AS delta FROM new_rows) AS rows,
                LATERAL (VALUES ('status', status), ('type', component_type),
                ('workspace', workspace)) AS d (dimension, value)
            GROUP BY 1, 2, 3
            HAVING sum(delta) <> 0
            ON CONFLICT (project, dimension, value) DO UPDATE SET n = c.n + excluded.n;
        END IF;
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER components_counted_insert AFTER INSERT ON lockgate.components
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION lockgate.count_components();
    CREATE TRIGGER components_counted_update AFTER UPDATE ON lockgate.components
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION lockgate.count_components();
    CREATE TRIGGER components_counted_delete AFTER DELETE ON lockgate.components
        REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION lockgate.count_components();
    INSERT INTO lockgate.component_counts (project, dimension, value, n)
    SELECT project, d.dimension, d.value, count(*)
    FROM lockgate.components, LATERAL (VALUES ('status', status),
        ('type', component_type), ('workspace', workspace)) AS d (dimension, value)
    GROUP BY 1, 2, 3;
    """,
    # 6: the server's bearer tokens, hashed (the AccessTokens capability)
    f"""
    CREATE TABLE lockgate.tokens (
        {_PROJECT},
        id TEXT NOT NULL,
        digest TEXT NOT NULL,
        actor TEXT NOT NULL,
        role TEXT NOT NULL,
        stage TEXT,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        expires_at TEXT,
        revoked_at TEXT,
        PRIMARY KEY (project, id),
        UNIQUE (project, digest)
    );
    """,
    # 7: what every promotion reads, found without stepping over what came before:
    # the revisions a component's pointers ever held, in order (live_revisions steps
    # from one to the next), one component's events of one action (who staged, who
    # approved; with statistics the planner scanned every component's), and a lock
    # holder's owner rows by its token, the key's first column (the index entries of rows
    # inserted and deleted by every switch stay until the table is vacuumed, and a search
    # by name, or by the project with the token as a filter, stepped over them all)
    """
    CREATE INDEX pointer_history_by_revision
        ON lockgate.pointer_history (project, component, revision, stage);
    CREATE INDEX events_by_component_action
        ON lockgate.events (project, component, action, seq);
    ALTER TABLE lockgate.lock_owners DROP CONSTRAINT lock_owners_pkey;
    ALTER TABLE lockgate.lock_owners ADD PRIMARY KEY (project, token, name);
    """,
    # 8: what a gate asks without reading what grows with the project or with how often
    # a component was staged: the components of one component id in every workspace
    # (ComponentsById: a validator's conflicts, a bare id's owners), and one component's
    # events about one revision (RevisionLineage: who staged the revisions it walks)
    """
    CREATE INDEX components_by_id ON lockgate.components (project, component_id, component);
    CREATE INDEX events_by_revision_action
        ON lockgate.events (project, component, revision, action);
    """,
)
LATEST = len(MIGRATIONS)

TABLES: dict[int, tuple[str, ...]] = {
    1: (
        "heads",
        "components",
        "revisions",
        "events",
        "event_counts",
        "pointers",
        "pointer_history",
        "approvals",
        "intents",
        "lock_epochs",
        "lock_owners",
    ),
    2: ("objects", "chunks"),
    3: ("validation_results",),
    4: ("deliveries", "delivery_cursors"),
    5: ("component_counts",),
    6: ("tokens",),
    7: (),
    8: (),
}
"""The tables each migration creates (each gets the project policy and the grants)."""

_SETUP_LOCK = 0x6C6F636B67617465  # pg_advisory_xact_lock key: one schema change at a time


def _value(conn: psycopg.Connection[Any], query: str, params: tuple[object, ...] = ()) -> Any:
    """The first column of the first row (None without one), whatever the row factory."""
    cur = conn.cursor(row_factory=tuple_row)
    row = cur.execute(query, params).fetchone()
    return row[0] if row else None


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """The version the database is at (0: lockgate was never set up in it)."""
    if not _value(conn, "SELECT to_regclass('lockgate.schema_version') IS NOT NULL"):
        return 0
    return int(_value(conn, "SELECT version FROM lockgate.schema_version") or 0)


def ensure_schema(conn: psycopg.Connection[Any], role: str, where: str) -> int:
    """Set up an empty database to the latest version; refuse one that is older (until
    :func:`upgrade`) or newer (a newer lockgate-postgres wrote it). Runs as the login role,
    before the store becomes ``role``."""
    version = schema_version(conn)
    if version == LATEST:
        return version
    if version > LATEST:
        raise ConfigError(
            f"{where}: the lockgate schema is at version {version}, newer than this "
            f"lockgate-postgres knows ({LATEST}); upgrade lockgate-postgres on this machine"
        )
    if version > 0:
        raise ConfigError(
            f"{where}: the lockgate schema is at version {version}, this lockgate-postgres "
            f"needs {LATEST}; run 'lockgate postgres upgrade' once every runner has it"
        )
    return upgrade(conn, role)


def upgrade(conn: psycopg.Connection[Any], role: str) -> int:
    """Apply every migration the database lacks, in one transaction; return the version."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))
        conn.execute("CREATE SCHEMA IF NOT EXISTS lockgate")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS lockgate.schema_version (version INTEGER NOT NULL)"
        )
        version = schema_version(conn)
        if version == 0:
            conn.execute("INSERT INTO lockgate.schema_version VALUES (0)")
        if role:
            _create_role(conn, role)
        for number in range(version + 1, LATEST + 1):
            conn.execute(MIGRATIONS[number - 1])
            for table in TABLES[number]:
                _protect(conn, table, role)
            conn.execute("UPDATE lockgate.schema_version SET version = %s", (number,))
    return max(version, LATEST)


def _create_role(conn: psycopg.Connection[Any], role: str) -> None:
    """The role the store's queries run as: no login, no bypass of row-level security,
    allowed to read the schema's version; the login role may become it."""
    name = sql.Identifier(role)
    if not _value(conn, "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)):
        try:
            with conn.transaction():
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN NOBYPASSRLS").format(name))
        except psycopg.errors.DuplicateObject:
            pass  # another database's set-up made it meanwhile (roles are cluster-wide)
        except psycopg.errors.UniqueViolation:
            pass
    member = _value(
        conn,
        "SELECT pg_has_role(current_user, %s, 'MEMBER') OR rolsuper FROM pg_roles "
        "WHERE rolname = current_user",
        (role,),
    )
    if not member:  # so that this login may become the role; a DBA may have said so
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(name))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA lockgate TO {}").format(name))
    conn.execute(sql.SQL("GRANT SELECT ON lockgate.schema_version TO {}").format(name))


def _protect(conn: psycopg.Connection[Any], table: str, role: str) -> None:
    """Row-level security on ``table`` (forced, so its owner is held to it too) with the
    one policy: the session's project, for reading and for writing."""
    ident = sql.Identifier("lockgate", table)
    conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(ident))
    conn.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(ident))
    conn.execute(
        sql.SQL(
            "CREATE POLICY project_rows ON {} "
            "USING (project = current_setting('lockgate.project', true)) "
            "WITH CHECK (project = current_setting('lockgate.project', true))"
        ).format(ident)
    )
    if role:
        name = sql.Identifier(role)
        conn.execute(
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(ident, name)
        )
        conn.execute(sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA lockgate TO {}").format(name))
