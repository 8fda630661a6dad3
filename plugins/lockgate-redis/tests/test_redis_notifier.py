"""The redis notifier against a real Redis server at 127.0.0.1:6379 (skipped without
one, a failure with LOCKGATE_REQUIRE_SERVICES=1)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lockgate.testing import require_tcp_service, run_cli

HOST, PORT = "127.0.0.1", 6379


@pytest.fixture
def stream() -> Iterator[tuple[Any, str]]:
    require_tcp_service("Redis", HOST, PORT)
    import redis

    client = redis.Redis(host=HOST, port=PORT)
    name = f"lockgate-test-{uuid.uuid4().hex}"
    yield client, name
    client.delete(name)
    client.close()


def test_a_projects_events_are_appended_to_the_stream_in_order(
    tmp_path: Path, stream: tuple[Any, str]
) -> None:
    client, name = stream
    root = tmp_path / "p"
    assert run_cli("init", str(root)).exit_code == 0
    (root / "lockgate.yaml").write_text(
        "events:\n  notifiers:\n    - kind: redis\n"
        f"      options: {{url: 'redis://{HOST}:{PORT}/0', stream: {name}}}\n"
    )
    for cid in ("etl", "api"):
        path = root / "workspaces" / "alice" / "jobs" / cid
        path.mkdir(parents=True)
        (path / "run.py").write_text("print(1)\n")
    env = {"LOCKGATE_ACTOR": "alice"}
    assert run_cli("stage", "alice:etl", project=root, env=env).exit_code == 0
    assert run_cli("stage", "alice:api", project=root, env=env).exit_code == 0
    assert run_cli("promote", "alice:etl", project=root, env=env).exit_code == 0
    entries = client.xrange(name)
    events = [json.loads(fields[b"event"]) for _, fields in entries]
    assert [e["type"] for e in events] == [
        "dev.lockgate.component.staged",
        "dev.lockgate.component.staged",
        "dev.lockgate.component.validated",
        "dev.lockgate.component.promoted",
    ]
    assert [fields[b"id"].decode() for _, fields in entries] == [e["id"] for e in events]
    assert [e["data"]["seq"] for e in events] == sorted(e["data"]["seq"] for e in events)
    listed = run_cli("events", "ls", "--json", project=root, env=env).json()["deliveries"]
    assert {d["state"] for d in listed} == {"delivered"}


def test_an_unreachable_server_is_a_failed_delivery_retried_later(tmp_path: Path) -> None:
    root = tmp_path / "p"
    run_cli("init", str(root))
    (root / "lockgate.yaml").write_text(
        "events:\n  notifiers:\n    - kind: redis\n"
        "      options: {url: 'redis://127.0.0.1:9/0', timeout: 0.5}\n"
    )
    path = root / "workspaces" / "alice" / "jobs" / "etl"
    path.mkdir(parents=True)
    (path / "run.py").write_text("print(1)\n")
    assert run_cli("stage", "alice:etl", project=root).exit_code == 0
    pending = run_cli("events", "ls", "--pending", "--json", project=root).json()["deliveries"]
    assert [d["attempts"] for d in pending] == [1]
    assert "redis XADD" in pending[0]["last_error"]


def test_an_unknown_option_is_one_line(tmp_path: Path) -> None:
    root = tmp_path / "p"
    run_cli("init", str(root))
    (root / "lockgate.yaml").write_text(
        "events:\n  notifiers:\n    - kind: redis\n      options: {password: x}\n"
    )
    result = run_cli("events", "deliver", project=root)
    assert result.exit_code == 2
    assert "unknown option 'password' of the redis notifier" in result.stderr


def test_a_batch_is_appended_in_order_in_one_transaction(
    tmp_path: Path, stream: tuple[Any, str]
) -> None:
    from lockgate_redis import RedisNotifier

    from lockgate.plugin import AuditEvent, DeliveryError, Message, RoleContext

    client, name = stream
    options = {"url": f"redis://{HOST}:{PORT}/0", "stream": name}
    notifier = RedisNotifier.from_context(
        RoleContext(project_root=tmp_path, state_dir=tmp_path, settings=None, options=options)
    )
    messages = [
        Message.of(
            AuditEvent(at="2026-12-05T10:00:00+00:00", actor="a", action="validate",
                       component=f"alice:c{n % 3}", seq=n),
            f"{n:02d}" * 32,
            "lockgate://t",
        )
        for n in range(1, 31)
    ]  # fmt: skip
    client.set(name, "not a stream")  # Redis refuses every XADD to it
    try:
        refused = notifier.deliver_batch(messages, 5.0)
        assert all(isinstance(r, DeliveryError) and "WRONGTYPE" in str(r) for r in refused)
        assert len(refused) == 30
        client.delete(name)
        assert notifier.deliver_batch(messages, 5.0) == [None] * 30
    finally:
        notifier.close()
    entries = client.xrange(name)
    assert [f[b"id"].decode() for _, f in entries] == [m.id for m in messages]
