"""``lockgate.testing``'s skip-or-fail for tests that need a server."""

from __future__ import annotations

import socket

import pytest

from lockgate.testing import REQUIRE_SERVICES, require_tcp_service, service_missing


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_missing_service_skips_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_SERVICES, raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        service_missing("Redis", "nothing at\n127.0.0.1:6379")
    assert str(skipped.value).startswith("Redis is not available: nothing at 127.0.0.1:6379")
    assert "\n" not in str(skipped.value) and REQUIRE_SERVICES in str(skipped.value)


def test_a_missing_service_fails_when_services_are_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(REQUIRE_SERVICES, "1")
    with pytest.raises(pytest.fail.Exception) as failed:
        service_missing("Redis", "nothing at 127.0.0.1:6379")
    assert "Redis is not available" in str(failed.value)


def test_require_tcp_service_returns_when_something_listens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(REQUIRE_SERVICES, "1")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        require_tcp_service("a listener", "127.0.0.1", server.getsockname()[1])


@pytest.mark.parametrize(
    ("required", "outcome"), [("", pytest.skip.Exception), ("1", pytest.fail.Exception)]
)
def test_require_tcp_service_without_a_listener(
    monkeypatch: pytest.MonkeyPatch, required: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv(REQUIRE_SERVICES, required)
    port = _free_port()
    with pytest.raises(outcome) as raised:
        require_tcp_service("NATS", "127.0.0.1", port, timeout=1)
    assert f"127.0.0.1:{port}" in str(raised.value)
