"""verify and gc against real processes: what a recorded revision needs is never taken,
what gc took is never selected, and damage is reported, never a crash."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ENV, run_lockgate, subprocess_env

COMP = Path("workspaces/alice/scripts/etl")


def lg(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``lockgate -C root ARGS`` in a real subprocess."""
    return run_lockgate("-C", str(root), *args, cwd=root, env={**ENV, **(env or {})})


def init(root: Path) -> None:
    assert lg(root, "init").returncode == 0
    (root / COMP).mkdir(parents=True)


def stage(root: Path, files: dict[str, str]) -> str:
    """Write ``files`` into alice:etl and stage it; return the command's output."""
    for name, text in files.items():
        (root / COMP / name).write_text(text)
    done = lg(root, "stage", "alice:etl")
    assert done.returncode == 0, done.stderr
    return done.stdout


def objects_of_latest(root: Path) -> list[Path]:
    """The object files the latest revision of alice:etl needs (read with SQL and the
    manifest's JSON, not through lockgate)."""
    import json
    import sqlite3

    db = sqlite3.connect(root / ".lockgate" / "state.db")
    try:
        (revision,) = db.execute(
            "SELECT latest_revision FROM components WHERE component = 'alice:etl'"
        ).fetchone()
    finally:
        db.close()
    objects = root / ".lockgate" / "objects"
    manifest = json.loads((objects / revision[:2] / revision[2:]).read_bytes())
    paths = [objects / revision[:2] / revision[2:]]
    for entry in manifest["files"]:
        if entry["kind"] != "symlink":
            paths.append(objects / entry["digest"][:2] / entry["digest"][2:])
    return paths


def wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    """Wait until ``path`` exists (the process reached its pause point) or it exits."""
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"exited {proc.returncode} before pausing:\n{out}\n{err}")
        time.sleep(0.01)


