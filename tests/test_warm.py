"""The warm path: ``stage``, ``sync`` and ``ls`` answered by a running ``lockgate watch``.

Real processes on real files: a real ``lockgate -v watch`` subprocess (its ``-v`` notes
say which commands it answered), and the command line run as a new process each time,
exactly as a user runs it. The cold answer is the same command with
``LOCKGATE_NO_WARM=1`` (or, where the first run changes the project, the same command
in an identical copy of the project). Nothing here asserts a duration.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lockgate.contracts.warm import warm_socket_path
from lockgate.operations.init import init_project
from watch_helpers import (
    NEEDS_PEERCRED,
    Watch,
    Watchers,
    answered,
    component,
    run,
    same,
    wait_answered,
    watched_project,
)

pytestmark = NEEDS_PEERCRED


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return watched_project(tmp_path / "p")


@pytest.fixture
def watch(project: Path) -> Iterator[Any]:
    """Starts a ``-v`` watcher (``env`` added to its environment) and waits until ready."""
    with Watchers(project, verbose=True, ready=True) as watchers:
        yield watchers.start


def test_stage_answers_exactly_as_the_cold_command(project: Path, watch: Any) -> None:
    w = watch()
    assert oct(Path(warm_socket_path(project)).stat().st_mode & 0o777) == "0o600"
    cases = [
        ["stage", "alice:etl"],  # unchanged
        ["--json", "stage", "alice:etl"],
        ["stage", "alice:etl", "--json"],
        ["stage", "alice:etl", "--dry-run"],
        ["stage", "nobody:etl"],  # bad input: exit 2, one line
        ["stage", "not-a-ref"],
        ["stage", "alice:etl", "--to", "nowhere"],
        ["stage", "alice:etl", "--reason", "bad\x07reason"],
        ["sync"],
        ["--json", "sync", "alice"],
        ["ls"],
        ["ls", "--json"],
    ]
    for n, args in enumerate(cases, start=1):
        warm = run(project, *args)
        wait_answered(w, n)  # it was the watcher's answer
        same(warm, run(project, *args, cold=True))
    assert run(project, "stage", "nobody:etl").returncode == 2


def test_a_change_is_staged_as_the_cold_command_stages_it(
    project: Path, tmp_path: Path, watch: Any
) -> None:
    twin = tmp_path / "twin" / "p"  # the same path length: the same messages
    shutil.copytree(project, twin)
    slow = {"LOCKGATE__PLUGINS__WATCH__DEBOUNCE_MS": "60000"}  # its own sync waits
    w = watch(env=slow)
    assert run(twin, "sync", cold=True, env=slow).returncode == 0  # as the watcher did
    for root in (project, twin):
        component(root, "alice:etl", {"main.py": "print('etl 2')\n", "new.py": "Y = 2\n"})
        (root / "workspaces/alice/scripts/etl/lib/util.py").unlink()
    warm = run(project, "--json", "stage", "alice:etl", env=slow)
    wait_answered(w, 1)
    cold = run(twin, "--json", "stage", "alice:etl", cold=True, env=slow)
    same(warm, cold)
    data = json.loads(warm.stdout)
    assert data["created"] and data["changes"] == {"added": 1, "modified": 1, "removed": 1}
    # The watcher's own sync then finds it staged: no second revision.
    same(
        run(project, "stage", "alice:etl", env=slow),
        run(twin, "stage", "alice:etl", cold=True, env=slow),
    )


def test_an_edit_just_before_the_request_is_always_included(project: Path, watch: Any) -> None:
    w = watch()
    path = project / "workspaces/alice/scripts/etl/main.py"
    for n in range(1, 31):
        path.write_text(f"print({n})\n")  # and at once:
        result = run(project, "--json", "stage", "alice:etl")
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        # Either this request staged the edit, or the watcher's own sync did a moment
        # before: either way the latest revision holds the file as just written.
        if not data["created"]:
            assert data["changes"] == {"added": 0, "modified": 0, "removed": 0}
        listed = json.loads(run(project, "--json", "ls", "alice").stdout)
        assert {r["id"]: r["change"] for r in listed}["etl"] == "unchanged"
    assert answered(w) >= 60


def test_a_killed_watcher_leaves_a_stale_socket_and_commands_run_cold(
    project: Path, watch: Any
) -> None:
    w = watch()
    w.stop(signal.SIGKILL)
    assert Path(warm_socket_path(project)).exists()  # stale: nobody listens
    component(project, "alice:etl", {"main.py": "print('after')\n"})
    result = run(project, "stage", "alice:etl")
    assert result.returncode == 0 and b"staged" in result.stdout, result.stderr
    same(run(project, "stage", "alice:etl"), run(project, "stage", "alice:etl", cold=True))
    # A new watcher replaces the stale socket and answers again.
    again = watch()
    run(project, "stage", "alice:etl")
    wait_answered(again, 1)


def test_another_environment_or_unread_arguments_run_cold(project: Path, watch: Any) -> None:
    w = watch()
    other = run(project, "stage", "alice:etl", env={"LOCKGATE_ACTOR": "mallory"})
    plain = run(project, "stage", "alice:etl", "--help")
    assert other.returncode == 0 and plain.returncode == 0
    run(project, "stage", "alice:etl")
    wait_answered(w, 1)
    assert answered(w) == 1  # only the last one
    # lockgate.yaml edited since the watcher opened the project: a new process reads it.
    config = project / "lockgate.yaml"
    config.write_text(config.read_text() + "\n# edited\n")
    same(run(project, "stage", "alice:etl"), run(project, "stage", "alice:etl", cold=True))
    assert answered(w) == 1


def exchange(path: str, payload: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        chunks = []
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the watcher hung up: what it sent before is the answer
        return b"".join(chunks)


def test_garbage_on_the_socket_is_refused_and_the_watcher_goes_on(
    project: Path, watch: Any
) -> None:
    w = watch()
    path = warm_socket_path(project)
    assert exchange(path, b"garbage\n") == b""
    assert exchange(path, b"") == b""
    assert exchange(path, b"[1, 2]\n").startswith(b'{"accepted": false')
    refused = exchange(path, json.dumps({"protocol": 99}).encode() + b"\n")
    assert json.loads(refused) == {
        "accepted": False,
        "reason": "another protocol or lockgate version",
    }
    assert exchange(path, b"x" * (2 << 20)) == b""
    same(run(project, "stage", "alice:etl"), run(project, "stage", "alice:etl", cold=True))
    wait_answered(w, 1)
    assert w.proc.poll() is None


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to connect as another user")
def test_another_user_is_refused() -> None:
    # A project another user can reach (pytest's temporary directories are private),
    # and a socket past its file mode: SO_PEERCRED still refuses.
    holder = Path(tempfile.mkdtemp(prefix="lockgate-warm-"))
    try:
        holder.chmod(0o711)
        if any(not parent.stat().st_mode & 0o001 for parent in holder.parents):
            pytest.skip(f"{holder.parent} cannot be traversed by another user")
        project = holder / "p"
        init_project(project)
        component(project, "alice:etl", {"main.py": "print('etl')\n"})
        for directory in (project, project / ".lockgate"):
            directory.chmod(0o711)
        w = Watch(project, verbose=True)
        try:
            w.ready()
            path = warm_socket_path(project)
            Path(path).chmod(0o666)
            code = (
                "import os, socket, sys\n"
                "os.setgid(65534); os.setuid(65534)\n"
                "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"  # refused at once
                "sys.stdout.write(s.recv(1000).decode())\n"
            )
            proc = subprocess.run(
                [sys.executable, "-c", code, path], capture_output=True, text=True, timeout=30
            )
            assert proc.returncode == 0, proc.stderr
            refused = {"accepted": False, "reason": "uid 65534 is not the watcher's"}
            assert json.loads(proc.stdout) == refused
            same(run(project, "stage", "alice:etl"), run(project, "stage", "alice:etl", cold=True))
            wait_answered(w, 1)
        finally:
            w.stop(signal.SIGKILL)
    finally:
        shutil.rmtree(holder)


def test_the_setting_turns_the_warm_path_off(project: Path, watch: Any) -> None:
    watch(env={"LOCKGATE__PLUGINS__WATCH__WARM": "false"})
    assert not Path(warm_socket_path(project)).exists()
