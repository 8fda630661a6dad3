"""Staging: revisions are content-addressed, deduplicated, cached, and round-trip exactly."""

from __future__ import annotations

import os
import random
import stat
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockgate import NotFoundError
from lockgate.contracts.manifest import FileEntry, Manifest
from lockgate.contracts.refs import ComponentRef
from lockgate.operations.init import init_project
from lockgate.operations.stage import Stager
from lockgate.testing import open_project, run_cli

ENV = {"LOCKGATE_DISABLE_PLUGINS": "teamdefaults"}


def make_project(root: Path, files: dict[str, bytes], *, ref: str = "alice:etl") -> Path:
    init_project(root)
    ws, cid = ref.split(":")
    comp = root / "workspaces" / ws / "scripts" / cid
    for rel, data in files.items():
        path = comp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    comp.mkdir(parents=True, exist_ok=True)
    return comp


def tree_of(root: Path) -> dict[str, tuple[bytes, bool]]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[path.relative_to(root).as_posix()] = (
                path.read_bytes(),
                bool(path.stat().st_mode & stat.S_IXUSR),
            )
    return out


def test_unchanged_restage_creates_no_revision_and_hashes_nothing(tmp_path: Path) -> None:
    make_project(tmp_path, {"run.py": b"print(1)\n", "lib/util.py": b"x = 1\n"})
    project = open_project(tmp_path, environ=ENV)
    first = Stager(project).stage("alice:etl")
    assert first.created and first.hashed == 2
    time.sleep(0.06)  # let the files age past the racy window of the first cache write
    Stager(project).stage("alice:etl")  # may re-hash racily clean files once
    again = Stager(project).stage("alice:etl")
    assert not again.created
    assert again.hashed == 0
    assert again.revision == first.revision
    assert len(project.state().revisions("alice:etl")) == 1
    assert "unchanged" in again.summary()


def test_same_size_edit_with_restored_mtime_is_still_detected(tmp_path: Path) -> None:
    comp = make_project(tmp_path, {"a.txt": b"aaaa"})
    project = open_project(tmp_path, environ=ENV)
    first = Stager(project).stage("alice:etl")
    st0 = (comp / "a.txt").stat()
    time.sleep(0.01)
    (comp / "a.txt").write_bytes(b"bbbb")
    os.utime(comp / "a.txt", ns=(st0.st_atime_ns, st0.st_mtime_ns))  # ctime still moves
    second = Stager(project).stage("alice:etl")
    assert second.created and second.revision != first.revision
    assert second.diff.modified == ("a.txt",)


def test_racily_clean_file_is_hashed_again(tmp_path: Path) -> None:
    comp = make_project(tmp_path, {"a.txt": b"aaaa"})
    project = open_project(tmp_path, environ=ENV)
    Stager(project).stage("alice:etl")
    cache = tmp_path / ".lockgate" / "cache" / "stat" / "alice" / "etl"
    written = (comp / "a.txt").stat().st_mtime_ns

    def restage_with_cache_written_at(ns: int) -> int:
        os.utime(cache, ns=(ns, ns))
        return Stager(project).stage("alice:etl").hashed

    # Cache written 10 ms after the file: within the timestamp granularity, so the
    # file may have changed unseen after it was hashed — it must be hashed again.
    assert restage_with_cache_written_at(written + 10_000_000) == 1
    # Cache written a second after the file: the stat cache can vouch for it.
    assert restage_with_cache_written_at(written + 1_000_000_000) == 0


def test_objects_are_read_only_and_shared_across_components(tmp_path: Path) -> None:
    make_project(tmp_path, {"same.txt": b"shared bytes"})
    make_project(tmp_path, {"other/same.txt": b"shared bytes"}, ref="bob:etl")
    project = open_project(tmp_path, environ=ENV)
    a = Stager(project).stage("alice:etl")
    b = Stager(project).stage("bob:etl")
    content = project.content()
    entry_a = content.get_manifest(a.revision).entries[0]
    entry_b = content.get_manifest(b.revision).entries[0]
    assert entry_a.digest == entry_b.digest
    obj = content.object_path(entry_a.digest)  # type: ignore[attr-defined]
    assert stat.S_IMODE(obj.stat().st_mode) == 0o444
    objects = list((tmp_path / ".lockgate" / "objects").glob("??/*"))
    assert len(objects) == 3  # one file object, two manifests


