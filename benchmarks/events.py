"""Events out, beside peers in the same run: promote latency with the outbox on and off,
commit-to-receipt latency to a local webhook receiver, and delivery throughput to Redis
and NATS beside a plain client loop publishing the same payloads.

Run from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/events.py                  # 40 switches, 2,000 events
    .venv/bin/python benchmarks/events.py --runs 100 --events 5000 --json events.json

What is timed (in this process; projects in a temporary directory, removed at the end):

* **promote, outbox off / on**: two projects with one 1-file component staged twice
  (revisions A and B), alternately switched in ``staging`` by ``Promoter.promote(...,
  rev=X)``; "on" has a ``webhook`` notifier pointing at a local receiver (a process of
  its own) and runs what the command line runs after a command
  (``deliver_after_command``): its figure includes the signed POSTs of the
  ``validated`` and ``promoted`` events and their write; "on, commit" is the same
  switch up to its commit (the outbox adds nothing there: the events are the audit
  events). Rounds alternate off and on. The project keeps its notifier, and so its
  connection to the receiver, from one switch to the next, as it does in any process
  that runs many commands. Target: on / off at most 1.1.
* **promote, outbox off / on, as commands**: the same switches run as ``lockgate
  promote`` processes (``--cli-runs`` of each, alternating), which is what a CI job
  or a person waits for: process start, the switch, the output, and (on) the delivery
  after the commit in a fresh process (its imports, a new connection). Wall time and
  the processes' CPU time (``RUSAGE_CHILDREN``, less sensitive to a shared machine's
  load), median of each.
* **commit-to-receipt**: in the "on" project, with ``lockgate events deliver --follow``
  running beside as a process of its own, the time from the switch's commit
  (``Promoter.promote`` returned) to the receiver's receipt of the ``promoted`` event.
  Target: p95 at most 50 ms.
* **throughput to Redis / NATS** (each skipped when its server does not answer at
  127.0.0.1): ``--events`` audit events are appended to a project whose only notifier
  is ``redis`` (``nats``), and ``Outbox.deliver`` delivers them all; the peer is a
  plain loop of the same client library publishing the same bodies (``XADD``; a
  JetStream publish with ``Nats-Msg-Id``). Target: lockgate / plain at least 0.5
  (events per second).

No assertions: figures and ratios are printed with PASS/FAIL against their targets,
with the load average before and after (the machine may be shared).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

SECRET = "whsec_" + base64.b64encode(b"benchmark-signing-key-0123456789").decode()
ENV = {"LOCKGATE_ACTOR": "bench", "LOCKGATE_DISABLE_PLUGINS": "teamdefaults,jsonl,tarball"}


RECEIVER = """
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        event = json.loads(body)
        print(json.dumps([time.time(), event["type"]]), flush=True)
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class Receiver:
    """A webhook receiver in a process of its own (as a real one is: not competing with
    the benchmark for the interpreter lock); it answers 204 and reports when each event
    arrived (``time.time()``) and its type."""

    def __init__(self) -> None:
        self.arrived: list[tuple[float, dict[str, Any]]] = []
        self.process = subprocess.Popen(
            [sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        port = int(self.process.stdout.readline())
        self.url = f"http://127.0.0.1:{port}/hook"
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            at, kind = json.loads(line)
            self.arrived.append((at, {"type": kind}))

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def project(root: Path, events: str = "") -> None:
    from lockgate.operations.init import init_project

    init_project(root)
    (root / "lockgate.yaml").write_text(f"project: {{name: bench}}\n{events}")
    path = root / "workspaces" / "bench" / "jobs" / "one"
    path.mkdir(parents=True)


def open_session(root: Path) -> Any:
    from lockgate.core.session import Session
    from lockgate.testing import open_project

    return Session(open_project(root, environ={**ENV, "HOOK_SECRET": SECRET}))


def two_revisions(session: Any, root: Path) -> tuple[str, str]:
    from lockgate.operations.stage import Stager

    path = root / "workspaces" / "bench" / "jobs" / "one" / "run.py"
    revisions = []
    for n in (1, 2):
        path.write_text(f"print({n})\n")
        revisions.append(Stager(session).stage("bench:one").revision)
    return revisions[0], revisions[1]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_promote(base: Path, runs: int) -> dict[str, Any]:
    from lockgate.operations.events import Outbox, deliver_after_command
    from lockgate.operations.promote import Promoter

    receiver = Receiver()
    hook = (
        "events:\n  notifiers:\n    - kind: webhook\n"
        f"      options: {{url: '{receiver.url}', secret_env: HOOK_SECRET}}\n"
    )
    sessions, revs = {}, {}
    for label, extra in (("off", ""), ("on", hook)):
        root = base / label
        project(root, extra)
        sessions[label] = open_session(root)
        Outbox(sessions[label]).prime()
        revs[label] = two_revisions(sessions[label], root)
        Promoter(sessions[label]).promote("bench:one", to="staging", rev=revs[label][0])
    times: dict[str, list[float]] = {"off": [], "on": [], "on_commit": []}
    for n in range(runs + 4):
        for label in ("off", "on"):
            session, rev = sessions[label], revs[label][(n + 1) % 2]
            started = time.perf_counter()
            Promoter(session).promote("bench:one", to="staging", rev=rev)
            committed = time.perf_counter()
            deliver_after_command(session)
            if n >= 4:  # warm-up
                times[label].append((time.perf_counter() - started) * 1000)
                if label == "on":
                    times["on_commit"].append((committed - started) * 1000)
    follow = subprocess.Popen(
        [sys.executable, "-m", "lockgate", "-q", "-C", str(base / "on"), "events", "deliver",
         "--follow", "--interval", "0.05"],
        env={**os.environ, **ENV, "HOOK_SECRET": SECRET}, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.5)
    latencies = []
    session, (rev_a, rev_b) = sessions["on"], revs["on"]
    for n in range(runs):
        before = len(receiver.arrived)
        Promoter(session).promote("bench:one", to="staging", rev=(rev_b, rev_a)[n % 2])
        committed = time.time()
        deliver_after_command(session)
        deadline = time.time() + 5
        while time.time() < deadline:
            got = [t for t, e in receiver.arrived[before:] if e["type"].endswith("promoted")]
            if got:
                latencies.append((got[0] - committed) * 1000)
                break
            time.sleep(0.0005)
    follow.terminate()
    follow.wait(10)
    for session in sessions.values():
        session.project.close()
    receiver.close()
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    commit = statistics.median(times["on_commit"])
    return {
        "promote_off_ms": round(off, 2),
        "promote_on_commit_ms": round(commit, 2),
        "promote_on_ms": round(on, 2),
        "promote_on_commit_over_off": round(commit / off, 3),
        "promote_on_over_off": round(on / off, 3),
        "commit_to_receipt_p50_ms": round(pct(latencies, 0.5), 2),
        "commit_to_receipt_p95_ms": round(pct(latencies, 0.95), 2),
        "receipts": len(latencies),
    }


def bench_promote_cli(base: Path, runs: int) -> dict[str, Any]:
    """``lockgate promote`` as a process, outbox off and on, alternating."""
    from lockgate.operations.events import Outbox
    from lockgate.operations.promote import Promoter

    receiver = Receiver()
    hook = (
        "events:\n  notifiers:\n    - kind: webhook\n"
        f"      options: {{url: '{receiver.url}', secret_env: HOOK_SECRET}}\n"
    )
    dispatched = Receiver()
    hook0 = (
        "events:\n  budget: 0\n  notifiers:\n    - kind: webhook\n"
        f"      options: {{url: '{dispatched.url}', secret_env: HOOK_SECRET}}\n"
    )
    labels = ("off", "on", "dispatched")
    revs = {}
    for label, extra in (("off", ""), ("on", hook), ("dispatched", hook0)):
        root = base / f"cli-{label}"
        project(root, extra)
        session = open_session(root)
        Outbox(session).prime()
        revs[label] = two_revisions(session, root)
        Promoter(session).promote("bench:one", to="staging", rev=revs[label][0])
        session.project.close()
    env = {**os.environ, **ENV, "HOOK_SECRET": SECRET}
    follow = ["events", "deliver", "--follow", "--interval", "0.05"]
    follower = subprocess.Popen(
        [sys.executable, "-m", "lockgate", "-q", "-C", str(base / "cli-dispatched"), *follow],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    times: dict[str, list[float]] = {label: [] for label in labels}
    cpu: dict[str, list[float]] = {label: [] for label in labels}
    for n in range(runs + 2):
        for label in labels:
            rev = revs[label][(n + 1) % 2]
            command = [sys.executable, "-m", "lockgate", "-q", "-C", str(base / f"cli-{label}"),
                       "promote", "bench:one", "--to", "staging", "--rev", rev]  # fmt: skip
            used = _children_cpu()
            started = time.perf_counter()
            subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
            if n >= 2:  # warm-up
                times[label].append((time.perf_counter() - started) * 1000)
                cpu[label].append((_children_cpu() - used) * 1000)
    deadline = time.monotonic() + 10
    promoted = runs + 2 + 1  # the timed switches and the set-up one
    while time.monotonic() < deadline and _promoted(dispatched) < promoted:
        time.sleep(0.05)
    follower.terminate()
    follower.wait(timeout=30)
    delivered = _promoted(receiver)
    receiver.close()
    dispatched.close()
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    by_dispatcher = statistics.median(times["dispatched"])
    cpu_off, cpu_on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    return {
        "cli_promote_off_ms": round(off, 1),
        "cli_promote_on_ms": round(on, 1),
        "cli_promote_on_over_off": round(on / off, 3),
        "cli_promote_off_cpu_ms": round(cpu_off, 1),
        "cli_promote_on_cpu_ms": round(cpu_on, 1),
        "cli_promote_on_over_off_cpu": round(cpu_on / cpu_off, 3),
        "cli_promoted_received": delivered,
        "cli_promote_dispatched_ms": round(by_dispatcher, 1),
        "cli_promote_dispatched_over_off": round(by_dispatcher / off, 3),
        "cli_dispatched_received": _promoted(dispatched),
    }


def _children_cpu() -> float:
    """CPU seconds (user and system) of the ended child processes so far: less sensitive
    to a shared machine's load than wall time."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _promoted(receiver: Receiver) -> int:
    return sum(1 for _, e in receiver.arrived if e["type"].endswith("promoted"))


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _events_project(base: Path, kind: str, options: str, count: int) -> Any:
    from lockgate.contracts.state import AuditEvent
    from lockgate.operations.events import Outbox

    root = base / f"throughput-{kind}"
    project(root, f"events:\n  notifiers:\n    - kind: {kind}\n      options: {options}\n")
    session = open_session(root)
    Outbox(session).prime()
    now = "2026-12-05T10:00:00.000000+00:00"
    for start in range(0, count, 500):
        events = [
            AuditEvent(at=now, actor="bench", action="validate", component=f"bench:c{n % 50}",
                       stage="staging", details={"n": n})
            for n in range(start, min(count, start + 500))
        ]  # fmt: skip
        session.state().append_events(events)
    return session


def bench_redis(base: Path, count: int) -> dict[str, Any] | None:
    if not _answers(6379):
        return None
    import redis

    from lockgate.contracts.events import Message
    from lockgate.operations.events import Outbox

    stream = f"lockgate-bench-{uuid.uuid4().hex[:8]}"
    session = _events_project(base, "redis", f"{{stream: {stream}}}", count)
    bodies = [Message.of(c.event, c.hash, "lockgate://bench") for c in session.state().chain()]
    box = Outbox(session)
    started = time.perf_counter()
    box.deliver(None)
    ours = time.perf_counter() - started
    box.close()
    client = redis.Redis(host="127.0.0.1", port=6379)
    started = time.perf_counter()
    for m in bodies:
        client.xadd(
            stream + "-plain",
            {"id": m.id, "type": m.type, "subject": m.component or "", "event": m.body},
        )
    plain = time.perf_counter() - started
    delivered = client.xlen(stream)
    client.delete(stream, stream + "-plain")
    client.close()
    session.project.close()
    return _rates("redis", count, delivered, ours, plain)


def bench_nats(base: Path, count: int) -> dict[str, Any] | None:
    if not _answers(4222):
        return None
    import nats

    from lockgate.contracts.events import Message
    from lockgate.operations.events import Outbox

    name = f"LOCKGATE_BENCH_{uuid.uuid4().hex[:8].upper()}"
    subject = f"lockgate.bench.{name.lower()}"
    options = f"{{subject: {subject}, stream: {name}}}"
    session = _events_project(base, "nats", options, count)
    bodies = [Message.of(c.event, c.hash, "lockgate://bench") for c in session.state().chain()]
    box = Outbox(session)
    started = time.perf_counter()
    box.deliver(None)
    ours = time.perf_counter() - started
    box.close()

    async def plain_loop() -> tuple[float, int]:
        nc = await nats.connect("nats://127.0.0.1:4222")
        js = nc.jetstream()
        await js.add_stream(name=name + "_PLAIN", subjects=[subject + ".plain"])
        begin = time.perf_counter()
        for m in bodies:
            await js.publish(subject + ".plain", m.body, headers={"Nats-Msg-Id": m.id})
        spent = time.perf_counter() - begin
        stored = (await js.stream_info(name)).state.messages
        await js.delete_stream(name)
        await js.delete_stream(name + "_PLAIN")
        await nc.close()
        return spent, stored

    plain, delivered = asyncio.run(plain_loop())
    session.project.close()
    return _rates("nats", count, delivered, ours, plain)


def _rates(kind: str, count: int, delivered: int, ours: float, plain: float) -> dict[str, Any]:
    return {
        f"{kind}_events": count,
        f"{kind}_delivered": delivered,
        f"{kind}_lockgate_per_s": round(count / ours),
        f"{kind}_plain_per_s": round(count / plain),
        f"{kind}_lockgate_over_plain": round(plain / ours, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--cli-runs", type=int, default=10)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="lockgate-bench-events-") as tmp:
        base = Path(tmp)
        figures: dict[str, Any] = bench_promote(base, args.runs)
        figures.update(bench_promote_cli(base, args.cli_runs))
        for bench in (bench_redis, bench_nats):
            found = bench(base, args.events)
            if found is None:
                print(f"{bench.__name__}: skipped (no server at 127.0.0.1)")
            else:
                figures.update(found)
    figures["load_before"] = [round(x, 2) for x in load_before]
    figures["load_after"] = [round(x, 2) for x in os.getloadavg()]
    targets = [
        ("promote on/off <= 1.1 (in-process)", figures["promote_on_over_off"] <= 1.1),
        ("promote on/off <= 1.1 (commands)", figures["cli_promote_on_over_off"] <= 1.1),
        (
            "promote on/off <= 1.1 (commands, budget 0, events deliver --follow delivers)",
            figures["cli_promote_dispatched_over_off"] <= 1.1,
        ),
        ("commit-to-receipt p95 <= 50 ms", figures["commit_to_receipt_p95_ms"] <= 50),
    ]
    for kind in ("redis", "nats"):
        if f"{kind}_lockgate_over_plain" in figures:
            targets.append(
                (f"{kind} lockgate/plain >= 0.5", figures[f"{kind}_lockgate_over_plain"] >= 0.5)
            )
    for key, value in figures.items():
        print(f"{key:32} {value}")
    for what, ok in targets:
        print(f"{'PASS' if ok else 'FAIL'}  {what}")
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "targets": dict(targets)}, indent=2))


if __name__ == "__main__":
    main()
