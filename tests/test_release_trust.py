"""A release staged in this boot is not hashed again at its first promotion, unless a
stat says its bytes may have changed since staging hashed them.

Staging keeps the stat each object had when it was published (the store's ledger); the
first layout of the release stamps the files that are still those objects, and
``verify_release`` hashes only the others. Each adversarial test changes bytes (or only a
stat) where the old code hashed everything, and checks the damage is still refused, or
the file is still hashed. Hashing is observed by wrapping the real ``_hash_problem``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import ENV, ProjectWorkspace
from lockgate.builtin_plugins import local_releases
from lockgate.builtin_plugins.local_journal import boot_id
from lockgate.builtin_plugins.local_store import LocalContentStore
from lockgate.plugin import Manifest
from lockgate.testing import CliResult, run_cli

REF = "alice:app"
FILES: dict[str, str | bytes] = {
    "a.py": "print('a')\n",
    "b.sql": "select 1;\n",
    "same.py": "print('a')\n",  # the same object twice: two links
    "data/c.bin": bytes(range(256)) * 64,
}

pytestmark = pytest.mark.skipif(boot_id() is None, reason="needs the kernel's boot id (Linux)")


class Project(ProjectWorkspace):
    def cli(self, *args: str) -> CliResult:
        return run_cli(*args, project=self.root, env=ENV)

    def content(self) -> LocalContentStore:
        project = self.project()
        store = project.content()
        project.close()
        assert isinstance(store, LocalContentStore)
        return store

    def object(self, revision: str, name: str) -> Path:
        entry = next(e for e in self.manifest(revision).entries if e.path == name)
        return self.root / ".lockgate" / "objects" / entry.digest[:2] / entry.digest[2:]

    def manifest(self, revision: str) -> Manifest:
        return self.content().get_manifest(revision)

    def ledger(self, revision: str) -> Path:
        return self.root / ".lockgate" / "cache" / "ingested" / revision

    def release(self, revision: str) -> Path:
        return self.root / ".lockgate" / "releases" / revision


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths ``verify_release`` hashes, in order (the real hashing still runs)."""
    seen: list[str] = []
    real = local_releases._hash_problem

    def counting(path: str, size: int, digest: str) -> str | None:
        seen.append(path.rsplit("/", 1)[-1])
        return real(path, size, digest)

    monkeypatch.setattr(local_releases, "_hash_problem", counting)
    return seen


