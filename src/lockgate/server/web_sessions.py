"""Sign-in sessions of the dashboard: a random cookie in front of a token's record.

A browser cannot send an ``Authorization`` header when it follows a link, so the
dashboard signs a person in once, with a token lockgate issued, and gives the browser a
session cookie instead:

- the cookie holds only a random session id (32 bytes); ``.lockgate/server.db`` keeps,
  under the SHA-256 of that id, what the session stands for, so that every process of
  ``lockgate serve --workers N`` answers it, and a restart keeps it;
- what is kept never lets its reader act as the user: for a lockgate token, the SHA-256
  of the token (the key its record has in the state store, which keeps the same hash)
  and its actor, role and stage for display; never the token. Every page looks the
  record up again and checks it as the API does, so a revoked or expired token ends its
  sessions at the next click;
- for a JWT (``server.jwt``), the claims it was accepted with and its ``exp``: a JWT
  cannot be revoked, so its verified claims are worth exactly what the JWT is until it
  expires, and the session ends then (or sooner: :data:`LIFETIME`); the JWT itself is
  not kept;
- a session lasts :data:`LIFETIME` seconds at most, and signing out ends it at once;
- every form that changes something carries the session's CSRF token, compared in
  constant time (the cookie is also ``SameSite=Strict`` and ``HttpOnly``).

Only the SHA-256 of a session id is a key here, so a dump of this table opens nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time

import attrs

from lockgate.contracts.clock import now_iso
from lockgate.contracts.state import TokenRecord
from lockgate.core.session import Session
from lockgate.errors import AuthenticationError
from lockgate.operations.tokens import authenticate_digest
from lockgate.server.idempotency import ServerDb

__all__ = ["LIFETIME", "Sessions", "WebSession", "same"]

LIFETIME = 8 * 3600.0
"""How long a sign-in lasts, in seconds (the token's own expiry ends it sooner)."""

MAX_SESSIONS = 10_000
"""Sessions kept at most: past it, the oldest is signed out first."""


@attrs.define
class WebSession:
    """One signed-in browser: the token record it stands for (its ``digest`` for a
    lockgate token; the whole record a JWT gave, with ``digest`` empty), who that is, and
    the CSRF token its forms carry."""

    key: str
    token: TokenRecord
    csrf: str
    expires: float
    notice: str | None = None
    """A line to show on the next page (what the last form did), shown once."""

    @property
    def actor(self) -> str:
        return self.token.actor

    @property
    def role(self) -> str:
        return self.token.role

    @property
    def stage(self) -> str | None:
        return self.token.stage

    @property
    def token_id(self) -> str:
        return self.token.id

    def authenticate(self, session: Session) -> TokenRecord:
        """The token this sign-in stands for, checked again now (revoked, expired:
        :class:`AuthenticationError`)."""
        if self.token.digest:
            return authenticate_digest(session, self.token.digest)
        if self.token.expires_at is None or self.token.expires_at <= now_iso():
            raise AuthenticationError(
                f"the JWT of this sign-in expired at {self.token.expires_at}; sign in again"
            )
        return self.token


def same(given: str | None, expected: str) -> bool:
    """Whether ``given`` is ``expected``, compared in constant time."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _kept(token: TokenRecord) -> str:
    """What ``server.db`` keeps of ``token``: its record, the secret's hash included
    (the state store keeps the same), which opens nothing."""
    return json.dumps(attrs.asdict(token))


class Sessions:
    """The signed-in browsers of the server's project, in ``server.db``."""

    def __init__(self, db: ServerDb, lifetime: float = LIFETIME, limit: int = MAX_SESSIONS):
        self.db, self.lifetime, self.limit = db, lifetime, limit

    def create(self, token: TokenRecord) -> tuple[str, WebSession]:
        """A new session for ``token`` (checked just now): (cookie value, session)."""
        session_id = secrets.token_urlsafe(32)
        made = WebSession(
            key=_key(session_id),
            token=token,
            csrf=secrets.token_urlsafe(32),
            expires=time.time() + self.lifetime,
        )
        with self.db.cursor() as cur:
            cur.execute("DELETE FROM web_sessions WHERE expires <= ?", (time.time(),))
            (count,) = cur.execute("SELECT count(*) FROM web_sessions").fetchone()
            if count >= self.limit:
                cur.execute(
                    "DELETE FROM web_sessions WHERE key IN (SELECT key FROM web_sessions "
                    "ORDER BY expires LIMIT ?)",
                    (count - self.limit + 1,),
                )
            cur.execute(
                "INSERT INTO web_sessions VALUES (?, ?, ?, ?, NULL)",
                (made.key, _kept(token), made.csrf, made.expires),
            )
        return session_id, made

    def get(self, session_id: str | None) -> WebSession | None:
        """The live session a cookie names, or None (unknown, expired: signed out)."""
        if not session_id:
            return None
        key = _key(session_id)
        rows = self.db.read(
            "SELECT credential, csrf, expires, notice FROM web_sessions WHERE key=?", (key,)
        )
        if not rows:
            return None
        credential, csrf, expires, notice = rows[0]
        if expires <= time.time():
            self.end(session_id)
            return None
        return WebSession(key, TokenRecord(**json.loads(credential)), csrf, expires, notice)

    def tell(self, user: WebSession, notice: str) -> None:
        """Show ``notice`` on ``user``'s next page."""
        with self.db.cursor() as cur:
            cur.execute("UPDATE web_sessions SET notice=? WHERE key=?", (notice, user.key))

    def take_notice(self, user: WebSession) -> str | None:
        """The line to show once, now (and no more)."""
        if user.notice is None:
            return None
        with self.db.cursor() as cur:
            cur.execute("UPDATE web_sessions SET notice=NULL WHERE key=?", (user.key,))
        return user.notice

    def end(self, session_id: str | None) -> None:
        """Sign the session out (nothing when there is none)."""
        if session_id:
            with self.db.cursor() as cur:
                cur.execute("DELETE FROM web_sessions WHERE key=?", (_key(session_id),))
