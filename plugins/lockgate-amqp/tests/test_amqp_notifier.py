"""The amqp notifier against a real RabbitMQ at 127.0.0.1:5672, guest/guest (skipped
without one, a failure with LOCKGATE_REQUIRE_SERVICES=1)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lockgate_amqp import AmqpNotifier

from lockgate.plugin import AuditEvent, DeliveryError, Message
from lockgate.testing import require_tcp_service, run_cli

HOST, PORT = "127.0.0.1", 5672


@pytest.fixture
def queue() -> Iterator[tuple[Any, str, str]]:
    require_tcp_service("RabbitMQ", HOST, PORT)
    import pika

    connection = pika.BlockingConnection(pika.ConnectionParameters(HOST, PORT))
    channel = connection.channel()
    exchange = f"lockgate.test.{uuid.uuid4().hex[:12]}"
    channel.exchange_declare(exchange, exchange_type="topic", durable=True)
    name = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(name, exchange, routing_key="dev.lockgate.#")
    yield channel, name, exchange
    channel.exchange_delete(exchange)
    connection.close()


def _drain(channel: Any, name: str) -> list[tuple[Any, dict[str, Any]]]:
    found = []
    while True:
        method, properties, body = channel.basic_get(name, auto_ack=True)
        if method is None:
            return found
        found.append((properties, json.loads(body)))


def test_a_projects_events_reach_a_bound_queue_confirmed(
    tmp_path: Path, queue: tuple[Any, str, str]
) -> None:
    channel, name, exchange = queue
    root = tmp_path / "p"
    assert run_cli("init", str(root)).exit_code == 0
    (root / "lockgate.yaml").write_text(
        "events:\n  notifiers:\n    - kind: amqp\n"
        f"      options: {{url: 'amqp://guest@{HOST}:{PORT}/%2F', exchange: {exchange},"
        " password_env: AMQP_PASSWORD}\n"
    )
    path = root / "workspaces" / "alice" / "jobs" / "etl"
    path.mkdir(parents=True)
    (path / "run.py").write_text("print(1)\n")
    env = {"LOCKGATE_ACTOR": "alice", "AMQP_PASSWORD": "guest"}
    assert run_cli("stage", "alice:etl", project=root, env=env).exit_code == 0
    assert run_cli("promote", "alice:etl", project=root, env=env).exit_code == 0
    got = _drain(channel, name)
    assert [body["type"] for _, body in got] == [
        "dev.lockgate.component.staged",
        "dev.lockgate.component.validated",
        "dev.lockgate.component.promoted",
    ]
    assert [p.message_id for p, _ in got] == [body["id"] for _, body in got]
    listed = run_cli("events", "ls", "--json", project=root, env=env).json()["deliveries"]
    assert {d["state"] for d in listed} == {"delivered"}


def test_a_password_in_the_url_is_refused_without_showing_it(tmp_path: Path) -> None:
    root = tmp_path / "p"
    run_cli("init", str(root))
    (root / "lockgate.yaml").write_text(
        "events:\n  notifiers:\n    - kind: amqp\n"
        "      options: {url: 'amqp://guest:sup3rsecret@127.0.0.1/%2F'}\n"
    )
    result = run_cli("events", "deliver", project=root)
    assert result.exit_code == 2
    assert "holds a password" in result.stderr and "sup3rsecret" not in result.stderr


def test_an_unreachable_broker_is_a_failed_delivery() -> None:
    import pika

    notifier = AmqpNotifier(
        pika.ConnectionParameters("127.0.0.1", 9, connection_attempts=1, socket_timeout=0.5),
        "x",
        None,
        0.5,
    )
    event = AuditEvent(at="2026-12-05T10:00:00+00:00", actor="a", action="stage", seq=1)
    with pytest.raises(DeliveryError, match="AMQP publish to x"):
        notifier.deliver(Message.of(event, "ab" * 32, "s"), 1.0)
    notifier.close()
