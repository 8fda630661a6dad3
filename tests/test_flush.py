"""When objects reach the disk: flushed before deploying, and a restart before that repaired.

A restart of the machine cannot happen in a test; what it leaves behind can. The marker
``objects/unflushed`` of a restart names another boot id, and an object the restart tore
is empty or short under its digest's name. Every test below writes exactly that state on
disk, then runs the real commands.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from conftest import ENV, ProjectWorkspace, run_lockgate
from lockgate.builtin_plugins._workspace_scan import RACY_WINDOW_NS
from lockgate.builtin_plugins.local_journal import CLOCK_MARGIN_NS, boot_id
from lockgate.builtin_plugins.local_store import LocalContentStore
from lockgate.contracts.manifest import FileEntry, Manifest
from lockgate.testing import CliResult, run_cli

REF = "alice:app"

pytestmark = pytest.mark.skipif(boot_id() is None, reason="needs the kernel's boot id (Linux)")


class Project(ProjectWorkspace):
    @property
    def objects(self) -> Path:
        return self.root / ".lockgate" / "objects"

    @property
    def marker(self) -> Path:
        return self.objects / "unflushed"

    def cli(self, *args: str, **env: str) -> CliResult:
        return run_cli(*args, project=self.root, env={**ENV, **env})

    def ok(self, *args: str, **env: str) -> CliResult:
        result = self.cli(*args, **env)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        return result

    def write(self, ref: str, files: Mapping[str, str | bytes], kind: str = "builders") -> str:
        """Write the files, then wait out the stat cache's racy window so it vouches for them."""
        super().write(ref, files, kind)
        time.sleep(RACY_WINDOW_NS / 1e9 * 2)
        return ref

    def content(self) -> LocalContentStore:
        project = self.project()
        store = project.content()
        project.close()
        assert isinstance(store, LocalContentStore)
        return store

    def restart(self) -> None:
        """Leave the marker as a restart of the machine would: written in another boot."""
        data = json.loads(self.marker.read_text())
        data["boot_id"] = "a-boot-before-this-one"
        self.marker.write_text(json.dumps(data))

    def tear(self, digest: str, keep: int = 0) -> Path:
        """Damage an object as a lost write-back does: its name stays, its bytes do not."""
        path = self.objects / digest[:2] / digest[2:]
        path.chmod(0o644)
        with path.open("r+b") as fh:
            fh.truncate(keep)
        path.chmod(0o444)
        return path


@pytest.fixture
def proj(tmp_path: Path) -> Project:
    return Project(tmp_path / "p")


def digest_of(proj: Project, revision: str, name: str) -> str:
    manifest = proj.content().get_manifest(revision)
    return next(e.digest for e in manifest.entries if e.path == name)


def latest(proj: Project) -> str:
    revision = json.loads(proj.ok("ls", "--json").stdout)[0]["revision"]
    assert isinstance(revision, str)
    return revision


def test_staging_leaves_a_durable_marker_and_promote_flushes(proj: Project) -> None:
    revision = proj.stage_files(REF, {"a.py": "print('a')\n", "b.sql": "select 1;\n"})
    marker = json.loads(proj.marker.read_text())
    assert marker["boot_id"] == boot_id() and isinstance(marker["since_ns"], int)
    assert not list(proj.objects.glob("unflushed.*")) + list(proj.objects.glob("tmp/*"))
    proj.ok("promote", REF)
    assert not proj.marker.exists()
    assert (proj.root / "stages" / "staging" / "app" / "a.py").read_text() == "print('a')\n"
    # Nothing new to flush: the next stage of the same bytes writes no object, no marker.
    assert "unchanged" in proj.ok("stage", REF).stdout
    assert not proj.marker.exists()
    assert latest(proj) == revision


@pytest.mark.parametrize(
    ("settings", "marker"),
    [("fsync: true\n    flush: stage", False), ("fsync: false", False), ("flush: promote", True)],
)
def test_flush_settings(tmp_path: Path, settings: str, marker: bool) -> None:
    proj = Project(tmp_path / "p", config=f"plugins:\n  local:\n    {settings}\n")
    proj.stage_files(REF, {"a.py": "x = 1\n"})
    assert proj.marker.exists() is marker


