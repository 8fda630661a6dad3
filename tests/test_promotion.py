"""Promotion and rollback: the ladder, gates, conflicts, integrity, gc, locks and crashes.

Everything is real: projects on disk, the SQLite state store, the builtin ``directory``
target (``stages/<stage>/<id>`` → ``.lockgate/releases/<revision>/``), the command line
(in-process with click's runner where nothing needs a process of its own; real
subprocesses for crashes, lock holders and racing writers).
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import select
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    ENV,
    ProjectWorkspace,
    finish_workers,
    run_lockgate,
    start_python,
    subprocess_env,
)
from lockgate.contracts.state import AuditEvent, EventFilter
from lockgate.core.project import Project
from lockgate.operations.promote import Promoter
from lockgate.operations.verify import verify
from lockgate.testing import CliResult, run_cli

REF = "alice:app"
CID = "app"
LADDER = ("staging", "integration", "production")


class Workspace(ProjectWorkspace):
    """A project with helpers to write, stage, promote and inspect one component."""

    def project(self, actor: str = "alice", *, recover: bool = True) -> Project:
        project = super().project(actor)
        project.recover_on_open = recover
        return project

    def write(self, ref: str, files: Mapping[str, str | bytes], kind: str = "builders") -> str:
        """Make the component's directory hold exactly ``files``."""
        base = self.component_dir(ref, kind)
        if base.exists():
            shutil.rmtree(base)
        return super().write(ref, files, kind)

    def stage(self, files: Mapping[str, str | bytes], ref: str = REF) -> str:
        return self.stage_files(ref, files)

    def promote_to_top(self) -> None:
        """``lockgate promote REF`` once per stage: the latest revision climbs the ladder."""
        for _ in LADDER:
            self.ok("promote", REF)

    def cli(self, *args: str, actor: str = "alice", **env: str) -> CliResult:
        return run_cli(*args, project=self.root, env={**ENV, "LOCKGATE_ACTOR": actor, **env})

    def ok(self, *args: str, actor: str = "alice") -> CliResult:
        result = self.cli(*args, actor=actor)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        return result

    def entry(self, stage: str, cid: str = CID) -> Path:
        return self.root / "stages" / stage / cid

    def release(self, revision: str) -> Path:
        return self.root / ".lockgate" / "releases" / revision

    def deployed(self, stage: str, cid: str = CID) -> str | None:
        """The revision the stage entry points at (None: no entry)."""
        entry = self.entry(stage, cid)
        if not os.path.lexists(entry):
            return None
        return entry.readlink().name

    def current(self, stage: str, cid: str = CID) -> str | None:
        project = self.project()
        try:
            pointer = project.state().pointer(stage, cid)
        finally:
            project.close()
        return pointer.revision if pointer else None

    def events(self, action: str | None = None) -> list[AuditEvent]:
        project = self.project()
        try:
            return project.state().events(EventFilter(action=action))
        finally:
            project.close()

    def verify(self) -> tuple[str, ...]:
        project = self.project()
        try:
            return verify(project).problems
        finally:
            project.close()


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "p")


def tree(tag: str, n: int = 3) -> dict[str, str]:
    """A component whose every file names the revision it belongs to."""
    files = {f"f{i}.txt": f"{tag}:f{i}.txt\n" for i in range(n)}
    files[f"only-{tag}.txt"] = f"{tag}:only-{tag}.txt\n"
    return files


def files_under(path: Path) -> dict[str, str]:
    """Every regular file under ``path`` (symlinks followed at the top) and its text."""
    found = {}
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            full = Path(dirpath) / name
            found[full.relative_to(path).as_posix()] = full.read_text()
    return found


def names(directory: Path) -> list[str]:
    """The entries of ``directory``, sorted (hidden ones too)."""
    return sorted(p.name for p in directory.iterdir())


