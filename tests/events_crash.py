"""Crash run for events out: SIGKILL promotions and ``events deliver`` at random moments.

Importable (tests/test_events_crash.py runs :func:`run` with a few kills) and runnable as
a script for the long run::

    .venv/bin/python tests/events_crash.py --kills 300 --seed 1

A project with a few components and a ``webhook`` notifier pointing at a real local
receiver (tests/events_receiver.py, which verifies every signature) is prepared. Each
round starts two processes: an *operator* that runs ``lockgate`` commands in a loop
(in-process through the command line: restage, promote, roll back; each command delivers
within its budget after its commit) and a dispatcher (``lockgate events deliver
--follow``); the receiver answers 503 to one request in ten. After a random delay
(counted from when the operator has started) one of them, or both, is killed with
SIGKILL. After the last round, ``events deliver`` runs
until nothing is pending, and these must hold:

* the audit chain verifies, and each pointer move recorded has exactly one event (its
  ``event_seq``), with the move's facts: a committed change has its event;
* every event after the notifier started reached the receiver at least once, with the
  ``webhook-id`` the event's id (sequence number and chain hash); nothing reached it
  that the log does not hold: no event for a change that did not commit;
* per component, the first receipts came in sequence order; no dead letter.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from events_receiver import SECRET, Receiver  # noqa: E402

REFS = ("alice:etl", "alice:api", "bob:report")

OPERATOR = """
import random, sys
from pathlib import Path
from lockgate.cli.main import cli

root, seed, refs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rng = random.Random(seed)
n = 0
print("ready", flush=True)  # started: the random delay before the kill counts from here
while True:
    n += 1
    ref = rng.choice(refs)
    pick = rng.random()
    if pick < 0.25:
        ws, cid = ref.split(":")
        path = Path(root, "workspaces", ws, "jobs", cid, "run.py")
        path.write_text(f"print({seed * 100000 + n})\\n")
        args = ["stage", ref]
    elif pick < 0.75:
        args = ["promote", ref]
    else:
        args = ["rollback", ref, "--to", rng.choice(["previous", "last-good"])]
    cli.main(["-q", "-C", root, *args], standalone_mode=False)
"""


def prepare(root: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE")}
    env.update(LOCKGATE_ACTOR="crash", HOOK_SECRET=SECRET)
    subprocess.run([sys.executable, "-m", "lockgate", "init", str(root)], env=env, check=True,
                   capture_output=True)  # fmt: skip
    (root / "lockgate.yaml").write_text(
        f"""
project: {{name: crash}}
events:
  budget: 0.3
  backoff: 0.05
  backoff_max: 0.2
  max_attempts: 1000
  notifiers:
    - kind: webhook
      name: hook
      backlog: all
      options: {{url: "{url}", secret_env: HOOK_SECRET, timeout: 2}}
plugins:
  local: {{fsync: false}}