def test_a_restart_takes_torn_objects_and_sync_stores_them_again(proj: Project) -> None:
    files = {"a.py": "print('a')\n", "big.bin": os.urandom(300 << 10), "c.txt": "c\n"}
    revision = proj.stage_files(REF, files)
    again = json.loads(proj.ok("stage", REF, "--json").stdout)
    assert again["hashed"] == 0  # from now on the stat cache vouches for the revision
    torn = digest_of(proj, revision, "big.bin")
    proj.tear(torn, keep=4096)
    proj.restart()

    result = proj.ok("sync")  # the first command to open the store checks, then repairs
    assert "the machine restarted before objects written since" in result.stderr
    assert "checked 4 object(s)" in result.stderr  # three files and the manifest
    assert "1 was damaged and removed" in result.stderr
    assert "1 staged" not in result.stdout and "unchanged" in result.stdout  # same revision
    # The object written again is covered by a marker of this boot.
    assert json.loads(proj.marker.read_text())["boot_id"] == boot_id()
    store = proj.content()
    assert store.verify(torn) and store.lost() == frozenset()
    proj.ok("promote", REF)
    assert (proj.root / "stages" / "staging" / "app" / "big.bin").read_bytes() == files["big.bin"]
    assert not (proj.objects / "lost").exists()  # the promote's flush emptied the list
    assert proj.ok("verify").exit_code == 0


def test_until_restaged_a_lost_object_is_reported_by_name(proj: Project) -> None:
    revision = proj.stage_files(REF, {"a.py": "print('a')\n"})
    proj.tear(digest_of(proj, revision, "a.py"))
    proj.restart()
    assert "1 was damaged" in proj.ok("ls").stderr
    assert json.loads((proj.objects / "lost").read_text()) == [digest_of(proj, revision, "a.py")]
    report = proj.cli("verify")
    assert report.exit_code == 1 and "was lost when the machine restarted" in report.stdout
    refused = proj.cli("promote", REF)
    assert refused.exit_code != 0 and "Traceback" not in refused.stderr
    assert "was lost when the machine restarted" in refused.stderr
    assert "'lockgate sync' stores it again" in refused.stderr
    assert not (proj.root / "stages" / "staging" / "app").exists()
    proj.ok("stage", REF)
    proj.ok("promote", REF)


def test_a_torn_manifest_is_written_again(proj: Project) -> None:
    revision = proj.stage_files(REF, {"a.py": "print('a')\n"})
    proj.tear(revision, keep=10)
    proj.restart()
    assert "1 was damaged" in proj.ok("stage", REF).stderr
    assert proj.content().get_manifest(revision).entries[0].path == "a.py"
    assert "no changes" in proj.ok("diff", REF, revision[:12]).stdout
    proj.ok("promote", REF)


def test_a_changed_workspace_after_a_restart_stages_a_new_revision(proj: Project) -> None:
    first = proj.stage_files(REF, {"a.py": "one\n", "b.py": "two\n"})
    proj.tear(digest_of(proj, first, "b.py"))
    proj.tear(first)  # the manifest too: the new revision has nothing to diff against
    proj.restart()
    proj.write(REF, {"a.py": "one, edited\n"})
    result = proj.ok("stage", REF)
    assert "staged" in result.stdout and "2 were damaged" in result.stderr
    second = latest(proj)
    assert second != first
    store = proj.content()
    assert store.verify(digest_of(proj, second, "b.py"))


def test_objects_older_than_the_marker_are_not_checked(proj: Project) -> None:
    proj.stage_files(REF, {"old.py": "old\n"})
    proj.ok("promote", REF)  # flushed: no marker
    old = {p: p.stat().st_ctime_ns for p in proj.objects.glob("??/*")}
    time.sleep(0.05)
    proj.stage_files(REF, {"old.py": "old\n", "new.py": "new\n"})
    new = [p.stat().st_ctime_ns for p in proj.objects.glob("??/*") if p not in old]
    assert len(new) == 2 and min(new) > max(old.values())  # new.py and the new manifest
    proj.restart()
    # The marker's time, less the clock margin, falls between the old and the new objects.
    data = json.loads(proj.marker.read_text())
    data["since_ns"] = min(new) + CLOCK_MARGIN_NS
    proj.marker.write_text(json.dumps(data))
    assert "checked 2 object(s)" in proj.ok("ls").stderr