def stderr_line(result: CliResult) -> str:
    """The one-line error a refused command prints."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lockgate: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def flip_byte(path: Path, offset: int = 0) -> None:
    """Damage one byte of a (read-only, hardlinked) file in place."""
    path.chmod(path.stat().st_mode | stat.S_IWUSR)
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x01]))


def history(ws: Workspace, stage: str, cid: str = CID) -> list[Any]:
    project = ws.project()
    try:
        return project.state().pointer_history(stage, cid)
    finally:
        project.close()


# --------------------------------------------------------------------------- the ladder


def test_promote_climbs_the_ladder_and_deploys_exactly_the_revision(ws: Workspace) -> None:
    r1 = ws.stage(tree("one"))
    for stage in LADDER:
        out = ws.ok("promote", REF).stdout
        assert f"{CID} in {stage}: promoted nothing → {r1[:12]}" in out
        assert ws.current(stage) == r1
        assert ws.deployed(stage) == r1
        assert files_under(ws.entry(stage)) == tree("one")
    assert ws.entry("production").readlink() == Path(
        os.path.relpath(ws.release(r1), ws.entry("production").parent)
    )

    # The top rung already holds it: a success that says so and records nothing.
    before = len(ws.events())
    again = ws.ok("promote", CID)
    assert "production: " + r1[:12] + " is already current; nothing to do" in again.stdout
    assert len(ws.events()) == before

    # A new revision enters the first stage by default (the latest staged one).
    r2 = ws.stage(tree("two"))
    assert f"{CID} in staging: promoted {r1[:12]} → {r2[:12]}" in ws.ok("promote", CID).stdout
    assert files_under(ws.entry("staging")) == tree("two")
    # --to: the default revision is the one current in the stage below (r1 in integration).
    assert "is already current" in ws.ok("promote", CID, "--to", "production").stdout
    # --to with --rev skips a rung.
    ws.ok("promote", CID, "--to", "production", "--rev", r2[:8], "--reason", "hotfix")
    assert (ws.current("integration"), ws.current("production")) == (r1, r2)
    assert files_under(ws.entry("production")) == tree("two")
    # The next rung is the first that does not hold what the rung below holds.
    assert f"{CID} in integration: promoted" in ws.ok("promote", CID).stdout
    assert [ws.deployed(s) for s in LADDER] == [r2, r2, r2]
    assert names(ws.root / "stages" / "production") == [CID]
    assert ws.verify() == ()


def test_dry_run_prints_plan_diff_and_gates_and_changes_nothing(ws: Workspace) -> None:
    r1 = ws.stage({"keep.txt": "same\n", "mod.txt": "old\n", "gone.txt": "bye\n"})
    ws.ok("promote", REF)
    r2 = ws.stage({"keep.txt": "same\n", "mod.txt": "new\n", "new.txt": "hi\n"})

    def snapshot() -> tuple[Any, ...]:
        project = ws.project()
        try:
            state = project.state()
            pointers = state.pointers()
            moves = state.pointer_history()
            chain = [(c.event.seq, c.hash) for c in state.chain()]
            intents = state.open_intents()
        finally:
            project.close()
        stages = {
            s.name: sorted((e.name, e.readlink()) for e in s.iterdir())
            for s in (ws.root / "stages").iterdir()
        }
        return pointers, moves, chain, intents, stages

    before = snapshot()
    back = ws.ok("rollback", CID, "--to", "none", "--dry-run").stdout
    assert f"{CID} in staging: would switch {r1[:12]} → nothing (rollback, dry run)" in back
    assert {"  - gone.txt", "  - keep.txt", "  - mod.txt"} <= set(back.splitlines())
    result = ws.ok("promote", REF, "--dry-run")
    lines = result.stdout.splitlines()
    assert f"{CID} in staging: would switch {r1[:12]} → {r2[:12]} (promote, dry run)" in lines
    assert "gates: ready" in lines
    assert {"  + new.txt", "  ~ mod.txt", "  - gone.txt"} <= set(lines)
    assert not any("keep.txt" in line or "deployed:" in line for line in lines)
    data = ws.ok("promote", REF, "--dry-run", "--json").json()
    assert (data["dry_run"], data["revision"], data["previous_revision"]) == (True, r2, r1)
    assert data["gate"]["overall_ready"] is True
    assert data["diff"]["added"] == ["new.txt"] and data["diff"]["removed"] == ["gone.txt"]
    assert snapshot() == before
    assert ws.deployed("staging") == r1 and files_under(ws.entry("staging"))["mod.txt"] == "old\n"


# --------------------------------------------------------------------------- gates


def test_a_failing_gate_refuses_and_force_needs_a_reason_and_is_audited(ws: Workspace) -> None:
    broken = ws.stage({"ok.txt": "fine\n", "step.py": "def (:\n"})
    refused = ws.cli("promote", REF)
    assert refused.exit_code == 1
    line = stderr_line(refused)
    assert "not ready for staging" in line and "step.py:1" in line and "syntax" in line
    assert ws.current("staging") is None and not os.path.lexists(ws.entry("staging"))
    [event] = ws.events("promote")
    assert (event.outcome, event.stage, event.revision) == ("refused", "staging", broken)
    assert "not ready" in str(event.details["refused"])

    # The dry run shows the failing gate and its issue.
    dry = ws.ok("promote", REF, "--dry-run").stdout
    assert "gates: not ready: 1 error" in dry and "step.py:1" in dry

    no_reason = ws.cli("promote", REF, "--force")
    assert no_reason.exit_code == 2
    assert "--reason" in stderr_line(no_reason)
    assert ws.current("staging") is None

    forced = ws.ok("promote", REF, "--force", "--reason", "hotfix, syntax checked by hand")
    assert "(forced past failing gates)" in forced.stdout
    assert ws.deployed("staging") == broken
    ok = [e for e in ws.events("promote") if e.outcome == "ok"]
    assert len(ok) == 1
    assert ok[0].reason == "hotfix, syntax checked by hand" and ok[0].actor == "alice"
    assert ok[0].details["forced"] is True
    skipped = ok[0].details["skipped_issues"]
    assert isinstance(skipped, list) and len(skipped) == 1 and "step.py:1" in skipped[0]


def test_approvals_block_production_until_someone_else_approves(tmp_path: Path) -> None:
    config = "plugins:\n  approvals:\n    stages:\n      production:\n        required: 1\n"
    ws = Workspace(tmp_path / "p", config)
    revision = ws.stage(tree("one"))
    ws.ok("promote", REF)
    ws.ok("promote", REF)  # staging and integration need no approval
    blocked = ws.cli("promote", REF)
    assert blocked.exit_code == 1
    assert "production" in stderr_line(blocked) and "approval" in blocked.stderr
    assert ws.current("production") is None

    self_approval = ws.cli("approve", REF)
    assert self_approval.exit_code == 1 and "cannot approve" in stderr_line(self_approval)
    assert ws.cli("promote", REF).exit_code == 1

    ws.ok("approve", REF, actor="bob")
    promoted = ws.ok("promote", REF, actor="carol")
    assert f"{CID} in production: promoted nothing → {revision[:12]}" in promoted.stdout
    assert ws.deployed("production") == revision
    [event] = [e for e in ws.events("promote") if e.stage == "production" and e.outcome == "ok"]
    assert event.actor == "carol"


def test_expect_current_refuses_a_stale_view_and_accepts_a_matching_one(ws: Workspace) -> None:
    r1 = ws.stage(tree("one"))
    ws.ok("promote", REF, "--expect-current", "none")
    r2 = ws.stage(tree("two"))

    for stale in ("none", r2[:8]):
        result = ws.cli("promote", REF, "--expect-current", stale)
        assert result.exit_code == 4, result.stderr
        line = stderr_line(result)
        assert f"staging/{CID} is at {r1[:12]}, not {stale} as expected" in line
    assert ws.current("staging") == r1 and ws.deployed("staging") == r1
    assert [e.outcome for e in ws.events("promote")] == ["ok"]  # conflicts change nothing

    ws.ok("promote", REF, "--expect-current", r1[:8])
    assert ws.current("staging") == r2 and ws.deployed("staging") == r2
    ws.ok("promote", REF, "--expect-current", "none")  # integration holds nothing yet
    assert ws.current("integration") == r2


# --------------------------------------------------------------------------- rollback


def test_rollback_targets_last_good_previous_rev_at_and_none(ws: Workspace) -> None:
    revs = []
    for n, tag in enumerate(("one", "two", "three")):
        revs.append(ws.stage(tree(tag)))
        ws.ok("promote", REF, "--reason", f"release {n + 1}")
    r1, r2, r3 = revs

    # Default: last good (the most recent other revision that was live).
    out = ws.ok("rollback", CID, "--reason", "r3 is slow", actor="bob").stdout
    assert f"{CID} in staging: rolled back {r3[:12]} → {r2[:12]}" in out
    assert files_under(ws.entry("staging")) == tree("two")
    # --to previous after a rollback rolls forward again.
    ws.ok("rollback", CID, "--to", "previous", "--reason", "fixed elsewhere")
    assert ws.deployed("staging") == r3 and files_under(ws.entry("staging")) == tree("three")
    # --to REV: any revision that was live in the stage.
    ws.ok("rollback", CID, "--to", r1[:10])
    assert ws.deployed("staging") == r1 and files_under(ws.entry("staging")) == tree("one")
    # --at TIME: what was live then (the time of a history entry).
    when = next(e.at for e in ws.events("promote") if e.revision == r2)
    ws.ok("rollback", CID, "--at", when, "--reason", "back to a known time")
    assert ws.current("staging") == r2 and ws.deployed("staging") == r2
    # A rollback to what is current is a no-op success.
    assert "already current" in ws.ok("rollback", CID, "--to", r2[:10]).stdout
    # --to none removes the component from the stage.
    ws.ok("rollback", CID, "--to", "none", "--reason", "retire")
    assert ws.current("staging") is None and not os.path.lexists(ws.entry("staging"))
    assert names(ws.root / "stages" / "staging") == []
    assert ws.verify() == ()

    moves = history(ws, "staging")
    assert [(m.action, m.revision) for m in moves] == [
        ("promote", r1),
        ("promote", r2),
        ("promote", r3),
        ("rollback", r2),
        ("rollback", r3),
        ("rollback", r1),
        ("rollback", r2),
        ("rollback", None),
    ]
    assert [m.generation for m in moves] == list(range(1, 9))
    assert moves[3].actor == "bob" and moves[3].reason == "r3 is slow"


def test_rollback_after_rolling_forward_returns_to_the_good_revision(ws: Workspace) -> None:
    good = ws.stage(tree("good"))
    ws.ok("promote", REF)
    new = ws.stage(tree("new"))
    ws.ok("promote", REF)
    ws.ok("rollback", CID, "--reason", "new misbehaves")
    ws.ok("rollback", CID, "--to", "previous", "--reason", "false alarm: roll forward")
    assert ws.deployed("staging") == new
    result = ws.cli("rollback", CID, "--reason", "new misbehaves after all")
    assert result.exit_code == 0, result.stderr
    assert ws.deployed("staging") == good


def test_rollback_with_nothing_earlier_is_refused_and_suggests_to_none(ws: Workspace) -> None:
    revision = ws.stage(tree("one"))
    ws.ok("promote", REF)
    for args in ((), ("--to", "previous")):
        refused = ws.cli("rollback", CID, *args)
        assert refused.exit_code == 1
        assert "--to none" in stderr_line(refused)
    assert ws.deployed("staging") == revision
    never = ws.cli("rollback", CID, "--to", "0000abcd")
    assert never.exit_code == 2 and "never live" in stderr_line(never)
    both = ws.cli("rollback", CID, "--to", "previous", "--at", "now")
    assert both.exit_code == 2
    assert [m.revision for m in history(ws, "staging")] == [revision]


def test_rollback_is_a_switch_to_the_existing_release_not_a_copy(ws: Workspace) -> None:
    r1 = ws.stage(tree("one"))
    ws.promote_to_top()
    deployed_file = ws.entry("production") / "f0.txt"
    inode = deployed_file.stat().st_ino
    release_inode = ws.release(r1).stat().st_ino
    project = ws.project()
    try:
        digest = next(e.digest for e in project.content().get_manifest(r1).entries)
        object_path = project.content().object_path(digest)  # type: ignore[attr-defined]
        object_inode = object_path.stat().st_ino
    finally:
        project.close()
    assert inode == object_inode  # the deployed file is the stored object (a hardlink)

    r2 = ws.stage(tree("two"))
    ws.ok("promote", REF, "--to", "production", "--rev", r2[:8])
    assert ws.deployed("production") == r2
    ws.ok("rollback", CID)
    assert ws.entry("production").readlink() == Path(
        os.path.relpath(ws.release(r1), ws.entry("production").parent)
    )
    assert ws.release(r1).stat().st_ino == release_inode
    assert deployed_file.stat().st_ino == inode
    assert files_under(ws.entry("production")) == tree("one")


def test_every_change_is_in_history_and_audit_log_with_actor_and_reason(ws: Workspace) -> None:
    ws.stage(tree("one"))
    ws.ok("promote", REF, "--reason", "first", actor="alice")
    ws.ok("promote", REF, "--reason", "to integration", actor="bob")
    ws.stage(tree("two"))
    ws.ok("promote", REF, "--reason", "second", actor="alice")
    ws.ok("rollback", CID, "--stage", "staging", "--reason", "second is broken", actor="carol")
    ws.ok("rollback", CID, "--stage", "integration", "--to", "none", "--reason", "x", actor="dan")

    events = ws.ok("history", REF, "--json").json()["events"]
    changes = [
        (e["action"], e["stage"], e["actor"], e["reason"])
        for e in events
        if e["action"] in ("promote", "rollback")
    ]
    assert changes == [
        ("promote", "staging", "alice", "first"),
        ("promote", "integration", "bob", "to integration"),
        ("promote", "staging", "alice", "second"),
        ("rollback", "staging", "carol", "second is broken"),
        ("rollback", "integration", "dan", "x"),
    ]
    table = ws.ok("history", REF).stdout
    assert "second is broken" in table and "carol" in table
    assert "audit log intact" in ws.ok("audit", "verify").stdout
    assert ws.verify() == ()


# --------------------------------------------------------------------------- verify


def test_verify_finds_damaged_bytes_and_damaged_revisions_are_never_deployed(
    ws: Workspace,
) -> None:
    good = ws.stage(tree("good"))
    ws.promote_to_top()
    bad = ws.stage(tree("bad"))
    ws.promote_to_top()
    assert ws.ok("verify").stdout.startswith("ok: ")

    flip_byte(ws.entry("production") / "only-bad.txt")
    result = ws.cli("verify")
    assert result.exit_code == 1
    problems = [line for line in result.stdout.splitlines() if line.startswith("problem: ")]
    assert any("only-bad.txt does not match its digest" in p for p in problems), problems
    assert any(p.startswith("problem: object ") and "only-bad.txt" in p for p in problems)
    assert not any("only-good.txt" in p or "f0.txt" in p for p in problems)

    # Rolling back to the intact revision works; switching back to the damaged one does not.
    ws.ok("rollback", CID)
    assert ws.deployed("production") == good
    for args in (("rollback", CID, "--to", "previous"), ("rollback", CID, "--to", bad[:8])):
        refused = ws.cli(*args)
        assert refused.exit_code == 1
        assert "damaged" in stderr_line(refused) and "only-bad.txt" in refused.stderr
    ws.ok("rollback", CID, "--stage", "integration")
    refused = ws.cli("promote", REF, "--to", "integration", "--rev", bad[:8])
    assert refused.exit_code == 1 and "damaged" in stderr_line(refused)
    assert ws.deployed("production") == good and ws.deployed("integration") == good
    damaged = [e for e in ws.events() if e.outcome == "refused"]
    assert [(e.action, e.revision) for e in damaged] == [
        ("rollback", bad),
        ("rollback", bad),
        ("promote", bad),
    ]
    assert all("damaged" in str(e.details["refused"]) for e in damaged)


def test_verify_names_a_damaged_stored_object(ws: Workspace) -> None:
    ws.stage(tree("one"))
    ws.ok("promote", REF)
    latest = ws.stage(tree("two"))  # staged only: no release, just stored objects
    assert not ws.release(latest).exists()
    project = ws.project()
    try:
        content = project.content()
        entry = next(e for e in content.get_manifest(latest).entries if e.path == "only-two.txt")
        path = content.object_path(entry.digest)  # type: ignore[attr-defined]
    finally:
        project.close()
    assert ws.verify() == ()
    flip_byte(path)
    result = ws.cli("verify")
    assert result.exit_code == 1
    assert (
        f"problem: object {entry.digest[:12]} ({latest[:12]}:only-two.txt) does not match "
        "its digest" in result.stdout
    )
    assert "1 problem(s)" in result.stdout


# --------------------------------------------------------------------------- gc


def _store(ws: Workspace) -> tuple[set[str], set[str]]:
    """(release directories, stored objects)."""
    state_dir = ws.root / ".lockgate"
    releases = {p.name for p in (state_dir / "releases").iterdir() if p.is_dir()}
    objects = {
        fan.name + obj.name
        for fan in (state_dir / "objects").iterdir()
        if len(fan.name) == 2
        for obj in fan.iterdir()
    }
    return releases, objects


def test_gc_keeps_what_stages_last_good_and_retention_need_and_removes_the_rest(
    tmp_path: Path,
) -> None:
    ws = Workspace(tmp_path / "p", "gc:\n  keep: 1\n")  # verify checks the same window
    r1 = ws.stage(tree("r1"))
    ws.promote_to_top()
    r2 = ws.stage(tree("r2"))
    ws.promote_to_top()
    r3 = ws.stage(tree("r3"))
    ws.ok("promote", REF)
    ws.ok("rollback", CID, "--stage", "staging")  # r3 was rolled back for cause
    r4 = ws.stage(tree("r4"))
    ws.ok("promote", REF)
    r5 = ws.stage(tree("r5"))  # latest, staged only
    # staging: r1 r2 r3 r2 r4 (current r4, last good r2); integration and production: r1 r2.
    releases, objects = _store(ws)
    assert releases == {r1, r2, r3, r4}

    project = ws.project()
    try:
        manifests = {r: project.content().get_manifest(r) for r in (r1, r2, r3, r4, r5)}
    finally:
        project.close()
    digests = {r: {e.digest for e in m.entries} for r, m in manifests.items()}
    only_r3 = digests[r3] - set().union(*(digests[r] for r in (r1, r2, r4, r5)))
    assert len(only_r3) == len(tree("r3"))  # every file of a tree names its revision

    events = len(ws.events())
    # A window of 3 distinct revisions live in staging (r4, r2, r3) keeps everything.
    wide = ws.ok("gc", "--keep", "3", "--grace", "0", "--dry-run", "--json").json()
    assert (wide["releases"], wide["objects"]) == ([], 0)
    dry = ws.ok("gc", "--keep", "1", "--grace", "0", "--dry-run", "--json").json()
    assert dry["releases"] == [r3] and dry["dry_run"] is True
    assert _store(ws) == (releases, objects) and len(ws.events()) == events

    done = ws.ok("gc", "--keep", "1", "--grace", "0", "--json").json()
    assert done["releases"] == [r3] and done["objects"] == dry["objects"] > 0
    releases_after, objects_after = _store(ws)
    assert releases_after == {r1, r2, r4}
    assert objects - objects_after == only_r3
    assert r3 in objects_after  # manifests are never collected: history stays listable
    assert [e.action for e in ws.events()][-1] == "gc"
    assert ws.ok("verify").stdout.startswith("ok: ")

    # Last good survives: production rolls back to r1 from its retained release.
    ws.ok("rollback", CID, "--reason", "after gc")
    assert ws.deployed("production") == r1
    assert files_under(ws.entry("production")) == tree("r1")
    ws.ok("rollback", CID, "--stage", "staging")  # to last good r2
    assert files_under(ws.entry("staging")) == tree("r2")
    # The collected revision can no longer be deployed, and trying changes nothing.
    gone = ws.cli("rollback", CID, "--stage", "staging", "--to", r3[:10])
    assert gone.exit_code == 1 and "collected by gc" in stderr_line(gone)
    assert ws.deployed("staging") == r2 and ws.current("staging") == r2
    assert ws.verify() == ()


def test_verify_passes_after_gc_with_a_narrower_keep_than_configured(ws: Workspace) -> None:
    revisions = []
    for tag in ("r1", "r2", "r3"):
        revisions.append(ws.stage(tree(tag)))
        ws.ok("promote", REF)
    done = ws.ok("gc", "--keep", "1", "--grace", "0", "--json").json()
    assert done["releases"] == [revisions[0]]  # r2 is last good, r3 current
    result = ws.cli("verify")
    assert result.exit_code == 0, result.stdout


def test_gc_with_nothing_to_collect_removes_nothing(ws: Workspace) -> None:
    ws.stage(tree("one"))
    ws.promote_to_top()
    before = _store(ws)
    result = ws.ok("gc", "--keep", "1", "--grace", "0")
    assert "removed 0 release(s) and 0 object(s)" in result.stdout
    assert _store(ws) == before
    assert ws.verify() == ()


# --------------------------------------------------------------------------- locks

HOLDER = r"""
import sys, time
from pathlib import Path
from lockgate.builtin_plugins.sqlite_state import SqliteStateStore
from lockgate.plugin import LockOwner