def test_dry_run_stores_and_records_nothing(tmp_path: Path) -> None:
    make_project(tmp_path, {"a.txt": b"a"})
    project = open_project(tmp_path, environ=ENV)
    result = Stager(project).stage("alice:etl", dry_run=True)
    assert result.created and result.dry_run
    assert project.state().component("alice:etl") is None
    assert not (tmp_path / ".lockgate" / "objects").exists() or not any(
        p.is_file() for p in (tmp_path / ".lockgate" / "objects").rglob("*")
    )


def test_stage_records_audit_event_and_status(tmp_path: Path) -> None:
    make_project(tmp_path, {"a.txt": b"a"})
    project = open_project(tmp_path, environ=ENV)
    project.actor_override = "carol"
    Stager(project).stage("alice:etl", to="integration", reason="first cut")
    record = project.state().component("alice:etl")
    assert record is not None and record.status.value == "staged"
    from lockgate.contracts.state import EventFilter

    (event,) = project.state().events(EventFilter(component="alice:etl"))
    assert (event.action, event.actor, event.stage, event.reason) == (
        "stage",
        "carol",
        "integration",
        "first cut",
    )


def test_unknown_stage_and_component_are_clear_errors(tmp_path: Path) -> None:
    make_project(tmp_path, {"a.txt": b"a"})
    result = run_cli("stage", "alice:etl", "--to", "prod", project=tmp_path, env=ENV)
    assert result.exit_code == 2
    assert "no stage 'prod'" in result.stderr
    result = run_cli("stage", "alice:elt", project=tmp_path, env=ENV)
    assert result.exit_code == 2
    assert "no component 'alice:elt'" in result.stderr and "did you mean 'etl'" in result.stderr
    with pytest.raises(NotFoundError):
        Stager(open_project(tmp_path, environ=ENV)).stage("nobody:etl")


def test_sync_counts_and_isolates_a_failing_component(tmp_path: Path) -> None:
    make_project(tmp_path, {"a.txt": b"a"})
    make_project(tmp_path, {"b.txt": b"b"}, ref="bob:good")
    broken = make_project(tmp_path, {"c.txt": b"c"}, ref="bob:broken")
    (broken / "component.yaml").write_text("ownres: [x]\n")
    result = run_cli("--json", "sync", project=tmp_path, env=ENV)
    assert result.exit_code == 1
    data = result.json()
    assert (data["found"], data["staged"], data["unchanged"], data["failed"]) == (3, 2, 0, 1)
    (failure,) = data["failures"]
    assert "did you mean 'owners'" in failure["reason"]
    again = run_cli("--json", "sync", "alice", project=tmp_path, env=ENV).json()
    assert (again["found"], again["staged"], again["unchanged"]) == (1, 0, 1)


def test_sync_dry_run_shows_changes_without_staging(tmp_path: Path) -> None:
    make_project(tmp_path, {"a.txt": b"a"})
    result = run_cli("sync", "--dry-run", project=tmp_path, env=ENV)
    assert result.exit_code == 0
    assert "would stage" in result.stdout
    assert run_cli("--json", "ls", project=tmp_path, env=ENV).json()[0]["status"] == "new"


def test_ls_reports_revision_status_and_local_changes(tmp_path: Path) -> None:
    comp = make_project(tmp_path, {"a.txt": b"a"})
    run_cli("stage", "alice:etl", project=tmp_path, env=ENV)
    (comp / "b.txt").write_text("new")
    (row,) = run_cli("--json", "ls", project=tmp_path, env=ENV).json()
    assert (row["component"], row["type"], row["status"]) == ("alice:etl", "scripts", "staged")
    assert row["change"] == "changed: +1 ~0 -0"