def test_an_object_renamed_into_place_after_the_marker_is_checked(proj: Project) -> None:
    """Its bytes may be older than the marker (hashing a large file takes time), but its
    rename into place is not: recovery looks at the later of mtime and ctime."""
    revision = proj.stage_files(REF, {"a.py": "print('a')\n"})
    torn = proj.tear(digest_of(proj, revision, "a.py"))
    long_ago = 1_000_000_000
    os.utime(torn, ns=(long_ago, long_ago))  # the mtime is old; the ctime becomes now
    proj.restart()
    assert "1 was damaged" in proj.ok("ls").stderr


def test_a_repair_killed_midway_forgets_nothing(proj: Project) -> None:
    files = {"a.py": "print('a')\n", "b.py": "print('b')\n"}
    revision = proj.stage_files(REF, files)
    torn = [digest_of(proj, revision, name) for name in files]
    for digest in torn:
        proj.tear(digest)
    proj.restart()
    killed = run_lockgate(
        "-C",
        str(proj.root),
        "ls",
        cwd=proj.root,
        env={"LOCKGATE_FAILPOINTS": "store.repair.removing"},
    )
    assert killed.returncode == -signal.SIGKILL
    assert sorted(json.loads((proj.objects / "lost").read_text())) == sorted(torn)
    assert "2 were damaged" in proj.ok("sync").stderr  # checked again, same verdict
    store = proj.content()
    assert all(store.verify(d) for d in torn) and store.lost() == frozenset()
    proj.ok("promote", REF)


def test_a_release_built_from_torn_objects_is_rebuilt_once_they_are_stored_again(
    proj: Project,
) -> None:
    revision = proj.stage_files(REF, {"a.py": "print('a')\n"})
    proj.ok("validate", REF)  # builds the release: hardlinks to the unflushed objects
    release = proj.root / ".lockgate" / "releases" / revision
    assert (release / "a.py").read_text() == "print('a')\n"
    proj.tear(digest_of(proj, revision, "a.py"))  # the release's file shares the inode
    proj.restart()
    assert "1 was damaged" in proj.ok("sync").stderr
    proj.ok("promote", REF)  # the release no stage used is rebuilt from the store
    assert (proj.root / "stages" / "staging" / "app" / "a.py").read_text() == "print('a')\n"
    assert proj.ok("verify").exit_code == 0


def test_a_marker_of_this_boot_is_left_alone(proj: Project) -> None:
    revision = proj.stage_files(REF, {"a.py": "print('a')\n"})
    before = proj.marker.read_bytes()
    result = proj.ok("ls")
    assert "restarted" not in result.stderr
    assert proj.marker.read_bytes() == before
    assert proj.content().lost() == frozenset()
    assert revision


def test_a_torn_marker_still_means_a_restart(proj: Project) -> None:
    revision = proj.stage_files(REF, {"a.py": "print('a')\n"})
    proj.tear(digest_of(proj, revision, "a.py"))
    proj.marker.write_bytes(b"\0\0\0")  # the marker's own bytes never reached the disk
    assert "1 was damaged" in proj.ok("ls").stderr


def test_a_flush_during_a_batch_flushes_and_leaves_its_marker(proj: Project) -> None:
    proj.write(REF, {"a.py": "a\n"})
    writer, flusher = proj.content(), proj.content()
    writer.put_bytes(b"written before another process flushes\n")  # a batch is open
    assert proj.marker.exists()
    assert flusher.sync() is None and flusher.flushes == 1  # e.g. a promote elsewhere
    assert proj.marker.exists()  # the batch still relies on it
    writer.put_bytes(b"written after the flush, same batch\n")
    writer.put_manifest(Manifest((FileEntry("a.py", "file", 2, "0" * 64),)))
    assert writer.flushes == 0 and proj.marker.exists()
    flusher.sync()  # the batch is over: this flush takes the marker
    assert flusher.flushes == 2 and not proj.marker.exists()
    writer.put_bytes(b"a new batch\n")  # finds no marker, so creates one
    assert proj.marker.exists()


def test_a_batch_in_another_thread_keeps_the_marker_through_a_flush(proj: Project) -> None:
    proj.write(REF, {"a.py": "a\n"})
    writer, flusher = proj.content(), proj.content()
    published = threading.Event()

    def stage() -> None:  # objects on a pool thread, as large files are
        writer.put_bytes(b"from a thread\n")
        published.set()

    thread = threading.Thread(target=stage)
    thread.start()
    thread.join(10)
    assert published.is_set()
    flusher.sync()
    assert proj.marker.exists()  # the writer process's batch is still open
    writer.put_manifest(Manifest((FileEntry("a.py", "file", 2, "0" * 64),)))
    flusher.sync()
    assert not proj.marker.exists()