@pytest.fixture
def proj(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    # Objects published in the file system's current tick are left out of the ledger
    # (they could change again unseen); on a file system with a coarse clock a small
    # component is staged within one tick. Waiting before the ledger is written keeps
    # these tests about the trust rules, on any clock.
    real = LocalContentStore.mark_complete

    def after_a_tick(self: LocalContentStore, revision: str, manifest: Manifest) -> None:
        time.sleep(0.05)
        real(self, revision, manifest)

    monkeypatch.setattr(LocalContentStore, "mark_complete", after_a_tick)
    return Project(tmp_path / "p")


def promote(proj: Project, *args: str) -> CliResult:
    result = proj.cli("promote", REF, *args)
    assert "Traceback" not in result.stderr
    return result


def test_a_freshly_staged_release_is_not_hashed_at_its_first_promotion(
    proj: Project, hashed: list[str]
) -> None:
    revision = proj.stage_files(REF, FILES)
    ledger = json.loads(proj.ledger(revision).read_text())
    assert ledger["boot"] == boot_id() and len(ledger["objects"]) == 3  # a.py once

    assert promote(proj).exit_code == 0
    assert hashed == []
    assert not proj.ledger(revision).exists()  # used once
    deployed = proj.root / "stages" / "staging" / "app"
    assert (deployed / "data" / "c.bin").read_bytes() == FILES["data/c.bin"]
    assert promote(proj, "--to", "integration").exit_code == 0
    assert hashed == []  # the release's own stamp, as before
    # lockgate verify still hashes every byte of what is deployed.
    assert proj.cli("verify").exit_code == 0
    assert sorted(hashed) == ["a.py", "b.sql", "c.bin", "same.py"]


def test_an_executable_is_a_copy_and_is_hashed(proj: Project, hashed: list[str]) -> None:
    proj.write(REF, {"run.sh": "#!/bin/sh\necho hi\n", "a.py": "print('a')\n"})
    (proj.component_dir(REF) / "run.sh").chmod(0o755)
    revision = proj.stage_files(REF, {})
    assert promote(proj).exit_code == 0
    assert hashed == ["run.sh"]
    assert proj.release(revision).joinpath("run.sh").stat().st_mode & 0o111


def rewrite_keeping_mtime(path: Path) -> None:
    """Other bytes of the same size, the mtime set back: only the ctime shows it."""
    st = path.stat()
    data = path.read_bytes()
    path.chmod(0o644)
    path.write_bytes(bytes([data[0] ^ 1]) + data[1:])
    path.chmod(st.st_mode & 0o777)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def test_an_object_changed_after_staging_is_refused_at_promotion(
    proj: Project, hashed: list[str]
) -> None:
    revision = proj.stage_files(REF, FILES)
    rewrite_keeping_mtime(proj.object(revision, "b.sql"))
    refused = promote(proj)
    assert refused.exit_code != 0
    assert "b.sql does not match its digest" in refused.stderr
    # Only what no stat vouches for is hashed first; the damaged release is then laid out
    # again from the store and hashed whole (no ledger vouches twice), as before.
    assert hashed[:1] == ["b.sql"] and sorted(hashed[1:]) == ["a.py", "b.sql", "c.bin", "same.py"]
    assert not (proj.root / "stages" / "staging" / "app").exists()


def test_a_release_file_changed_after_layout_is_refused_at_promotion(
    proj: Project, hashed: list[str]
) -> None:
    revision = proj.stage_files(REF, FILES)
    release = proj.content().release(revision)  # laid out and stamped, as a gate does
    assert json.loads(release.with_name(f"{revision}.verified").read_text())["files"]
    rewrite_keeping_mtime(release / "data" / "c.bin")  # the object itself: a hardlink
    refused = promote(proj)
    assert refused.exit_code != 0
    assert "c.bin does not match its digest" in refused.stderr
    assert hashed[:1] == ["c.bin"]


def add_a_link(path: Path) -> None:
    os.link(path, path.with_name(f"{path.name}.extra"))


def make_writable_and_back(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    path.chmod(0o644)
    path.chmod(mode)


@pytest.mark.parametrize("touch", [add_a_link, make_writable_and_back, rewrite_keeping_mtime])
def test_an_object_whose_ctime_moved_is_hashed(
    proj: Project, hashed: list[str], touch: Callable[[Path], None]
) -> None:
    """Whatever moved the ctime (a link, a chmod, bytes and mtime), the object is hashed."""
    revision = proj.stage_files(REF, FILES)
    touch(proj.object(revision, "b.sql"))
    result = promote(proj)
    if touch is rewrite_keeping_mtime:
        assert result.exit_code != 0 and hashed[:1] == ["b.sql"]
    else:
        assert result.exit_code == 0 and hashed == ["b.sql"]


def test_a_ledger_from_another_boot_is_not_trusted(proj: Project, hashed: list[str]) -> None:
    """A restart can take bytes never flushed and leave every stat as it was."""
    revision = proj.stage_files(REF, FILES)
    ledger = json.loads(proj.ledger(revision).read_text())
    proj.ledger(revision).write_text(json.dumps({**ledger, "boot": "a-boot-before-this-one"}))
    assert promote(proj).exit_code == 0
    assert sorted(hashed) == ["a.py", "b.sql", "c.bin", "same.py"]


def test_a_ledger_that_does_not_match_its_object_is_not_trusted(
    proj: Project, hashed: list[str]
) -> None:
    """An unreadable or stale ledger costs time, never safety."""
    revision = proj.stage_files(REF, FILES)
    ledger = json.loads(proj.ledger(revision).read_text())
    for key in ledger["objects"].values():
        key[3] -= 1  # another ctime
    proj.ledger(revision).write_text(json.dumps(ledger))
    assert promote(proj).exit_code == 0
    assert sorted(hashed) == ["a.py", "b.sql", "c.bin", "same.py"]


def test_a_damaged_ledger_is_ignored(proj: Project, hashed: list[str]) -> None:
    revision = proj.stage_files(REF, FILES)
    proj.ledger(revision).write_text("{not json")
    assert promote(proj).exit_code == 0
    assert len(hashed) == 4


def test_a_new_revision_sharing_objects_with_a_verified_release_is_not_hashed(
    proj: Project, hashed: list[str]
) -> None:
    """The unchanged files of a new revision are the inodes the last release verified."""
    proj.stage_files(REF, FILES)
    assert promote(proj).exit_code == 0
    proj.stage_files(REF, {"b.sql": "select 2;\n"})
    assert promote(proj).exit_code == 0
    assert hashed == []
    assert (proj.root / "stages" / "staging" / "app" / "b.sql").read_text() == "select 2;\n"


def test_a_shared_object_changed_after_its_release_verified_is_refused(
    proj: Project, hashed: list[str]
) -> None:
    first = proj.stage_files(REF, FILES)
    assert promote(proj).exit_code == 0
    rewrite_keeping_mtime(proj.release(first) / "data" / "c.bin")  # the shared object
    proj.stage_files(REF, {"b.sql": "select 2;\n"})
    refused = promote(proj)
    assert refused.exit_code != 0
    assert "c.bin does not match its digest" in refused.stderr
    assert hashed[:1] == ["c.bin"]


def test_a_stamp_entry_carried_by_a_new_link_vouches_for_nothing_further(
    proj: Project, hashed: list[str]
) -> None:
    """A switch trusts a file whose ctime moved with its link count (another release
    linking the same object); a changed file given a new link passes that way. Such an
    entry must not vouch for the object in a new release: it was never hashed there."""
    first = proj.stage_files(REF, FILES)
    assert promote(proj).exit_code == 0
    changed = proj.release(first) / "data" / "c.bin"
    rewrite_keeping_mtime(changed)
    os.link(changed, proj.root / "extra-link")  # outside the release: no stray there
    assert promote(proj, "--to", "integration").exit_code == 0  # the old rule, unchanged
    assert hashed == []
    proj.stage_files(REF, {"b.sql": "select 2;\n"})
    refused = promote(proj)
    assert refused.exit_code != 0
    assert "c.bin does not match its digest" in refused.stderr