def test_diff_between_workspace_and_revisions_with_patch(tmp_path: Path) -> None:
    comp = make_project(tmp_path, {"a.txt": b"one\n", "gone.txt": b"x"})
    first = run_cli("--json", "stage", "alice:etl", project=tmp_path, env=ENV).json()["revision"]
    (comp / "a.txt").write_text("two\n")
    (comp / "gone.txt").unlink()
    (comp / "new.txt").write_text("n")
    live = run_cli("--json", "diff", "alice:etl", project=tmp_path, env=ENV).json()
    assert (live["added"], live["modified"], live["removed"]) == (
        ["new.txt"],
        ["a.txt"],
        ["gone.txt"],
    )
    second = run_cli("--json", "stage", "alice:etl", project=tmp_path, env=ENV).json()["revision"]
    result = run_cli(
        "diff", "alice:etl", first[:8], second[:8], "--patch", project=tmp_path, env=ENV
    )
    assert result.exit_code == 0, result.stderr
    assert "-one\n+two\n" in result.stdout
    assert "  D gone.txt" in result.stdout
    bad = run_cli("diff", "alice:etl", "zzzz", project=tmp_path, env=ENV)
    assert bad.exit_code == 2 and "has no revision 'zzzz'" in bad.stderr


def test_memory_state_store_plays_the_same_role(tmp_path: Path) -> None:
    make_project(tmp_path, {"a.txt": b"a"})
    project = open_project(tmp_path, environ={**ENV, "LOCKGATE__STATE__STORE": "memory"})
    result = Stager(project).stage("alice:etl")
    assert project.state().component("alice:etl").latest_revision == result.revision  # type: ignore[union-attr]
    assert not (tmp_path / ".lockgate" / "state.db").exists()


@pytest.mark.parametrize("link", ["auto", "hardlink", "copy"])
def test_materialize_modes_give_identical_trees(tmp_path: Path, link: str) -> None:
    comp = make_project(tmp_path, {"run.sh": b"#!/bin/sh\necho hi\n", "d/data.bin": b"\x00\x01"})
    (comp / "run.sh").chmod(0o755)
    (comp / "alias").symlink_to("run.sh")
    project = open_project(tmp_path, environ=ENV)
    rev = Stager(project).stage("alice:etl").revision
    out = tmp_path / "out"
    project.content().materialize(project.content().get_manifest(rev), out, link)  # type: ignore[arg-type]
    assert tree_of(out) == tree_of(comp)
    assert (out / "alias").readlink() == Path("run.sh")


def test_materialize_refuses_a_crafted_manifest_that_escapes(tmp_path: Path) -> None:
    from lockgate import InputError

    make_project(tmp_path, {"a": b"a"})
    project = open_project(tmp_path, environ=ENV)
    content = project.content()
    digest = content.put_bytes(b"evil")
    for entries in (
        [FileEntry("../escape", "file", 4, digest)],
        [FileEntry("d", "symlink", 2, digest, ".."), FileEntry("d/x", "file", 4, digest)],
    ):
        with pytest.raises(InputError):
            content.materialize(Manifest(entries), tmp_path / "out")
    assert not (tmp_path / "escape").exists()


# --------------------------------------------------------------------------- property


def _storable(name: str) -> bool:
    from lockgate.builtin_plugins.workspace import is_default_ignored

    return not name.startswith(".") and not is_default_ignored(name, is_dir=False)


_name = st.text(alphabet="abcdefghij_-.0123456789", min_size=1, max_size=6).filter(_storable)
_files = st.dictionaries(
    st.lists(_name, min_size=1, max_size=3).map("/".join),
    st.tuples(st.binary(max_size=2048), st.booleans()),
    min_size=1,
    max_size=12,
)


