"""The ASGI application of ``lockgate serve``: authentication, limits, errors, metrics.

Each request runs in a worker thread on a project opened for it alone, whose actor is
the identity its bearer token was issued to (``Project.authenticated``); the same
operations the command line runs do the work (:mod:`lockgate.server.routes`), so a
request is checked, locked, recorded and announced exactly as a command is.

What every request goes through, in order: the client's failed-authentication budget
(429 once spent), the body limit (413), the token (a lockgate token, or a JWT when
``server.jwt`` is set: 401, counted against the budget), the token's role and stage
(403, audited as ``server.denied``), the route's input check (a job's, before it is
queued), an ``Idempotency-Key`` already answered (the same answer again; the key with
another request: 422), then the operation: queued as a job (202), or run under the
request timeout (504, and then nothing changed: :mod:`lockgate.server.timeouts`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from lockgate.contracts.clock import now_iso
from lockgate.contracts.identity import Identity
from lockgate.contracts.state import AuditEvent, TokenRecord
from lockgate.core.project import Project
from lockgate.core.session import Session
from lockgate.errors import (
    AuthenticationError,
    LockgateError,
    PermissionDeniedError,
    environment_fault,
)
from lockgate.operations.tokens import authenticate, authorize
from lockgate.server.errors import ApiError
from lockgate.server.idempotency import IdempotencyKeys, ServerDb, fingerprint
from lockgate.server.jobs import Jobs
from lockgate.server.jwt_auth import JwtVerifier, looks_like_jwt
from lockgate.server.metrics import ServerMetrics
from lockgate.server.owners import Owner
from lockgate.server.projects import ProjectPool
from lockgate.server.timeouts import Abandoned, Ticket

__all__ = ["Call", "How", "Server", "ServerSettings", "field_flag", "field_text"]

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
    job_threads: int = 4
    """Threads running jobs (in each server process)."""
    threads: int = 8
    """Requests answered at once (each in a thread, with a project of its own): a quarter
    of them (at least one) for changes, the rest (at least one) for reads; more wait
    their turn in their own queue, within the request timeout."""

    def shares(self) -> tuple[int, int]:
        """Threads for reads and for changes: changes that switch a stage run one at a
        time per project anyway (the operation lock), so they need few."""
        changes = max(1, self.threads // 4)
        return max(1, self.threads - changes), changes

    queue: int = 100
    """Jobs that may wait or run at once (then 503), in each server process."""
    distributions: Sequence[Any] | None = None
    metrics_dir: Path | None = None
    """Where the processes of one ``lockgate serve --workers N`` count their metrics
    together (None: one process, counting in memory)."""


@attrs.define
class Call:
    """One authenticated request, as a route's work function receives it."""

    session: Session
    token: TokenRecord
    params: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    content_type: str
    jobs: Any = None
    """The server's :class:`~lockgate.server.jobs.Jobs` (``GET /jobs/<id>``)."""

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


def field_text(data: dict[str, Any], key: str) -> str | None:
    """Field ``key`` of a JSON body: a string, or absent."""
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ApiError("bad_request", f"field {key!r} must be a string")
    return value


def field_flag(data: dict[str, Any], key: str) -> bool:
    """Field ``key`` of a JSON body: true or false (absent: false)."""
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise ApiError("bad_request", f"field {key!r} must be true or false")
    return value


Work = Callable[[Call], tuple[int, Any]]
Credential = str | Callable[[Session], TokenRecord] | None
"""An ``Authorization`` header, or a dashboard sign-in's check of its token
(:meth:`lockgate.server.web_sessions.WebSession.authenticate`)."""


@attrs.frozen
class How:
    """How one request is answered: what its token must allow (``action``, in the stage
    ``stage_of`` gives), the input ``check`` made before a job is queued, the ``work``,
    whether it runs as a job, its ``Idempotency-Key`` and its timeout ``ticket``."""

    action: str
    work: Work
    label: str
    stage_of: Callable[[Call], str | None] | None = None
    check: Callable[[Call], None] | None = None
    run_async: bool = False
    idempotency_key: str | None = None
    ticket: Ticket | None = None


