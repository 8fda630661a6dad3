"""What rides on the lock set a thread holds (:mod:`lockgate_postgres.locks`).

A switch holds one lock set (its ``operation`` lock shared and its component's lock) on
one connection, and three things ride on it, each by thread:

* *its first reads* (``LockSet``'s ``reads``): read in the round trip that takes the
  locks, once every lock is held, and given to the holder's first call to the store when
  that call is exactly those reads (:meth:`Riders.read_ahead`); any other call first
  makes them stand no more (:meth:`Riders.send_kept`).
* *its writes* (the intent and the record): made on the set's own connection
  (:meth:`Riders.connection`), which holds the set's locks while a statement runs on it.
* *its intent's close*: kept (:meth:`Riders.keep`) and sent with the set's release, in
  its round trip, committed before the locks go; any other call of the thread sends it
  first, and so does the release of any lock the thread took inside the set (recovery
  settling another switch under that switch's lock).

A set taken inside another on the same thread (recovery inside a switch settling a
pipeline's intent) carries nothing of its own: the outer set's riders stay, and its
kept writes are sent before the inner set's locks go.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import attrs
import psycopg

from lockgate_postgres.db import Row

__all__ = ["Riders", "Write"]

Write = tuple[str, Sequence[object]]
"""A statement and its arguments."""


@attrs.define
class _Set:
    """A thread's lock set: its connection and that connection's server pid."""

    conn: psycopg.Connection[Row]
    pid: int
    kept: list[Write] = attrs.field(factory=list)


class Riders:
    """The riders of each thread's lock set (see the module docstring); ``send`` writes
    kept writes through another connection, in one transaction."""

    def __init__(self, send: Callable[[Sequence[Write]], None]) -> None:
        self._send = send
        self._sets: dict[int, _Set] = {}
        self._ahead: dict[int, tuple[str, Sequence[object], Row]] = {}

    def holds_set(self) -> bool:
        """Whether this thread holds a lock set (with riders) already."""
        return threading.get_ident() in self._sets

    def enter(
        self,
        conn: psycopg.Connection[Row],
        pid: int,
        ahead: tuple[str, Sequence[object], Row] | None,
    ) -> None:
        """This thread now holds a set on ``conn`` (server pid ``pid``), whose first
        reads were read ahead (``ahead``: statement, arguments, row; None when none
        were)."""
        thread = threading.get_ident()
        self._sets[thread] = _Set(conn, pid)
        if ahead is not None:
            self._ahead[thread] = ahead

    def leave(self) -> list[Write]:
        """This thread's set is being released: the writes kept for its release."""
        thread = threading.get_ident()
        self._ahead.pop(thread, None)
        held = self._sets.pop(thread, None)
        return held.kept if held is not None else []

    def connection(self) -> tuple[psycopg.Connection[Row], int] | None:
        """The connection of the set this thread holds, and its server pid (a statement
        that runs on it runs while the set's locks are held: the server releases them
        only with the session); None when it holds none."""
        held = self._sets.get(threading.get_ident())
        return (held.conn, held.pid) if held is not None else None

    def keep(self, sql: str, args: Sequence[object]) -> bool:
        """Keep a write for the release of the set this thread holds: sent in the
        release's round trip and committed before its locks go (a process that dies
        first never sends it); False, and nothing kept, when the thread holds none."""
        thread = threading.get_ident()
        self._ahead.pop(thread, None)
        held = self._sets.get(thread)
        if held is None:
            return False
        held.kept.append((sql, args))
        return True

    def send_kept(self) -> bool:
        """Before any other call of this thread to the store, and before any lock it
        took inside its set is released: the reads read ahead stand no more (they answer
        only the first call, :meth:`read_ahead`), and the writes kept for the release
        are sent now; whether there were any."""
        thread = threading.get_ident()
        self._ahead.pop(thread, None)
        held = self._sets.get(thread)
        if held is None or not held.kept:
            return False
        writes, held.kept = held.kept, []
        self._send(writes)
        return True

    def read_ahead(self, sql: str, args: Sequence[object]) -> Row | None:
        """The row of ``sql`` with ``args`` when this thread's set read exactly that once
        its locks were granted and this is the thread's first call to the store since,
        else None; given once."""
        ahead = self._ahead.pop(threading.get_ident(), None)
        if ahead is None or ahead[0] != sql or list(ahead[1]) != list(args):
            return None
        return ahead[2]
