"""A pointer move chained after the head the store last saw (lockgate_postgres.moves):
one statement where nobody else wrote, and where somebody did, or the move lost its
race, or its lock was lost, nothing written by that statement and the outcome the
locked path gives (the move made after the new head, a ``ConflictError``, a
``LockedError``), the audit chain intact throughout."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from lockgate_postgres import PostgresStateStore

from lockgate.plugin import GENESIS, Ask, ConflictError, LockedError, LockOwner, event_hash
from lockgate.testing._state_builders import _move, _stage, at

from .postgres_testkit import open_database


@pytest.fixture
def stores(pg_dsn: str, project_key: str) -> Iterator[tuple[PostgresStateStore, ...]]:
    """Two stores on one project (two runners), the component staged."""
    one = PostgresStateStore(open_database(pg_dsn, project_key))
    two = PostgresStateStore(open_database(pg_dsn, project_key))
    _stage(one, "alice:etl", "r1", at(1))
    _stage(one, "alice:etl", "r2", at(2), parent="r1")
    yield one, two
    one.close()
    two.close()


def _intact(store: PostgresStateStore) -> int:
    """The number of events, checked to be one chain (seq from 1, each hash covering the
    one before) whose moves are the pointers' history, one event each."""
    previous, seqs = GENESIS, []
    for link in store.chain():
        assert (link.prev_hash, link.hash) == (previous, event_hash(previous, link.event))
        previous, seqs = link.hash, [*seqs, link.event.seq]
    assert seqs == list(range(1, len(seqs) + 1))
    moves = [e.seq for e in store.events() if e.action == "promote"]
    assert sorted(c.event_seq for c in store.pointer_history()) == moves
    return len(seqs)


def _sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement psycopg sends from now on that reads or writes the chain's head
    (its text; a move's writes do)."""
    sent: list[str] = []
    real = psycopg.Cursor.execute

    def execute(self: psycopg.Cursor[object], query: object, *args: object, **kw: object) -> object:
        if "heads" in str(query):
            sent.append(str(query))
        return real(self, query, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    return sent


def test_a_move_after_the_head_it_saw_is_one_statement(
    stores: tuple[PostgresStateStore, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    one, _ = stores
    one.read_batch([Ask("pointer", ("staging", "etl"))])  # sees the head
    sent = _sent(monkeypatch)
    _move(one, "staging", "alice:etl", "r1", at(3), expected=0)
    assert len(sent) == 1 and "fresh AS" in sent[0]
    pointer = one.pointer("staging", "etl")
    assert pointer is not None and (pointer.revision, pointer.generation) == ("r1", 1)
    assert _intact(one) == 3


def test_a_head_moved_by_another_writer_costs_a_round_trip_not_a_fork(
    stores: tuple[PostgresStateStore, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = stores
    one.read_batch([Ask("pointer", ("staging", "etl"))])
    _move(two, "production", "alice:etl", "r1", at(3), expected=0)  # the head moves on
    sent = _sent(monkeypatch)
    _move(one, "staging", "alice:etl", "r2", at(4), expected=0)
    assert ["fresh AS" in q for q in sent] == [True, False, False]  # tried; locked; moved
    assert [c.revision for c in one.pointer_history("staging", "etl")] == ["r2"]
    assert _intact(one) == 4
    sent.clear()
    _move(one, "staging", "alice:etl", "r1", at(5), expected=1)  # its own write: known
    assert len(sent) == 1


def test_moves_that_keep_finding_the_head_stale_stop_trying_the_statement(
    stores: tuple[PostgresStateStore, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another runner writes between each read and move of this one (many runners at
    once): after two moves in a row whose statement found the head stale, the next goes
    straight to the locked path (the statement would be a wasted round trip), until a
    locked move finds the head it knew current; then the statement is tried again."""
    one, two = stores
    sent = _sent(monkeypatch)
    tried = []
    for n, revision in enumerate(["r1", "r2", "r1"]):
        one.read_batch([Ask("pointer", ("staging", "etl"))])
        _move(two, "production", "alice:etl", revision, at(3 + 2 * n), expected=n)
        sent.clear()
        _move(one, "staging", "alice:etl", revision, at(4 + 2 * n), expected=n)
        tried.append(any("fresh AS" in q for q in sent))
    assert tried == [True, True, False]
    one.read_batch([Ask("pointer", ("staging", "etl"))])  # nobody writes meanwhile
    sent.clear()
    _move(one, "staging", "alice:etl", "r2", at(10), expected=3)
    assert not any("fresh AS" in q for q in sent)  # still skipped, but found current:
    sent.clear()
    _move(one, "staging", "alice:etl", "r1", at(11), expected=4)
    assert len(sent) == 1 and "fresh AS" in sent[0]  # tried again, and made
    assert _intact(one) == 2 + 3 * 2 + 2


@pytest.mark.parametrize("head_moved", [False, True])
def test_a_lost_race_writes_nothing_either_way(
    stores: tuple[PostgresStateStore, ...], head_moved: bool
) -> None:
    one, two = stores
    _move(one, "staging", "alice:etl", "r1", at(3), expected=0)
    one.read_batch([Ask("pointer", ("staging", "etl"))])
    _move(two, "staging", "alice:etl", "r2", at(4), expected=1)  # wins the race
    if not head_moved:
        one.read_batch([Ask("pointer", ("staging", "etl"))])
    events = _intact(one)
    with pytest.raises(ConflictError, match="generation"):
        _move(one, "staging", "alice:etl", "r1", at(5), expected=1)
    assert _intact(one) == events
    pointer = one.pointer("staging", "etl")
    assert pointer is not None and (pointer.revision, pointer.generation) == ("r2", 2)


def test_a_lost_lock_refuses_the_move_it_would_make_in_one_statement(
    stores: tuple[PostgresStateStore, ...], pg_dsn: str
) -> None:
    one, _ = stores
    owner = LockOwner.current("promote")
    with one.lock("operation/etl", owner=owner, lease=60, timeout=5):
        one.read_batch([Ask("pointer", ("staging", "etl"))])
        (pid,) = set(one._locks.held_backends())
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        events = _intact(one)
        with pytest.raises(LockedError, match="lost with its connection"):
            _move(one, "staging", "alice:etl", "r1", at(3), expected=0)
    assert _intact(one) == events
    assert one.pointer("staging", "etl") is None
