"""Gates and switches that hold under faults and races: failures after the switch,
decisions racing the gates, approval rules, validators that try to end the process.

Every test drives the real ``lockgate`` CLI in subprocesses against real files and the
real SQLite state database; faults are real (a plugin that raises, a database file the
kernel makes immutable) and races run in concurrent processes.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from conftest import ENV, ProjectWorkspace, subprocess_env, write_distribution

# A stage target that does the real (directory) switch, then fails as told by
# FLAKY_FAULT: "raise" (the deploy host went away), "freeze" (the state database's files
# become immutable: every later write to them fails, even as root).
FLAKY = """\
import os
import subprocess

from lockgate import hookimpl
from lockgate.builtin_plugins.directory_target import DirectoryTarget


class Flaky(DirectoryTarget):
    failed = False  # once per process: putting the stage back works

    def commit(self, prepared):
        super().commit(prepared)
        fault = None if Flaky.failed else os.environ.get("FLAKY_FAULT")
        Flaky.failed = True
        if fault == "raise":
            raise RuntimeError("the deploy host went away")
        if fault == "freeze":
            state = self.releases.parent
            files = [str(state / "state.db"), str(state / "state.db-wal")]
            subprocess.run(["chattr", "+i", *files], check=True)


@hookimpl
def register_targets(register):
    register("flaky", Flaky.from_context)
"""

FLAKY_CONFIG = """\
stages:
  staging:
    targets:
      - kind: directory
      - kind: flaky
        options: {path: stages/mirror}
  production: {}
"""


def lockgate(
    root: Path,
    *args: str | bytes,
    site: Path | None = None,
    env: dict[str, str] | None = None,
    actor: str = "alice",
) -> subprocess.CompletedProcess[str]:
    """``lockgate ARGS`` in a real subprocess (arguments may be raw bytes)."""
    layers = [ENV, {"LOCKGATE_ACTOR": actor}, env]
    if site is not None:
        layers.append({"PYTHONPATH": str(site)})
    return subprocess.run(
        [sys.executable, "-m", "lockgate", *args],
        cwd=root,
        env=subprocess_env(*layers),
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
    )


def db(root: Path) -> sqlite3.Connection:
    return sqlite3.connect(root / ".lockgate" / "state.db")


def open_intents(root: Path) -> list[str]:
    with contextlib_closing(db(root)) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM intents WHERE state = 'open'")]


def pointer(root: Path, stage: str, component_id: str) -> str | None:
    with contextlib_closing(db(root)) as conn:
        row = conn.execute(
            "SELECT revision FROM pointers WHERE stage = ? AND component_id = ?",
            (stage, component_id),
        ).fetchone()
    return row[0] if row else None


def events(root: Path) -> list[tuple[int, str, str, str]]:
    """(seq, at, action, outcome) of every audit event, in chain order."""
    with contextlib_closing(db(root)) as conn:
        return list(conn.execute("SELECT seq, at, action, outcome FROM events ORDER BY seq"))


def contextlib_closing(conn: sqlite3.Connection) -> sqlite3.Connection:
    # sqlite3.Connection's own context manager commits but does not close.
    import contextlib

    return contextlib.closing(conn)  # type: ignore[return-value]


def serves(root: Path, directory: str, component_id: str) -> str | None:
    """The revision a directory target's entry points at (None: no entry)."""
    entry = root / directory / component_id
    if not entry.is_symlink():
        return None
    return entry.readlink().name


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "a bug in lockgate" not in proc.stderr
    return lines[0]


def assert_times_follow_chain(root: Path) -> None:
    previous = None
    for seq, at, action, _ in events(root):
        when = dt.datetime.fromisoformat(at)
        assert previous is None or when >= previous, (seq, action, at)
        previous = when


# ------------------------------------------------------------ failures after the switch


