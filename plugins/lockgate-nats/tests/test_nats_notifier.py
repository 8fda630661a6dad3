"""The nats notifier against a real NATS server with JetStream at 127.0.0.1:4222
(skipped without one, a failure with LOCKGATE_REQUIRE_SERVICES=1)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from lockgate_nats import NatsNotifier

from lockgate.plugin import AuditEvent, DeliveryError, Message, RoleContext
from lockgate.testing import require_tcp_service, run_cli

HOST, PORT = "127.0.0.1", 4222


def _stored(stream: str) -> list[dict[str, object]]:
    import nats

    async def read() -> list[dict[str, object]]:
        nc = await nats.connect(f"nats://{HOST}:{PORT}")
        js = nc.jetstream()
        info = await js.stream_info(stream)
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(stream, seq)
            found.append({"msg_id": msg.headers["Nats-Msg-Id"], **json.loads(msg.data)})
        await nc.close()
        return found

    return asyncio.run(read())


@pytest.fixture
def stream() -> Iterator[tuple[str, str]]:
    require_tcp_service("NATS", HOST, PORT)
    import nats

    name = f"LOCKGATE_TEST_{uuid.uuid4().hex[:12].upper()}"
    subject = f"lockgate.test.{name.lower()}"
    yield name, subject

    async def drop() -> None:
        nc = await nats.connect(f"nats://{HOST}:{PORT}")
        try:
            await nc.jetstream().delete_stream(name)
        finally:
            await nc.close()

    asyncio.run(drop())


def test_a_repeated_delivery_is_stored_once(tmp_path: Path, stream: tuple[str, str]) -> None:
    name, subject = stream
    notifier = NatsNotifier.from_context(
        RoleContext(
            project_root=tmp_path,
            state_dir=tmp_path,
            settings=None,
            options={"url": f"nats://{HOST}:{PORT}", "subject": subject, "stream": name},
        )
    )
    event = AuditEvent(at="2026-12-05T10:00:00+00:00", actor="a", action="stage", seq=3)
    message = Message.of(event, "cd" * 32, "lockgate://t")
    try:
        notifier.deliver(message, 5.0)
        notifier.deliver(message, 5.0)  # a retry after a crash: the same Nats-Msg-Id
    finally:
        notifier.close()
    stored = _stored(name)
    assert [s["msg_id"] for s in stored] == [message.id]


def test_a_projects_events_reach_the_stream(tmp_path: Path, stream: tuple[str, str]) -> None:
    name, subject = stream
    root = tmp_path / "p"
    assert run_cli("init", str(root)).exit_code == 0
    (root / "lockgate.yaml").write_text(
        "events:\n  notifiers:\n    - kind: nats\n"
        f"      options: {{url: 'nats://{HOST}:{PORT}', subject: {subject}, stream: {name}}}\n"
    )
    path = root / "workspaces" / "alice" / "jobs" / "etl"
    path.mkdir(parents=True)
    (path / "run.py").write_text("print(1)\n")
    env = {"LOCKGATE_ACTOR": "alice"}
    assert run_cli("stage", "alice:etl", project=root, env=env).exit_code == 0
    assert run_cli("promote", "alice:etl", project=root, env=env).exit_code == 0
    stored = _stored(name)
    assert [s["type"] for s in stored] == [
        "dev.lockgate.component.staged",
        "dev.lockgate.component.validated",
        "dev.lockgate.component.promoted",
    ]
    assert [s["msg_id"] for s in stored] == [s["id"] for s in stored]


def test_an_unreachable_server_is_a_failed_delivery(tmp_path: Path) -> None:
    notifier = NatsNotifier("nats://127.0.0.1:9", "x", timeout=0.5)
    event = AuditEvent(at="2026-12-05T10:00:00+00:00", actor="a", action="stage", seq=1)
    with pytest.raises(DeliveryError, match="NATS publish to x"):
        notifier.deliver(Message.of(event, "ab" * 32, "s"), 1.0)
    notifier.close()
