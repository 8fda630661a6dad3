"""Contention: runner processes on two "hosts" promote and roll back many components of
one project on the ``postgres`` stores at once, as a team's CI runners do, and one runner
is killed while it holds the operation lock.

The hosts are two checkouts of the project (two directories, each with its own
``lockgate.yaml``, workspace and stage directories) sharing the database and the
``postgres`` content store: host A stages half the components, host B the other half, and
every runner promotes revisions staged on either host. Each worker process runs lockgate
commands in a loop (promote a random revision, or roll back to the previous one), each
command opening the project as a runner would; the operation lock (an advisory lock)
serialises them. Meanwhile one more runner stops at ``promote.after_prepare`` with the
lock held and is SIGKILLed there; the others take the lock over (the server ends a dead
session's advisory locks, so no one waits out the holder's lease) and the first to get it
settles the dead runner's intent.

Afterwards: every command either changed the pointer, or was refused cleanly (one line,
no traceback); the pointer history of each component is one unbroken line (generations
1..N, each move starting from the revision the one before left, exactly one row per
reported change, so no update was lost); the audit chain verifies from both hosts; the
killed runner's intent was settled by one ``recover`` event (undone) and no intent is
open; and each host's stage directory shows what the audit log says that host deployed
last (its own moves and its recoveries, replayed in order).

The sizes are read when the module is imported (the acceptance run is the default):
``LOCKGATE_CONTENTION_WORKERS`` (8), ``LOCKGATE_CONTENTION_COMPONENTS`` (50) and
``LOCKGATE_CONTENTION_OPERATIONS`` (500, shared among the workers).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from lockgate.testing import run_cli

from .postgres_testkit import open_database
from .test_postgres_cli import ok

# Read at import: the autouse fixture clears LOCKGATE_* before each test.
WORKERS = int(os.environ.get("LOCKGATE_CONTENTION_WORKERS", "8"))
COMPONENTS = int(os.environ.get("LOCKGATE_CONTENTION_COMPONENTS", "50"))
OPERATIONS = int(os.environ.get("LOCKGATE_CONTENTION_OPERATIONS", "500"))
HOSTS = ("a", "b")
WORKSPACE = {"a": "alice", "b": "bob"}  # each host stages its own half
VICTIM_FAILPOINT = "promote.after_prepare"

WORKER = r"""
import json, random, sys, time
from pathlib import Path
from lockgate.testing import run_cli

root, name, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
revisions = json.loads(sys.argv[4])
rounds, seed = int(sys.argv[5]), int(sys.argv[6])
rng = random.Random(seed)
deadline = time.monotonic() + 120
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("the start signal never came")
    time.sleep(0.01)
results = []
for i in range(rounds):
    ref = rng.choice(sorted(revisions))
    if rng.random() < 0.6:
        args = ["promote", ref, "--to", "staging", "--rev", rng.choice(revisions[ref])]
    else:
        args = ["rollback", ref, "--stage", "staging", "--to", "previous",
                "--reason", f"{name} round {i}"]
    result = run_cli("--json", "--actor", name, *args, project=root)
    results.append({"args": args, "exit": result.exit_code, "stdout": result.stdout,
                    "stderr": result.stderr})
print(json.dumps(results))
"""


def _checkout(root: Path, host: str, dsn: str, project: str, components: range) -> None:
    """One host's checkout: the shared project's settings, this host's components."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "lockgate.yaml").write_text(
        f"project:\n  name: contended-{host}\n"
        "state:\n  store: postgres\n  lock_timeout: 600\ncontent:\n  store: postgres\n"
        "stages:\n  staging: {}\n  production: {}\n"
        f"plugins:\n  postgres:\n    dsn: {json.dumps(dsn)}\n    project: {project}\n"
    )
    for n in components:
        folder = root / "workspaces" / WORKSPACE[host] / "scripts" / f"c{n:02d}"
        folder.mkdir(parents=True, exist_ok=True)


