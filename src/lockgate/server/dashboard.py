"""The web dashboard of ``lockgate serve`` (``/ui/``): what is live in each stage, recent
activity, pending approvals and each component's history, as plain HTML pages rendered
on the server (Jinja2, every value escaped; no JavaScript).

A page is one more renderer of the operations, through the same path as the API: the
signed-in token (see :mod:`lockgate.server.web_sessions`) is authenticated and
authorized by :meth:`~lockgate.server.app.Server.run`, the page's facts are read on a
project opened for that token's identity, and the one thing a page can change, an
approval, runs the API's own ``approve`` route, so it is checked, recorded and audited
(actor: the token's, ``actor_via: token:<id>``) exactly as ``POST .../approve`` is.

Forms are checked three ways before anything runs: the request comes from this origin
(``Origin``, else ``Referer``), it carries the session's CSRF token, and the cookie is
``SameSite=Strict``. The sign-in form, which has no session yet, carries a one-time
nonce that must match a cookie set with the form. Every page forbids framing, scripts
and any resource from elsewhere (``Content-Security-Policy``), and is never cached.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import anyio
import anyio.to_thread
import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route as StarletteRoute

from lockgate.contracts.refs import short
from lockgate.contracts.state import EventFilter, TokenRecord
from lockgate.errors import NotFoundError, PermissionDeniedError
from lockgate.operations.tokens import authorize
from lockgate.server.app import Call, Credential, Server
from lockgate.server.errors import ApiError
from lockgate.server.routes import ROUTES
from lockgate.server.web_sessions import Sessions, WebSession, same

__all__ = ["dashboard_routes"]

COOKIE = "lockgate_session"
LOGIN_COOKIE = "lockgate_login"
MAX_FORM = 64 * 1024
RECENT = 30
TEMPLATES = Path(__file__).parent / "templates"
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: with no-referrer a form's Origin header is "null"
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
APPROVE = next(r for r in ROUTES if r.action == "approve")
NOBODY = TokenRecord("", "", "", "", None, "", "")

Page = Callable[[Call], tuple[int, Any]]


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["short"] = lambda v: short(v) if v else "—"
    env.filters["ref"] = lambda v: quote(str(v), safe=":")
    return env


# ---------------------------------------------------------------------- the pages' facts


def _can(token: TokenRecord, action: str, stage: str | None) -> bool:
    try:
        authorize(token, action, stage)
    except PermissionDeniedError:
        return False
    return True


def overview(call: Call) -> tuple[int, Any]:
    """Each stage and what is live in it, pending approvals, recent activity."""
    from lockgate.operations.pending import pending_approvals
    from lockgate.operations.reports import event_dict, history

    state = call.session.state()
    stages = [
        {"name": name, "live": [p for p in state.pointers(name) if p.revision is not None]}
        for name in call.session.stage_names
    ]
    pending = [
        {
            "item": p,
            "may_approve": _can(call.token, "approve", p.stage)
            and call.token.actor not in p.authors
            and call.token.actor not in p.approved_by,
        }
        for p in pending_approvals(call.session)
    ]
    recent = history(call.session, EventFilter(limit=RECENT, newest_first=True))
    return 200, {
        "stages": stages,
        "pending": pending,
        "events": [event_dict(e) for e in recent],
    }


def component(call: Call) -> tuple[int, Any]:
    """One component: where it is live, its revisions, approvals and audit events."""
    from lockgate.contracts.refs import ComponentRef
    from lockgate.operations.reports import event_dict, history

    ref = str(ComponentRef.parse(call.params["ref"]))
    state = call.session.state()
    record = state.component(ref)
    if record is None:
        raise NotFoundError(f"{ref} has never been staged")
    live = [
        p
        for stage in call.session.stage_names
        if (p := state.pointer(stage, record.component_id)) is not None and p.component == ref
    ]
    events = history(call.session, EventFilter(component=ref, limit=500, newest_first=True))
    return 200, {
        "record": record,
        "live": live,
        "revisions": list(reversed(state.revisions(ref))),
        "approvals": state.approvals(ref),
        "events": [event_dict(e) for e in events],
    }


def whoami(call: Call) -> tuple[int, Any]:
    return 200, call.token


# ---------------------------------------------------------------------- the application


class Dashboard:
    """The dashboard's routes over one :class:`~lockgate.server.app.Server`."""

    def __init__(self, server: Server, sessions: Sessions | None = None) -> None:
        self.server = server
        self.sessions = sessions or Sessions(server.db)
        self.env = _environment()

    # -------------------------------------------------------------- rendering

    def html(
        self, request: Request, template: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        context.setdefault("user", None)
        body = self.env.get_template(template).render(**context)
        response = HTMLResponse(body, status, headers=HEADERS)
        self._count(request, status)
        return response

    def error(self, request: Request, exc: ApiError, user: WebSession | None) -> Response:
        if exc.code == "unauthenticated":
            return self._to_login(request)
        return self.html(
            request, "error.html", exc.status, user=user, code=exc.code, message=exc.message
        )

    def _count(self, request: Request, status: int) -> None:
        route = request.scope.get("route")
        path = getattr(route, "path", request.url.path)
        self.server.metrics.requests.labels(request.method, path, str(status)).inc()

    def _to_login(self, request: Request) -> Response:
        response = RedirectResponse("/ui/login", 303, headers=HEADERS)
        response.delete_cookie(COOKIE, path="/")
        self.sessions.end(request.cookies.get(COOKIE))
        self._count(request, 303)
        return response

    # -------------------------------------------------------------- running work

    async def run(
        self,
        request: Request,
        header: Credential,
        action: str,
        work: Page,
        *,
        params: dict[str, str] | None = None,
        body: bytes = b"",
        stage_of: Callable[[Call], str | None] | None = None,
    ) -> tuple[int, Any]:
        """``work`` as the API runs a route: budget, token, role, then the work, in a
        worker thread under the request timeout."""
        client = request.client.host if request.client else "unknown"
        self.server.check_budget(client)
        call = Call(
            session=None,  # type: ignore[arg-type]  # set once authenticated
            token=NOBODY,
            params=params or {},
            query={},
            body=body,
            content_type="application/json",
        )

        def job() -> tuple[int, Any]:
            return self.server.run(client, header, action, stage_of, work, call, None)

        try:
            with anyio.fail_after(self.server.settings.timeout):
                return await anyio.to_thread.run_sync(job, abandon_on_cancel=True)
        except TimeoutError:
            raise ApiError(
                "timeout", f"no answer within {self.server.settings.timeout:g} s"
            ) from None

    def user(self, request: Request) -> WebSession | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    async def form(self, request: Request, user: WebSession | None) -> dict[str, str]:
        """The posted form, once it has passed the origin and CSRF checks."""
        origin = request.headers.get("origin") or request.headers.get("referer")
        here = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin is not None and not (origin == here or origin.startswith(here + "/")):
            raise ApiError("forbidden", f"a form from {origin} is not accepted here")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_FORM:
                raise ApiError("too_large", f"form over {MAX_FORM} bytes")
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            raise ApiError("bad_request", "the form is not UTF-8; send UTF-8") from None
        try:
            fields = {k: v[0] for k, v in parse_qs(text, max_num_fields=16).items()}
        except ValueError:
            raise ApiError("bad_request", "the form has more than 16 fields") from None
        if user is not None and not same(fields.get("csrf"), user.csrf):
            raise ApiError("forbidden", "the form's CSRF token is missing or stale; reload")
        return fields

    # -------------------------------------------------------------- endpoints

    async def root(self, request: Request) -> Response:
        return RedirectResponse("/ui/", 303, headers=HEADERS)

    async def style(self, request: Request) -> Response:
        text = (TEMPLATES / "style.css").read_text(encoding="utf-8")
        return Response(text, 200, media_type="text/css", headers=HEADERS)

    async def login_page(self, request: Request) -> Response:
        return self._login_form(request, None, 200)

    def _login_form(self, request: Request, problem: str | None, status: int) -> Response:
        import secrets

        nonce = secrets.token_urlsafe(24)
        response = self.html(request, "login.html", status, nonce=nonce, problem=problem)
        response.set_cookie(
            LOGIN_COOKIE,
            nonce,
            max_age=1800,
            path="/ui/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return response

    async def login(self, request: Request) -> Response:
        try:
            fields = await self.form(request, None)
            if not same(fields.get("nonce"), request.cookies.get(LOGIN_COOKIE, "\0")):
                raise ApiError("forbidden", "the sign-in form is stale; reload it and sign in")
            token = fields.get("token", "").strip()
            header = f"Bearer {token}"
            _, record = await self.run(request, header, "read", whoami)
        except ApiError as exc:
            if exc.code == "unauthenticated":
                return self._login_form(request, exc.message, 401)
            return self.error(request, exc, None)
        session_id, _ = await anyio.to_thread.run_sync(self.sessions.create, record)
        response = RedirectResponse("/ui/", 303, headers=HEADERS)
        response.set_cookie(
            COOKIE,
            session_id,
            max_age=int(self.sessions.lifetime),
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        response.delete_cookie(LOGIN_COOKIE, path="/ui/")
        self._count(request, 303)
        return response

    async def logout(self, request: Request) -> Response:
        user = self.user(request)
        if user is None:
            return self._to_login(request)
        try:
            await self.form(request, user)
        except ApiError as exc:
            return self.error(request, exc, user)
        return self._to_login(request)

    async def overview(self, request: Request) -> Response:
        user = self.user(request)
        if user is None:
            return self._to_login(request)
        try:
            _, facts = await self.run(request, user.authenticate, "read", overview)
        except ApiError as exc:
            return self.error(request, exc, user)
        notice = await anyio.to_thread.run_sync(self.sessions.take_notice, user)
        return self.html(request, "overview.html", user=user, notice=notice, **facts)

    async def component(self, request: Request) -> Response:
        user = self.user(request)
        if user is None:
            return self._to_login(request)
        ref = str(request.path_params["ref"])
        try:
            _, facts = await self.run(
                request, user.authenticate, "read", component, params={"ref": ref}
            )
        except ApiError as exc:
            return self.error(request, exc, user)
        return self.html(request, "component.html", user=user, **facts)

    async def approve(self, request: Request) -> Response:
        user = self.user(request)
        if user is None:
            return self._to_login(request)
        ref = str(request.path_params["ref"])
        try:
            fields = await self.form(request, user)
            body = {"revision": fields.get("revision") or None}
            if fields.get("comment"):
                body["comment"] = fields["comment"]
            _, result = await self.run(
                request,
                user.authenticate,
                APPROVE.action,
                APPROVE.work,
                params={"ref": ref},
                body=json.dumps(body).encode(),
                stage_of=APPROVE.stage_of,
            )
        except ApiError as exc:
            return self.error(request, exc, user)
        notice = f"{result['component']} {short(result['revision'])}: {result['status']}"
        if result.get("note"):
            notice += f" ({result['note']})"
        await anyio.to_thread.run_sync(self.sessions.tell, user, notice)
        self._count(request, 303)
        return RedirectResponse("/ui/", 303, headers=HEADERS)


def dashboard_routes(server: Server) -> list[StarletteRoute]:
    """The dashboard's routes: ``/`` leads to ``/ui/``."""
    board = Dashboard(server)
    return [
        StarletteRoute("/", board.root),
        StarletteRoute("/ui/", board.overview),
        StarletteRoute("/ui/style.css", board.style),
        StarletteRoute("/ui/login", board.login_page, methods=["GET"]),
        StarletteRoute("/ui/login", board.login, methods=["POST"]),
        StarletteRoute("/ui/logout", board.logout, methods=["POST"]),
        StarletteRoute("/ui/components/{ref}", board.component, methods=["GET"]),
        StarletteRoute("/ui/components/{ref}/approve", board.approve, methods=["POST"]),
    ]
