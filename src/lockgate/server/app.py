"""The ASGI application of ``lockgate serve``: authentication, limits, errors, metrics.

Each request runs in a worker thread on a project opened for it alone, whose actor is
the identity its bearer token was issued to (``Project.authenticated``); the same
operations the command line runs do the work (:mod:`lockgate.server.routes`), so a
request is checked, locked, recorded and announced exactly as a command is.

What every request goes through, in order: the client's failed-authentication budget
(429 once spent), the body limit (413), the token (401, counted against the budget),
the token's role and stage (403, audited as ``server.denied``), an ``Idempotency-Key``
already answered (the same answer again; the key with another request: 422), the
operation under the request timeout (504).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from lockgate.contracts.clock import now_iso
from lockgate.contracts.identity import Identity
from lockgate.contracts.state import AuditEvent, TokenRecord
from lockgate.core.project import Project
from lockgate.core.session import Session
from lockgate.errors import LockgateError, PermissionDeniedError, environment_fault
from lockgate.operations.tokens import authenticate, authorize
from lockgate.server.errors import ApiError
from lockgate.server.metrics import ServerMetrics

__all__ = ["Call", "Server", "ServerSettings"]

MiB = 1024 * 1024


@attrs.define
class ServerSettings:
    """How the server runs (``lockgate serve`` options)."""

    root: Path
    environ: Mapping[str, str]
    max_body: int = 64 * MiB
    timeout: float = 60.0
    auth_failures: int = 10
    """Failed authentications a client may make per ``auth_window`` seconds."""
    auth_window: float = 60.0
    distributions: Sequence[Any] | None = None


@attrs.define
class Call:
    """One authenticated request, as a route's work function receives it."""

    session: Session
    token: TokenRecord
    params: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    content_type: str

    def json(self, allowed: Sequence[str]) -> dict[str, Any]:
        """The body as a JSON object holding only ``allowed`` keys (empty body: ``{}``)."""
        if not self.body.strip():
            return {}
        try:
            data = json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError("bad_request", f"body is not JSON ({exc}); send an object") from None
        if not isinstance(data, dict):
            raise ApiError("bad_request", "body must be a JSON object")
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ApiError(
                "bad_request",
                f"unknown field {unknown[0]!r}; accepted: {', '.join(allowed) or 'none'}",
            )
        return data


Work = Callable[[Call], tuple[int, Any]]


class Server:
    """What the routes share: settings, the failed-authentication budget per client,
    answered idempotency keys, and the server's own metrics."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}
        self._answered: dict[tuple[str, str], tuple[str, int, Any]] = {}
        self.metrics = ServerMetrics(self.open)

    # ------------------------------------------------------------------ projects

    def open(self, identity: Identity | None = None) -> Project:
        """The project, opened for one request (``identity``: its actor)."""
        project = Project.open(
            self.settings.root,
            environ=self.settings.environ,
            distributions=self.settings.distributions,
        )
        project.authenticated = identity
        return project

    # ------------------------------------------------------------------ budget

    def check_budget(self, client: str) -> None:
        """429 while ``client`` has spent its failed authentications for the window."""
        with self._lock:
            spent = self._recent(client)
            if len(spent) >= self.settings.auth_failures:
                wait = max(1, int(self.settings.auth_window - (time.monotonic() - spent[0])) + 1)
                raise ApiError(
                    "rate_limited",
                    f"too many failed authentications from {client}; retry in {wait} s",
                    {"Retry-After": str(wait)},
                )

    def spend(self, client: str) -> None:
        with self._lock:
            self._recent(client).append(time.monotonic())
        self.metrics.auth_failures.inc()

    def _recent(self, client: str) -> deque[float]:
        spent = self._failures.setdefault(client, deque())
        horizon = time.monotonic() - self.settings.auth_window
        while spent and spent[0] < horizon:
            spent.popleft()
        return spent

    # ------------------------------------------------------------------ one request

    def run(
        self,
        client: str,
        header: str | None,
        action: str,
        stage_of: Callable[[Call], str | None] | None,
        work: Work,
        request: Call,
        idempotency_key: str | None,
    ) -> tuple[int, Any]:
        """Authenticate, authorize, answer (in a worker thread)."""
        probe = self.open()
        try:
            try:
                token = authenticate(Session(probe), header)
            except LockgateError as exc:
                self.spend(client)
                raise ApiError.of(exc) from None
        finally:
            probe.close()
        project = self.open(Identity(token.actor, f"token:{token.id}"))
        try:
            session = Session(project)
            call = attrs.evolve(request, session=session, token=token)
            stage = self._answer(lambda c: (0, stage_of(c) if stage_of else None), call)[1]
            try:
                authorize(token, action, stage)
            except PermissionDeniedError as exc:
                self._audit_denial(session, token, action, stage, exc.message)
                raise ApiError.of(exc) from None
            if idempotency_key is None:
                return self._answer(work, call)
            return self._once(token, idempotency_key, work, call)
        finally:
            project.close()

    def _once(self, token: TokenRecord, key: str, work: Work, call: Call) -> tuple[int, Any]:
        if not key or len(key) > 200:
            raise ApiError("bad_request", "Idempotency-Key must be 1 to 200 characters")
        fingerprint = hashlib.sha256(
            json.dumps([dict(call.params), dict(call.query)], sort_keys=True).encode() + call.body
        ).hexdigest()
        with self._lock:
            answered = self._answered.get((token.id, key))
        if answered is not None:
            if answered[0] != fingerprint:
                raise ApiError(
                    "idempotency_mismatch",
                    f"Idempotency-Key {key!r} was used for another request; use a new key",
                )
            return answered[1], answered[2]
        status, body = self._answer(work, call)
        with self._lock:
            self._answered[(token.id, key)] = (fingerprint, status, body)
        return status, body

    @staticmethod
    def _answer(work: Work, call: Call) -> tuple[int, Any]:
        try:
            return work(call)
        except ApiError:
            raise
        except LockgateError as exc:
            raise ApiError.of(exc) from None
        except Exception as exc:
            fault = environment_fault(exc)
            if fault is None:
                raise
            raise ApiError.of(fault) from None

    @staticmethod
    def _audit_denial(
        session: Session, token: TokenRecord, action: str, stage: str | None, why: str
    ) -> None:
        details = {"token": token.id, "role": token.role, "wanted": action, "why": why}
        session.state().append_event(
            AuditEvent(
                at=now_iso(),
                actor=token.actor,
                action="server.denied",
                stage=stage,
                details={**details, **session.identity.details()},
                outcome="refused",
            )
        )
