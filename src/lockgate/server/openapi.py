"""The OpenAPI 3.1 document of the server, built from the route table, and a plain HTML
page that shows it (no assets fetched from anywhere: the page works offline)."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from lockgate._version import __version__
from lockgate.server.errors import CODES
from lockgate.server.routes import Route

__all__ = ["document", "page"]

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "enum": sorted(CODES)},
                "message": {"type": "string"},
            },
        }
    },
}
_POST_ERRORS = (
    ("409", "refused, or lost to a concurrent change"),
    ("413", "body too large"),
    ("422", "a gate blocks it, or the key was used for another request"),
    ("423", "the project is locked"),
    ("503", "too many jobs waiting; retry later"),
    ("504", "no answer in time; nothing was changed"),
)
_ANY = {"description": "the result, as JSON", "content": {"application/json": {"schema": {}}}}
_ACCEPTED = {
    "description": "queued as a job: follow Location (GET /jobs/{id})",
    "headers": {"Location": {"schema": {"type": "string"}}},
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["job", "status", "location"],
                "properties": {
                    "job": {"type": "string"},
                    "status": {"type": "string", "enum": ["queued"]},
                    "location": {"type": "string"},
                },
            }
        }
    },
}


def _error(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Error"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _operation(route: Route) -> dict[str, Any]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", route.path)
    ] + [{"name": name, "in": "query", "schema": {"type": "string"}} for name in route.query]
    op: dict[str, Any] = {
        "summary": route.summary,
        "operationId": f"{route.method.lower()}_{re.sub(r'[^a-z]+', '_', route.path.lower())}",
        "parameters": params,
        "security": [{"bearer": []}],
        "responses": {
            "200": _ANY,
            "400": _error("bad input"),
            "401": _error("no token, or one not accepted"),
            "403": _error("the token's role or stage does not allow it"),
            "404": _error("no such component, revision or stage"),
            "429": _error("too many failed authentications from this client"),
        },
    }
    if route.method == "POST":
        op["parameters"].append(
            {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}
        )
        if not route.run_async:
            prefer = {"type": "string", "enum": ["respond-async"]}
            op["parameters"].append({"name": "Prefer", "in": "header", "schema": prefer})
        else:
            del op["responses"]["200"]
        op["responses"]["202"] = _ACCEPTED
        for code, why in _POST_ERRORS:
            op["responses"][code] = _error(why)
        if route.upload:
            op["responses"]["415"] = _error("not a tar archive")
            binary = {"schema": {"type": "string", "format": "binary"}}
            op["requestBody"] = {
                "required": True,
                "content": {"application/x-tar": binary, "application/gzip": binary},
            }
        else:
            props = {name: {"type": "boolean" if name in ("dry_run", "force") else "string"}
                     for name in route.body}  # fmt: skip
            schema = {"type": "object", "properties": props, "additionalProperties": False}
            op["requestBody"] = {"content": {"application/json": {"schema": schema}}}
    return op


def document(routes: Sequence[Route]) -> dict[str, Any]:
    """The OpenAPI document of ``routes`` plus the public endpoints."""
    paths: dict[str, dict[str, Any]] = {
        "/health": {"get": {"summary": "Alive", "responses": {"200": _ANY}}},
        "/ready": {
            "get": {
                "summary": "Ready: state store reachable, plugins loaded, no recovery pending",
                "responses": {"200": _ANY, "503": _ANY},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (a viewer token)",
                "security": [{"bearer": []}],
                "responses": {
                    "200": {"description": "text exposition format"},
                    "401": _error("no token"),
                },
            }
        },
    }
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "lockgate", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def page(doc: dict[str, Any]) -> str:
    """A readable HTML page of ``doc``: every endpoint, its parameters and answers."""
    rows = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            params = ", ".join(p["name"] for p in op.get("parameters", [])) or "—"
            answers = ", ".join(sorted(op["responses"]))
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code>"
                f"</td><td>{html.escape(op['summary'])}</td><td>{html.escape(params)}</td>"
                f"<td>{answers}</td></tr>"
            )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>lockgate API</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.3em .8em;"
        "border-bottom:1px solid #ddd;text-align:left}</style></head><body>"
        f"<h1>lockgate API {html.escape(doc['info']['version'])}</h1>"
        "<p>Send <code>Authorization: Bearer &lt;token&gt;</code> "
        "(<code>lockgate token create</code>). The machine-readable document is "
        "<a href='/openapi.json'>/openapi.json</a>.</p><table><tr><th>method</th><th>path</th>"
        "<th>what</th><th>parameters</th><th>answers</th></tr>" + "".join(rows) + "</table>"
        "</body></html>"
    )