def _write_tree(comp: Path, files: dict[str, tuple[bytes, bool]], order: list[str]) -> bool:
    dirs = {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
    if dirs & files.keys():
        return False  # a path is both a file and a directory: not a tree
    for rel in order:
        data, executable = files[rel]
        path = comp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o755 if executable else 0o644)
    return True


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(files=_files, data=st.data())
def test_random_trees_round_trip_and_ids_ignore_walk_order(
    tmp_path_factory: pytest.TempPathFactory,
    files: dict[str, tuple[bytes, bool]],
    data: st.DataObject,
) -> None:
    base = tmp_path_factory.mktemp("prop")
    revisions = []
    for attempt in range(2):
        root = base / f"p{attempt}"
        comp = make_project(root, {})
        order = data.draw(st.permutations(sorted(files)))
        if not _write_tree(comp, files, list(order)):
            return
        project = open_project(root, environ=ENV)
        result = Stager(project).stage(ComponentRef("alice", "etl"))
        out = root / "materialized"
        project.content().materialize(project.content().get_manifest(result.revision), out)
        assert tree_of(out) == tree_of(comp)
        revisions.append(result.revision)
        project.close()
    assert revisions[0] == revisions[1]


def test_cached_digest_whose_object_is_gone_is_stored_again(tmp_path: Path) -> None:
    comp = make_project(tmp_path, {"a.txt": b"alpha", "b.txt": b"beta"})
    project = open_project(tmp_path, environ=ENV)
    first = Stager(project).stage("alice:etl")
    cache = tmp_path / ".lockgate" / "cache" / "stat" / "alice" / "etl"
    aged = (comp / "a.txt").stat().st_mtime_ns + 1_000_000_000
    os.utime(cache, ns=(aged, aged))  # the stat cache vouches for both files
    project.close()
    # The state is lost (a fresh state store) and one object with it; the stat cache stays.
    (tmp_path / ".lockgate" / "state.db").unlink()
    entry = next(
        e
        for e in open_project(tmp_path, environ=ENV).content().get_manifest(first.revision).entries
        if e.path == "a.txt"
    )
    obj = tmp_path / ".lockgate" / "objects" / entry.digest[:2] / entry.digest[2:]
    obj.chmod(0o644)
    obj.unlink()
    project = open_project(tmp_path, environ=ENV)
    again = Stager(project).stage("alice:etl")
    assert again.revision == first.revision
    assert again.hashed == 1  # re-ingested from the workspace, not trusted from the cache
    assert project.content().verify(entry.digest)


def test_stage_component_skips_discovery_and_reports_a_vanished_directory(
    tmp_path: Path,
) -> None:
    import shutil

    root = tmp_path / "p"
    init_project(root)
    comp = root / "workspaces" / "alice" / "scripts" / "etl"
    comp.mkdir(parents=True)
    (comp / "run.py").write_text("X = 1\n")
    project = open_project(root, environ={"LOCKGATE_DISABLE_PLUGINS": "teamdefaults"})
    stager = Stager(project)
    (found,) = project.source().discover(["alice"]).components
    first = stager.stage_component(found)
    assert first.created
    (comp / "run.py").write_text("X = 2\n")
    second = stager.stage_component(found)
    assert second.created and second.revision != first.revision
    assert not stager.stage_component(found).created
    shutil.rmtree(comp)
    with pytest.raises(NotFoundError, match="is gone"):
        stager.stage_component(found)
    project.close()


def test_large_files_are_stored_on_threads_beside_small_ones(tmp_path: Path) -> None:
    from lockgate.operations.stage_store import LARGE_FILE

    rng = random.Random(3)
    files = {f"big/{i}.bin": rng.randbytes(LARGE_FILE + i) for i in range(6)}
    files.update({f"small/{i}.txt": f"small {i}\n".encode() for i in range(20)})
    files["big/same.bin"] = files["big/0.bin"]  # two large files, one object
    comp = make_project(tmp_path, files)
    (comp / "big" / "3.bin").chmod(0o755)
    project = open_project(tmp_path, environ=ENV)
    seen: list[tuple[int, int, int, int]] = []
    result = Stager(project).stage("alice:etl", progress=lambda *figures: seen.append(figures))
    assert result.created and result.hashed == len(files)
    # Reported as it goes (small files one by one, large ones as the threads get on),
    # in files and in bytes, never backwards, ending at the whole.
    size = sum(len(data) for data in files.values())
    assert seen[-1] == (len(files), len(files), size, size) and len(seen) >= 20
    for column in (0, 2):
        assert [f[column] for f in seen] == sorted(f[column] for f in seen)
    assert {(f[1], f[3]) for f in seen} == {(len(files), size)}
    out = tmp_path / "out"
    content = project.content()
    content.materialize(content.get_manifest(result.revision), out)
    assert tree_of(out) == tree_of(comp)
    objects = list((tmp_path / ".lockgate" / "objects").glob("??/*"))
    # One object per distinct content (big/same.bin shares big/0.bin's), plus the manifest.
    assert len(objects) == len(set(files.values())) + 1


