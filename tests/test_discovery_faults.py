"""One bad component fails alone: a ``component.yaml`` with a recursive alias, a directory
that cannot be read, or a layout directory that is a symlink out of the workspaces is
reported for that place, and ``ls``, ``sync`` and ``watch`` go on with every other
component. Real subprocesses against real files.

Tests run as root, and root reads a ``chmod 000`` directory; so the commands that must
meet an unreadable directory run under ``setpriv`` without the capabilities that let
root ignore permissions (``CAP_DAC_OVERRIDE``, ``CAP_DAC_READ_SEARCH``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import ENV, run_lockgate, subprocess_env

NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    assert run_lockgate("init", str(root), cwd=tmp_path, env=ENV).returncode == 0
    _write(root, "workspaces/alice/scripts/good/run.py", "print(1)\n")
    _write(root, "workspaces/bob/scripts/fine/run.py", "print(2)\n")
    return root


def _unprivileged() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv to drop root's permission override")
    return NO_DAC


def _run(
    root: Path, *args: str, prefix: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [*(prefix or []), sys.executable, "-m", "lockgate", *args]
    return subprocess.run(
        cmd, cwd=root, env=subprocess_env(ENV), capture_output=True, text=True, timeout=120
    )


def _ls(root: Path, prefix: list[str] | None = None) -> dict[str, str]:
    """``lockgate --json ls``: component -> "status: change" (for an invalid one, its problem)."""
    done = _run(root, "--json", "ls", prefix=prefix)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    return {r["component"]: f"{r['status']}: {r['change']}" for r in rows}


def _watch(root: Path, prefix: list[str] | None = None) -> tuple[int, list[dict[str, Any]]]:
    """Run ``lockgate --json watch`` until it says ready, stop it, return (code, events)."""
    cmd = [*(prefix or []), sys.executable, "-m", "lockgate", "--json", "watch"]
    proc = subprocess.Popen(
        cmd, cwd=root, env=subprocess_env(ENV), stdout=subprocess.PIPE, text=True
    )
    events: list[dict[str, Any]] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == "ready":
                ready.set()
        ready.set()  # it ended

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        ready.wait(timeout=60)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    assert proc.stdout is not None
    proc.stdout.close()
    return code, events


@pytest.fixture
def unreadable(project: Path) -> Iterator[list[Path]]:
    """A type directory of one workspace and a subdirectory of one component, mode 000."""
    _write(project, "workspaces/carol/scripts/hidden/run.py", "print(3)\n")
    _write(project, "workspaces/alice/scripts/partial/sub/x.py", "x = 1\n")
    _write(project, "workspaces/alice/scripts/partial/run.py", "print(4)\n")
    dirs = [
        project / "workspaces/carol/scripts",
        project / "workspaces/alice/scripts/partial/sub",
    ]
    for d in dirs:
        d.chmod(0)
    yield dirs
    for d in dirs:
        d.chmod(0o755)


def _others_staged(out: str) -> None:
    assert "alice:good: staged" in out, out
    assert "bob:fine: staged" in out, out


def test_recursive_alias_fails_only_its_component(project: Path) -> None:
    _write(project, "workspaces/alice/scripts/bad/component.yaml", "metadata: &x [*x]\n")
    rows = _ls(project)
    assert rows["alice:good"].startswith("new:") and rows["bob:fine"].startswith("new:"), rows
    assert any("alias refers to a value that contains it" in c for c in rows.values()), rows
    synced = _run(project, "sync")
    assert synced.returncode == 1, synced.stderr
    _others_staged(synced.stdout)
    assert "bad/component.yaml:1: nested more than 100 levels" in synced.stdout
    assert "staged 2, unchanged 0, failed 1" in synced.stdout
    _write(project, "workspaces/alice/scripts/good/run.py", "print(10)\n")
    code, events = _watch(project)
    assert code == 0, events
    failed = [e for e in events if e["event"] == "failed"]
    assert [e["component"].endswith("scripts/bad") for e in failed] == [True]
    assert any(e["event"] == "staged" and e["component"] == "alice:good" for e in events)


def test_unreadable_directory_fails_only_its_place(project: Path, unreadable: list[Path]) -> None:
    prefix = _unprivileged()
    rows = _ls(project, prefix)
    assert rows["alice:good"].startswith("new:") and rows["bob:fine"].startswith("new:"), rows
    unreadable_type = f"?:{unreadable[0]}"
    assert "carol/scripts: cannot be read (Permission denied)" in rows[unreadable_type]
    assert "partial/sub: cannot be read (Permission denied)" in rows["alice:partial"]
    synced = _run(project, "sync", prefix=prefix)
    assert synced.returncode == 1, synced.stderr
    _others_staged(synced.stdout)
    assert "staged 2, unchanged 0, failed 2" in synced.stdout
    stage = _run(project, "stage", "alice:partial", prefix=prefix)
    assert stage.returncode == 2, stage.stderr
    assert stage.stderr.count("\n") == 1
    assert "partial/sub: cannot be read (Permission denied)" in stage.stderr
    _write(project, "workspaces/bob/scripts/fine/run.py", "print(20)\n")
    code, events = _watch(project, prefix)
    assert code == 0, events
    failed = sorted(e["component"] for e in events if e["event"] == "failed")
    assert failed == sorted(["alice:partial", str(unreadable[0])]), events
    assert any(e["event"] == "staged" and e["component"] == "bob:fine" for e in events)


def test_layout_directory_symlinked_out_of_the_workspaces_is_refused(
    project: Path, tmp_path: Path
) -> None:
    config = project / "lockgate.yaml"
    config.write_text(config.read_text() + 'workspaces:\n  layout: "{workspace}/src/{component}"\n')
    _write(project, "workspaces/bob/src/fine/run.py", "print(2)\n")
    _write(tmp_path, "outside/stolen/secret.txt", "password\n")
    (project / "workspaces/alice").mkdir(exist_ok=True)
    (project / "workspaces/alice/src").symlink_to(tmp_path / "outside")
    synced = _run(project, "sync")
    assert synced.returncode == 1, synced.stderr
    assert "bob:fine: staged" in synced.stdout
    assert "alice/src: symlink to" in synced.stdout
    assert "alice:stolen" not in synced.stdout
    rows = _ls(project)
    assert rows["bob:fine"] == "staged: unchanged", rows
    assert not any("stolen" in ref for ref in rows), rows
    refused = _run(project, "stage", "alice:stolen")
    assert refused.returncode == 2, refused.stderr
    assert "no component 'alice:stolen'" in refused.stderr