"""
    )
    for ref in REFS:
        ws, cid = ref.split(":")
        path = root / "workspaces" / ws / "jobs" / cid
        path.mkdir(parents=True)
        (path / "run.py").write_text("print(0)\n")
        subprocess.run([sys.executable, "-m", "lockgate", "-q", "-C", str(root), "stage", ref],
                       env=env, check=True, capture_output=True)  # fmt: skip
    return env


def run(kills: int, seed: int, root: Path, *, log: Any = None) -> dict[str, Any]:
    """``kills`` rounds; returns the figures; raises AssertionError when a check fails."""
    rng = random.Random(seed)
    receiver = Receiver()
    flaky = random.Random(seed + 1)
    receiver.plan = lambda event, n: (503, {}, 0.0) if flaky.random() < 0.1 else (204, {}, 0.0)
    try:
        env = prepare(root, receiver.url)
        killed: Counter[str] = Counter()
        started = time.monotonic()
        for n in range(kills):
            operator = subprocess.Popen(
                [sys.executable, "-c", OPERATOR, str(root), str(seed * 1000 + n), *REFS],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            # Kill at a random moment of its work, not of its start (on a loaded machine
            # starting Python and importing lockgate alone can take seconds).
            assert operator.stdout is not None and operator.stdout.readline() == "ready\n"
            dispatcher = subprocess.Popen(
                [sys.executable, "-m", "lockgate", "-q", "-C", str(root), "events", "deliver",
                 "--follow", "--interval", "0.05"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            time.sleep(rng.uniform(0.5, 3.0))
            victims = rng.choice([(operator,), (dispatcher,), (operator, dispatcher)])
            for proc in victims:
                proc.send_signal(signal.SIGKILL)
                killed["operator" if proc is operator else "dispatcher"] += 1
            if operator not in victims:
                operator.send_signal(signal.SIGKILL)
                killed["operator"] += 1
            if dispatcher not in victims:
                dispatcher.send_signal(signal.SIGTERM)  # ends cleanly after its pass
            for proc in (operator, dispatcher):
                _, err = proc.communicate(timeout=60)
                assert "Traceback" not in err, err
            if log is not None and (n + 1) % 25 == 0:
                print(f"{n + 1} rounds, {len(receiver.received)} receipts", file=log, flush=True)
        return check(root, env, receiver, kills, killed, time.monotonic() - started)
    finally:
        receiver.close()


def check(
    root: Path,
    env: dict[str, str],
    receiver: Receiver,
    rounds: int,
    killed: Counter[str],
    seconds: float,
) -> dict[str, Any]:
    from lockgate.contracts.audit import verify_chain
    from lockgate.contracts.events import Message
    from lockgate.testing import open_project

    for _ in range(50):  # settle open intents, then deliver everything (retries included)
        subprocess.run([sys.executable, "-m", "lockgate", "-q", "-C", str(root), "recover"],
                       env=env, capture_output=True)  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "lockgate", "-C", str(root), "events", "ls", "--pending"],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        if "no deliveries pending" in done.stdout:
            break
        time.sleep(0.25)
        subprocess.run([sys.executable, "-m", "lockgate", "-q", "-C", str(root), "events",
                        "deliver"], env=env, capture_output=True)  # fmt: skip
    project = open_project(root, environ=env)
    try:
        state = project.state()
        chain = list(state.chain())
        report = verify_chain(chain)
        assert report.ok, report.problem
        by_seq = {c.event.seq: c for c in chain}
        moves = state.pointer_history()
        event_seqs = [m.event_seq for m in moves]
        assert len(set(event_seqs)) == len(event_seqs), "two moves share an event"
        for move in moves:
            event = by_seq[move.event_seq].event
            assert (event.action, event.component, event.stage, event.revision) == (
                move.action, move.component, move.stage, move.revision,
            ), f"move {move} does not match its event {event}"  # fmt: skip
        moving = [c for c in chain if c.event.outcome == "ok" and "generation" in c.event.details]
        assert len(moving) == len(moves), "a pointer-moving event without its move"
        ids = {c.event.seq: Message.of(c.event, c.hash, "lockgate://crash").id for c in chain}
        with receiver.lock:
            received = list(receiver.received)
        got = {e["data"]["seq"] for e in received}
        missing = sorted(set(ids) - got)
        assert not missing, f"events never delivered: {missing[:10]}"
        for e in received:
            seq = e["data"]["seq"]
            assert seq in ids, f"received event {seq} that the log does not hold"
            assert e["webhook-id"] == e["id"] == ids[seq], f"event {seq} changed its id"
        first: dict[str, list[int]] = {}
        seen: set[int] = set()
        for e in received:
            seq = e["data"]["seq"]
            if seq not in seen:
                seen.add(seq)
                first.setdefault(e.get("subject") or "", []).append(seq)
        for subject, seqs in first.items():
            if subject:
                assert seqs == sorted(seqs), f"{subject}: received out of order {seqs}"
        dead = subprocess.run(
            [sys.executable, "-m", "lockgate", "-C", str(root), "events", "ls", "--dead"],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        assert "no deliveries dead" in dead.stdout, dead.stdout
    finally:
        project.close()
    return {
        "rounds": rounds,
        "killed": dict(killed),
        "events": len(chain),
        "pointer_moves": len(moves),
        "receipts": len(received),
        "duplicates": len(received) - len(got),
        "bad_signatures": receiver.bad_signatures,
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lockgate-events-crash-") as tmp:
        figures = run(args.kills, args.seed, Path(tmp) / "p", log=sys.stderr)
    print(figures)


if __name__ == "__main__":
    main()