def test_a_large_file_changing_midway_stops_the_threads_and_stores_no_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lockgate import ConflictError
    from lockgate.builtin_plugins.local_store import LocalContentStore
    from lockgate.operations.stage_store import LARGE_FILE

    rng = random.Random(5)
    files = {f"big/{i:02d}.bin": rng.randbytes(LARGE_FILE + i) for i in range(64)}
    comp = make_project(tmp_path, files)
    real = LocalContentStore.ingest
    calls: list[str] = []

    def ingest(self: LocalContentStore, path: str | Path, expected: object) -> tuple[str, int]:
        calls.append(str(path))
        if len(calls) == 3:  # an editor saves this file after the scan, before it is read
            with open(path, "ab") as fh:
                fh.write(b"edited")
        return real(self, path, expected)  # type: ignore[arg-type]

    monkeypatch.setattr(LocalContentStore, "ingest", ingest)
    project = open_project(tmp_path, environ=ENV)
    try:
        with pytest.raises(ConflictError, match="changed between scan and read"):
            Stager(project).stage("alice:etl")
        assert len(calls) < len(files)  # the other threads took no new file after it
        assert project.state().component("alice:etl") is None
        assert not list((tmp_path / ".lockgate" / "objects" / "tmp").iterdir())
    finally:
        project.close()
    assert comp.is_dir()


@pytest.mark.slow
def test_ctrl_c_while_threads_store_large_files_leaves_nothing_half_written(
    tmp_path: Path,
) -> None:
    """A real process, a real SIGINT while the store's threads are copying: exit 130, one
    line, and no temporary object left behind by a thread cut short."""
    import signal
    import subprocess

    from conftest import ENV, subprocess_env

    files = {f"big/{i:03d}.bin": os.urandom(1 << 20) for i in range(300)}
    make_project(tmp_path, files)
    objects = tmp_path / ".lockgate" / "objects"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lockgate", "-C", str(tmp_path), "stage", "alice:etl"],
        env=subprocess_env(ENV),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Run from a background job, this process may have SIGINT ignored, and the child
        # would inherit that; a user's terminal delivers it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 30
    while len(list(objects.glob("??/*"))) < 5 and proc.poll() is None:
        assert time.monotonic() < deadline, "staging never started storing objects"
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, err)
    assert err.strip() == "lockgate: error: interrupted"
    assert not list((objects / "tmp").iterdir())
    project = open_project(tmp_path, environ=ENV)
    try:
        assert project.state().component("alice:etl") is None
        content = project.content()
        assert all(content.verify(digest) for digest, _ in content.objects())
        assert Stager(project).stage("alice:etl").created  # and it stages cleanly after
    finally:
        project.close()