store = SqliteStateStore(Path(sys.argv[1]) / "state.db")
with store.lock("operation", owner=LockOwner.current("held-by-test"), lease=300, timeout=30):
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(ws: Workspace) -> Iterator[subprocess.Popen[str]]:
    """A live process holding the project's operation lock (killed at the end)."""
    proc = start_python(HOLDER, str(ws.root / ".lockgate"))
    assert proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)  # a bounded wait
        assert ready, "the lock holder did not take the lock within 30 s"
        assert proc.stdout.readline().strip() == "locked", "the lock holder failed"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_unlock_shows_the_holder_and_force_needs_a_reason(ws: Workspace) -> None:
    assert ws.ok("unlock").stdout.strip().startswith("not locked")
    usage = ws.cli("unlock", "--force")
    assert usage.exit_code == 2 and "--reason" in stderr_line(usage)


def test_a_live_holder_blocks_until_unlock_force_which_is_audited(
    ws: Workspace, holder: subprocess.Popen[str]
) -> None:
    ws.stage(tree("one"))
    shown = ws.ok("unlock").stdout
    assert f"locked by pid {holder.pid}" in shown and "held-by-test" in shown

    blocked = ws.cli("promote", REF, LOCKGATE__STATE__LOCK_TIMEOUT="0.5")
    assert blocked.exit_code == 4
    assert f"locked by pid {holder.pid}" in stderr_line(blocked)
    assert ws.current("staging") is None and not os.path.lexists(ws.entry("staging"))

    # Alive and within its lease: one --force is refused, twice breaks it.
    refused = ws.cli("unlock", "--force", "--reason", "holder is hung", actor="ops")
    assert refused.exit_code == 1 and "within its lease" in stderr_line(refused)
    broken = ws.ok("unlock", "--force", "--force", "--reason", "holder is hung", actor="ops")
    assert f"lock removed (was held by pid {holder.pid})" in broken.stdout
    assert ws.cli("promote", REF, LOCKGATE__STATE__LOCK_TIMEOUT="0.5").exit_code == 0
    assert holder.poll() is None  # the holder still lives: the lock was broken, not waited out
    assert ws.deployed("staging") is not None
    [event] = ws.events("unlock")
    assert (event.actor, event.reason) == ("ops", "holder is hung")
    assert isinstance(event.details["owner"], dict) and event.details["owner"]["pid"] == holder.pid


