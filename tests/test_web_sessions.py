"""The dashboard's sign-in sessions (``lockgate.server.web_sessions``): random ids keyed
by their hash in ``server.db``, ended by sign-out or expiry, bounded in number, seen by
every server process, and keeping nothing that acts as the user."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lockgate.contracts.state import TokenRecord
from lockgate.errors import AuthenticationError
from lockgate.server.idempotency import ServerDb
from lockgate.server.web_sessions import Sessions, same

TOKEN = "lg_0123456789ab_" + "s" * 43


def record(
    actor: str = "vic", digest: str | None = None, expires: str | None = None
) -> TokenRecord:
    digest = hashlib.sha256(TOKEN.encode()).hexdigest() if digest is None else digest
    return TokenRecord("0123456789ab", digest, actor, "viewer", None, "", "admin", expires)


@pytest.fixture
def db(tmp_path: Path) -> ServerDb:
    return ServerDb(tmp_path / "server.db", keep_hours=1)


def make(sessions: Sessions, actor: str = "vic") -> str:
    return sessions.create(record(actor))[0]


def test_a_session_is_found_by_its_id_and_kept_under_its_hash_only(db: ServerDb) -> None:
    sessions = Sessions(db)
    session_id = make(sessions)
    made = sessions.get(session_id)
    assert made is not None and made.actor == "vic" and len(made.csrf) >= 40
    keys = [k for (k,) in db.read("SELECT key FROM web_sessions")]
    assert keys == [hashlib.sha256(session_id.encode()).hexdigest()]
    assert sessions.get(session_id[:-1] + ("A" if session_id[-1] != "A" else "B")) is None
    assert sessions.get(None) is None and sessions.get("") is None


def test_the_file_holds_neither_the_token_nor_the_session_id(db: ServerDb, tmp_path: Path) -> None:
    session_id = make(Sessions(db))
    db.close()
    kept = b"".join(p.read_bytes() for p in tmp_path.glob("server.db*"))
    assert TOKEN.encode() not in kept and TOKEN.split("_")[2].encode() not in kept
    assert session_id.encode() not in kept


def test_another_process_sees_the_session_and_its_notice(db: ServerDb, tmp_path: Path) -> None:
    session_id = make(Sessions(db))
    other = Sessions(ServerDb(tmp_path / "server.db", keep_hours=1))  # another worker
    seen = other.get(session_id)
    assert seen is not None and seen.actor == "vic"
    other.tell(seen, "approved")
    again = Sessions(db).get(session_id)
    assert again is not None and Sessions(db).take_notice(again) == "approved"
    later = other.get(session_id)
    assert later is not None and later.notice is None
    other.end(session_id)
    assert Sessions(db).get(session_id) is None


def test_each_sign_in_gets_a_new_id_and_csrf_token(db: ServerDb) -> None:
    sessions = Sessions(db)
    first, second = make(sessions), make(sessions)
    assert first != second
    one, two = sessions.get(first), sessions.get(second)
    assert one is not None and two is not None and one.csrf != two.csrf


def test_sign_out_and_expiry_end_a_session(db: ServerDb) -> None:
    sessions = Sessions(db)
    session_id = make(sessions)
    sessions.end(session_id)
    assert sessions.get(session_id) is None
    sessions.end(session_id)  # twice: nothing to do
    expired = Sessions(db, lifetime=0)
    assert expired.get(make(expired)) is None


def test_past_the_limit_the_oldest_session_is_signed_out(db: ServerDb) -> None:
    sessions = Sessions(db, limit=2)
    first, second, third = make(sessions, "a"), make(sessions, "b"), make(sessions, "c")
    assert sessions.get(first) is None
    assert sessions.get(second) is not None and sessions.get(third) is not None


def test_a_jwt_sign_in_ends_when_the_jwt_expires(db: ServerDb) -> None:
    sessions = Sessions(db)
    live = sessions.get(sessions.create(record(digest="", expires="2999-01-01T00:00:00"))[0])
    assert live is not None and live.authenticate(None) == live.token  # type: ignore[arg-type]
    gone = sessions.get(sessions.create(record(digest="", expires="2000-01-01T00:00:00"))[0])
    assert gone is not None
    with pytest.raises(AuthenticationError, match="expired at 2000-01-01"):
        gone.authenticate(None)  # type: ignore[arg-type]


def test_same_compares_without_accepting_a_missing_value() -> None:
    assert same("abc", "abc")
    assert not same("abd", "abc") and not same(None, "abc") and not same("", "abc")