def test_a_non_utf8_reason_is_refused_before_anything_is_touched(tmp_path: Path) -> None:
    ws = ProjectWorkspace(tmp_path / "p")
    first = ws.stage_files("alice:app", {"a.py": "X = 1\n"})
    assert lockgate(ws.root, "promote", "alice:app").returncode == 0
    second = ws.stage_files("alice:app", {"a.py": "X = 2\n"})
    bad = b"hotfix \xff\xfe"
    for args in (
        ("promote", "alice:app", "--reason", bad),
        ("promote", "alice:app", "--force", "--reason", bad),
        ("rollback", "app", "--to", "none", "--reason", bad),
        ("reject", "alice:app", "--reason", bad),
        ("stage", "alice:app", "--reason", bad),
    ):
        proc = lockgate(ws.root, *args, actor="bob")
        assert proc.returncode == 2, (args, proc.stderr)
        assert "not valid UTF-8" in one_line_error(proc)
        assert pointer(ws.root, "staging", "app") == first
        assert serves(ws.root, "stages/staging", "app") == first
        assert open_intents(ws.root) == []
    assert lockgate(ws.root, "promote", "alice:app", "--reason", "hotfix").returncode == 0
    assert serves(ws.root, "stages/staging", "app") == second


def test_a_non_utf8_actor_is_refused_before_the_switch(tmp_path: Path) -> None:
    ws = ProjectWorkspace(tmp_path / "p")
    first = ws.stage_files("alice:app", {"a.py": "X = 1\n"})
    assert lockgate(ws.root, "promote", "alice:app").returncode == 0
    env = {k.encode(): v.encode() for k, v in subprocess_env(ENV).items()}
    env[b"LOCKGATE_ACTOR"] = b"bad\xff"
    ws.stage_files("alice:app", {"a.py": "X = 2\n"})
    proc = subprocess.run(
        [sys.executable, "-m", "lockgate", "promote", "alice:app"],
        cwd=ws.root,
        env=env,
        capture_output=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert b"not valid UTF-8" in proc.stderr and b"Traceback" not in proc.stderr
    assert serves(ws.root, "stages/staging", "app") == first
    assert open_intents(ws.root) == []


def test_a_target_failing_in_commit_is_undone_and_reported(tmp_path: Path, site: Path) -> None:
    write_distribution(
        site, "lockgate-flaky", "1.0", {"flaky": "lockgate_flaky"}, {"lockgate_flaky": FLAKY}
    )
    ws = ProjectWorkspace(tmp_path / "p", FLAKY_CONFIG)
    first = ws.stage_files("alice:app", {"a.py": "X = 1\n"})
    assert lockgate(ws.root, "promote", "alice:app", site=site).returncode == 0
    second = ws.stage_files("alice:app", {"a.py": "X = 2\n"})
    proc = lockgate(ws.root, "promote", "alice:app", site=site, env={"FLAKY_FAULT": "raise"})
    assert proc.returncode == 3, proc.stderr
    line = one_line_error(proc)
    assert "failed in commit" in line and "the deploy host went away" in line
    # Both targets serve the recorded revision again, and nothing is left open.
    assert pointer(ws.root, "staging", "app") == first
    assert serves(ws.root, "stages/staging", "app") == first
    assert serves(ws.root, "stages/mirror", "app") == first
    assert open_intents(ws.root) == []
    assert lockgate(ws.root, "verify", site=site).returncode == 0
    # The fault gone, the next promotion goes through.
    assert lockgate(ws.root, "promote", "alice:app", site=site).returncode == 0
    assert serves(ws.root, "stages/mirror", "app") == second


def _chattr_works(where: Path) -> bool:
    if shutil.which("chattr") is None:
        return False
    probe = where / "probe"
    probe.write_text("x")
    ok = subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["chattr", "-i", str(probe)], check=True)
    probe.unlink()
    return ok


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[list[Path]]:
    """Files made immutable during the test (``chattr +i``), made mutable again after."""
    if not _chattr_works(tmp_path):
        pytest.skip("needs chattr +i (root on a file system that supports it)")
    frozen: list[Path] = []
    yield frozen
    for path in frozen:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)


def _freeze(paths: Sequence[Path]) -> None:
    subprocess.run(["chattr", "+i", *map(str, paths)], check=True)


def _thaw(paths: Sequence[Path]) -> None:
    subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