def test_a_holder_killed_with_sigkill_never_blocks(
    ws: Workspace, holder: subprocess.Popen[str]
) -> None:
    revision = ws.stage(tree("one"))
    blocked = ws.cli("promote", REF, LOCKGATE__STATE__LOCK_TIMEOUT="0.5")
    assert blocked.exit_code == 4 and f"pid {holder.pid}" in stderr_line(blocked)
    os.kill(holder.pid, signal.SIGKILL)
    assert holder.wait(timeout=30) == -signal.SIGKILL
    # Its owner record is still in the lock file, but the kernel released its flock.
    assert f'"pid": {holder.pid}' in (ws.root / ".lockgate" / "operation.lock").read_text()
    promoted = ws.cli("promote", REF, LOCKGATE__STATE__LOCK_TIMEOUT="0.5")
    assert promoted.exit_code == 0, promoted.stderr
    assert ws.deployed("staging") == revision
    assert ws.events("unlock") == []  # nobody had to break anything


def test_unlock_does_not_report_a_dead_holder(ws: Workspace, holder: subprocess.Popen[str]) -> None:
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    assert ws.ok("unlock").stdout.strip().startswith("not locked")


# --------------------------------------------------------------------------- recovery


@pytest.mark.parametrize(
    ("failpoint", "command", "outcome"),
    [
        ("promote.after_switch", "promote", "undone"),
        ("promote.after_record", "promote", "completed"),
        ("rollback.after_switch", "rollback", "undone"),
        ("rollback.after_record", "rollback", "completed"),
    ],
)
def test_a_crash_mid_switch_is_settled_by_the_next_command(
    ws: Workspace, failpoint: str, command: str, outcome: str
) -> None:
    r1 = ws.stage(tree("one"))
    ws.ok("promote", REF)
    r2 = ws.stage(tree("two"))
    if command == "rollback":
        ws.ok("promote", REF)
        args, before, intended = ("rollback", CID), r2, r1
    else:
        args, before, intended = ("promote", REF), r1, r2

    crashed = run_lockgate(*args, cwd=ws.root, env={**ENV, "LOCKGATE_FAILPOINTS": failpoint})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    project = ws.project(recover=False)
    try:
        state = project.state()
        [intent] = state.open_intents()
        pointer = state.pointer("staging", CID)
    finally:
        project.close()
    assert intent.operation == command and intent.payload["revision"] == intended
    assert ws.deployed("staging") == intended  # the entry switched before the crash
    assert pointer is not None
    assert pointer.revision == (intended if outcome == "completed" else before)

    # A command that only reads warns and leaves it; any next command that changes
    # something settles it: 'sync' for one case, 'recover' for the other.
    looked = ws.ok("ls")
    assert "recovery pending: 1 interrupted operation(s)" in looked.stderr
    assert ws.deployed("staging") == intended and not ws.events("recover")
    if outcome == "undone":
        ws.ok("sync")
    else:
        settled = ws.ok("recover").stdout
        assert f"interrupted {command} of {CID} in staging: completed" in settled
    expected = intended if outcome == "completed" else before
    assert ws.current("staging") == expected and ws.deployed("staging") == expected
    assert files_under(ws.entry("staging")) == tree("one" if expected == r1 else "two")
    [event] = ws.events("recover")
    assert event.details["outcome"] == outcome and event.details["intent"] == intent.id
    assert event.details["intended_revision"] == intended and event.revision == expected
    project = ws.project(recover=False)
    try:
        assert project.state().open_intents() == []
    finally:
        project.close()
    assert ws.ok("verify").stdout.startswith("ok: ")
    assert ws.ok("recover").stdout.strip() == "0 interrupted operation(s) settled"


