"""The dashboard's sign-in sessions (``lockgate.server.web_sessions``): random ids keyed
by their hash, ended by sign-out or expiry, bounded in number."""

from __future__ import annotations

import hashlib

from lockgate.server.web_sessions import Sessions, same


def make(sessions: Sessions, actor: str = "vic") -> str:
    return sessions.create(f"Bearer lg_{actor}", actor, "viewer", None, "0123456789ab")[0]


def test_a_session_is_found_by_its_id_and_kept_under_its_hash_only() -> None:
    sessions = Sessions()
    session_id = make(sessions)
    made = sessions.get(session_id)
    assert made is not None and made.actor == "vic" and len(made.csrf) >= 40
    assert session_id not in sessions._by_key
    assert hashlib.sha256(session_id.encode()).hexdigest() in sessions._by_key
    assert sessions.get(session_id[:-1] + ("A" if session_id[-1] != "A" else "B")) is None
    assert sessions.get(None) is None and sessions.get("") is None


def test_each_sign_in_gets_a_new_id_and_csrf_token() -> None:
    sessions = Sessions()
    first, second = make(sessions), make(sessions)
    assert first != second
    one, two = sessions.get(first), sessions.get(second)
    assert one is not None and two is not None and one.csrf != two.csrf


def test_sign_out_and_expiry_end_a_session() -> None:
    sessions = Sessions()
    session_id = make(sessions)
    sessions.end(session_id)
    assert sessions.get(session_id) is None
    sessions.end(session_id)  # twice: nothing to do
    expired = Sessions(lifetime=0)
    assert expired.get(make(expired)) is None


def test_past_the_limit_the_oldest_session_is_signed_out() -> None:
    sessions = Sessions(limit=2)
    first, second, third = make(sessions, "a"), make(sessions, "b"), make(sessions, "c")
    assert sessions.get(first) is None
    assert sessions.get(second) is not None and sessions.get(third) is not None


def test_same_compares_without_accepting_a_missing_value() -> None:
    assert same("abc", "abc")
    assert not same("abd", "abc") and not same(None, "abc") and not same("", "abc")
