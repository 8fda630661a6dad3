"""Events out: the audit log as the outbox, the dispatcher, the ``log`` and ``webhook``
notifiers, ``lockgate events`` and the ``on_failure``/``on_shutdown`` hooks.

Everything is real: projects on disk with the SQLite store, the command line, and a real
HTTP receiver on 127.0.0.1 that checks every signature with the ``standardwebhooks``
library's verifier (tests/events_receiver.py). The dispatcher's clock and jitter are
injected where a test checks backoff arithmetic.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import ENV, ProjectWorkspace
from events_receiver import SECRET, Receiver
from lockgate.contracts.events import DeliveryError, Message, cloud_event, event_type
from lockgate.contracts.state import AuditEvent, EventFilter
from lockgate.core.session import Session
from lockgate.errors import ConflictError, MissingCapabilityError, RefusedError
from lockgate.hookspecs import hookimpl
from lockgate.operations.events import Outbox
from lockgate.testing import fake_distribution, open_project, run_cli

REF = "alice:app"
ENVIRON = {**ENV, "HOOK_SECRET": SECRET}


def config(url: str, *, extra: str = "", hook: str = "", notifiers: str = "") -> str:
    return f"""
events:
  backoff: 1
  max_attempts: 4
{extra}
  notifiers:
    - kind: webhook
      name: hook
      options: {{url: "{url}", secret_env: HOOK_SECRET, timeout: 2}}
{hook}
{notifiers}
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def cli(root: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return run_cli(*args, project=root, env={**ENVIRON, **(env or {})})


def make(tmp_path: Path, text: str) -> ProjectWorkspace:
    ws = ProjectWorkspace(tmp_path / "p", text)
    ws.write(REF, {"run.py": "print(1)\n"})
    ws.write("alice:db", {"run.py": "print(2)\n"})
    return ws


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def outbox(ws: ProjectWorkspace, clock: Clock | None = None, **kw: Any) -> Outbox:
    project = open_project(ws.root, environ=ENVIRON, **kw)
    return Outbox(Session(project), clock=clock or time.time, jitter=lambda: 0.5)


def close(box: Outbox) -> None:
    box.close()
    box.session.project.close()


# --------------------------------------------------------------------------- CloudEvents


def test_an_audit_event_becomes_a_cloudevent_with_a_stable_id() -> None:
    event = AuditEvent(
        at="2026-11-20T10:00:00.000000+00:00",
        actor="alice",
        action="promote",
        component=REF,
        stage="staging",
        revision="r2",
        previous_revision="r1",
        reason="ship",
        seq=7,
    )
    cloud = cloud_event(event, "ab" * 32, "lockgate://p")
    assert cloud["specversion"] == "1.0"
    assert cloud["id"] == "7-" + ("ab" * 32)[:24]
    assert cloud["type"] == "dev.lockgate.component.promoted"
    assert cloud["subject"] == REF
    assert cloud["source"] == "lockgate://p"
    assert cloud["time"] == event.at
    assert cloud["data"]["revision"] == "r2" and cloud["data"]["previous_revision"] == "r1"
    assert cloud["data"]["actor"] == "alice" and cloud["data"]["reason"] == "ship"
    assert Message.of(event, "ab" * 32, "s").body == Message.of(event, "ab" * 32, "s").body


@pytest.mark.parametrize(
    ("action", "outcome", "expected"),
    [
        ("stage", "ok", "dev.lockgate.component.staged"),
        ("rollback", "ok", "dev.lockgate.component.rolled_back"),
        ("promote", "refused", "dev.lockgate.component.promote_refused"),
        ("validate", "failed", "dev.lockgate.component.validate_failed"),
        ("announce", "failed", "dev.lockgate.plugin.announce_failed"),
        ("gc", "ok", "dev.lockgate.project.collected"),
        ("pipeline", "ok", "dev.lockgate.pipeline.completed"),
        ("pipeline", "failed", "dev.lockgate.pipeline.failed"),
        ("custom", "ok", "dev.lockgate.custom"),
    ],
)
def test_event_types_name_the_change_or_the_failed_attempt(
    action: str, outcome: str, expected: str
) -> None:
    event = AuditEvent(at="2026-11-20T10:00:00+00:00", actor="a", action=action, outcome=outcome)
    assert event_type(event) == expected


# --------------------------------------------------------------------------- end to end


def test_commands_deliver_their_events_signed_after_the_commit(
    tmp_path: Path, receiver: Receiver
) -> None:
    ws = make(tmp_path, config(receiver.url))
    assert cli(ws.root, "stage", REF).exit_code == 0
    assert cli(ws.root, "promote", REF).exit_code == 0
    assert receiver.bad_signatures == 0
    assert receiver.types() == [
        "dev.lockgate.component.staged",
        "dev.lockgate.component.validated",
        "dev.lockgate.component.promoted",
    ]
    promoted = receiver.received[-1]
    assert promoted["subject"] == REF and promoted["data"]["stage"] == "staging"
    assert promoted["webhook-id"] == promoted["id"]
    project = open_project(ws.root, environ=ENVIRON)
    try:
        seqs = [e.seq for e in project.state().events()]
    finally:
        project.close()
    assert [e["data"]["seq"] for e in receiver.received] == seqs
    listed = cli(ws.root, "events", "ls", "--json").json()["deliveries"]
    assert {d["state"] for d in listed} == {"delivered"}


def test_a_change_that_did_not_commit_has_no_event(tmp_path: Path, receiver: Receiver) -> None:
    ws = make(tmp_path, config(receiver.url))
    cli(ws.root, "stage", REF)
    box = outbox(ws)
    state = box.session.state()
    before = [e.seq for e in state.events()]
    pointer_change = _change(REF, "r-none")
    with pytest.raises(ConflictError):  # a stale compare-and-swap: nothing commits
        state.move_pointer(
            pointer_change,
            expected_generation=5,
            status=None,
            event=AuditEvent(at=pointer_change.at, actor="alice", action="promote"),
        )
    assert [e.seq for e in state.events()] == before
    box.deliver(1.0)
    assert "dev.lockgate.component.promoted" not in receiver.types()
    close(box)


def _change(ref: str, revision: str) -> Any:
    from lockgate.contracts.state import PointerChange

    return PointerChange(
        "staging",
        ref.split(":")[1],
        ref,
        None,
        None,
        1,
        "2026-11-20T10:00:00+00:00",
        "a",
        "promote",
    )


def test_a_refused_promotion_is_an_event_and_reaches_on_failure(
    tmp_path: Path, receiver: Receiver
) -> None:
    heard: list[tuple[str, str]] = []

    class Listener:
        @hookimpl
        def on_failure(self, event: Any) -> None:
            heard.append((event.action, event.details["outcome"]))

        @hookimpl
        def on_shutdown(self) -> None:
            heard.append(("shutdown", ""))

    ws = make(tmp_path, config(receiver.url))
    ws.write(REF, {"bad.py": "def broken(:\n"})
    dist = fake_distribution("lockgate-listener", {"listener": Listener()})
    project = open_project(ws.root, environ=ENVIRON, extra=[dist])
    try:
        from lockgate.operations.events import deliver_after_command, shutdown
        from lockgate.operations.promote import Promoter
        from lockgate.operations.stage import Stager

        session = Session(project)
        Outbox(session).prime()  # what the command line does before such a command
        Stager(session).stage(REF)
        with pytest.raises(RefusedError):
            Promoter(session).promote(REF)
        deliver_after_command(session)
        shutdown(session)
    finally:
        project.close()
    assert ("validate", "failed") in heard and ("promote", "refused") in heard
    assert heard[-1] == ("shutdown", "")
    assert "dev.lockgate.component.promote_refused" in receiver.types()
    assert "dev.lockgate.component.validate_failed" in receiver.types()


# --------------------------------------------------------------------------- dispatcher


def test_failed_deliveries_back_off_exponentially_and_keep_order_per_component(
    tmp_path: Path, receiver: Receiver
) -> None:
    down = {"until": 3}
    receiver.plan = lambda event, n: (503, {}, 0.0) if n <= down["until"] else (204, {}, 0.0)
    ws = make(tmp_path, config(receiver.url).replace("max_attempts: 4", "max_attempts: 10"))
    clock = Clock()
    box = outbox(ws, clock)
    box.prime()
    cli(ws.root, "stage", REF, env={"LOCKGATE__EVENTS__BUDGET": "0"})
    cli(ws.root, "stage", "alice:db", env={"LOCKGATE__EVENTS__BUDGET": "0"})
    ws.write(REF, {"run.py": "print(3)\n"})
    cli(ws.root, "stage", REF, env={"LOCKGATE__EVENTS__BUDGET": "0"})
    store = box.store()
    delays = []
    for _ in range(3):
        report = box.deliver(None)
        assert report.failed == {"hook": 1} and not report.delivered
        row = store.deliveries("hook", "pending")[0]
        delays.append(round(box_seconds(row.next_at) - clock.now, 3))
        clock.now += 60
    assert delays == [0.75, 1.5, 3.0]  # backoff 1 s doubling, equal jitter at 0.5
    report = box.deliver(None)
    assert report.delivered == {"hook": 3}
    received = [(e["subject"], e["data"]["seq"]) for e in receiver.received]
    app = [seq for subject, seq in received if subject == REF]
    assert app == sorted(app) and len(app) == 2
    close(box)


def box_seconds(at: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(at).timestamp()


def test_retry_after_is_honoured(tmp_path: Path, receiver: Receiver) -> None:
    receiver.plan = lambda event, n: (429, {"Retry-After": "30"}, 0.0) if n == 1 else (204, {}, 0)
    ws = make(tmp_path, config(receiver.url))
    clock = Clock()
    box = outbox(ws, clock)
    box.prime()
    cli(ws.root, "stage", REF, env={"LOCKGATE__EVENTS__BUDGET": "0"})
    assert box.deliver(None).failed == {"hook": 1}
    row = box.store().deliveries("hook", "pending")[0]
    assert box_seconds(row.next_at) - clock.now == pytest.approx(30, abs=0.01)
    clock.now += 29
    assert box.deliver(None).delivered == {}
    clock.now += 2
    assert box.deliver(None).delivered == {"hook": 1}
    close(box)


def test_a_poisoned_event_goes_to_the_dead_letters_and_retry_resends_it(
    tmp_path: Path, receiver: Receiver
) -> None:
    poisoned = {"on": True}

    def plan(event: dict[str, Any], n: int) -> tuple[int, dict[str, str], float]:
        if poisoned["on"] and event.get("subject") == "alice:db":
            return 400, {}, 0.0
        return 204, {}, 0.0

    receiver.plan = plan
    ws = make(tmp_path, config(receiver.url))
    cli(ws.root, "stage", "alice:db")
    cli(ws.root, "stage", REF)
    assert "dev.lockgate.component.staged" in receiver.types()
    dead = cli(ws.root, "events", "ls", "--dead", "--json").json()["deliveries"]
    assert [d["component"] for d in dead] == ["alice:db"]
    assert "HTTP 400" in dead[0]["last_error"]
    poisoned["on"] = False
    result = cli(ws.root, "events", "retry", "--dead")
    assert result.exit_code == 0, result.stderr
    assert "1 dead letter(s) pending again" in result.stdout
    assert [e["subject"] for e in receiver.received].count("alice:db") == 1
    assert cli(ws.root, "events", "ls", "--dead").stdout.strip() == "no deliveries dead"


def test_an_event_is_dead_after_max_attempts(tmp_path: Path, receiver: Receiver) -> None:
    receiver.plan = lambda event, n: (500, {}, 0.0)
    ws = make(tmp_path, config(receiver.url))
    clock = Clock()
    box = outbox(ws, clock)
    box.prime()
    cli(ws.root, "stage", REF, env={"LOCKGATE__EVENTS__BUDGET": "0"})
    for _ in range(4):
        box.deliver(None)
        clock.now += 3600
    (row,) = box.store().deliveries("hook")
    assert (row.state, row.attempts) == ("dead", 4)
    close(box)


def test_a_hanging_receiver_costs_a_command_no_more_than_the_budget(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.plan = lambda event, n: (204, {}, 5.0) if n == 1 else (204, {}, 0.0)
    ws = make(tmp_path, config(receiver.url, extra="  budget: 0.5"))
    started = time.monotonic()
    assert cli(ws.root, "stage", REF).exit_code == 0
    assert time.monotonic() - started < 3.0  # the usual time plus the 0.5 s budget
    time.sleep(1.1)  # the first retry is due after 0.5 to 1 s (backoff 1 s, jittered)
    assert cli(ws.root, "events", "deliver").exit_code == 0
    assert "dev.lockgate.component.staged" in receiver.types()


def test_a_receiver_that_is_down_never_fails_a_command(tmp_path: Path) -> None:
    ws = make(tmp_path, config("http://127.0.0.1:9/hook"))
    result = cli(ws.root, "stage", REF)
    assert result.exit_code == 0, result.stderr
    pending = cli(ws.root, "events", "ls", "--pending", "--json").json()["deliveries"]
    assert [d["attempts"] for d in pending] == [1]
    assert "ConnectionRefusedError" in pending[0]["last_error"]


def test_delivered_rows_are_forgotten_after_the_retention(
    tmp_path: Path, receiver: Receiver
) -> None:
    ws = make(tmp_path, config(receiver.url, extra="  retention_hours: 1"))
    cli(ws.root, "stage", REF)
    clock = Clock()
    box = outbox(ws, clock)
    assert len(box.rows("delivered")) == 1
    clock.now += 2 * 3600
    box.deliver(None)
    assert box.rows() == []
    assert len(box.session.state().events(EventFilter(action="stage"))) == 1  # the log stays
    close(box)


# --------------------------------------------------------------------------- notifiers


def test_the_log_notifier_writes_one_json_line_per_event(tmp_path: Path) -> None:
    text = "events:\n  notifiers:\n    - kind: log\n      options: {path: out/events.jsonl}\n"
    ws = make(tmp_path, text)
    cli(ws.root, "stage", REF)
    cli(ws.root, "stage", "alice:db")
    lines = (ws.root / "out" / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["subject"] for line in lines] == [REF, "alice:db"]


def test_with_budget_zero_a_command_leaves_delivery_to_the_dispatcher(tmp_path: Path) -> None:
    text = (
        "events:\n  budget: 0\n  notifiers:\n    - kind: log\n"
        "      options: {path: out/events.jsonl}\n"
    )
    ws = make(tmp_path, text)
    cli(ws.root, "stage", REF)
    cli(ws.root, "promote", REF)
    assert not (ws.root / "out" / "events.jsonl").exists()
    cli(ws.root, "events", "deliver")
    lines = (ws.root / "out" / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines] == [
        "dev.lockgate.component.staged",
        "dev.lockgate.component.validated",
        "dev.lockgate.component.promoted",
    ]


def test_notifiers_select_events_by_type_and_stage(tmp_path: Path, receiver: Receiver) -> None:
    hook = "      types: ['dev.lockgate.component.promote*']\n      stages: [staging]"
    ws = make(tmp_path, config(receiver.url, hook=hook))
    cli(ws.root, "stage", REF)
    cli(ws.root, "promote", REF)
    assert receiver.types() == ["dev.lockgate.component.promoted"]


def test_a_backlog_all_notifier_receives_the_history(tmp_path: Path, receiver: Receiver) -> None:
    ws = make(tmp_path, "")
    run_cli("stage", REF, project=ws.root, env=ENVIRON)
    (ws.root / "lockgate.yaml").write_text(
        config(receiver.url, hook="      backlog: all").replace("max_attempts: 4", "budget: 1")
    )
    cli(ws.root, "events", "deliver")
    assert receiver.types() == ["dev.lockgate.component.staged"]


def test_a_new_notifier_starts_at_the_newest_event(tmp_path: Path, receiver: Receiver) -> None:
    ws = make(tmp_path, "")
    run_cli("stage", REF, project=ws.root, env=ENVIRON)
    (ws.root / "lockgate.yaml").write_text(config(receiver.url))
    assert cli(ws.root, "events", "deliver").stdout.strip() == "nothing to deliver"
    cli(ws.root, "stage", "alice:db")
    assert [e["subject"] for e in receiver.received] == ["alice:db"]


# --------------------------------------------------------------------------- errors and secrets


def test_a_missing_secret_is_one_line_naming_the_variable(
    tmp_path: Path, receiver: Receiver
) -> None:
    ws = make(tmp_path, config(receiver.url))
    result = run_cli("events", "deliver", project=ws.root, env={**ENV, "HOOK_SECRET": None})
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "HOOK_SECRET is not set" in result.stderr


def test_an_unknown_webhook_option_and_a_host_outside_the_allowlist_are_refused(
    tmp_path: Path,
) -> None:
    ws = make(tmp_path, config("http://127.0.0.1:9/x").replace("timeout: 2", "secret: x"))
    result = cli(ws.root, "events", "deliver")
    assert result.exit_code == 2 and "unknown option 'secret'" in result.stderr
    text = config("http://example.com/x").replace("timeout: 2", "allow_hosts: [hooks.local]")
    (ws.root / "lockgate.yaml").write_text(text)
    result = cli(ws.root, "events", "deliver")
    assert result.exit_code == 2 and "not in allow_hosts" in result.stderr


@pytest.mark.parametrize(
    ("url", "options", "said"),
    [
        ("http://127.0.0.1:9/x", 'headers: {"X-A": "a\\r\\nX-Injected: 1"}', "line breaks"),
        ("http://127.0.0.1:9/x", 'headers: {"Bad Name": "v"}', "not a valid header name"),
        ("http://127.0.0.1:9/x", 'headers: {"X-A": "\\u00e9t\\u00e9"}', "ASCII value"),
        ("http://127.0.0.1:9/x", "headers: {Content-Length: '0'}", "sets this header itself"),
        ("http://b\u00fccher.example/x", "timeout: 2", "xn-- form"),
        ("http://127.0.0.1:http/x", "timeout: 2", "give a port"),
    ],
    ids=["crlf", "name", "value", "own-header", "non-ascii", "port"],
)
def test_webhook_headers_and_urls_that_http_cannot_carry_are_refused(
    tmp_path: Path, url: str, options: str, said: str
) -> None:
    ws = make(tmp_path, config(url).replace("timeout: 2", options))
    result = cli(ws.root, "events", "deliver")
    assert result.exit_code == 2, result.stderr
    assert said in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr


def test_config_show_hides_a_notifier_option_that_looks_like_a_secret(tmp_path: Path) -> None:
    text = config("http://127.0.0.1:9/x").replace("timeout: 2", "token: t0ps3cret")
    ws = make(tmp_path, text)
    for args in (("config", "show"), ("config", "show", "--json")):
        result = cli(ws.root, *args)
        assert result.exit_code == 0, result.stderr
        assert "t0ps3cret" not in result.stdout and "HOOK_SECRET" in result.stdout


def test_a_store_without_the_outbox_is_one_clear_line(tmp_path: Path) -> None:
    from lockgate.builtin_plugins.memory_state import MemoryStateStore

    class Bare:
        """A state store without EventDeliveries."""

        def __init__(self) -> None:
            self._inner = MemoryStateStore()

        def __getattr__(self, name: str) -> Any:
            if name in ("record_deliveries", "delivery_cursor", "deliveries"):
                raise AttributeError(name)
            return getattr(self._inner, name)

    class Plugin:
        @hookimpl
        def register_state_stores(self, register: Any) -> None:
            register("bare", lambda ctx: Bare())

    ws = make(tmp_path, config("http://127.0.0.1:9/x") + "state: {store: bare}\n")
    box = outbox(ws, extra=[fake_distribution("lockgate-bare", {"bare": Plugin()})])
    with pytest.raises(MissingCapabilityError, match="keeps no outbox \\(EventDeliveries\\)"):
        box.deliver(1.0)
    close(box)


def test_the_webhook_secret_never_appears_in_any_output(tmp_path: Path, receiver: Receiver) -> None:
    receiver.plan = lambda event, n: (500, {}, 0.0) if n <= 1 else (204, {}, 0.0)
    log = "    - kind: log\n      options: {path: events.jsonl}"
    ws = make(tmp_path, config(receiver.url, notifiers=log))
    outputs = []
    for args in (
        ("stage", REF),
        ("-v", "promote", REF),
        ("config", "show"),
        ("config", "show", "--json"),
        ("events", "ls"),
        ("events", "ls", "--json"),
        ("events", "deliver", "--json"),
        ("-v", "log"),
        ("audit", "verify"),
        ("plugins",),
    ):
        result = cli(ws.root, *args)
        outputs += [result.stdout, result.stderr]
    time.sleep(1.1)  # the failed one is due again
    result = cli(ws.root, "-v", "events", "deliver")
    outputs += [result.stdout, result.stderr]
    bad = run_cli("events", "deliver", project=ws.root, env={**ENV, "HOOK_SECRET": "notbase64!"})
    outputs += [bad.stdout, bad.stderr]
    assert "does not hold a valid secret" in bad.stderr
    files = [p.read_bytes() for p in ws.root.rglob("*") if p.is_file()]
    raw = SECRET.encode()
    key = SECRET.removeprefix("whsec_")
    for text in outputs:
        assert SECRET not in text and key not in text
    for data in files:
        assert raw not in data and key.encode() not in data
    assert len(receiver.received) >= 3


def test_notifier_options_names_the_place_and_what_a_notifier_takes() -> None:
    from lockgate.plugin import ConfigError, notifier_options

    where, options = notifier_options({"name": "ops", "url": "x"}, "webhook", {"url", "timeout"})
    assert where == "events.notifiers[ops].options" and options == {"url": "x"}
    assert notifier_options({}, "log", ("path",)) == ("events.notifiers[log].options", {})
    with pytest.raises(ConfigError) as refused:
        notifier_options({"pasword": "x"}, "redis", ("url", "stream"), "secrets go in env")
    assert refused.value.message == (
        "events.notifiers[redis].options: unknown option 'pasword' of the redis notifier; "
        "it takes stream, url (secrets go in env)"
    )


class Batches:
    """A notifier with ``deliver_batch``: keeps the batches it was handed; ``refuse``
    names seqs whose acknowledgement does not come (``"all"``: the batch raises)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.refuse: set[int] | str = set()

    def deliver(self, message: Message, timeout: float) -> None:
        raise AssertionError("a batch notifier is handed batches")

    def deliver_batch(self, messages: Any, timeout: float) -> list[DeliveryError | None]:
        self.batches.append([m.seq for m in messages])
        if self.refuse == "all":
            raise DeliveryError("connection reset")
        return [DeliveryError("no ack") if m.seq in self.refuse else None for m in messages]

    def close(self) -> None:
        pass


def test_a_batch_notifier_is_handed_the_due_events_at_once_and_each_counts_by_its_ack(
    tmp_path: Path,
) -> None:
    sink = Batches()

    class Plugin:
        @hookimpl
        def register_notifiers(self, register: Any) -> None:
            register("batches", lambda ctx: sink)

    text = "events:\n  backoff: 1\n  notifiers:\n    - kind: batches\n"
    ws = make(tmp_path, text)
    clock = Clock()
    box = outbox(ws, clock, extra=[fake_distribution("lockgate-batches", {"b": Plugin()})])
    box.prime()
    events = [
        AuditEvent(at="2026-12-05T10:00:00+00:00", actor="a", action="validate", component=c)
        for c in (REF, "alice:db", REF, "alice:db", REF)
    ]
    first = box.session.state().append_events(events)[0]
    seqs = list(range(first, first + 5))
    sink.refuse = {seqs[2]}  # REF's second event is not acknowledged
    report = box.deliver(None)
    assert sink.batches == [seqs]  # one batch, in sequence order
    assert report.delivered == {"batches": 4} and report.failed == {"batches": 1}
    rows = {d.seq: d.state for d in box.store().deliveries("batches")}
    assert [rows[s] for s in seqs] == ["delivered", "delivered", "pending", "delivered",
                                       "delivered"]  # fmt: skip
    # The failed one is retried when due; a batch that raises fails every message in it.
    sink.refuse = "all"
    clock.now += 60
    report = box.deliver(None)
    assert sink.batches[-1] == [seqs[2]] and report.failed == {"batches": 1}
    sink.refuse = set()
    clock.now += 60
    assert box.deliver(None).delivered == {"batches": 1}
    assert {d.state for d in box.store().deliveries("batches")} == {"delivered"}
    close(box)


def test_the_project_keeps_its_notifiers_between_commands_until_idle_or_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lockgate.operations.events as events_module
    from lockgate.operations.events import close_notifiers, deliver_after_command

    built: list[Kept] = []

    class Kept:
        def __init__(self) -> None:
            self.delivered: list[int] = []
            self.closed = False
            built.append(self)

        def deliver(self, message: Message, timeout: float) -> None:
            self.delivered.append(message.seq)

        def close(self) -> None:
            self.closed = True

    class Plugin:
        @hookimpl
        def register_notifiers(self, register: Any) -> None:
            register("kept", lambda ctx: Kept())

    ws = make(tmp_path, "events:\n  notifiers:\n    - kind: kept\n")
    box = outbox(ws, extra=[fake_distribution("lockgate-kept", {"k": Plugin()})])
    box.prime()
    session, state = box.session, box.session.state()
    event = AuditEvent(at="2026-12-05T10:00:00+00:00", actor="a", action="validate")
    for _ in range(2):  # two commands of one process
        state.append_event(event)
        deliver_after_command(session)
    assert len(built) == 1 and len(built[0].delivered) == 2 and not built[0].closed
    close_notifiers(session)
    assert built[0].closed
    monkeypatch.setattr(events_module, "NOTIFIER_IDLE", -1.0)  # every use comes "idle"
    for _ in range(2):
        state.append_event(event)
        deliver_after_command(session)
    assert len(built) == 3 and built[1].closed and not built[2].closed
    assert [len(k.delivered) for k in built] == [2, 1, 1]
    close(box)
    assert built[2].closed  # closed with the project