def test_recovery_after_a_crash_before_the_switch_leaves_no_temporary_link(
    ws: Workspace,
) -> None:
    r1 = ws.stage(tree("one"))
    ws.ok("promote", REF)
    ws.stage(tree("two"))
    env = {**ENV, "LOCKGATE_FAILPOINTS": "promote.after_prepare"}
    crashed = run_lockgate("promote", REF, cwd=ws.root, env=env)
    assert crashed.returncode == -signal.SIGKILL
    assert "undone" in ws.ok("recover").stdout
    assert ws.deployed("staging") == r1 and ws.verify() == ()
    assert names(ws.root / "stages" / "staging") == [CID]


# --------------------------------------------------------------------------- readers


@pytest.mark.slow
def test_readers_never_see_a_missing_entry_or_a_mixed_tree(ws: Workspace) -> None:
    """A reader thread walks the deployed tree during 500 switches between two revisions.

    Each pass resolves the entry once (readlink) and reads the release it names, then
    opens the entry as a directory once and reads every file through that handle: all
    files of a pass must come from one revision, and be exactly that revision's files.
    """
    rev_a = ws.stage(tree("A", n=10))
    rev_b = ws.stage(tree("B", n=10))
    expected = {rev_a: tree("A", n=10), rev_b: tree("B", n=10)}
    tags = {rev_a: "A", rev_b: "B"}
    stage_dir = ws.root / "stages" / "staging"
    entry = str(stage_dir / CID)
    project = ws.project()
    promoter = Promoter(project)
    promoter.promote(REF, to="staging", rev=rev_a)
    problems: list[str] = []
    seen: collections.Counter[str] = collections.Counter()
    stop = threading.Event()

    def one_pass() -> None:
        if CID not in names(stage_dir):
            problems.append("the entry is missing from the stage directory")
            return
        link = Path(entry).readlink()  # 1: resolve once, read the release it names
        revision = link.name
        if revision not in expected:
            problems.append(f"the entry points at {link}")
            return
        got = files_under(stage_dir / link)
        if got != expected[revision]:
            problems.append(f"release {tags[revision]} holds {sorted(got.items())}")
        fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY)  # 2: through the entry, once
        try:
            contents = {}
            for item in os.scandir(fd):
                file_fd = os.open(item.name, os.O_RDONLY, dir_fd=fd)
                try:
                    contents[item.name] = os.read(file_fd, 4096).decode()
                finally:
                    os.close(file_fd)
        finally:
            os.close(fd)
        owners = {text.split(":")[0] for text in contents.values()}
        matching = [r for r, files in expected.items() if files == contents]
        if len(owners) != 1 or not matching:
            problems.append(f"one pass read a mixed or foreign tree: {sorted(contents.items())}")
            return
        seen[tags[matching[0]]] += 1

    def reader() -> None:
        while not stop.is_set():
            try:
                one_pass()
            except OSError as exc:  # e.g. the entry vanished between listdir and open
                problems.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        promoter.promote(REF, to="staging", rev=rev_b)
        for i in range(498):
            if i % 10 == 0:  # now and then a promote of the other revision
                other = rev_a if ws.deployed("staging") == rev_b else rev_b
                promoter.promote(REF, to="staging", rev=other)
            else:
                promoter.rollback(CID, stage="staging", to="previous")
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert problems == [], problems[:5]
    assert seen["A"] > 0 and seen["B"] > 0, seen
    try:
        moves = project.state().pointer_history("staging", CID)
        assert [m.generation for m in moves] == list(range(1, 501))
        assert verify(project).ok
    finally:
        project.close()


