"""Tests that need a server (PostgreSQL, Redis, NATS …): skip without it, or fail.

On a developer's machine a backend's tests skip, with one line saying which server was
not reachable, when the server is not running. Where the servers are part of the
environment (CI), ``LOCKGATE_REQUIRE_SERVICES=1`` turns that skip into a failure, so a
server that did not start cannot pass as "all green, some skipped".
"""

from __future__ import annotations

import os
import socket
from typing import NoReturn

import pytest

__all__ = ["REQUIRE_SERVICES", "require_tcp_service", "service_missing", "services_required"]

REQUIRE_SERVICES = "LOCKGATE_REQUIRE_SERVICES"
"""The environment variable that makes a missing server a failure (``1``)."""


def services_required() -> bool:
    """Whether ``LOCKGATE_REQUIRE_SERVICES=1`` is set."""
    return os.environ.get(REQUIRE_SERVICES, "").strip() == "1"


def service_missing(name: str, problem: str) -> NoReturn:
    """Skip the test (or fail it, when services are required) with one line:
    ``<name> is not available: <problem>``."""
    reason = " ".join(f"{name} is not available: {problem}".split())
    if services_required():
        pytest.fail(f"{reason} ({REQUIRE_SERVICES}=1: the server must be running)", pytrace=False)
    pytest.skip(f"{reason} (set {REQUIRE_SERVICES}=1 to fail instead)")


def require_tcp_service(name: str, host: str, port: int, *, timeout: float = 2.0) -> None:
    """Return when something accepts TCP connections at ``host:port``; otherwise
    :func:`service_missing` (skip, or fail when services are required)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        service_missing(name, f"nothing accepts connections at {host}:{port} ({exc})")