def test_flushes_take_turns(proj: Project) -> None:
    """A flush never removes a marker another flush moved aside and is still flushing."""
    proj.write(REF, {"a.py": "a\n"})
    first, second, writer = proj.content(), proj.content(), proj.content()
    first.put_bytes(b"one\n")
    first.put_manifest(Manifest((FileEntry("a.py", "file", 2, "0" * 64),)))
    in_syncfs, release = threading.Event(), threading.Event()

    def slow_syncfs() -> None:
        in_syncfs.set()
        assert release.wait(10)

    thread = threading.Thread(target=first._journal.flush, args=(slow_syncfs,))
    thread.start()
    assert in_syncfs.wait(10)
    assert (proj.objects / "unflushed.flushing").exists()
    writer.put_bytes(b"published while the first flush runs\n")  # a new marker
    writer.put_manifest(Manifest((FileEntry("b.py", "file", 2, "1" * 64),)))
    assert proj.marker.exists()
    other = threading.Thread(target=second.sync)
    other.start()
    other.join(0.3)
    assert other.is_alive()  # the second flush waits its turn...
    assert proj.marker.exists()  # ...and the first does not take the new marker
    release.set()
    thread.join(10)
    other.join(10)
    assert not proj.marker.exists() and not (proj.objects / "unflushed.flushing").exists()
    assert second.flushes == 1


def test_a_repair_during_a_batch_hands_the_marker_to_this_boot(proj: Project) -> None:
    revision = proj.stage_files(REF, {"a.py": "print('a')\n"})
    proj.tear(digest_of(proj, revision, "a.py"))
    writer = proj.content()
    writer.put_bytes(b"a batch of this boot, open during the repair\n")
    proj.restart()
    assert "1 was damaged" in proj.ok("ls").stderr
    assert json.loads(proj.marker.read_text())["boot_id"] == boot_id()
    assert "restarted" not in proj.ok("ls").stderr  # repaired once, not at every open


def test_objects_stay_read_only_through_a_repair(proj: Project) -> None:
    revision = proj.stage_files(REF, {"a.py": "print('a')\n"})
    proj.tear(digest_of(proj, revision, "a.py"))
    proj.restart()
    proj.ok("sync")
    path = proj.objects / digest_of(proj, revision, "a.py")[:2]
    for obj in path.iterdir():
        assert stat.S_IMODE(obj.stat().st_mode) == 0o444