def test_ctrl_c_returns_only_once_every_thread_has_finished_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interrupt (a real SIGINT to the main thread) must not leave a store thread
    writing after the command has given up: it would exit under it."""
    import signal
    import threading

    from lockgate.builtin_plugins.local_store import LocalContentStore
    from lockgate.operations.stage_store import LARGE_FILE

    files = {f"big/{i:02d}.bin": os.urandom(LARGE_FILE) for i in range(32)}
    make_project(tmp_path, files)
    real = LocalContentStore.ingest
    busy: list[str] = []
    started: list[str] = []

    def ingest(self: LocalContentStore, path: str | Path, expected: object) -> tuple[str, int]:
        busy.append(str(path))
        started.append(str(path))
        try:
            if len(started) == 3:
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
                time.sleep(0.3)  # still storing when the main thread sees the interrupt
            return real(self, path, expected)  # type: ignore[arg-type]
        finally:
            busy.remove(str(path))

    monkeypatch.setattr(LocalContentStore, "ingest", ingest)
    # As at a terminal, even when the test run itself has SIGINT ignored (a background job).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    project = open_project(tmp_path, environ=ENV)
    try:
        with pytest.raises(KeyboardInterrupt):
            Stager(project).stage("alice:etl")
        assert busy == []
        assert len(started) < len(files)
        assert not list((tmp_path / ".lockgate" / "objects" / "tmp").iterdir())
        assert project.state().component("alice:etl") is None
    finally:
        project.close()
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize(
    "point", ["stage.after_objects", "stage.after_manifest", "stage.after_record"]
)
def test_a_staging_killed_at_each_step_leaves_the_project_consistent(
    tmp_path: Path, point: str
) -> None:
    """``kill -9`` at each step of a staging (real process, failpoint): no temporary
    file, every stored object whole, the revision recorded entirely or not at all, and
    staging again finishes the job with the same revision."""
    import signal

    from conftest import run_lockgate
    from lockgate.operations.stage_store import LARGE_FILE

    files = {f"big/{i}.bin": os.urandom(LARGE_FILE + i) for i in range(4)}
    files |= {"run.py": b"print(1)\n", "lib/util.py": b"x = 1\n"}
    comp = make_project(tmp_path, files)
    killed = run_lockgate(
        "-C",
        str(tmp_path),
        "stage",
        "alice:etl",
        cwd=tmp_path,
        env={**ENV, "LOCKGATE_FAILPOINTS": point},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not list((tmp_path / ".lockgate" / "objects" / "tmp").iterdir())
    project = open_project(tmp_path, environ=ENV)
    try:
        content = project.content()
        assert all(content.verify(digest) for digest, _ in content.objects())
        record = project.state().component("alice:etl")
        recorded = point == "stage.after_record"
        assert (record is not None) is recorded
        result = Stager(project).stage("alice:etl")
        assert result.created is not recorded
        assert [r.revision for r in project.state().revisions("alice:etl")] == [result.revision]
        out = tmp_path / "out"
        content.materialize(content.get_manifest(result.revision), out)
        assert tree_of(out) == tree_of(comp)
    finally:
        project.close()
    assert run_cli("verify", project=tmp_path, env=ENV).exit_code == 0


def _stage_on_a_terminal(root: Path, env: dict[str, str]) -> tuple[int, str]:
    """``lockgate stage alice:etl`` in a real subprocess whose stderr is a terminal."""
    import pty
    import subprocess

    from conftest import subprocess_env

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lockgate", "-C", str(root), "stage", "alice:etl"],
        stdout=subprocess.PIPE,
        stderr=follower,
        env=subprocess_env(ENV, {"COLUMNS": "120", "TERM": "xterm"}, env),
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert proc.stdout is not None
    with proc.stdout:
        proc.stdout.read()
    return proc.wait(timeout=60), seen.decode(errors="replace")


def test_a_progress_bar_shows_on_a_terminal_for_large_jobs_only(tmp_path: Path) -> None:
    rng = random.Random(5)
    make_project(tmp_path, {f"{i}.bin": rng.randbytes(300 << 10) for i in range(4)})
    code, terminal = _stage_on_a_terminal(tmp_path, {})
    assert code == 0 and "files" not in terminal  # 4 files, 1.2 MB: below both thresholds
    (tmp_path / "workspaces/alice/scripts/etl/0.bin").write_bytes(rng.randbytes(300 << 10))
    large = {"LOCKGATE__STAGING__PROGRESS_MIN_BYTES": str(256 << 10)}
    code, terminal = _stage_on_a_terminal(tmp_path, large)
    # Large by bytes (one file of 300 KiB to store), not by files: the bar is drawn.
    assert code == 0 and "staging alice:etl" in terminal and "1/1 files" in terminal