# --------------------------------------------------------------------------- racing writers

WORKER = r"""
import json, os, sys, time
from pathlib import Path

from lockgate.core.project import Project
from lockgate.operations.promote import Promoter
from lockgate.errors import ConflictError

root, number, revisions, go, ops = sys.argv[1:6]
number, revisions, ops = int(number), revisions.split(","), int(ops)
project = Project.open(root, environ=dict(os.environ))
promoter = Promoter(project)
state = project.state()
Path(f"{go}.ready{number}").touch()
deadline = time.monotonic() + 60
while not Path(go).exists():  # start together, once every process is ready
    if time.monotonic() > deadline:
        sys.exit("the start signal never came")
    time.sleep(0.002)
done = []
for i in range(ops):
    reason = f"w{number}-{i}"
    try:
        if i % 2 == 0:  # promote the revision that is not current (as far as we know)
            pointer = state.pointer("staging", "app")
            rev = revisions[1] if pointer and pointer.revision == revisions[0] else revisions[0]
            result = promoter.promote("alice:app", to="staging", rev=rev, reason=reason)
        else:
            result = promoter.rollback("app", stage="staging", to="previous", reason=reason)
    except ConflictError as exc:
        done.append({"reason": reason, "outcome": type(exc).__name__, "message": str(exc)})
    else:
        outcome = "changed" if result.changed else "unchanged"
        done.append({"reason": reason, "outcome": outcome, "revision": result.revision})
project.close()
print(json.dumps(done))
"""


