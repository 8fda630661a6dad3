"""Staging's limits and interruptions, as real processes: deep trees, sparse files,
SIGTERM, SIGHUP and kill -9 never leave a broken revision or a temporary file behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ENV, run_lockgate, subprocess_env
from lockgate.contracts.manifest import MAX_DEPTH

COMP = Path("workspaces/alice/scripts/etl")


def lg(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``lockgate -C root ARGS`` in a real subprocess."""
    return run_lockgate("-C", str(root), *args, cwd=root, env={**ENV, **(env or {})})


def project(root: Path) -> Path:
    assert lg(root, "init").returncode == 0
    comp = root / COMP
    comp.mkdir(parents=True)
    return comp


def nest(base: Path, levels: int) -> Path:
    """``levels`` nested directories ``d/d/…`` under ``base`` (created relative to each
    other: the full path may be longer than the system accepts in one call)."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(levels):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        leaf = os.open("leaf.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf, b"deep\n")
        os.close(leaf)
    finally:
        os.close(fd)
    return base


def test_a_tree_1000_levels_deep_is_refused_at_staging_with_its_limit(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """1,000 directory levels: staging refuses in one line naming the limit (exit 2),
    records nothing, and every other command goes on (before, it staged, and promote
    ended in a RecursionError, exit 5)."""
    comp = project(tmp_path)
    nest(comp, 1000)
    # pytest's recursive clean-up of tmp_path would hit the recursion limit: rm does not.
    request.addfinalizer(lambda: subprocess.run(["rm", "-rf", str(comp)], check=True))
    done = lg(tmp_path, "stage", "alice:etl")
    assert done.returncode == 2, done.stderr
    assert f"more than {MAX_DEPTH} directory levels" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    for args in (["ls"], ["verify"], ["gc", "--grace", "0"], ["sync"]):
        again = lg(tmp_path, *args)
        assert again.returncode in (0, 1), (args, again.stderr)
        assert "internal error" not in again.stderr and "Traceback" not in again.stderr


def test_a_tree_at_the_depth_limit_stages_promotes_verifies_and_is_collected(
    tmp_path: Path,
) -> None:
    """Up to the limit, a deep tree goes the whole way: stage, promote (release built),
    verify, roll back, gc removing its release, and verify again."""
    comp = project(tmp_path)
    nest(comp, MAX_DEPTH - 1)
    for args in (
        ["stage", "alice:etl"],
        ["promote", "alice:etl", "--to", "staging"],
        ["verify"],
    ):
        done = lg(tmp_path, *args)
        assert done.returncode == 0, (args, done.stderr)
    (comp / "top.txt").write_text("next\n")
    for args in (
        ["stage", "alice:etl"],
        ["promote", "alice:etl", "--to", "staging"],
        ["gc", "--keep", "1", "--grace", "0"],
        ["rollback", "etl"],
        ["verify"],
        ["rollback", "etl", "--to", "none"],
        ["gc", "--keep", "1", "--grace", "0"],
        ["verify"],
    ):
        done = lg(tmp_path, *args)
        assert done.returncode == 0, (args, done.stderr)


def test_a_sparse_file_counts_with_its_logical_size(tmp_path: Path) -> None:
    """A sparse file takes almost no disk but is stored (and deployed) at its logical
    size, so that is what the staging limits count: one over ``max_file_size``, and
    several that together pass ``max_component_size``, are refused (exit 2)."""
    comp = project(tmp_path)
    limits = {
        "LOCKGATE__STAGING__MAX_FILE_SIZE": str(8 << 20),
        "LOCKGATE__STAGING__MAX_COMPONENT_SIZE": str(20 << 20),
    }
    with open(comp / "hole.bin", "wb") as fh:
        fh.truncate(9 << 20)  # 9 MiB logical, no data written
    assert (comp / "hole.bin").stat().st_blocks * 512 < (1 << 20)
    one = lg(tmp_path, "stage", "alice:etl", env=limits)
    assert one.returncode == 2 and "more than plugins.limits.staging_max_file_size" in one.stderr
    (comp / "hole.bin").unlink()
    for i in range(3):
        with open(comp / f"hole{i}.bin", "wb") as fh:
            fh.truncate(7 << 20)
    many = lg(tmp_path, "stage", "alice:etl", env=limits)
    assert many.returncode == 2
    assert "more than plugins.limits.staging_max_component_size" in many.stderr
    assert not list((tmp_path / ".lockgate" / "objects").glob("??/*"))


def _paused_staging(root: Path, pauses: Path) -> subprocess.Popen[str]:
    """``lockgate stage alice:etl`` paused right after copying its one large file into a
    temporary object (failpoint ``store.after_copy:pause``)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "lockgate", "-C", str(root), "stage", "alice:etl"],
        env=subprocess_env(
            ENV,
            {"LOCKGATE_FAILPOINTS": "store.after_copy:pause", "LOCKGATE_PAUSE_DIR": str(pauses)},
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Run from a background job, this process may have SIGINT ignored, and the child
        # would inherit that (and wait at the pause for ever); a user's terminal delivers it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    paused = pauses / "store.after_copy.paused"
    while not paused.exists():
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before pausing: {proc.stderr}")
        time.sleep(0.01)
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_staging_stopped_by_a_signal_leaves_no_temporary_file(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """A real process stopped by SIGTERM, SIGHUP or SIGINT while a temporary object
    exists: one line, exit 130, no temporary file, no revision (before, SIGTERM and
    SIGHUP killed it on the spot and the temporary object stayed)."""
    comp = project(tmp_path)
    (comp / "big.bin").write_bytes(os.urandom(1 << 20))
    tmp = tmp_path / ".lockgate" / "objects" / "tmp"
    pauses = tmp_path / "pauses"
    pauses.mkdir()
    proc = _paused_staging(tmp_path, pauses)
    assert list(tmp.iterdir()), "the failpoint is after the temporary object is written"
    try:
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # it ignored the signal: do not leave it to the next test
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (proc.returncode, err)
    assert err.strip() == "lockgate: error: interrupted"
    assert not list(tmp.iterdir())
    assert "unchanged" not in lg(tmp_path, "stage", "alice:etl").stdout


def test_the_next_staging_removes_what_a_killed_one_left(tmp_path: Path) -> None:
    """``kill -9`` runs no cleanup: the temporary object of the killed process stays
    until the next staging, which removes it once its writer is gone (and it is older
    than a minute: a live writer in another pid namespace is never disturbed)."""
    comp = project(tmp_path)
    (comp / "big.bin").write_bytes(os.urandom(1 << 20))
    tmp = tmp_path / ".lockgate" / "objects" / "tmp"
    killed = lg(tmp_path, "stage", "alice:etl", env={"LOCKGATE_FAILPOINTS": "store.after_copy"})
    assert killed.returncode == -signal.SIGKILL
    (left,) = tmp.iterdir()
    (comp / "other.txt").write_text("fresh\n")
    assert lg(tmp_path, "stage", "alice:etl").returncode == 0
    assert left.exists()  # too recent: it could belong to a writer this process cannot see
    old = time.time() - 120
    os.utime(left, (old, old))
    (comp / "other.txt").write_text("fresher\n")
    assert lg(tmp_path, "stage", "alice:etl").returncode == 0
    assert not left.exists()
    assert json.loads(lg(tmp_path, "--json", "verify").stdout)["ok"]


def test_a_crafted_manifest_deeper_than_the_limit_is_refused_not_a_recursion_error(
    tmp_path: Path,
) -> None:
    """A manifest no staging could make (1,000 levels), stored by hand and made the
    latest revision with SQL: promoting it is refused in one line when its release would
    be built (by the gate, then by the switch with --force), never an internal error."""
    import sqlite3

    from lockgate.contracts.manifest import FileEntry, Manifest, digest_bytes

    comp = project(tmp_path)
    (comp / "run.py").write_text("print(1)\n")
    assert lg(tmp_path, "stage", "alice:etl").returncode == 0
    data = b"deep\n"
    objects = tmp_path / ".lockgate" / "objects"
    digest = digest_bytes(data)
    (objects / digest[:2]).mkdir(exist_ok=True)
    (objects / digest[:2] / digest[2:]).write_bytes(data)
    manifest = Manifest((FileEntry("d/" * 1000 + "leaf.txt", "file", len(data), digest),))
    revision = digest_bytes(manifest.canonical())
    (objects / revision[:2]).mkdir(exist_ok=True)
    (objects / revision[:2] / revision[2:]).write_bytes(manifest.canonical())
    db = sqlite3.connect(tmp_path / ".lockgate" / "state.db")
    with db:
        db.execute(
            "INSERT INTO revisions (component, revision, created_at, actor, stage, files, "
            "size, parent) SELECT component, ?, created_at, actor, stage, 1, 5, NULL "
            "FROM revisions WHERE component = 'alice:etl'",
            (revision,),
        )
        db.execute("UPDATE components SET latest_revision = ?", (revision,))
    db.close()
    gated = lg(tmp_path, "promote", "alice:etl", "--to", "staging")
    assert gated.returncode == 1, gated.stderr  # the gate cannot build what it validates
    forced = lg(tmp_path, "promote", "alice:etl", "--to", "staging", "--force", "--reason", "try")
    assert forced.returncode == 2, forced.stderr  # and the switch refuses to build it
    for done in (gated, forced):
        assert f"more than {MAX_DEPTH} directory levels" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert "internal error" not in done.stderr and "Traceback" not in done.stderr


# Runs lockgate in this interpreter and records its peak resident set (VmHWM, which a
# new program starts afresh, unlike getrusage's ru_maxrss: that one keeps what the forked
# test worker had) into the file named by argv[1] at exit.
PEAK = """
import atexit, sys
out = sys.argv[1]
def peak():
    with open("/proc/self/status") as fh, open(out, "w") as dest:
        dest.write(next(line for line in fh if line.startswith("VmHWM:")))
atexit.register(peak)
sys.argv = ["lockgate", *sys.argv[2:]]
from lockgate.cli.launch import main
main()
"""


def _peak_mib(root: Path, *args: str, env: dict[str, str]) -> float:
    """Run ``lockgate -C root ARGS``; its peak resident memory in MiB (exit 0 asserted)."""
    out = root / "peak.txt"
    done = subprocess.run(
        [sys.executable, "-c", PEAK, str(out), "-C", str(root), *args],
        env=subprocess_env(ENV, env),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, (args, done.stderr)
    return int(out.read_text().split()[1]) / 1024  # "VmHWM:   92160 kB"


@pytest.mark.slow
def test_memory_stays_flat_as_a_file_grows(tmp_path: Path) -> None:
    """Staging, promoting and verifying one 320 MiB file hash it a window at a time:
    the peak resident memory of each command stays far below the file's size."""
    comp = project(tmp_path)
    block = bytes(range(256)) * 4096  # 1 MiB, not all zeros
    with open(comp / "big.bin", "wb") as fh:
        for n in range(320):
            fh.write(block[n:] + block[:n])
    limits = {
        f"LOCKGATE__PLUGINS__LIMITS__{key}": str(1 << 30)
        for key in ("MAX_FILE_SIZE", "STAGING_MAX_FILE_SIZE")
    }
    peaks = {
        "stage": _peak_mib(tmp_path, "stage", "alice:etl", env=limits),
        "promote": _peak_mib(tmp_path, "promote", "alice:etl", env=limits),
        "verify": _peak_mib(tmp_path, "verify", env=limits),
    }
    assert all(peak < 200 for peak in peaks.values()), peaks
