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


def _notifier(tmp_path: Path, subject: str, stream: str | None) -> NatsNotifier:
    options = {"url": f"nats://{HOST}:{PORT}", "subject": subject, "timeout": 2}
    if stream:
        options["stream"] = stream
    context = RoleContext(project_root=tmp_path, state_dir=tmp_path, settings=None, options=options)
    return NatsNotifier.from_context(context)


def test_a_batch_is_stored_in_order_once_each_with_its_acks(
    tmp_path: Path, stream: tuple[str, str]
) -> None:
    name, subject = stream
    notifier = _notifier(tmp_path, subject, name)
    messages = [
        Message.of(
            AuditEvent(at="2026-12-05T10:00:00+00:00", actor="a", action="validate",
                       component=f"alice:c{n % 3}", seq=n),
            f"{n:02d}" * 32,
            "lockgate://t",
        )
        for n in range(1, 41)
    ]  # fmt: skip
    try:
        assert notifier.deliver_batch(messages, 5.0) == [None] * 40
        # Sent again (a crash before the outcomes were written): de-duplicated.
        assert notifier.deliver_batch(messages[10:20], 5.0) == [None] * 10
    finally:
        notifier.close()
    assert [s["msg_id"] for s in _stored(name)] == [m.id for m in messages]


def test_a_batch_no_stream_acknowledges_fails_message_by_message(tmp_path: Path) -> None:
    require_tcp_service("NATS", HOST, PORT)
    notifier = _notifier(tmp_path, f"lockgate.nowhere.{uuid.uuid4().hex}", None)
    event = AuditEvent(at="2026-12-05T10:00:00+00:00", actor="a", action="stage", seq=1)
    try:
        outcomes = notifier.deliver_batch([Message.of(event, "ab" * 32, "lockgate://t")] * 3, 1.0)
    finally:
        notifier.close()
    assert len(outcomes) == 3 and all(isinstance(o, DeliveryError) for o in outcomes)
    assert "NATS publish to" in str(outcomes[0])