def test_four_processes_promoting_and_rolling_back_lose_no_update(ws: Workspace) -> None:
    rev_a = ws.stage(tree("A"))
    rev_b = ws.stage(tree("B"))
    project = ws.project()
    try:
        Promoter(project).promote(REF, to="staging", rev=rev_a, reason="setup")
        Promoter(project).promote(REF, to="staging", rev=rev_b, reason="setup")
    finally:
        project.close()
    go = ws.root.parent / "go"
    procs = [
        start_python(
            WORKER,
            str(ws.root),
            str(n),
            f"{rev_a},{rev_b}",
            str(go),
            "30",
            env=subprocess_env(ENV, {"LOCKGATE_ACTOR": f"worker{n}"}),
        )
        for n in range(4)
    ]
    for n, proc in enumerate(procs):  # bounded wait until every worker is ready
        for _ in range(6000):
            if Path(f"{go}.ready{n}").exists() or proc.poll() is not None:
                break
            time.sleep(0.01)
    go.touch()
    results: list[dict[str, Any]] = [
        done for worker in finish_workers(procs, timeout=120) for done in worker
    ]

    outcomes = collections.Counter(r["outcome"] for r in results)
    assert set(outcomes) <= {"changed", "unchanged", "ConflictError", "LockedError"}, outcomes
    assert sum(outcomes.values()) == 4 * 30
    assert outcomes["ConflictError"] + outcomes["LockedError"] >= 1, outcomes  # they raced
    changed = {r["reason"]: r["revision"] for r in results if r["outcome"] == "changed"}

    project = ws.project()
    try:
        state = project.state()
        moves = state.pointer_history("staging", CID)
        pointer = state.pointer("staging", CID)
        events = [
            e
            for e in state.events()
            if e.action in ("promote", "rollback") and e.outcome == "ok" and e.reason != "setup"
        ]
        report = verify(project)
    finally:
        project.close()
    assert [m.generation for m in moves] == list(range(1, len(moves) + 1))
    for before, after in itertools.pairwise(moves):
        assert after.previous_revision == before.revision
        assert after.revision != before.revision
        assert before.valid_until == after.at
    assert pointer is not None
    assert (pointer.revision, pointer.generation) == (moves[-1].revision, len(moves))
    # Exactly the successful changes, each once, with the revision each worker saw land.
    raced = moves[2:]
    assert {str(m.reason): m.revision for m in raced} == changed
    assert len(raced) == len(changed)
    assert [e.seq for e in events] == [m.event_seq for m in raced]
    assert all(m.actor == "worker" + str(m.reason).split("-")[0][1:] for m in raced)
    assert ws.deployed("staging") == pointer.revision
    assert report.ok, report.problems
    final = run_lockgate("verify", cwd=ws.root, env=ENV)
    assert final.returncode == 0, final.stdout + final.stderr


