"""Connections to the database: the pool every query goes through, the session each
connection is set to (the project, the role), and the one error a lost server gives.

Each connection, as it joins the pool, becomes the store's role (``SET ROLE``) and is
set to the project (``lockgate.project``), so every query it runs sees only that
project's rows (see :mod:`lockgate_postgres.schema`). A held lock has a connection of
its own, outside the pool (:mod:`lockgate_postgres.locks`).

When the server cannot be reached, or the connection drops, the command stops with one
line naming the server (never the password) and exit code 4 (``EnvironmentFault``):
a write is one transaction, so an interrupted one left nothing behind.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any, ClassVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from lockgate.plugin import ConfigError, EnvironmentFault
from lockgate_postgres.schema import ensure_schema
from lockgate_postgres.settings import PostgresSettings

__all__ = [
    "Database",
    "admin_connection",
    "connection_options",
    "describe_server",
    "is_connection_error",
    "unreachable_as_fault",
]

Row = dict[str, Any]

# Keepalives: a runner whose host vanishes (no FIN, no RST) is noticed by the server
# within about a minute, which ends its session and so releases its locks.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
# The session a connection is set to, in one statement (one round trip): the role, the
# project, the schema, and over TCP the server's side of the keepalives.
_ROLE = "set_config('role', %s, false), "
_SESSION = "set_config('lockgate.project', %s, false), set_config('search_path', 'lockgate', false)"
_SERVER_KEEPALIVES = "".join(
    f", set_config('tcp_keepalives_{name}', '{value}', false)"
    for name, value in (("idle", 30), ("interval", 10), ("count", 3))
)


def describe_server(dsn: str) -> str:
    """``PostgreSQL at HOST:PORT/DB`` from what the connection string and libpq's
    environment say (never the password, never the user)."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "PostgreSQL (plugins.postgres.dsn cannot be parsed)"
    host = parts.get("host") or os.environ.get("PGHOST") or "localhost"
    port = parts.get("port") or os.environ.get("PGPORT") or "5432"
    database = parts.get("dbname") or os.environ.get("PGDATABASE") or ""
    return f"PostgreSQL at {host}:{port}" + (f"/{database}" if database else "")


