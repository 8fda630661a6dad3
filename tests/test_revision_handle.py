"""What a target receives: a revision handle it reads from, and a directory only on
demand; and a target written for the 0.x signature still deploys."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from conftest import ENV, run_lockgate, write_distribution
from lockgate.contracts.manifest import FileEntry, Manifest
from lockgate.contracts.target import RevisionHandle
from lockgate.errors import ConflictError, InputError, MissingCapabilityError, NotFoundError
from lockgate.testing import MemoryContentStore


def _handle(files: dict[str, bytes]) -> tuple[RevisionHandle, MemoryContentStore]:
    store = MemoryContentStore()
    entries = [FileEntry(p, "file", len(d), store.put(io.BytesIO(d))) for p, d in files.items()]
    entries.append(FileEntry("link", "symlink", 5, "0" * 64, "run.py"))
    manifest = Manifest(entries)
    return RevisionHandle(store.put_manifest(manifest), manifest, store), store


def test_a_handle_streams_each_file_checked_against_its_digest() -> None:
    data = os.urandom(3 << 20)
    handle, _ = _handle({"run.py": b"print(1)\n", "big.bin": data})
    with handle.open("big.bin") as stream:
        got = b"".join(iter(lambda: stream.read(1 << 16), b""))
    assert got == data
    with handle.open("run.py") as stream:
        assert stream.read() == b"print(1)\n"


def test_a_handle_refuses_bytes_that_no_longer_match_their_digest() -> None:
    handle, store = _handle({"run.py": b"print(1)\n"})
    digest = handle.manifest.entries[-1].digest  # entries are sorted: run.py is last
    assert handle.manifest.entries[-1].path == "run.py"
    store._objects[digest] = (b"print(2)\n", 0.0)  # bit rot in the store
    with handle.open("run.py") as stream, pytest.raises(ConflictError, match="do not match"):
        stream.read()


def test_a_handle_names_what_it_cannot_open_or_lay_out() -> None:
    handle, _ = _handle({"run.py": b"x"})
    with pytest.raises(NotFoundError, match="not a file"):
        handle.open("absent.py")
    with pytest.raises(NotFoundError, match="a symlink"):
        handle.open("link")
    with pytest.raises(MissingCapabilityError, match="keeps no releases"):
        handle.materialize()


OLD_TARGET = '''
import json
from pathlib import Path
from lockgate import hookimpl
from lockgate.plugin import Prepared


class OldTarget:
    """A target written for 0.x: prepare(component_id, revision, release)."""

    def __init__(self, log):
        self.log = log

    def prepare(self, component_id, revision, release):
        files = sorted(p.name for p in Path(release).iterdir()) if release else None
        with open(self.log, "a") as fh:
            fh.write(json.dumps([component_id, revision, files]) + "\\n")
        return Prepared(component_id, revision, None)

    def commit(self, prepared):
        pass

    def abort(self, prepared):
        pass

    def deployed(self):
        return {}

    def location(self, component_id):
        return f"old://{component_id}"

    def check(self, component_id, revision):
        return []


@hookimpl
def register_targets(register):
    register("old", lambda ctx: OldTarget(ctx.project_root / "old.log"))
'''


def test_a_target_with_the_0x_prepare_signature_still_gets_a_release_directory(
    tmp_path: Path, site: Path
) -> None:
    write_distribution(site, "lockgate-old", "1.0", {"old": "lg_old"}, {"lg_old": OLD_TARGET})
    root = tmp_path / "p"
    root.mkdir()
    (root / "lockgate.yaml").write_text(
        "stages:\n  staging:\n    targets:\n      - kind: old\n  production: {}\n"
    )
    component = root / "workspaces" / "alice" / "builders" / "app"
    component.mkdir(parents=True)
    (component / "run.py").write_text("print(1)\n")

    def ok(*args: str) -> str:
        done = run_lockgate("-C", str(root), *args, cwd=root, site=site, env=ENV)
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout

    revision = json.loads(ok("stage", "alice:app", "--json"))["revision"]
    ok("promote", "alice:app")
    calls = [json.loads(line) for line in (root / "old.log").read_text().splitlines()]
    assert calls == [["app", revision, ["run.py"]]]


def test_the_directory_target_lays_out_and_verifies_a_release_for_a_store_without_any(
    tmp_path: Path,
) -> None:
    from lockgate.builtin_plugins.directory_target import DirectoryTarget

    handle, _ = _handle({"run.py": b"print(1)\n"})
    stage = tmp_path / "stages" / "staging"
    target = DirectoryTarget(stage, tmp_path / "releases")
    target.commit(target.prepare("app", handle))
    assert (stage / "app" / "run.py").read_bytes() == b"print(1)\n"
    assert target.check("app", handle.revision) == []

    damaged = tmp_path / "releases" / handle.revision / "run.py"
    damaged.chmod(0o644)
    damaged.write_bytes(b"evil\n")
    # Deployed here: refused, nothing switched.
    with pytest.raises(ConflictError, match="is damaged"):
        target.prepare("app", handle)
    # Deployed nowhere: laid out again from the store.
    target.commit(target.prepare("app", None))
    target.commit(target.prepare("app", handle))
    assert (stage / "app" / "run.py").read_bytes() == b"print(1)\n"


@pytest.mark.parametrize(
    "entry",
    [
        FileEntry("../outside.py", "file", 1, "0" * 64),
        FileEntry("/etc/passwd", "file", 1, "0" * 64),
        FileEntry("up", "symlink", 2, "0" * 64, "../../etc"),
    ],
)
def test_a_handle_refuses_a_crafted_manifest_that_leaves_the_revision(entry: FileEntry) -> None:
    """A target writes the manifest's names into archives and trees: whatever store held
    the manifest, one naming a path outside the revision never reaches a target."""
    store = MemoryContentStore()
    manifest = Manifest([entry])
    with pytest.raises(InputError, match=r"outside the revision|not a safe relative path"):
        RevisionHandle("f" * 64, manifest, store)