def test_gc_racing_a_staging_that_reuses_an_old_object_never_takes_it(tmp_path: Path) -> None:
    """A → B → A: the third staging reuses the object of A, which only the first revision
    needs (not live, not the latest), so it is "unneeded" to gc. The staging is paused
    (failpoint) after it decided to reuse that object and before it records its
    revision; gc runs in another process meanwhile. Afterwards the latest revision has
    every object it needs, verify passes, and gc again takes nothing it needs."""
    init(tmp_path)
    stage(tmp_path, {"run.py": "A\n"})
    stage(tmp_path, {"run.py": "B\n"})
    (tmp_path / COMP / "run.py").write_text("A\n")
    pauses = tmp_path / "pauses"
    pauses.mkdir()
    staging = subprocess.Popen(
        [sys.executable, "-m", "lockgate", "-C", str(tmp_path), "stage", "alice:etl"],
        env=subprocess_env(
            ENV,
            {
                "LOCKGATE_FAILPOINTS": "stage.after_objects:pause",
                "LOCKGATE_PAUSE_DIR": str(pauses),
            },
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(pauses / "stage.after_objects.paused", staging)
        collected = lg(
            tmp_path,
            "gc",
            "--keep",
            "1",
            "--grace",
            "0",
            env={"LOCKGATE__STATE__LOCK_TIMEOUT": "1"},
        )
    finally:
        (pauses / "stage.after_objects.resume").touch()
        out, err = staging.communicate(timeout=60)
    assert staging.returncode == 0, err
    assert "staged" in out
    missing = [p for p in objects_of_latest(tmp_path) if not p.exists()]
    assert not missing, f"the latest revision needs objects gc took: {missing}"
    assert lg(tmp_path, "verify").returncode == 0
    # gc waited for the staging's lock and gave up with one line (exit 4), took nothing.
    assert collected.returncode == 4, collected.stderr
    assert "staging in progress" in collected.stderr
    assert "Traceback" not in collected.stderr
    # Once the staging is recorded, gc runs and keeps what the latest revision needs.
    again = lg(tmp_path, "gc", "--keep", "1", "--grace", "0")
    assert again.returncode == 0, again.stderr
    assert all(p.exists() for p in objects_of_latest(tmp_path))
    assert lg(tmp_path, "verify").returncode == 0


def test_restaging_stores_again_an_object_the_latest_revision_lost(tmp_path: Path) -> None:
    """An object of the latest revision deleted behind lockgate's back: the next stage of
    the unchanged files notices, stores it again from the workspace and says so, instead
    of answering "unchanged" and leaving the revision broken."""
    init(tmp_path)
    stage(tmp_path, {"run.py": "print(1)\n", "lib.py": "x = 1\n"})
    victim = objects_of_latest(tmp_path)[1]
    victim.chmod(0o644)
    victim.unlink()
    assert lg(tmp_path, "verify").returncode == 1
    out = stage(tmp_path, {})
    assert "stored 1 missing object again" in out
    assert victim.exists()
    assert lg(tmp_path, "verify").returncode == 0
    # And when the manifest itself is gone, it is written again too.
    manifest = objects_of_latest(tmp_path)[0]
    manifest.chmod(0o644)
    manifest.unlink()
    out = stage(tmp_path, {})
    assert "missing object" in out
    assert manifest.exists()
    assert lg(tmp_path, "verify").returncode == 0


def promote(root: Path, text: str) -> str:
    """Stage ``run.py`` = ``text`` and promote it to staging; return the revision prefix."""
    import re

    out = stage(root, {"run.py": text})
    revision = re.search(r"staged ([0-9a-f]{12})", out)
    assert revision, out
    done = lg(root, "promote", "alice:etl", "--to", "staging")
    assert done.returncode == 0, done.stderr
    return revision.group(1)


def rollback(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = lg(root, "rollback", "etl", *args)
    assert "Traceback" not in done.stderr
    return done


def test_rollback_never_selects_a_revision_gc_collected(tmp_path: Path) -> None:
    """Promotions and rollbacks, then ``gc --keep 1 --grace 0``: every rollback meaning
    either lands on a deployable revision or refuses in one line naming what gc took;
    verify passes after every step (before the fix, the first rollback made last-good a
    collected revision: verify exit 1, the next rollback exit 2)."""
    init(tmp_path)
    v1 = promote(tmp_path, "v1\n")
    promote(tmp_path, "v2\n")
    v3 = promote(tmp_path, "v3\n")
    assert rollback(tmp_path).returncode == 0  # v3 → v2 (v3 condemned)
    assert rollback(tmp_path, "--to", "previous").returncode == 0  # v2 → v3
    assert rollback(tmp_path).returncode == 0  # v3 → v2
    v4 = promote(tmp_path, "v4\n")
    assert lg(tmp_path, "gc", "--keep", "1", "--grace", "0").returncode == 0
    assert lg(tmp_path, "verify").returncode == 0
    back = rollback(tmp_path)  # v4 → v2, whose last-good (v1) gc collected
    assert back.returncode == 0, back.stderr
    assert lg(tmp_path, "verify").returncode == 0
    again = rollback(tmp_path)  # last-good would be v1: gone, and said so
    assert again.returncode == 1, again.stderr
    assert "collected" in again.stderr and v1 in again.stderr
    named = rollback(tmp_path, "--to", v1)
    assert named.returncode == 1, named.stderr
    assert "collected by gc" in named.stderr
    condemned = rollback(tmp_path, "--to", v3)  # v3 was collected too
    assert condemned.returncode == 1 and "collected by gc" in condemned.stderr
    forward = rollback(tmp_path, "--to", "previous")  # v2 → v4: gc keeps "previous"
    assert forward.returncode == 0, forward.stderr
    assert v4 in forward.stdout
    assert lg(tmp_path, "verify").returncode == 0


def test_last_good_skips_a_collected_revision_and_says_so(tmp_path: Path) -> None:
    """When the last-good revision was collected but an older good one is still
    deployable, rollback goes there and names the one it skipped."""
    init(tmp_path)
    v1 = promote(tmp_path, "shared\n")
    v2 = promote(tmp_path, "v2\n")
    promote(tmp_path, "v3\n")
    promote(tmp_path, "v4\n")
    # keep 1: current v4, previous/last-good v3; v1 and v2 are collected.
    assert lg(tmp_path, "gc", "--keep", "1", "--grace", "0").returncode == 0
    # v1's files come back as the latest revision (staged, not promoted): deployable again.
    assert v1 in stage(tmp_path, {"run.py": "shared\n"})
    assert rollback(tmp_path).returncode == 0  # v4 → v3 (v4 condemned)
    skipped = rollback(tmp_path)  # last-good v2 is gone: skipped; v1 is deployable
    assert skipped.returncode == 0, skipped.stderr
    assert f"→ {v1}" in skipped.stdout and f"skipped {v2}" in skipped.stdout
    assert lg(tmp_path, "verify").returncode == 0


def test_verify_lists_every_damaged_or_missing_manifest_and_object_and_goes_on(
    tmp_path: Path,
) -> None:
    """Three components promoted: one's manifest is overwritten, one's manifest deleted,
    one's file object deleted. verify names each, exits 1 and never aborts (it exited 4
    at the first damaged manifest, 2 at the first missing one)."""
    assert lg(tmp_path, "init").returncode == 0
    objects = tmp_path / ".lockgate" / "objects"
    revisions = {}
    for cid in ("one", "two", "three"):
        comp = tmp_path / "workspaces" / "alice" / "scripts" / cid
        comp.mkdir(parents=True)
        (comp / "run.py").write_text(f"print({cid!r})\n")
        done = lg(tmp_path, "--json", "stage", f"alice:{cid}")
        assert done.returncode == 0, done.stderr
        import json

        revisions[cid] = json.loads(done.stdout)["revision"]
        assert lg(tmp_path, "promote", f"alice:{cid}", "--to", "staging").returncode == 0

    def obj(digest: str) -> Path:
        path = objects / digest[:2] / digest[2:]
        path.chmod(0o644)
        return path

    obj(revisions["one"]).write_bytes(b"not a manifest at all")
    obj(revisions["two"]).unlink()
    import json

    manifest = json.loads(obj(revisions["three"]).read_bytes())
    obj(manifest["files"][0]["digest"]).unlink()
    checked = lg(tmp_path, "verify")
    assert checked.returncode == 1, checked.stderr
    assert "Traceback" not in checked.stderr and checked.stderr == ""
    out = checked.stdout
    assert revisions["one"][:12] in out and "corrupt" in out
    assert revisions["two"][:12] in out and "not in the content store" in out
    assert manifest["files"][0]["digest"][:12] in out and "is missing" in out
    as_json = lg(tmp_path, "--json", "verify")
    assert as_json.returncode == 1
    assert len(json.loads(as_json.stdout)["problems"]) >= 3


def test_a_trusted_completeness_stamp_still_notices_a_removed_object(tmp_path: Path) -> None:
    """The local store answers "what is missing" from a stamp of its fan-out directories
    (no stat per object); removing an object changes its directory, so even a stamp that
    trusts every directory notices, and the restage stores it again."""
    from lockgate.builtin_plugins import local_store
    from lockgate.operations.stage import Stager
    from lockgate.testing import open_project

    init(tmp_path)
    stage(tmp_path, {f"f{i}.txt": f"{i}\n" for i in range(40)})
    time.sleep(0.05)  # past the file system's timestamp tick: the stamp's ctimes settle
    project = open_project(tmp_path, environ=ENV)
    try:
        stager = Stager(project)
        assert not stager.stage("alice:etl").created  # the stamp settles, all trusted
        stamps = tmp_path / ".lockgate" / "cache" / local_store.STAMPS_DIRNAME
        (stamp,) = stamps.iterdir()
        assert None not in json.loads(stamp.read_text()).values()
        victim = objects_of_latest(tmp_path)[7]
        victim.chmod(0o644)
        victim.unlink()
        again = stager.stage("alice:etl")
        assert again.repaired == 1 and victim.exists()
    finally:
        project.close()
    assert lg(tmp_path, "verify").returncode == 0


def test_staging_leaves_a_completeness_stamp_so_the_next_restage_stats_no_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staging notes, under the staging lock, that every object of the revision it just
    recorded is stored: the first unchanged restage after it looks at (almost) no object
    (it used to stat every object once, most of its time on 10,000 files)."""
    from lockgate.builtin_plugins import local_store
    from lockgate.operations.stage import Stager
    from lockgate.testing import open_project

    init(tmp_path)
    stage(tmp_path, {f"f{i}.txt": f"{i}\n" for i in range(40)})
    stamps = tmp_path / ".lockgate" / "cache" / local_store.STAMPS_DIRNAME
    assert len(list(stamps.iterdir())) == 1
    time.sleep(0.05)  # past the file system's timestamp tick
    looked: list[str] = []
    real_isfile = local_store.os.path.isfile
    monkeypatch.setattr(local_store.os.path, "isfile", lambda p: looked.append(p) or real_isfile(p))
    project = open_project(tmp_path, environ=ENV)
    try:
        assert not Stager(project).stage("alice:etl").created
    finally:
        project.close()
    # Only the objects of a directory written in staging's last timestamp tick (its
    # manifest's, usually) are looked at again; without the stamp, all 41 were.
    assert len([p for p in looked if "/objects/" in p]) < 10