def test_a_promote_flushes_its_release_even_when_the_store_has_nothing_to_flush(
    proj: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An executable is copied into its release (a hardlink would share the object's
    mode): those bytes are new whatever the store's marker says."""
    proj.write(REF, {"run.sh": "#!/bin/sh\necho hi\n"})
    (proj.component_dir(REF) / "run.sh").chmod(0o755)
    proj.ok("stage", REF)
    proj.content().sync()  # the store is flushed: no marker, nothing of its own to flush
    assert not proj.marker.exists()
    import lockgate.builtin_plugins.local_releases as durability

    flushed: list[str] = []
    real = durability.syncfs

    def watched(path: str | Path) -> None:  # the real flush, and where it was asked for
        flushed.append(str(path))
        real(path)

    monkeypatch.setattr(durability, "syncfs", watched)
    proj.ok("promote", REF)
    release = proj.root / ".lockgate" / "releases" / latest(proj)
    assert str(release) in flushed
    assert (proj.root / "stages" / "staging" / "app" / "run.sh").stat().st_mode & 0o111
    # Flushed once: the next switch to the same release (here, the next stage) is a rename.
    flushed.clear()
    proj.ok("promote", REF, "--to", "integration")
    assert flushed == []
    # With durability off (scratch projects), a new release is not flushed either.
    proj.write(REF, {"run.sh": "#!/bin/sh\necho hello\n"})
    proj.ok("stage", REF, LOCKGATE__PLUGINS__LOCAL__FSYNC="false")
    proj.ok("promote", REF, LOCKGATE__PLUGINS__LOCAL__FSYNC="false")
    assert flushed == []
    proj.ok("promote", REF)  # durability back on: this release is flushed before it is used
    assert str(proj.root / ".lockgate" / "releases" / latest(proj)) in flushed


def test_a_clock_set_back_lowers_the_marker_time(proj: Project) -> None:
    """Objects published after the clock went back must still fall after the marker's
    time (less the margin), or a repair would not look at them."""
    proj.write(REF, {"a.py": "a\n"})
    writer = proj.content()
    writer.put_bytes(b"a batch before the clock is set back\n")
    data = json.loads(proj.marker.read_text())
    ahead = time.time_ns() + 3600 * 1_000_000_000  # as if the clock then went back an hour
    proj.marker.write_text(json.dumps({**data, "since_ns": ahead}))
    writer.put_manifest(Manifest((FileEntry("a.py", "file", 2, "0" * 64),)))

    other = proj.content()  # a new batch, here: in another process
    before = time.time_ns()
    other.put_bytes(b"published after the clock went back\n")
    since = json.loads(proj.marker.read_text())["since_ns"]
    assert before - CLOCK_MARGIN_NS <= since <= time.time_ns()
    assert json.loads(proj.marker.read_text())["boot_id"] == boot_id()

    # Within an open batch too: the marker is set ahead again, the next object lowers it.
    proj.marker.write_text(json.dumps({**data, "since_ns": ahead}))
    other._journal._floor = ahead - CLOCK_MARGIN_NS  # what the batch read when it began
    other.put_bytes(b"same batch, later\n")
    assert json.loads(proj.marker.read_text())["since_ns"] <= time.time_ns()


def test_a_restage_that_stores_lost_objects_closes_its_batch(proj: Project) -> None:
    """The revision is the same, so none is recorded; its batch still ends."""
    revision = proj.stage_files(REF, {"a.py": "print('a')\n"})
    proj.tear(digest_of(proj, revision, "a.py"))
    proj.restart()
    project = proj.project()
    try:
        from lockgate.operations.stage import Stager

        result = Stager(project).stage(REF)
        assert not result.created and result.revision == revision
        import fcntl

        fd = os.open(proj.objects / "publish.lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # no batch holds it any more
        finally:
            os.close(fd)
        project.content().sync()
        assert not proj.marker.exists()  # so a flush can take the marker
    finally:
        project.close()


def test_a_verification_stamp_from_another_boot_is_not_trusted(proj: Project) -> None:
    """A restart can take bytes that were never flushed and leave every stat as it was;
    damage that shows in no stat stands in for that here."""
    revision = proj.stage_files(REF, {"a.py": "print('a')\n"})
    proj.ok("promote", REF)  # verifies the release and stamps it
    release = proj.root / ".lockgate" / "releases" / revision
    stamp = release.with_name(f"{revision}.verified")
    path = release / "a.py"
    st = path.stat()
    path.chmod(0o644)
    path.write_text("print('b')\n")  # same size, other bytes
    path.chmod(0o444)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.link(path, proj.root / "extra-link")  # a new link count: the stamp allows a new ctime
    data = json.loads(stamp.read_text())
    assert data["boot"] == boot_id()
    stamp.write_text(json.dumps({**data, "boot": "a-boot-before-this-one"}))

    refused = proj.cli("promote", REF, "--to", "integration")
    assert refused.exit_code != 0 and "Traceback" not in refused.stderr
    assert "does not match its digest" in refused.stderr


def test_gc_forgets_lost_objects_no_kept_revision_needs(proj: Project) -> None:
    first = proj.stage_files(REF, {"a.py": "print('a')\n", "b.py": "print('b')\n"})
    lost = {digest_of(proj, first, "a.py"), digest_of(proj, first, "b.py")}
    for digest in lost:
        proj.tear(digest)
    proj.restart()
    assert "2 were damaged" in proj.ok("ls").stderr
    proj.ok("gc", "--keep", "1")
    assert proj.content().lost() == lost  # the latest revision still needs both
    # The workspace moves on without them, and a new revision is staged.
    (proj.component_dir(REF) / "a.py").write_text("print('a, edited')\n")
    (proj.component_dir(REF) / "b.py").unlink()
    assert "staged" in proj.ok("stage", REF).stdout
    assert proj.content().lost() == lost  # never stored again
    proj.ok("gc", "--keep", "1", "--dry-run")
    assert proj.content().lost() == lost  # a dry run changes nothing
    proj.ok("gc", "--keep", "1")
    assert proj.content().lost() == frozenset()  # no kept revision needs them now
    assert not (proj.objects / "lost").exists()
    project = proj.project()
    try:
        gcs = [e for e in project.state().events() if e.action == "gc"]
    finally:
        project.close()
    assert [e.details["lost_forgotten"] for e in gcs] == [0, 2]
