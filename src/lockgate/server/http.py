"""The Starlette application: routes mounted from :data:`~lockgate.server.routes.ROUTES`,
the public endpoints (health, readiness, the OpenAPI document and its page), body
limits, timeouts, and every error as JSON."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route as StarletteRoute

from lockgate.contracts.state import TokenRecord
from lockgate.core.session import Session
from lockgate.server.app import Call, How, Server, ServerSettings
from lockgate.server.errors import ApiError
from lockgate.server.routes import ROUTES, Route
from lockgate.server.timeouts import Ticket

__all__ = ["build_app"]

NOBODY = TokenRecord("", "", "", "", None, "", "")


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    text = json.dumps(body, default=str, ensure_ascii=False)
    return Response(text, status, headers, media_type="application/json")


def _error(exc: ApiError) -> Response:
    return _json(exc.status, exc.body(), exc.headers)


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ApiError("too_large", f"request body over {limit} bytes; send less")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError("too_large", f"request body over {limit} bytes; send less")
        chunks.append(chunk)
    return b"".join(chunks)


def _endpoint(server: Server, route: Route) -> Any:
    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        client = request.client.host if request.client else "unknown"
        status = 500
        try:
            server.check_budget(client)
            body = await _body(request, server.settings.max_body) if route.method == "POST" else b""
            call = Call(
                session=None,  # type: ignore[arg-type]  # set once authenticated
                token=NOBODY,
                params={k: str(v) for k, v in request.path_params.items()},
                query=dict(request.query_params),
                body=body,
                content_type=request.headers.get("content-type", ""),
            )
            key = request.headers.get("idempotency-key") if route.method == "POST" else None
            header = request.headers.get("authorization")
            prefer = request.headers.get("prefer", "").lower()
            ticket = Ticket(server.settings.timeout)
            how = How(
                route.action,
                route.work,
                f"{route.method} {route.path}",
                route.stage_of,
                route.check,
                route.run_async or (route.method == "POST" and "respond-async" in prefer),
                key,
                ticket,
            )

            def work() -> tuple[int, Any]:
                return ticket.run(lambda: server.handle(client, header, how, call))

            with anyio.move_on_after(server.settings.timeout) as scope:
                status, answer = await anyio.to_thread.run_sync(
                    work, abandon_on_cancel=True, limiter=server.limiter(route.method != "GET")
                )
            if scope.cancelled_caught:
                if ticket.expire():
                    raise TimeoutError
                # changing the project already: never abandoned, answered when it ends
                status, answer = await anyio.to_thread.run_sync(ticket.wait)
            location = {"Location": answer["location"]} if status == 202 else None
            return _json(status, answer, location)
        except ApiError as exc:
            status = exc.status
            return _error(exc)
        except TimeoutError:
            status = 504
            return _error(
                ApiError(
                    "timeout",
                    f"no answer within {server.settings.timeout:g} s; nothing was changed and "
                    "nothing will be: retry, or ask for a job (Prefer: respond-async)",
                )
            )
        finally:
            server.metrics.requests.labels(route.method, route.path, str(status)).inc()
            server.metrics.duration.labels(route.path).observe(time.perf_counter() - started)

    return endpoint


def _public(server: Server) -> list[StarletteRoute]:
    async def health(request: Request) -> Response:
        return _json(200, {"status": "ok", "worker": os.getpid()})

    def readiness() -> tuple[int, dict[str, Any]]:
        problems: list[str] = []
        try:
            with server.projects.project() as project:
                problems += project.required_problems()
                problems += [
                    f"{f.label} failed to load: {f.error}" for f in project.plugins.failures
                ]
                state = Session(project).state()
                state.counts()
                pending = state.open_intents()
                if pending:
                    problems.append(f"{len(pending)} interrupted operation(s) wait for recovery")
        except Exception as exc:  # unreachable store, broken config: not ready, say why
            problems.append(str(exc) or type(exc).__name__)
        return (200 if not problems else 503), {"ready": not problems, "problems": problems}

    async def ready(request: Request) -> Response:
        with anyio.fail_after(server.settings.timeout):
            status, body = await anyio.to_thread.run_sync(readiness, abandon_on_cancel=True)
        return _json(status, body)

    async def metrics(request: Request) -> Response:
        from lockgate.server.routes import Route as R

        def scrape(call: Call) -> tuple[int, Any]:
            return 200, server.metrics.render().decode()

        route = R("GET", "/metrics", "metrics", "read", scrape)
        answer: Response = await _endpoint(server, route)(request)
        if answer.status_code != 200:
            return answer
        text = json.loads(bytes(answer.body))
        return Response(text, 200, media_type="text/plain; version=0.0.4")

    async def openapi(request: Request) -> Response:
        from lockgate.server.openapi import document

        return _json(200, document(ROUTES))

    async def docs(request: Request) -> Response:
        from lockgate.server.openapi import document, page

        return HTMLResponse(page(document(ROUTES)))

    return [
        StarletteRoute("/health", health),
        StarletteRoute("/ready", ready),
        StarletteRoute("/metrics", metrics),
        StarletteRoute("/openapi.json", openapi),
        StarletteRoute("/docs", docs),
    ]


def build_app(settings: ServerSettings) -> Starlette:
    """The ASGI application serving the project at ``settings.root``."""
    from lockgate.server.dashboard import dashboard_routes

    server = Server(settings)
    routes = _public(server) + [
        StarletteRoute(r.path, _endpoint(server, r), methods=[r.method]) for r in ROUTES
    ]
    routes += dashboard_routes(server)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        message = {
            "not_found": f"no endpoint {request.url.path}; see /openapi.json",
            "method_not_allowed": f"{request.method} is not accepted at {request.url.path}",
        }.get(code, str(exc.detail))
        return _error(ApiError(code, message))

    async def internal(request: Request, exc: Exception) -> Response:
        message = f"internal error: {type(exc).__name__}: {exc} (a bug in lockgate; report it)"
        return _error(ApiError("internal", message))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await anyio.to_thread.run_sync(server.close)  # jobs: see lockgate.server.jobs

    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error, Exception: internal},
        lifespan=lifespan,
    )
    app.state.server = server
    return app
