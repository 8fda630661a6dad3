"""Staging refuses unsafe input cleanly: a one-line error naming the offending path or
name, no partial object, no revision, and nothing outside the project touched.

Every refusal test builds the same world: a project whose component ``alice:comp`` has
one staged revision (the baseline), and a sentinel ``etc/passwd`` beside the project (the
target the escaping symlinks aim at). :class:`Guard` snapshots the content store, the
component's latest revision and everything outside the project before the refused
operation, and checks afterwards that none of it changed.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from lockgate.builtin_plugins import local_store
from lockgate.contracts.manifest import digest_bytes
from lockgate.contracts.source import FileStat
from lockgate.errors import ConflictError, InputError
from lockgate.operations.init import init_project
from lockgate.operations.stage import Stager, StageResult
from lockgate.testing import open_project as _open_project
from lockgate.testing import run_cli

REF = "alice:comp"
ENVIRON = {"LOCKGATE_DISABLE_PLUGINS": "teamdefaults"}
SECRET = b"root:x:0:0:sentinel outside the project:/root:/bin/sh\n"
BASELINE = b"baseline content of real.txt\n"


# ---------------------------------------------------------------------- helpers


@attrs.define
class World:
    """A project with one staged component, and a sentinel beside it."""

    tmp_path: Path
    root: Path
    comp: Path
    secret: Path
    baseline: str


def _open(root: Path) -> Any:
    return _open_project(root, environ=ENVIRON)


def stage_in_process(root: Path, ref: str = REF) -> StageResult:
    project = _open(root)
    try:
        return Stager(project).stage(ref)
    finally:
        project.close()


def latest_revision(root: Path, ref: str = REF) -> str | None:
    project = _open(root)
    try:
        record = project.state().component(ref)
        return record.latest_revision if record is not None else None
    finally:
        project.close()


def objects_dir(root: Path) -> Path:
    return root / ".lockgate" / "objects"


def stored_objects(root: Path) -> set[str]:
    """Digests of every published object (the ``tmp/`` area excluded)."""
    base = objects_dir(root)
    if not base.is_dir():
        return set()
    found = set()
    for path in base.rglob("*"):
        rel = path.relative_to(base)
        if rel.parts[0] != "tmp" and path.is_file():
            found.add("".join(rel.parts))
    return found


def temp_leftovers(root: Path) -> list[str]:
    tmp = objects_dir(root) / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []


def snapshot_outside(tmp_path: Path, project: Path) -> dict[str, tuple[Any, ...]]:
    """Listing, modes, mtimes and contents of everything under tmp_path but the project."""
    seen: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(tmp_path):
        if Path(dirpath) == tmp_path:
            dirnames[:] = [d for d in dirnames if d != project.name]
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            st = path.lstat()
            content: Any = None
            if stat.S_ISREG(st.st_mode):
                content = path.read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                content = str(path.readlink())
            seen[path.relative_to(tmp_path).as_posix()] = (
                st.st_mode,
                st.st_size,
                st.st_mtime_ns,
                content,
            )
    return seen


@attrs.define
class Guard:
    """What must not change when an operation is refused."""

    world: World
    objects: set[str]
    revision: str | None
    outside: dict[str, tuple[Any, ...]]

    @classmethod
    def take(cls, world: World) -> Guard:
        return cls(
            world,
            stored_objects(world.root),
            latest_revision(world.root),
            snapshot_outside(world.tmp_path, world.root),
        )

    def assert_untouched(self) -> None:
        w = self.world
        assert temp_leftovers(w.root) == [], "a partial object was left in objects/tmp"
        assert stored_objects(w.root) == self.objects, "objects were stored by a refused stage"
        assert latest_revision(w.root) == self.revision, "a revision was recorded"
        assert snapshot_outside(w.tmp_path, w.root) == self.outside, "outside was changed"
        assert digest_bytes(SECRET) not in stored_objects(w.root), "the sentinel was stored"


def assert_cli_error(*args: str, root: Path, naming: str, code: int = 2) -> str:
    """The CLI failed with ``code`` and exactly one error line on stderr naming ``naming``."""
    result = run_cli(*args, project=root)
    assert result.exit_code == code, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lockgate: error: "), result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert naming in lines[0], (naming, lines[0])
    return lines[0]


def assert_stage_refused(world: World, naming: str, *words: str) -> None:
    """Staging alice:comp is refused in-process (InputError) and by the CLI (exit 2),
    naming ``naming`` plus ``words``; the guard holds after each attempt."""
    guard = Guard.take(world)
    with pytest.raises(InputError) as info:
        stage_in_process(world.root)
    message = str(info.value)
    assert "\n" not in message
    assert naming in message, message
    for word in words:
        assert word in message, (word, message)
    guard.assert_untouched()
    assert_cli_error("stage", REF, root=world.root, naming=naming)
    guard.assert_untouched()


def set_staging_limit(root: Path, key: str, value: int) -> None:
    config = root / "lockgate.yaml"
    import yaml

    data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    data.setdefault("plugins", {}).setdefault("limits", {})[f"staging_{key}"] = value
    config.write_text(yaml.safe_dump(data), encoding="utf-8")


@pytest.fixture
def world(tmp_path: Path) -> World:
    root = tmp_path / "project"
    init_project(root)
    sentinel_dir = tmp_path / "etc"
    sentinel_dir.mkdir()
    secret = sentinel_dir / "passwd"
    secret.write_bytes(SECRET)
    comp = root / "workspaces" / "alice" / "scripts" / "comp"
    comp.mkdir(parents=True)
    (comp / "real.txt").write_bytes(BASELINE)
    baseline = stage_in_process(root).revision
    assert latest_revision(root) == baseline
    return World(tmp_path, root, comp, secret, baseline)


# ---------------------------------------------------------------------- 1. references


@pytest.mark.parametrize(
    ("ref", "offending"),
    [
        pytest.param("ws:..", "'..'", id="dotdot-component"),
        pytest.param("../x:comp", "'../x'", id="dotdot-workspace"),
        pytest.param("a/b:c", "'a/b'", id="slash-in-workspace"),
        pytest.param("/etc:x", "'/etc'", id="absolute-workspace"),
        pytest.param("ws\x00:x", repr("ws\x00"), id="nul"),
        pytest.param("ws\x01:x", repr("ws\x01"), id="control-char"),
        pytest.param("nocolon", "'nocolon'", id="no-colon"),
    ],
)
def test_stage_refuses_unsafe_ref_with_one_line_exit_2(
    world: World, ref: str, offending: str
) -> None:
    guard = Guard.take(world)
    line = assert_cli_error("stage", ref, root=world.root, naming=offending)
    assert "\x00" not in line and "\x01" not in line  # shown escaped, never raw
    guard.assert_untouched()
    with pytest.raises(InputError, match=re.escape(offending)):
        stage_in_process(world.root, ref)
    guard.assert_untouched()


# ---------------------------------------------------------------------- 2. symlinks


def test_stage_refuses_symlink_climbing_out_of_the_component(world: World) -> None:
    leak = world.comp / "leak"
    leak.symlink_to("../../../../../etc/passwd")
    assert leak.resolve() == world.secret.resolve()  # it really reaches the sentinel
    assert_stage_refused(world, str(leak), "points outside the component")


def test_stage_refuses_absolute_symlink(world: World) -> None:
    link = world.comp / "abs"
    link.symlink_to(str(world.secret))
    assert_stage_refused(world, str(link), "absolute path")


def test_stage_refuses_symlink_escaping_through_another_symlink(world: World) -> None:
    # Lexically dot/.. is ".", but physically dot is the component, so dot/.. is its parent.
    (world.comp / "dot").symlink_to(".")
    esc = world.comp / "esc"
    esc.symlink_to("dot/..")
    assert esc.resolve() == world.comp.parent.resolve()
    assert_stage_refused(world, str(esc), "resolves outside the component")


def test_stage_refuses_dangling_symlink_escaping_through_another_symlink(
    world: World,
) -> None:
    (world.comp / "dot").symlink_to(".")
    esc = world.comp / "esc"
    esc.symlink_to("dot/../gone")  # physically <type dir>/gone: outside, and missing
    assert os.path.realpath(esc) == str(world.comp.parent.resolve() / "gone")
    assert_stage_refused(world, str(esc), "outside the component")


def test_stage_refuses_symlink_loop(world: World) -> None:
    (world.comp / "a").symlink_to("b")
    (world.comp / "b").symlink_to("a")
    guard = Guard.take(world)
    with pytest.raises(InputError, match=r"symlink loop") as info:
        stage_in_process(world.root)
    assert re.search(re.escape(str(world.comp)) + r"/[ab]: ", str(info.value))
    guard.assert_untouched()
    line = assert_cli_error("stage", REF, root=world.root, naming="symlink loop")
    assert re.search(re.escape(str(world.comp)) + r"/[ab]: ", line)
    guard.assert_untouched()


def test_stage_stores_symlink_that_stays_inside_as_a_symlink(world: World) -> None:
    (world.comp / "link").symlink_to("real.txt")
    (world.comp / "sub").mkdir()
    (world.comp / "sub" / "up").symlink_to("../real.txt")
    result = run_cli("stage", REF, project=world.root)
    assert result.exit_code == 0, result
    revision = latest_revision(world.root)
    assert revision is not None and revision != world.baseline
    project = _open(world.root)
    try:
        manifest = project.content().get_manifest(revision)
    finally:
        project.close()
    entries = {e.path: e for e in manifest.entries}
    assert entries["link"].kind == "symlink" and entries["link"].target == "real.txt"
    assert entries["sub/up"].kind == "symlink" and entries["sub/up"].target == "../real.txt"
    assert entries["real.txt"].kind == "file"
    assert temp_leftovers(world.root) == []


# ---------------------------------------------------------------------- 3. special files


def test_stage_refuses_fifo(world: World) -> None:
    fifo = world.comp / "pipe"
    os.mkfifo(fifo)
    assert_stage_refused(world, str(fifo), "is a FIFO")  # and never blocks opening it


def test_stage_refuses_unix_socket(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Bind by a relative name so the path fits in sun_path however long tmp_path is.
    monkeypatch.chdir(world.comp)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind("sock")
        assert stat.S_ISSOCK(os.lstat(world.comp / "sock").st_mode)
        assert_stage_refused(world, str(world.comp / "sock"), "is a socket")
    finally:
        sock.close()


def test_stage_refuses_device_node(world: World) -> None:
    dev = world.comp / "null"
    try:
        os.mknod(dev, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs privileges")
    except OSError as exc:  # pragma: no cover - depends on the container
        if exc.errno in (errno.EPERM, errno.EACCES, errno.EINVAL):
            pytest.skip(f"cannot create a device node here: {exc}")
        raise
    assert_stage_refused(world, str(dev), "is a device")


# ---------------------------------------------------------------------- 4. modified while staged


def _patch_after_first_read(
    monkeypatch: pytest.MonkeyPatch, name: str, target: Path, extra: bytes
) -> list[bytes]:
    """Wrap ``os.<name>`` so that, after its first read of ``target``, ``extra`` is
    appended to ``target`` (a writer racing the stage). Returns the bytes read."""
    real: Callable[..., Any] = getattr(os, name)
    ino = target.stat().st_ino
    got: list[bytes] = []

    def racing(fd: int, *args: Any) -> Any:
        rv = real(fd, *args)
        if os.fstat(fd).st_ino == ino:
            if name == "readv":
                got.append(bytes(memoryview(args[0][0])[:rv]))
            else:
                got.append(bytes(rv))
            if len(got) == 1:
                with open(target, "ab") as fh:
                    fh.write(extra)
        return rv

    monkeypatch.setattr(local_store.os, name, racing)
    return got


def test_ingest_refuses_file_changed_since_its_scan(world: World) -> None:
    path = world.comp / "real.txt"
    expected = FileStat.of(os.lstat(path))
    with open(path, "ab") as fh:
        fh.write(b"edited after the scan\n")
    guard = Guard.take(world)
    project = _open(world.root)
    try:
        store = project.content()
        assert isinstance(store, local_store.LocalContentStore)
        with pytest.raises(ConflictError, match=re.escape(f"{path}: changed")) as info:
            store.ingest(path, expected)
    finally:
        project.close()
    assert "\n" not in str(info.value)
    guard.assert_untouched()
    assert digest_bytes(path.read_bytes()) not in stored_objects(world.root)


def test_stage_refuses_small_file_modified_while_read(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = world.comp / "small.txt"
    path.write_bytes(b"small file, first version\n")
    guard = Guard.take(world)
    with monkeypatch.context() as mp:
        got = _patch_after_first_read(mp, "read", path, b"racing writer\n")
        with pytest.raises(ConflictError, match=re.escape(f"{path}: was modified")):
            stage_in_process(world.root)
    assert got and got[0] == b"small file, first version\n"
    guard.assert_untouched()
    assert digest_bytes(got[0]) not in stored_objects(world.root)


def test_stage_refuses_large_file_modified_while_streamed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = world.comp / "big.bin"
    original = os.urandom(local_store.BUFFER + 4096)  # > 1 MiB: the kernel-copy path
    path.write_bytes(original)
    ino = path.stat().st_ino
    real = os.copy_file_range
    copied: list[int] = []

    def racing(src: int, dst: int, count: int, *args: Any) -> int:
        n = real(src, dst, min(count, 1 << 16), *args)  # small steps, so there is a "during"
        if os.fstat(src).st_ino == ino:
            copied.append(n)
            if len(copied) == 1:
                with open(path, "ab") as fh:
                    fh.write(b"appended by a racing writer")
        return n

    guard = Guard.take(world)
    with monkeypatch.context() as mp:
        mp.setattr(local_store.os, "copy_file_range", racing)
        refused = re.escape(f"{path}: ") + "(changed size|was modified while being staged)"
        with pytest.raises(ConflictError, match=refused) as info:
            stage_in_process(world.root)
    assert "\n" not in str(info.value)
    assert len(copied) >= 2, "the patch never raced the copy"
    partial = path.read_bytes()[: sum(copied)]
    after = stored_objects(world.root)
    for candidate in (original, partial, original[: copied[0]], path.read_bytes()):
        assert digest_bytes(candidate) not in after
    guard.assert_untouched()
    # Once edits settle, staging again works: the failure left nothing poisoned behind.
    result = stage_in_process(world.root)
    assert result.created and latest_revision(world.root) == result.revision
    assert digest_bytes(path.read_bytes()) in stored_objects(world.root)


# ---------------------------------------------------------------------- 5. limits


def test_stage_refuses_file_over_max_file_size(world: World) -> None:
    set_staging_limit(world.root, "max_file_size", 40)
    big = world.comp / "big.txt"
    big.write_bytes(b"x" * 41)
    assert_stage_refused(world, str(big), "plugins.limits.staging_max_file_size", "41 bytes")


def test_stage_refuses_component_over_max_component_size(world: World) -> None:
    set_staging_limit(world.root, "max_component_size", 60)
    (world.comp / "more.txt").write_bytes(b"y" * 40)  # each file small, the sum is not
    assert_stage_refused(world, REF, "plugins.limits.staging_max_component_size")


def test_stage_refuses_component_over_max_files(world: World) -> None:
    set_staging_limit(world.root, "max_files", 2)
    (world.comp / "two.txt").write_bytes(b"2")
    (world.comp / "three.txt").write_bytes(b"3")
    assert_stage_refused(world, REF, "plugins.limits.staging_max_files", "3 files")


# ---------------------------------------------------------------------- 6. file names


@pytest.mark.parametrize(
    ("rel", "shown", "problem"),
    [
        pytest.param([b"bad\xff.txt"], "bad\\xff.txt", "not valid UTF-8", id="non-utf8-file"),
        pytest.param(
            [b"dir\xfe", b"ok.txt"], "dir\\xfe", "not valid UTF-8", id="non-utf8-directory"
        ),
        pytest.param([b"tab\tname.txt"], "tab\\tname.txt", "control characters", id="control"),
    ],
)
def test_stage_refuses_unportable_file_name(
    world: World, rel: list[bytes], shown: str, problem: str
) -> None:
    # os.fsdecode maps undecodable bytes to surrogates, which encode back byte for byte.
    target = world.comp.joinpath(*(os.fsdecode(part) for part in rel))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"content under an unportable name\n")
    assert os.fsencode(target).endswith(b"/".join(rel))
    assert_stage_refused(world, shown, problem)
    # Deterministic: the same refusal, word for word, every time.
    messages = set()
    for _ in range(3):
        with pytest.raises(InputError) as info:
            stage_in_process(world.root)
        messages.add(str(info.value))
    assert len(messages) == 1


# ---------------------------------------------------------------------- 7. bad ids on disk


def test_sync_reports_bad_component_ids_and_still_stages_the_good_one(world: World) -> None:
    scripts = world.comp.parent
    bad_contents = {}
    for bad in ("-bad", "has space"):
        (scripts / bad).mkdir()
        data = f"payload of {bad!r}\n".encode()
        (scripts / bad / "f.txt").write_bytes(data)
        bad_contents[bad] = data
    good = scripts / "fresh"
    good.mkdir()
    (good / "ok.txt").write_bytes(b"good component\n")
    outside = snapshot_outside(world.tmp_path, world.root)

    result = run_cli("sync", project=world.root)

    assert result.exit_code == 1, result
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for bad in ("-bad", "has space"):
        failed = [ln for ln in lines if ln.startswith(f"{scripts / bad}: FAILED: ")]
        assert len(failed) == 1, result.stdout
        assert f"component id {bad!r}" in failed[0]
        assert "A-Za-z0-9" in failed[0]  # the reason says what a valid id looks like
        assert digest_bytes(bad_contents[bad]) not in stored_objects(world.root)
    assert any(ln.startswith("alice:fresh: staged ") for ln in lines), result.stdout
    assert lines[-1] == "found 4, staged 1, unchanged 1, failed 2"
    assert latest_revision(world.root, "alice:fresh") is not None
    assert latest_revision(world.root) == world.baseline
    assert temp_leftovers(world.root) == []
    assert snapshot_outside(world.tmp_path, world.root) == outside


# ---------------------------------------------------------------------- self-checks


def test_guard_notices_changes_outside_the_project(world: World) -> None:
    guard = Guard.take(world)
    world.secret.write_bytes(SECRET + b"tampered\n")
    with pytest.raises(AssertionError, match="outside was changed"):
        guard.assert_untouched()


def test_stage_ignores_component_directory_that_is_a_symlink_out_of_the_project(
    world: World,
) -> None:
    evil = world.comp.parent / "evil"
    evil.symlink_to(world.secret.parent)
    guard = Guard.take(world)
    assert_cli_error("stage", "alice:evil", root=world.root, naming="'alice:evil'")
    guard.assert_untouched()
    result = run_cli("sync", project=world.root)
    assert result.exit_code == 0, result
    assert "evil" not in result.stdout
    guard.assert_untouched()