def _stage_versions(root: Path, host: str, components: range) -> dict[str, list[str]]:
    """Two revisions of each of this host's components (``sync`` stages them all)."""
    revisions: dict[str, list[str]] = {}
    for version in (1, 2):
        for n in components:
            folder = root / "workspaces" / WORKSPACE[host] / "scripts" / f"c{n:02d}"
            (folder / "main.py").write_text(f"print('c{n:02d} v{version} from {host}')\n")
        synced = ok("sync", project=root)
        assert synced["failed"] == 0 and synced["staged"] == len(components), synced
        for result in synced["results"]:
            revisions.setdefault(result["component"], []).append(result["revision"])
    return revisions


def _launch(
    root: Path, name: str, go: Path, revisions: dict[str, list[str]], rounds: int, seed: int
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            WORKER,
            str(root),
            name,
            str(go),
            json.dumps(revisions),
            str(rounds),
            str(seed),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**_clean_env(), "PYTHONDONTWRITEBYTECODE": "1"},
    )


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}


def _victim(root: Path, pause_dir: Path, ref: str, revision: str) -> subprocess.Popen[str]:
    """A runner that stops with the operation lock held, at ``VICTIM_FAILPOINT``."""
    env = {
        **_clean_env(),
        "LOCKGATE_FAILPOINTS": f"{VICTIM_FAILPOINT}:pause",
        "LOCKGATE_PAUSE_DIR": str(pause_dir),
        "LOCKGATE_ACTOR": "victim",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lockgate",
            "-C",
            str(root),
            "promote",
            ref,
            "--to",
            "staging",
            "--rev",
            revision,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for(path: Path, process: subprocess.Popen[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"the victim ended before its failpoint: {process.communicate()}")
        if time.monotonic() > deadline:
            pytest.fail(f"the victim never reached {VICTIM_FAILPOINT}")
        time.sleep(0.01)


def _deployed(root: Path, component_id: str) -> str | None:
    entry = root / "stages" / "staging" / component_id
    return Path(os.path.realpath(entry)).name if os.path.lexists(entry) else None


@pytest.mark.slow
def test_runners_on_two_hosts_lose_no_update_and_take_over_a_killed_holder(
    lockgate_project: Path, pg_dsn: str, project_key: str, tmp_path: Path
) -> None:
    roots = {"a": lockgate_project, "b": tmp_path / "host-b"}
    halves = {"a": range(COMPONENTS // 2), "b": range(COMPONENTS // 2, COMPONENTS)}
    revisions: dict[str, list[str]] = {}
    for host in HOSTS:
        _checkout(roots[host], host, pg_dsn, project_key, halves[host])
        revisions |= _stage_versions(roots[host], host, halves[host])
    assert len(revisions) == COMPONENTS
    go = tmp_path / "go"
    names = [f"runner{n}-{HOSTS[n % 2]}" for n in range(WORKERS)]
    rounds = [OPERATIONS // WORKERS + (n < OPERATIONS % WORKERS) for n in range(WORKERS)]
    workers = [
        _launch(roots[HOSTS[n % 2]], names[n], go, revisions, rounds[n], n) for n in range(WORKERS)
    ]
    # The victim holds the lock first; the workers start and queue behind it.
    victim_ref = "alice:c00"
    pause = tmp_path / "pause"
    pause.mkdir()
    victim = _victim(roots["a"], pause, victim_ref, revisions[victim_ref][0])
    _wait_for(pause / f"{VICTIM_FAILPOINT}.paused", victim, 60)
    go.touch()
    time.sleep(1.0)  # the workers are waiting for the lock now
    started = time.monotonic()
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    killed_at = time.time()
    assert victim.returncode == -signal.SIGKILL
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err
        assert "Traceback" not in err, err
        results += json.loads(out)
    seconds = time.monotonic() - started
    assert len(results) == OPERATIONS

    changed: Counter[str] = Counter()
    for result in results:
        assert "Traceback" not in result["stderr"], result
        if result["exit"] == 0:
            done = json.loads(result["stdout"])
            changed[done["component_id"]] += bool(done["changed"])
        else:  # refused cleanly: nothing to roll back to, or already current
            assert result["exit"] in (1, 2, 4), result
            assert len(result["stderr"].strip().splitlines()) == 1, result
    refused = sum(r["exit"] != 0 for r in results)
    print(
        f"{WORKERS} runners on {len(HOSTS)} hosts, {COMPONENTS} components, "
        f"{len(results)} commands in {seconds:.1f} s: {sum(changed.values())} pointer "
        f"moves, {refused} refused cleanly"
    )
    assert sum(changed.values()) > OPERATIONS // 4

    events = _check_database(pg_dsn, project_key, changed, victim.pid, killed_at)
    for host in HOSTS:
        ok("audit", "verify", project=roots[host])
        _check_host(roots[host], host, events)
    assert run_cli("verify", "--stage", "production", project=roots["a"]).exit_code == 0


def _check_database(
    dsn: str, project: str, changed: Counter[str], victim_pid: int, killed_at: float
) -> list[dict[str, Any]]:
    """No lost update, the killed runner's intent settled; the stage's events, in order."""
    state = open_database(dsn, project)
    try:
        with state.conn() as conn:
            rows = conn.execute(
                "SELECT component_id, revision, previous_revision, generation FROM "
                "pointer_history WHERE stage = 'staging' ORDER BY seq"
            ).fetchall()
            pointers = {
                p["component_id"]: p
                for p in conn.execute(
                    "SELECT component_id, revision, generation FROM pointers "
                    "WHERE stage = 'staging'"
                ).fetchall()
            }
            events = conn.execute(
                "SELECT seq, at, actor, action, component, revision, details, outcome "
                "FROM events WHERE stage = 'staging' ORDER BY seq"
            ).fetchall()
            open_intents = conn.execute(
                "SELECT count(*) AS n FROM intents WHERE state = 'open'"
            ).fetchone()
    finally:
        state.close()
    by_component: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_component.setdefault(row["component_id"], []).append(row)
    assert {c for c, n in changed.items() if n} == set(by_component)
    for component_id, history in by_component.items():
        assert [r["generation"] for r in history] == list(range(1, len(history) + 1))
        assert len(history) == changed[component_id], (component_id, history)
        for before, after in itertools.pairwise(history):
            assert after["previous_revision"] == before["revision"], history
        assert pointers[component_id] == {
            "component_id": component_id,
            "revision": history[-1]["revision"],
            "generation": len(history),
        }
    moves = [e for e in events if e["action"] in ("promote", "rollback") and e["outcome"] == "ok"]
    assert len(moves) == sum(changed.values())
    assert open_intents == {"n": 0}
    recovered = [e for e in events if e["action"] == "recover"]
    assert len(recovered) == 1, recovered
    (settled,) = recovered
    details = json.loads(settled["details"])
    assert (details["operation"], details["outcome"]) == ("promote", "undone")
    assert details["interrupted_owner"].startswith(f"{victim_pid}@")
    assert settled["actor"].startswith("runner")
    # Taken over at once, not after the holder's lease (LOCK_LEASE, 300 s) ran out: the
    # server ended the dead session's advisory locks.
    waited = datetime.fromisoformat(settled["at"]).timestamp() - killed_at
    print(f"the killed holder's lock was taken over by {settled['actor']} {waited:.2f} s later")
    assert waited < 30
    assert not any(e["actor"] == "victim" for e in moves)
    return events


def _check_host(root: Path, host: str, events: list[dict[str, Any]]) -> None:
    """The host's stage directory shows what it deployed last, replaying the log."""
    expected: dict[str, str | None] = {}
    for event in events:
        if not event["actor"].endswith(f"-{host}") or event["outcome"] != "ok":
            continue
        if event["action"] in ("promote", "rollback", "recover"):
            expected[event["component"].split(":")[1]] = event["revision"]
    assert expected, f"host {host} deployed nothing"
    for component_id, revision in expected.items():
        assert _deployed(root, component_id) == revision, (host, component_id)