def _scrub(message: str, dsn: str) -> str:
    """A driver message on one line, without the password should it quote it."""
    try:
        password = conninfo_to_dict(dsn).get("password")
    except psycopg.ProgrammingError:
        password = None
    for secret in (password, os.environ.get("PGPASSWORD")):
        if secret:
            message = message.replace(str(secret), "***")
    return " ".join(message.split())


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection is gone or unusable (refused, lost, ended by
    the server, or a driver error without a server's answer), not a query's error."""
    if isinstance(exc, (PoolTimeout, psycopg.InterfaceError)):
        return True
    if isinstance(exc, psycopg.OperationalError):
        state = getattr(exc, "sqlstate", None)
        return state is None or state.startswith(("08", "57P"))
    return False


@contextlib.contextmanager
def unreachable_as_fault(where: str, dsn: str) -> Iterator[None]:
    """A lost or refused connection as one line naming the server (exit code 4)."""
    try:
        yield
    except psycopg.errors.InsufficientPrivilege as exc:
        detail = _scrub(str(exc), dsn)
        raise ConfigError(
            f"{where}: {detail}; the login role may not become plugins.postgres.role, or that "
            "role lacks what the schema set-up grants: grant the login the role, or run "
            "'lockgate postgres upgrade' as the schema's owner (docs/team.md)"
        ) from None
    except Exception as exc:
        if not is_connection_error(exc):
            raise
        detail = _scrub(str(exc) or type(exc).__name__, dsn)
        raise EnvironmentFault(
            f"the lockgate database ({where}) cannot be reached: {detail}; start it or fix "
            "plugins.postgres.dsn (or the PG* environment), then run the command again "
            "(an interrupted write is not half-done: it was rolled back)"
        ) from None


def connection_options(settings: PostgresSettings) -> dict[str, Any]:
    """What every connection is opened with: autocommit, rows as dicts, the timeout and
    the keepalives."""
    return {
        "autocommit": True,
        "row_factory": dict_row,
        "connect_timeout": max(1, round(settings.connect_timeout)),
        **KEEPALIVES,
    }


@contextlib.contextmanager
def admin_connection(settings: PostgresSettings) -> Iterator[psycopg.Connection[Row]]:
    """A connection as the login role itself, for changing the schema."""
    where = describe_server(settings.dsn)
    with unreachable_as_fault(where, settings.dsn):
        conn: psycopg.Connection[Row] = psycopg.connect(
            settings.dsn, **connection_options(settings)
        )
        with conn:
            yield conn


@functools.cache
def _quiet_pool_log() -> None:
    """Give ``psycopg.pool``'s logger a handler of its own, as a library should: without
    one, Python prints its warnings (a connection the pool retries, such as the server's
    "too many clients") on stderr as raw lines beside lockgate's one-line errors. An
    application that configures logging still receives them (they propagate)."""
    logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())


# A pooled connection handed back less than this many seconds ago is handed out again
# without the pool's liveness check (one round trip per check-out, a dozen per promote).
FRESH_SECONDS = 2.0


class Database:
    """One project's view of the database: a pool of connections set to it.

    :meth:`shared` gives a process's stores of one project one ``Database``: the state
    store and the content store then share the set-up and the pool, and the set-up's
    connection becomes the first lock's (a promote opens two connections, not five)."""

    _open: ClassVar[dict[tuple[PostgresSettings, str], Database]] = {}
    _open_guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, settings: PostgresSettings, project: str) -> None:
        if not project:
            raise ConfigError("plugins.postgres.project is empty; name the project")
        self.settings = settings
        self.project = project
        self.dsn = settings.dsn
        self.where = describe_server(self.dsn)
        self._pool: ConnectionPool[psycopg.Connection[Row]] | None = None
        self._returned: weakref.WeakKeyDictionary[psycopg.Connection[Row], float] = (
            weakref.WeakKeyDictionary()
        )
        self._users = 1  # ``shared`` callers not closed yet (1: the creator)
        self._key: tuple[PostgresSettings, str] | None = None
        self._pid = os.getpid()  # a forked child shares none of its parent's
        # The set-up's connection, kept for the first lock (:meth:`take_connection`).
        self._spare: tuple[psycopg.Connection[Row], float] | None = None
        with self.unreachable_as_fault():
            conn = self.connect(configure=False)
            try:
                ensure_schema(conn, settings.role, self.where)
                # The session every pooled connection gets, tried once here: a login that
                # may not become the role is told so, not left to the pool's retries.
                self._configure(conn)
            except BaseException:
                conn.close()
                raise
            self._spare = (conn, time.monotonic())
            _quiet_pool_log()
            pool = ConnectionPool(
                self.dsn,
                min_size=1,
                max_size=settings.pool_size,
                kwargs=self._kwargs(),
                configure=self._configure,
                check=self._check,  # a server restart costs no command
                timeout=settings.connect_timeout,
                open=False,
                name=f"lockgate-{project}",
            )
            try:
                pool.open(wait=True, timeout=settings.connect_timeout)
            except BaseException:
                pool.close()
                conn.close()
                raise
            self._pool = pool

    @classmethod
    def shared(cls, settings: PostgresSettings, project: str) -> Database:
        """The ``Database`` of ``project`` this process has open with ``settings``, or a
        new one; each call is ended by one :meth:`close` (the last closes it)."""
        key = (settings, project)
        known = cls._joined(key)
        if known is not None:
            return known
        db = cls(settings, project)  # connecting, the guard is free for other projects
        known = cls._joined(key)
        if known is not None:  # another thread opened it meanwhile
            db.close()
            return known
        with cls._open_guard:
            db._key = key
            cls._open[key] = db
        return db

    @classmethod
    def _joined(cls, key: tuple[PostgresSettings, str]) -> Database | None:
        """The open ``Database`` of ``key``, one more user counted; None when there is
        none (or only a closed one, or one a parent process opened before a fork)."""
        with cls._open_guard:
            db = cls._open.get(key)
            if db is None or db._pool is None or db._pid != os.getpid():
                return None
            db._users += 1
            return db

    def take_connection(self) -> psycopg.Connection[Row]:
        """A connection outside the pool, set to the project (a lock's): the one the
        set-up left, the first time and if it was left a moment ago, else a new one."""
        with self._open_guard:
            spare, self._spare = self._spare, None
        if spare is not None:
            conn, since = spare
            if time.monotonic() - since < FRESH_SECONDS and not conn.closed:
                return conn
            conn.close()
        return self.connect()

    def _check(self, conn: psycopg.Connection[Row]) -> None:
        """The pool's liveness check, for a connection idle longer than
        ``FRESH_SECONDS`` (one that just worked needs none: a server restart within
        that moment fails one command, which says so in one line)."""
        back = self._returned.get(conn)
        if back is None or time.monotonic() - back >= FRESH_SECONDS:
            ConnectionPool.check_connection(conn)

    def _kwargs(self) -> dict[str, Any]:
        return connection_options(self.settings)

    def connect(self, *, configure: bool = True) -> psycopg.Connection[Row]:
        """A new connection outside the pool (set to the project unless ``configure`` is
        false: the schema set-up runs as the login role)."""
        conn: psycopg.Connection[Row] = psycopg.connect(self.dsn, **self._kwargs())
        if configure:
            try:
                self._configure(conn)
            except BaseException:
                conn.close()
                raise
        return conn

    def _configure(self, conn: psycopg.Connection[Row]) -> None:
        """Become the store's role and set the project: the session every query runs in
        (one statement: ``set_config('role', …)`` is ``SET ROLE``)."""
        role = self.settings.role
        tcp = bool(conn.info.host) and not conn.info.host.startswith("/")
        conn.execute(
            "SELECT " + (_ROLE if role else "") + _SESSION + (_SERVER_KEEPALIVES if tcp else ""),
            (role, self.project) if role else (self.project,),
        )

    def unreachable_as_fault(self) -> contextlib.AbstractContextManager[None]:
        """A lost or refused connection as the one-line ``EnvironmentFault``."""
        return unreachable_as_fault(self.where, self.dsn)

    @contextlib.contextmanager
    def conn(self) -> Iterator[psycopg.Connection[Row]]:
        """A pooled connection (autocommit: each statement is its own transaction)."""
        if self._pool is None:
            raise EnvironmentFault(f"the connection to {self.where} was closed")
        with self.unreachable_as_fault(), self._pool.connection() as conn:
            try:
                yield conn
            finally:
                # When it went back (for :meth:`_check`): noted here, not in the pool's
                # ``reset`` callback, which would hand every return to a worker thread.
                self._returned[conn] = time.monotonic()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Row]]:
        """A pooled connection inside one transaction, committed when the block ends."""
        with self.conn() as conn, conn.transaction():
            yield conn

    def close(self) -> None:
        """End one use (:meth:`shared`); the last closes the pool and the spare."""
        with self._open_guard:
            self._users -= 1
            if self._users > 0:
                return
            if self._key is not None and self._open.get(self._key) is self:
                del self._open[self._key]
        spare, self._spare = self._spare, None
        if spare is not None:
            spare[0].close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.close()