def test_gc_removes_leftovers_of_interrupted_writers_after_the_grace_period(
    ws: Workspace,
) -> None:
    state = ws.root / ".lockgate"
    old = time.time() - 7200
    leftovers = [
        state / "releases" / ".tmp-0123456789abcdef-deadbeef",
        state / "releases" / f"{'a' * 64}.verified.0badf00d",
        state / "objects" / "tmp" / "obj-12345",
        state / "cache" / "stat" / "alice" / "prep.4242.tmp",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.name.startswith(".tmp-"):
            path.mkdir()
            (path / "half-written.txt").write_text("x")
            os.utime(path / "half-written.txt", (old, old))
        else:
            path.write_text("x")
        os.utime(path, (old, old))
    fresh = state / "objects" / "tmp" / "obj-67890"  # a writer may still be busy with it
    fresh.write_text("y")
    ws.ok("gc")
    assert [p for p in leftovers if p.exists()] == []
    assert fresh.exists()


def test_a_rejected_latest_revision_is_refused_even_with_force(ws: Workspace) -> None:
    ws.write("alice:app", {"a.py": "X = 1\n"})
    ws.ok("stage", "alice:app")
    ws.ok("reject", "alice:app", "--reason", "wrong approach", actor="carol")
    refused = ws.cli("promote", "alice:app", "--force", "--reason", "try anyway")
    assert refused.exit_code == 1
    assert "alice:app is rejected: cannot promote" in refused.stderr
    assert not (ws.root / "stages" / "staging" / "app").exists()
    project = ws.project()
    outcomes = [(e.action, e.outcome) for e in project.state().events() if e.action == "promote"]
    project.close()
    assert outcomes == [("promote", "refused")]
    ws.write("alice:app", {"a.py": "X = 2\n"})  # a new revision starts over
    ws.ok("stage", "alice:app")
    ws.ok("promote", "alice:app")


def _with_plugins(ws: Workspace, site: Path) -> Callable[..., str]:
    """Run lockgate in a real subprocess on ``ws`` with the distributions in ``site``;
    it must succeed without a traceback; returns its stdout."""
    from conftest import run_lockgate

    def ok(*args: str) -> str:
        env = {**ENV, "LOCKGATE_ACTOR": "alice"}
        done = run_lockgate("-C", str(ws.root), *args, cwd=ws.root.parent, site=site, env=env)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        return done.stdout

    return ok


BARE_STORE = '''
from pathlib import Path
from lockgate import hookimpl
from lockgate.builtin_plugins.local_store import LocalContentStore

METHODS = ("put", "open", "has", "delete", "close", "put_manifest", "get_manifest",
           "verify", "objects")


class BareStore:
    """The ContentStore contract's methods and nothing else (no optional capability)."""

    def __init__(self, root: Path) -> None:
        inner = LocalContentStore(root)
        for name in METHODS:
            setattr(self, name, getattr(inner, name))


@hookimpl
def register_content_stores(register):
    register("bare", lambda context: BareStore(context.state_dir / "bare-objects"))
'''


def test_a_store_without_optional_capabilities_stages_promotes_and_collects(
    tmp_path: Path, site: Path
) -> None:
    from conftest import write_distribution
    from lockgate.builtin_plugins.local_store import LocalContentStore
    from lockgate.contracts.content import (
        CompletenessCheck,
        ContentStore,
        DurabilitySwitch,
        FileIngest,
        Flushable,
        LocalObjectFiles,
        LostObjectsLedger,
        Materializer,
        ReleaseCache,
    )

    local = LocalContentStore(tmp_path / "probe")  # the builtin store has them all
    assert all(
        isinstance(local, c)
        for c in (
            ContentStore,
            DurabilitySwitch,
            LocalObjectFiles,
            LostObjectsLedger,
            CompletenessCheck,
            FileIngest,
            Materializer,
            Flushable,
            ReleaseCache,
        )
    )
    write_distribution(site, "lockgate-bare", "1.0", {"bare": "lg_bare"}, {"lg_bare": BARE_STORE})
    ws = Workspace(tmp_path / "p")
    (ws.root / "lockgate.yaml").write_text("content:\n  store: bare\n")
    ws.write(REF, tree("one"))
    ok = _with_plugins(ws, site)

    ok("stage", REF)
    ok("promote", REF)
    ws.write(REF, tree("two"))
    ok("stage", REF)
    ok("promote", REF)
    ok("rollback", CID, "--reason", "back to one")
    assert files_under(ws.entry("staging")) == tree("one")
    assert len(list((ws.root / ".lockgate" / "bare-objects").glob("??/*"))) > 0
    assert "removed 0 release(s)" in ok("gc", "--grace", "0", "--keep", "1")
    ok("verify")


def test_gc_collects_the_releases_a_directory_target_laid_out_itself(
    tmp_path: Path, site: Path
) -> None:
    """With a store that keeps no releases the ``directory`` target lays them out under
    ``.lockgate/releases/`` itself; gc asks it to remove those no kept revision needs
    (``target_releases``), and ``--dry-run`` removes nothing."""
    from conftest import write_distribution

    write_distribution(site, "lockgate-bare", "1.0", {"bare": "lg_bare"}, {"lg_bare": BARE_STORE})
    ws = Workspace(tmp_path / "p")
    (ws.root / "lockgate.yaml").write_text("content:\n  store: bare\n")
    ok = _with_plugins(ws, site)
    revisions = []
    for tag in ("one", "two", "three"):
        ws.write(REF, tree(tag))
        revisions.append(json.loads(ok("stage", REF, "--json"))["revision"])
        ok("promote", REF)
    r1, r2, r3 = revisions
    releases = ws.root / ".lockgate" / "releases"
    assert {p.name for p in releases.iterdir() if p.is_dir()} == {r1, r2, r3}

    dry = json.loads(ok("gc", "--grace", "0", "--keep", "1", "--dry-run", "--json"))
    assert dry["target_releases"] == [r1] and dry["releases"] == [] and dry["dry_run"]
    assert {p.name for p in releases.iterdir() if p.is_dir()} == {r1, r2, r3}

    done = ok("gc", "--grace", "0", "--keep", "1")
    assert "removed 0 release(s)" in done
    assert "removed 1 release(s) targets laid out" in done
    # r3 is live, r2 its previous revision (rollback --to previous): both stay.
    assert {p.name for p in releases.iterdir() if p.is_dir()} == {r2, r3}
    assert files_under(ws.entry("staging")) == tree("three")
    again = json.loads(ok("gc", "--grace", "0", "--keep", "1", "--json"))
    assert again["target_releases"] == []
    ok("verify")
    ok("rollback", CID, "--reason", "back to two")
    assert files_under(ws.entry("staging")) == tree("two")


FORWARDING_STORE = '''
from lockgate import hookimpl
from lockgate.builtin_plugins.local_store import LocalContentStore


class ForwardingStore:
    """Everything through __getattr__, and its temporary directory as a string."""

    def __init__(self, root):
        self._inner = LocalContentStore(root)

    def __getattr__(self, name):
        if name == "tmp":
            return str(self._inner.tmp)
        return getattr(self._inner, name)


@hookimpl
def register_content_stores(register):
    register("fwd", lambda context: ForwardingStore(context.state_dir / "fwd-objects"))
'''


def test_a_forwarding_store_offers_the_capabilities_it_forwards(tmp_path: Path, site: Path) -> None:
    from conftest import write_distribution

    write_distribution(site, "lockgate-fwd", "1.0", {"fwd": "lg_fwd"}, {"lg_fwd": FORWARDING_STORE})
    ws = Workspace(tmp_path / "p")
    (ws.root / "lockgate.yaml").write_text("content:\n  store: fwd\n")
    ok = _with_plugins(ws, site)

    for tag in ("one", "two", "three"):
        ws.write(REF, tree(tag))
        ok("stage", REF)
    stale = ws.root / ".lockgate" / "fwd-objects" / "tmp" / "obj-stale"
    stale.write_text("half")
    os.utime(stale, (time.time() - 7200,) * 2)
    collected = ok("gc", "--grace", "0")
    # Revisions one and two's own files go: their size is known through object_path,
    # and the tmp given as a string is swept.
    gone = [text for tag in ("one", "two") for text in tree(tag).values()]
    assert f"and {len(gone)} object(s) ({sum(map(len, gone))} bytes)" in collected, collected
    assert not stale.exists()
    ok("verify")


def test_gc_with_no_grace_leaves_a_release_being_laid_out_alone(ws: Workspace) -> None:
    """A promotion may be laying out a release while ``gc --grace 0`` runs: its temporary
    directory is not a leftover until it has been left alone for a while."""
    busy = ws.root / ".lockgate" / "releases" / ".tmp-0123456789abcdef-cafef00d"
    busy.mkdir(parents=True)
    (busy / "being-written.txt").write_text("x")
    ws.ok("gc", "--grace", "0")
    assert busy.exists()