class Server:
    """What the routes share: settings, the failed-authentication budget per client,
    answered idempotency keys and jobs (:mod:`~lockgate.server.idempotency`,
    :mod:`~lockgate.server.jobs`), accepted JWTs, and the server's own metrics.

    Everything another server process on the project must see is in ``server.db``
    (keys, jobs, dashboard sign-ins, failed authentications); what stays in this process
    is its open projects, its job threads and its metrics (shared through files when
    ``lockgate serve --workers`` runs several processes: :mod:`~lockgate.server.metrics`).
    """

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self._limiters: tuple[Any, Any] | None = None
        self.metrics = ServerMetrics(self.open, settings.metrics_dir)
        project = self.open()
        try:
            config = project.config.server
            self.jwt = (
                JwtVerifier(config.jwt, settings.root, project.stage_names)
                if config.jwt is not None
                else None
            )
        finally:
            project.close()
        self.owner = Owner(settings.root / ".lockgate" / "serve")
        self.db = ServerDb(settings.root / ".lockgate" / "server.db", config.idempotency_hours)
        self.keys = IdempotencyKeys(self.db, self.owner)
        self.jobs = Jobs(self.db, self.owner, workers=settings.job_threads, queue=settings.queue)
        self.projects = ProjectPool(
            settings.root, self.open, sum(settings.shares()) + settings.job_threads
        )

    def close(self) -> None:
        """Stop: queued jobs are not started, running ones end first (see ``jobs``)."""
        self.jobs.shutdown()
        self.projects.close()
        self.db.close()
        self.owner.close()

    # ------------------------------------------------------------------ projects

    def limiter(self, change: bool = False) -> Any:
        """The ``anyio.CapacityLimiter`` of reads answered at once, or of changes
        (``ServerSettings.shares``), made in the event loop on first use. Two queues, so
        a read never waits for a thread behind changes that wait their turn for the
        project's operation lock (switches are serial per project)."""
        if self._limiters is None:
            import anyio

            reads, changes = self.settings.shares()
            self._limiters = (anyio.CapacityLimiter(reads), anyio.CapacityLimiter(changes))
        return self._limiters[change]

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
        """429 while ``client`` has spent its failed authentications for the window
        (counted in ``server.db``, so across every process serving the project)."""
        now = time.time()
        ((spent, first),) = self.db.read(
            "SELECT count(*), min(at) FROM auth_failures WHERE client=? AND at>=?",
            (client, now - self.settings.auth_window),
        )
        if spent >= self.settings.auth_failures:
            wait = max(1, int(self.settings.auth_window - (now - first)) + 1)
            raise ApiError(
                "rate_limited",
                f"too many failed authentications from {client}; retry in {wait} s",
                {"Retry-After": str(wait)},
            )

    def spend(self, client: str) -> None:
        now = time.time()
        with self.db.cursor() as cur:
            cur.execute(
                "DELETE FROM auth_failures WHERE at < ?", (now - self.settings.auth_window,)
            )
            cur.execute("INSERT INTO auth_failures VALUES (?, ?)", (client, now))
        self.metrics.auth_failures.inc()

    # ------------------------------------------------------------------ one request

    def authenticate(
        self, client: str, header: Credential, project: Project | None = None
    ) -> TokenRecord:
        """The token ``header`` carries (a JWT when ``server.jwt`` is set), or a
        dashboard sign-in checks again, looked up in ``project`` (the request's, else one
        opened for the look-up); 401 else, counted against ``client``'s budget."""
        if callable(header):
            try:
                if project is not None:
                    return header(Session(project))
                with self.projects.project() as probe:
                    return header(Session(probe))
            except LockgateError as exc:
                self.spend(client)
                raise ApiError.of(exc) from None
        value = (header or "").strip().partition(" ")[2].strip()
        try:
            if looks_like_jwt(value) and (header or "").lower().startswith("bearer "):
                if self.jwt is None:
                    raise AuthenticationError(
                        "a JWT is not accepted here: the project sets no server.jwt; "
                        "send a token from 'lockgate token create'"
                    )
                return self.jwt.authenticate(value)
            if project is not None:
                return authenticate(Session(project), header)
            with self.projects.project() as probe:
                return authenticate(Session(probe), header)
        except LockgateError as exc:
            self.spend(client)
            raise ApiError.of(exc) from None

    def run(
        self,
        client: str,
        header: Credential,
        action: str,
        stage_of: Callable[[Call], str | None] | None,
        work: Work,
        request: Call,
        idempotency_key: str | None,
    ) -> tuple[int, Any]:
        """Authenticate, authorize and answer at once, with no request timeout (see
        :meth:`handle` for jobs and the timeout)."""
        how = How(action, work, action, stage_of, idempotency_key=idempotency_key)
        return self.handle(client, header, how, request)

    def handle(self, client: str, header: Credential, how: How, request: Call) -> tuple[int, Any]:
        """Authenticate, authorize, answer (in a worker thread): at once, or as a job."""
        with self.projects.project() as project:
            token = self.authenticate(client, header, project)
            project.authenticated = Identity(token.actor, f"token:{token.id}")
            session = Session(project)
            call = attrs.evolve(request, session=session, token=token, jobs=self.jobs)
            stage = self._answer(lambda c: (0, how.stage_of(c) if how.stage_of else None), call)[1]
            try:
                authorize(token, how.action, stage)
            except PermissionDeniedError as exc:
                self._audit_denial(session, token, how.action, stage, exc.message)
                raise ApiError.of(exc) from None
            if how.check is not None:
                self._answer(lambda c: (0, how.check(c) if how.check else None), call)
            if how.run_async:
                answer: Callable[[], tuple[int, Any]] = lambda: self._queue(token, how, request)  # noqa: E731
            else:
                if how.ticket is not None:
                    project.before_change = how.ticket.commit
                answer = lambda: self._timed(session, token, how, call)  # noqa: E731
            if how.idempotency_key is None:
                return answer()
            print_ = fingerprint(how.action, call.params, call.query, call.body)
            return self.keys.once(token.actor, how.idempotency_key, print_, answer)

    def _queue(self, token: TokenRecord, how: How, request: Call) -> tuple[int, Any]:
        """Queue the work as a job, unless its request was answered 504 already."""
        if how.ticket is not None:
            how.ticket.commit(f"queueing {how.label}")
        return self.jobs.submit(token.actor, how.label, lambda: self._job(token, how.work, request))

    def _timed(self, session: Session, token: TokenRecord, how: How, call: Call) -> tuple[int, Any]:
        try:
            return self._answer(how.work, call)
        except ApiError:
            raise
        except Abandoned as exc:  # answered 504 already: say so in the audit log
            details = {"token": token.id, "wanted": how.label, "why": exc.message}
            session.state().append_event(
                AuditEvent(
                    at=now_iso(),
                    actor=token.actor,
                    action="server.timeout",
                    details={**details, **session.identity.details()},
                    outcome="refused",
                )
            )
            raise

    def _job(self, token: TokenRecord, work: Work, request: Call) -> tuple[int, Any]:
        """A job's run: the request's work on a project opened for it."""
        with self.projects.project() as project:
            project.authenticated = Identity(token.actor, f"token:{token.id}")
            call = attrs.evolve(request, session=Session(project), token=token, jobs=self.jobs)
            return self._answer(work, call)

    @staticmethod
    def _answer(work: Work, call: Call) -> tuple[int, Any]:
        try:
            return work(call)
        except ApiError:
            raise
        except Abandoned:
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