def test_a_read_only_state_database_is_an_environment_fault(
    tmp_path: Path, immutable: list[Path]
) -> None:
    ws = ProjectWorkspace(tmp_path / "p")
    first = ws.stage_files("alice:app", {"a.py": "X = 1\n"})
    assert lockgate(ws.root, "promote", "alice:app").returncode == 0
    second = ws.stage_files("alice:app", {"a.py": "X = 2\n"})
    state_db = ws.root / ".lockgate" / "state.db"
    with contextlib_closing(db(ws.root)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    immutable.append(state_db)
    _freeze([state_db])
    proc = lockgate(ws.root, "promote", "alice:app")
    assert proc.returncode == 4, proc.stderr
    assert "read-only" in one_line_error(proc)
    assert serves(ws.root, "stages/staging", "app") == first
    _thaw([state_db])
    assert lockgate(ws.root, "promote", "alice:app").returncode == 0
    assert serves(ws.root, "stages/staging", "app") == second
    assert open_intents(ws.root) == []


def test_a_database_fault_after_the_target_commit_is_undone(
    tmp_path: Path, site: Path, immutable: list[Path]
) -> None:
    write_distribution(
        site, "lockgate-flaky", "1.0", {"flaky": "lockgate_flaky"}, {"lockgate_flaky": FLAKY}
    )
    ws = ProjectWorkspace(tmp_path / "p", FLAKY_CONFIG)
    first = ws.stage_files("alice:app", {"a.py": "X = 1\n"})
    assert lockgate(ws.root, "promote", "alice:app", site=site).returncode == 0
    second = ws.stage_files("alice:app", {"a.py": "X = 2\n"})
    state = ws.root / ".lockgate"
    files = [state / "state.db", state / "state.db-wal"]
    immutable.extend(files)
    proc = lockgate(ws.root, "promote", "alice:app", site=site, env={"FLAKY_FAULT": "freeze"})
    assert proc.returncode == 4, proc.stderr
    one_line_error(proc)
    # The record failed after both targets switched: both are back at the recorded one.
    assert serves(ws.root, "stages/staging", "app") == first
    assert serves(ws.root, "stages/mirror", "app") == first
    # While the fault lasts, every command that changes something says so in one line
    # (exit 4, never 5); one that only reads answers, warning that recovery is pending.
    looked = lockgate(ws.root, "ls", site=site)
    assert looked.returncode == 0, looked.stderr
    assert looked.stderr.count("recovery pending") == 1
    later = lockgate(ws.root, "promote", "alice:app", site=site)
    assert later.returncode == 4, later.stderr
    one_line_error(later)
    assert serves(ws.root, "stages/staging", "app") == first
    _thaw(files)
    assert lockgate(ws.root, "recover", site=site).returncode == 0
    assert open_intents(ws.root) == []
    assert pointer(ws.root, "staging", "app") == first
    assert lockgate(ws.root, "promote", "alice:app", site=site).returncode == 0
    assert serves(ws.root, "stages/mirror", "app") == second
    assert lockgate(ws.root, "verify", site=site).returncode == 0


# --------------------------------------------------------------- decisions racing gates

# A validator that holds the gate open until the test lets it go (files as signals).
HOLD = """\
import os
import time
from pathlib import Path

from lockgate import hookimpl


@hookimpl
def on_validate(subject):
    signals = Path(os.environ["HOLD_DIR"])
    (signals / "waiting").write_text(str(os.getpid()))
    while not (signals / "go").exists():
        time.sleep(0.01)
    return []
"""


def wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    """Until ``path`` exists (the process must still be running)."""
    deadline = time.monotonic() + 60
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def promote_held_at_the_gate(
    tmp_path: Path, site: Path, while_held: Callable[[ProjectWorkspace], None]
) -> tuple[ProjectWorkspace, subprocess.CompletedProcess[str]]:
    """Run ``lockgate promote alice:app`` in a real process whose gate (the ``hold``
    validator) waits until ``while_held`` has run in this one; the promotion's result."""
    write_distribution(
        site, "lockgate-hold", "1.0", {"hold": "lockgate_hold"}, {"lockgate_hold": HOLD}
    )
    signals = tmp_path / "signals"
    signals.mkdir()
    ws = ProjectWorkspace(tmp_path / "p", "validation:\n  timeout: 120\n")
    ws.stage_files("alice:app", {"a.py": "X = 1\n"})
    env = subprocess_env(ENV, {"PYTHONPATH": str(site), "HOLD_DIR": str(signals)})
    args = [sys.executable, "-m", "lockgate", "promote", "alice:app"]
    promote = subprocess.Popen(
        args, cwd=ws.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(signals / "waiting", promote)
        while_held(ws)
        (signals / "go").write_text("")
        out, err = promote.communicate(timeout=120)
    finally:
        promote.kill()
        promote.wait()
    return ws, subprocess.CompletedProcess(args, promote.returncode, out, err)


def test_a_rejection_that_lands_while_the_gates_run_stops_the_promotion(
    tmp_path: Path, site: Path
) -> None:
    def reject(ws: ProjectWorkspace) -> None:
        done = lockgate(
            ws.root, "reject", "alice:app", "--reason", "leaks secrets", actor="bob", site=site
        )
        assert done.returncode == 0, done.stderr

    ws, promote = promote_held_at_the_gate(tmp_path, site, reject)
    assert promote.returncode == 1, promote.stderr
    assert "rejected" in promote.stderr
    assert pointer(ws.root, "staging", "app") is None
    assert serves(ws.root, "stages/staging", "app") is None
    actions = [(action, outcome) for _, _, action, outcome in events(ws.root)]
    assert actions[-1] == ("promote", "refused"), actions
    assert ("reject", "ok") in actions
    assert_times_follow_chain(ws.root)


def test_audit_times_follow_the_chain_across_processes(tmp_path: Path, site: Path) -> None:
    # A promotion timed when it was planned, before a decision that was written first,
    # would precede it in time: the promote event is timed when the switch happens.
    def approve(ws: ProjectWorkspace) -> None:
        done = lockgate(ws.root, "approve", "alice:app", actor="bob", site=site)
        assert done.returncode == 0, done.stderr

    ws, promote = promote_held_at_the_gate(tmp_path, site, approve)
    assert promote.returncode == 0, promote.stderr
    actions = [action for _, _, action, _ in events(ws.root)]
    assert actions.index("approve") < actions.index("promote")
    assert_times_follow_chain(ws.root)


# ------------------------------------------------------------------------ approval rules


def test_a_rejection_survives_restaging_the_same_files(tmp_path: Path) -> None:
    ws = ProjectWorkspace(tmp_path / "p")
    a = ws.stage_files("alice:app", {"a.py": "X = 1\n"})
    assert lockgate(ws.root, "reject", "alice:app", "--reason", "no", actor="bob").returncode == 0
    ws.stage_files("alice:app", {"a.py": "X = 2\n"})
    assert ws.stage_files("alice:app", {"a.py": "X = 1\n"}) == a  # A -> B -> A
    with contextlib_closing(db(ws.root)) as conn:
        (status,) = conn.execute(
            "SELECT status FROM components WHERE component = 'alice:app'"
        ).fetchone()
    assert status == "rejected"
    for args in (
        ("promote", "alice:app", "--force", "--reason", "ship it"),
        ("promote", "alice:app", "--rev", a[:12], "--force", "--reason", "ship it"),
    ):
        proc = lockgate(ws.root, *args)
        assert proc.returncode == 1, (args, proc.stderr)
        one_line_error(proc)
        assert pointer(ws.root, "staging", "app") is None


def test_rollback_onto_a_rejected_revision_is_refused(tmp_path: Path) -> None:
    ws = ProjectWorkspace(tmp_path / "p")
    a = ws.stage_files("alice:app", {"a.py": "X = 1\n"})
    assert lockgate(ws.root, "promote", "alice:app").returncode == 0
    b = ws.stage_files("alice:app", {"a.py": "X = 2\n"})
    assert lockgate(ws.root, "promote", "alice:app").returncode == 0
    reject = lockgate(
        ws.root, "reject", "alice:app", "--rev", a[:12], "--reason", "data loss", actor="bob"
    )
    assert reject.returncode == 0, reject.stderr
    for to in ("previous", "last-good", a[:12]):
        proc = lockgate(ws.root, "rollback", "app", "--stage", "staging", "--to", to)
        assert proc.returncode == 1, (to, proc.stderr)
        assert "rejected by bob" in one_line_error(proc)
        assert pointer(ws.root, "staging", "app") == b
        assert serves(ws.root, "stages/staging", "app") == b


APPROVALS = "plugins:\n  approvals:\n    required: 1\n"


def test_an_automated_staging_does_not_make_the_owner_a_reviewer(tmp_path: Path) -> None:
    ws = ProjectWorkspace(tmp_path / "p", APPROVALS)
    ws.write("alice:app", {"a.py": "X = 1\n", "component.yaml": "owners: [alice]\n"})
    assert lockgate(ws.root, "sync", actor="ci").returncode == 0
    proc = lockgate(ws.root, "approve", "alice:app", actor="alice")
    assert proc.returncode == 1, proc.stderr
    assert "alice is an author" in one_line_error(proc)
    assert lockgate(ws.root, "promote", "alice:app").returncode == 1  # still no approval
    assert lockgate(ws.root, "approve", "alice:app", actor="bob").returncode == 0
    assert lockgate(ws.root, "promote", "alice:app").returncode == 0


def test_a_later_automated_staging_keeps_earlier_stagers_as_authors(tmp_path: Path) -> None:
    ws = ProjectWorkspace(tmp_path / "p", APPROVALS)
    ws.write("alice:app", {"a.py": "X = 1\n"})
    assert lockgate(ws.root, "stage", "alice:app", actor="alice").returncode == 0
    ws.write("alice:app", {"a.py": "X = 1\nY = 2\n"})  # a further edit, staged by CI
    assert lockgate(ws.root, "sync", actor="ci").returncode == 0
    proc = lockgate(ws.root, "approve", "alice:app", actor="alice")
    assert proc.returncode == 1, proc.stderr
    assert "alice is an author" in one_line_error(proc)
    # Her approval would not count in the gate either (recorded with SQL, as a tamperer
    # or an older lockgate would have left it).
    with contextlib_closing(db(ws.root)) as conn, conn:
        (revision,) = conn.execute(
            "SELECT latest_revision FROM components WHERE component = 'alice:app'"
        ).fetchone()
        conn.execute(
            "INSERT INTO approvals (component, revision, actor, decision, at) "
            "VALUES ('alice:app', ?, 'alice', 'approve', '2026-01-01T00:00:00+00:00')",
            (revision,),
        )
    validate = lockgate(ws.root, "validate", "alice:app", "--json")
    assert validate.returncode == 1, validate.stdout
    assert "approval-missing" in validate.stdout


# ----------------------------------------------------------- validators ending the process

EXITER = """\
import os
import threading

from lockgate import hookimpl


@hookimpl
def on_validate(subject):
    if os.environ.get("EXIT_FROM") == "thread":
        worker = threading.Thread(target=os._exit, args=(0,))
        worker.start()
        worker.join()
        return []
    os._exit(0)
"""


@pytest.mark.parametrize("where", ["call", "thread"])
def test_a_validator_that_ends_the_process_fails_the_gate(
    tmp_path: Path, site: Path, where: str
) -> None:
    write_distribution(
        site, "lockgate-exiter", "1.0", {"exiter": "lockgate_exiter"}, {"lockgate_exiter": EXITER}
    )
    ws = ProjectWorkspace(tmp_path / "p")
    ws.stage_files("alice:app", {"a.py": "X = 1\n"})
    env = {"EXIT_FROM": where}
    validate = lockgate(ws.root, "validate", "alice:app", site=site, env=env)
    assert validate.returncode == 1, (validate.stdout, validate.stderr)
    assert "validator-exit" in validate.stdout
    promote = lockgate(ws.root, "promote", "alice:app", site=site, env=env)
    assert promote.returncode == 1, (promote.stdout, promote.stderr)
    assert "validator-exit" in one_line_error(promote)
    assert pointer(ws.root, "staging", "app") is None
    outcomes = [(action, outcome) for _, _, action, outcome in events(ws.root)]
    assert outcomes[-3:] == [("validate", "failed"), ("validate", "failed"), ("promote", "refused")]


HOST_EXIT = """\
import os, sys, threading
from lockgate.core.project import Project
from lockgate.operations.validate import Validation

report = Validation(Project.open(sys.argv[1])).run(["alice:app"])
assert report.ready, report.summary()
# The host application's own thread, after the run: the guard must not stop it.
threading.Thread(target=os._exit, args=(7,)).start()
threading.Event().wait(10)
sys.exit(0)
"""


def test_the_exit_guard_leaves_the_host_applications_threads_alone_between_runs(
    tmp_path: Path,
) -> None:
    """An application embedding lockgate keeps ``os._exit`` from its own threads once a
    validation has run (it used to be turned into an exception, silently, for good)."""
    ws = ProjectWorkspace(tmp_path / "p")
    ws.stage_files("alice:app", {"a.py": "X = 1\n"})
    proc = subprocess.run(
        [sys.executable, "-c", HOST_EXIT, str(ws.root)],
        env=subprocess_env(ENV),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 7, (proc.returncode, proc.stderr)
