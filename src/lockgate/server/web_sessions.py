"""Sign-in sessions of the dashboard: a random cookie in front of a token kept in memory.

A browser cannot send an ``Authorization`` header when it follows a link, so the
dashboard signs a person in once, with a token lockgate issued, and gives the browser a
session cookie instead:

- the cookie holds only a random session id (32 bytes); the server keeps, in its memory,
  the token it stands for, so neither the token nor anything derived from its secret
  leaves the server again, and a restart signs everyone out;
- every page authenticates that token again, through the same check as the API, so a
  revoked or expired token ends its sessions at the next click;
- a session lasts :data:`LIFETIME` seconds at most, and signing out ends it at once;
- every form that changes something carries the session's CSRF token, compared in
  constant time (the cookie is also ``SameSite=Strict`` and ``HttpOnly``).

Only the SHA-256 of a session id is a key here, so a dump of this table opens nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time

import attrs

__all__ = ["LIFETIME", "Sessions", "WebSession", "same"]

LIFETIME = 8 * 3600.0
"""How long a sign-in lasts, in seconds (the token's own expiry ends it sooner)."""

MAX_SESSIONS = 10_000
"""Sessions kept at most: past it, the oldest is signed out first."""


@attrs.define
class WebSession:
    """One signed-in browser: the bearer header its token makes, who that is, and the
    CSRF token its forms carry."""

    header: str
    actor: str
    role: str
    stage: str | None
    token_id: str
    csrf: str
    expires: float
    notice: str | None = None
    """A line to show on the next page (what the last form did), shown once."""


def same(given: str | None, expected: str) -> bool:
    """Whether ``given`` is ``expected``, compared in constant time."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    """The signed-in browsers of one server, in memory."""

    def __init__(self, lifetime: float = LIFETIME, limit: int = MAX_SESSIONS) -> None:
        self.lifetime, self.limit = lifetime, limit
        self._lock = threading.Lock()
        self._by_key: dict[str, WebSession] = {}

    def create(
        self, header: str, actor: str, role: str, stage: str | None, token_id: str
    ) -> tuple[str, WebSession]:
        """A new session for the token in ``header``: (cookie value, session)."""
        session_id = secrets.token_urlsafe(32)
        made = WebSession(
            header=header,
            actor=actor,
            role=role,
            stage=stage,
            token_id=token_id,
            csrf=secrets.token_urlsafe(32),
            expires=time.monotonic() + self.lifetime,
        )
        with self._lock:
            self._prune()
            while len(self._by_key) >= self.limit:
                oldest = min(self._by_key, key=lambda k: self._by_key[k].expires)
                del self._by_key[oldest]
            self._by_key[_key(session_id)] = made
        return session_id, made

    def get(self, session_id: str | None) -> WebSession | None:
        """The live session a cookie names, or None (unknown, expired: signed out)."""
        if not session_id:
            return None
        with self._lock:
            found = self._by_key.get(_key(session_id))
            if found is not None and found.expires <= time.monotonic():
                del self._by_key[_key(session_id)]
                return None
            return found

    def end(self, session_id: str | None) -> None:
        """Sign the session out (nothing when there is none)."""
        if session_id:
            with self._lock:
                self._by_key.pop(_key(session_id), None)

    def _prune(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self._by_key.items() if s.expires <= now]:
            del self._by_key[key]
