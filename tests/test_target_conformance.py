"""The target suite passes for the builtin ``directory`` target and the memory twin; the
directory target's entries into the store's releases or its own, and what gc collects."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ENV, run_lockgate
from lockgate.builtin_plugins.directory_target import DirectoryTarget
from lockgate.builtin_plugins.local_store import LocalContentStore
from lockgate.contracts.manifest import FileEntry, Manifest
from lockgate.contracts.state import EventFilter
from lockgate.contracts.target import RevisionHandle, Target
from lockgate.core.session import Session
from lockgate.operations.gc import collect_garbage
from lockgate.operations.promote import Promoter
from lockgate.operations.stage import Stager
from lockgate.operations.verify import verify
from lockgate.testing import MemoryRoles, MemoryTarget, TargetConformance, open_project
from suite_runner import failed, run_suite


class TestDirectoryTarget(TargetConformance):
    @pytest.fixture
    def target(self, tmp_path: Path, releases: Path) -> Target:
        return DirectoryTarget(tmp_path / "stages" / "production", releases)


class TestMemoryTarget(TargetConformance):
    @pytest.fixture
    def target(self) -> Target:
        return MemoryTarget()


# --------------------------------------------------------------------------- directory only


def test_verify_reports_a_deleted_stage_directory_as_a_problem(tmp_path: Path) -> None:
    """``check`` of an entry whose whole stage directory is gone is a problem to report,
    not a crash (the suite's ``test_check_reports_an_entry_never_deployed`` found it)."""
    root = tmp_path / "project"
    root.mkdir()

    def lg(*args: str) -> subprocess.CompletedProcess[str]:
        return run_lockgate("-C", str(root), *args, cwd=root, env=ENV)

    assert lg("init").returncode == 0
    component = root / "workspaces" / "alice" / "scripts" / "etl"
    component.mkdir(parents=True)
    (component / "run.py").write_text("print(1)\n")
    assert lg("stage", "alice:etl").returncode == 0
    promoted = lg("promote", "alice:etl", "--to", "staging")
    assert promoted.returncode == 0, promoted.stderr
    shutil.rmtree(root / "stages" / "staging")
    done = lg("verify")
    assert "internal error" not in done.stderr
    assert done.returncode == 1, done.stderr
    assert "stages/staging/etl is missing" in done.stdout


# Targets each broken in one way, run through the suite in one pytest subprocess with a
# sound target as the control (a failure can then only come from the breakage).
BROKEN_TARGETS = """
import pytest
from lockgate.testing import MemoryTarget, TargetConformance

class TestControl(TargetConformance):
    @pytest.fixture
    def target(self):
        return MemoryTarget()

class StuckTarget(MemoryTarget):
    def commit(self, prepared):
        pass  # says nothing, switches nothing

class TestStuck(TargetConformance):
    @pytest.fixture
    def target(self):
        return StuckTarget()

class EagerTarget(MemoryTarget):
    def prepare(self, component_id, revision):
        prepared = super().prepare(component_id, revision)
        self.commit(prepared)  # visible before the commit: not atomic
        return prepared

class TestEager(TargetConformance):
    @pytest.fixture
    def target(self):
        return EagerTarget()

class KeepsNothing(MemoryTarget):
    def collect(self, keep, dry_run):
        return []

class Greedy(MemoryTarget):
    def collect(self, keep, dry_run):  # names what it deploys now
        return sorted(set(self.deployed().values()) - keep)

class TestKeepsNothing(TargetConformance):
    @pytest.fixture
    def target(self):
        return KeepsNothing()

class TestGreedy(TargetConformance):
    @pytest.fixture
    def target(self):
        return Greedy()
"""


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    outcomes = run_suite(tmp_path_factory.mktemp("suite"), BROKEN_TARGETS)
    assert failed(outcomes["TestControl"]) == set()
    return outcomes


def test_the_suite_fails_a_target_whose_commit_does_not_switch(
    outcomes: dict[str, dict[str, str]],
) -> None:
    assert {
        "test_commit_deploys_the_revision",
        "test_a_prepared_switch_is_invisible_until_committed",
        "test_committing_a_removal_removes_the_entry",
    } <= failed(outcomes["TestStuck"])
    assert outcomes["TestStuck"]["test_a_new_target_deploys_nothing"] == "passed"


def test_the_suite_fails_a_target_that_switches_on_prepare(
    outcomes: dict[str, dict[str, str]],
) -> None:
    assert {
        "test_a_prepared_switch_is_invisible_until_committed",
        "test_abort_leaves_the_old_revision",
        "test_each_switch_shows_the_old_revision_or_the_new",
    } <= failed(outcomes["TestEager"])


def test_the_suite_tests_collect_only_for_a_target_that_offers_it(
    outcomes: dict[str, dict[str, str]],
) -> None:
    # The control is a MemoryTarget, which offers no collect.
    collect = {n for n in outcomes["TestControl"] if "collect" in n}
    assert len(collect) == 3
    assert {outcomes["TestControl"][n] for n in collect} == {"skipped"}
    assert {outcomes["TestKeepsNothing"][n] for n in collect} == {"passed"}
    assert "test_collect_never_removes_what_is_deployed" in failed(outcomes["TestGreedy"])


# --------------------------------------------------------------------------- its releases


def _local_revision(store: LocalContentStore, files: dict[str, bytes]) -> RevisionHandle:
    """A revision stored in ``store``, whose ``materialize()`` is the store's release."""
    manifest = Manifest(
        [FileEntry(p, "file", len(d), store.put(io.BytesIO(d))) for p, d in files.items()]
    )
    revision = store.put_manifest(manifest)
    return RevisionHandle(revision, manifest, store, lambda: store.release(revision))


def test_an_entry_into_the_stores_releases_checks_clean_wherever_they_are(
    tmp_path: Path,
) -> None:
    """The store keeps its releases elsewhere than the target's own releases directory:
    ``check`` and ``strays`` accept the store's release (they knew only the target's)."""
    store = LocalContentStore(tmp_path / "objects", releases=tmp_path / "store-releases")
    stage = tmp_path / "stages" / "production"
    target = DirectoryTarget(stage, tmp_path / "own-releases", lambda: store)
    one = _local_revision(store, {"run.py": b"print(1)\n"})
    two = _local_revision(store, {"run.py": b"print(2)\n"})
    target.commit(target.prepare("etl", one))
    assert (stage / "etl" / "run.py").read_bytes() == b"print(1)\n"
    assert target.check("etl", one.revision) == []
    assert target.strays() == []
    target.prepare("etl", two)  # an interrupted switch leaves its temporary link
    assert target.strays() == []
    assert "interrupted switch" in target.check("etl", one.revision)[0]
    # The store keeps releases: they are its own to collect, not the target's.
    assert target.collect(frozenset(), False) == []
    assert store.has_release(one.revision) and store.has_release(two.revision)


def test_an_entry_into_a_copy_of_a_release_is_reported(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path / "objects", releases=tmp_path / "store-releases")
    stage = tmp_path / "stages" / "production"
    target = DirectoryTarget(stage, tmp_path / "own-releases", lambda: store)
    one = _local_revision(store, {"run.py": b"print(1)\n"})
    target.commit(target.prepare("etl", one))
    copy = tmp_path / "elsewhere" / one.revision
    shutil.copytree(store.release(one.revision), copy)
    (stage / "etl").unlink()
    (stage / "etl").symlink_to(copy)
    [problem] = target.check("etl", one.revision)
    assert "not a release lockgate laid out" in problem
    (stage / ".etl.tmp-0123456789ab").symlink_to(copy)
    assert [".etl.tmp-0123456789ab" in p for p in target.strays()] == [True]


MEMORY_CONTENT = """\
state: {store: memory}
content: {store: memory}
source: {name: memory}
stages:
  staging: {targets: [{kind: directory}]}
  production: {targets: [{kind: directory, options: {path: live}}]}
"""


def test_gc_collects_the_releases_the_target_laid_out_for_a_memory_store(
    tmp_path: Path,
) -> None:
    """The in-memory content store keeps no releases: the directory target lays them out
    in its own releases directory, and gc asks it to remove those it does not keep."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "lockgate.yaml").write_text(MEMORY_CONTENT)
    roles = MemoryRoles()
    session = Session(open_project(root, extra=[roles.distribution()], installed=True))
    roles.source.create("alice:etl")
    revisions = []
    for n in (1, 2, 3):
        roles.source.write("alice:etl", "run.py", f"print({n})\n".encode())
        revisions.append(Stager(session).stage("alice:etl").revision)
        Promoter(session).promote("alice:etl", to="staging")
    r1, r2, r3 = revisions
    Promoter(session).promote("alice:etl", to="production")  # r3 in both stages
    releases = root / ".lockgate" / "releases"

    def laid_out() -> set[str]:
        return {p.name for p in releases.iterdir() if p.is_dir()}

    assert laid_out() == {r1, r2, r3}
    dry = collect_garbage(session, keep=1, grace=0, dry_run=True)
    assert dry.target_releases == (r1,) and dry.releases == ()
    assert dry.to_dict()["target_releases"] == [r1]
    assert "would remove 1 release(s) targets laid out" in dry.summary()
    assert laid_out() == {r1, r2, r3}

    done = collect_garbage(session, keep=1, grace=0)
    assert done.target_releases == (r1,)  # asked of both stages' targets, named once
    assert laid_out() == {r2, r3}
    assert (root / "stages" / "staging" / "etl" / "run.py").read_bytes() == b"print(3)\n"
    assert (root / "live" / "etl" / "run.py").read_bytes() == b"print(3)\n"
    [event] = session.state().events(EventFilter(action="gc"))
    assert event.details["target_releases"] == 1
    assert verify(session).ok
