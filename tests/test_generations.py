"""The ``directory`` target's generations: several members switched by one rename, so a
reader never sees some members of a pipeline run switched and others not; with real
projects, the SQLite state store and readers on their own threads."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import ENV, ProjectWorkspace
from lockgate import hookimpl
from lockgate.builtin_plugins.directory_target import KEEP_GENERATIONS, DirectoryTarget
from lockgate.contracts.manifest import FileEntry, Manifest
from lockgate.contracts.target import RevisionHandle, target_group_switch
from lockgate.core.content import materialize_files
from lockgate.operations.pipeline import PipelineRunner
from lockgate.plugin import TransientError
from lockgate.testing import CliResult, MemoryContentStore, fake_distribution, run_cli

MEMBERS = 20


class Reader(threading.Thread):
    """Reads every member's ``VERSION`` through one opening of the stage directory (as a
    reader wanting a consistent view does: open it once, read relative to it), again and
    again, and counts the views holding more than one version."""

    def __init__(self, stage: Path, ids: list[str]) -> None:
        super().__init__(daemon=True)
        self.stage, self.ids = stage, ids
        self.stop = threading.Event()
        self.views = self.mixed = self.stale = 0
        self.seen: set[str] = set()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                directory = os.open(self.stage, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                self.stale += 1
                continue
            try:
                versions = {_read(directory, f"{cid}/VERSION") for cid in self.ids}
            except FileNotFoundError:
                self.stale += 1  # a generation removed under a slow reader: read again
                continue
            finally:
                os.close(directory)
            self.views += 1
            self.seen |= versions
            if len(versions) != 1:
                self.mixed += 1


def _read(directory: int, path: str) -> str:
    fd = os.open(path, os.O_RDONLY, dir_fd=directory)
    try:
        return os.read(fd, 64).decode().strip()
    finally:
        os.close(fd)


def _fixed(release: Path) -> Callable[[], Path]:
    return lambda: release


def _handles(tmp_path: Path, ids: list[str]) -> dict[str, dict[str, RevisionHandle]]:
    """Two revisions per member (``VERSION`` says v1 or v2), laid out as releases."""
    store, releases = MemoryContentStore(), tmp_path / "releases"
    made: dict[str, dict[str, RevisionHandle]] = {"v1": {}, "v2": {}}
    for version in made:
        for cid in ids:
            data = f"{version}\n".encode()
            other = f"{cid} {version}\n".encode()
            manifest = Manifest(
                [
                    FileEntry("VERSION", "file", len(data), store.put_bytes(data)),
                    FileEntry("main.py", "file", len(other), store.put_bytes(other)),
                ]
            )
            revision = store.put_manifest(manifest)
            release = releases / revision
            materialize_files(store, manifest, release)
            made[version][cid] = RevisionHandle(revision, manifest, store, _fixed(release))
    return made


@pytest.mark.slow
def test_a_reader_never_sees_a_mix_while_20_members_switch_400_times(tmp_path: Path) -> None:
    """200 promotions and 200 rollbacks of 20 members through the target's group switch,
    the stage starting as a plain directory deployed member by member."""
    ids = [f"m{n:02d}" for n in range(MEMBERS)]
    handles = _handles(tmp_path, ids)
    stage = tmp_path / "stages" / "production"
    target = DirectoryTarget(stage, tmp_path / "own-releases")
    for cid in ids:  # deployed before generations: a plain directory
        target.commit(target.prepare(cid, handles["v1"][cid]))
    assert stage.is_dir() and not stage.is_symlink()
    group = target_group_switch(target)
    assert group is not None
    reader = Reader(stage, ids)
    reader.start()
    started = time.perf_counter()
    for n in range(400):
        version = "v2" if n % 2 == 0 else "v1"
        group.commit_group(group.prepare_group(handles[version]))
    took = time.perf_counter() - started
    reader.stop.set()
    reader.join(10)
    assert reader.mixed == 0, f"{reader.mixed} of {reader.views} views mixed old and new"
    assert reader.views > 50 and reader.seen == {"v1", "v2"}, (reader.views, reader.seen)
    assert stage.is_symlink() and target.deployed() == {
        cid: h.revision for cid, h in handles["v1"].items()
    }
    # the current generation and the ones before it are kept, no more
    generations = sorted(p.name for p in stage.parent.iterdir() if ".gen-" in p.name)
    assert len(generations) == KEEP_GENERATIONS, generations
    print(
        f"400 group switches of {MEMBERS} members: {took:.2f} s; reader: {reader.views} views, "
        f"{reader.stale} stale, 0 mixed"
    )


def test_the_reader_sees_mixes_when_members_switch_one_by_one(tmp_path: Path) -> None:
    """The control: the same reader, members switched one entry at a time (as without
    generations), catches views mixing old and new, so the test above can fail."""
    ids = [f"m{n:02d}" for n in range(MEMBERS)]
    handles = _handles(tmp_path, ids)
    stage = tmp_path / "stages" / "production"
    target = DirectoryTarget(stage, tmp_path / "own-releases", generations=False)
    for cid in ids:
        target.commit(target.prepare(cid, handles["v1"][cid]))
    reader = Reader(stage, ids)
    reader.start()
    for n in range(400):
        version = "v2" if n % 2 == 0 else "v1"
        for cid in ids:
            target.commit(target.prepare(cid, handles[version][cid]))
        if reader.mixed:
            break
    reader.stop.set()
    reader.join(10)
    assert target_group_switch(target) is None
    assert reader.mixed > 0, f"no mix in {reader.views} views"


class Project(ProjectWorkspace):
    def cli(self, *args: str) -> CliResult:
        return run_cli(*args, project=self.root, env=ENV)

    def ok(self, *args: str) -> CliResult:
        result = self.cli(*args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        return result


def _project(tmp_path: Path, config: str = "") -> tuple[Project, list[str]]:
    ws = Project(tmp_path / "p", config)
    refs = [f"alice:m{n:02d}" for n in range(MEMBERS)]
    for ref in refs:
        ws.stage_files(ref, {"VERSION": "v1\n", "main.py": f"print('{ref}')\n"})
    (ws.root / "pipelines").mkdir()
    (ws.root / "pipelines" / "many.yaml").write_text(f"components: [{', '.join(refs)}]\n")
    return ws, refs


@pytest.mark.slow
def test_pipeline_runs_switch_their_members_together_for_a_reader(tmp_path: Path) -> None:
    """Pipeline runs end to end (gates, intents, pointers, audit): promoted and rolled
    back again and again while a reader reads the stage (``LOCKGATE_PIPELINE_CYCLES``
    times, 10 by default)."""
    ws, refs = _project(tmp_path)
    ws.ok("pipeline", "promote", "many", "--to", "staging")
    for ref in refs:
        ws.stage_files(ref, {"VERSION": "v2\n", "main.py": f"print('{ref}')\n"})
    stage = ws.root / "stages" / "staging"
    reader = Reader(stage, [r.split(":")[1] for r in refs])
    reader.start()
    project = ws.project()
    try:
        runner = PipelineRunner(project)
        for _ in range(int(os.environ.get("LOCKGATE_PIPELINE_CYCLES", "10"))):
            assert runner.promote("many", to="staging")["status"] == "completed"
            assert runner.rollback("many", stage="staging")["status"] == "completed"
    finally:
        project.close()
        reader.stop.set()
        reader.join(10)
    assert reader.mixed == 0 and reader.seen == {"v1", "v2"}, (reader.views, reader.seen)
    print(f"pipeline cycles: reader views {reader.views}, mixed {reader.mixed}")
    ws.ok("verify")


def test_a_stage_deployed_before_generations_keeps_its_paths_and_verifies(
    tmp_path: Path,
) -> None:
    ws, refs = _project(tmp_path)
    for ref in refs[:3]:  # single promotions: a plain directory, as before
        ws.ok("promote", ref, "--to", "staging")
    stage = ws.root / "stages" / "staging"
    assert stage.is_dir() and not stage.is_symlink()
    ws.ok("pipeline", "promote", "many", "--to", "staging")
    assert stage.is_symlink() and stage.readlink().name.startswith(".staging.gen-")
    # readers' paths resolve as before, the old directory kept as generation 0
    assert (stage / "m00" / "VERSION").read_text() == "v1\n"
    assert (stage.parent / ".staging.gen-000000" / "m00").is_symlink()
    # a single switch still works, inside the current generation
    ws.stage_files(refs[0], {"VERSION": "v3\n", "main.py": "print(3)\n"})
    ws.ok("promote", refs[0], "--to", "staging")
    assert (stage / "m00" / "VERSION").read_text() == "v3\n"
    assert ws.ok("verify").exit_code == 0


def test_generations_false_keeps_a_plain_directory_and_switches_one_by_one(
    tmp_path: Path,
) -> None:
    config = "stages:\n  staging:\n    targets:\n      - kind: directory\n"
    config += "        options: {generations: false}\n  integration: {}\n  production: {}\n"
    ws, _ = _project(tmp_path, config)
    ws.ok("pipeline", "promote", "many", "--to", "staging")
    stage = ws.root / "stages" / "staging"
    assert stage.is_dir() and not stage.is_symlink()
    assert not [p for p in stage.parent.iterdir() if ".gen-" in p.name]
    bad = "stages:\n  staging:\n    targets:\n      - kind: directory\n"
    bad += "        options: {generations: maybe}\n"
    (ws.root / "lockgate.yaml").write_text(bad)
    refused = ws.cli("verify")
    assert refused.exit_code != 0 and "generations: 'maybe' is not true or false" in (
        refused.stderr
    )
    assert "Traceback" not in refused.stderr


def test_a_group_over_a_members_timeout_is_stopped_before_it_is_visible(
    tmp_path: Path,
) -> None:
    ws, refs = _project(tmp_path)
    ws.ok("pipeline", "promote", "many", "--to", "staging")
    stage = ws.root / "stages" / "staging"
    before = {p.name: p.readlink().name for p in stage.iterdir()}
    current = stage.readlink()
    for ref in refs:
        ws.stage_files(ref, {"VERSION": "v2\n", "main.py": f"print('{ref} 2')\n"})
    spec = ws.root / "pipelines" / "many.yaml"
    spec.write_text(spec.read_text() + "steps:\n  alice:m05: {timeout: 0.000001}\n")
    project = ws.project()
    try:
        report = PipelineRunner(project).promote("many", to="staging")
        pointers = {p.component_id: p.revision for p in project.state().pointers("staging")}
    finally:
        project.close()
    assert report["status"] == "failed", report["cause"]
    assert "alice:m05 ran over its timeout" in report["cause"]
    steps = {s["component"]: s["status"] for s in report["step_results"]}
    assert steps["alice:m05"] == "failed"
    assert stage.readlink() == current  # no generation was swapped in
    assert {p.name: p.readlink().name for p in stage.iterdir()} == before == pointers


class FlakyGroups:
    """Plugin ``flakygroups``: a ``directory`` target whose group commit fails with a
    TransientError ``transient`` times, then for good while ``broken`` is set."""

    def __init__(self) -> None:
        self.transient = 0
        self.broken = False
        self.slow = 0.0
        """Seconds a group commit takes (a slow disk)."""

    @hookimpl
    def register_targets(self, register: Any) -> None:
        register("flakygroups", self.build)

    def build(self, ctx: Any) -> Any:
        inner = DirectoryTarget.from_context(ctx)
        plugin = self

        class Target:
            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

            def commit_group(self, prepared: Any) -> None:
                if plugin.transient:
                    plugin.transient -= 1
                    raise TransientError("the disk is busy")
                if plugin.broken:
                    raise OSError("the disk refused the switch")
                time.sleep(plugin.slow)
                inner.commit_group(prepared)

        return Target()


def _three_on_flaky_groups(tmp_path: Path, spec: str) -> tuple[FlakyGroups, Project, list[str]]:
    """A project whose staging target is :class:`FlakyGroups`, three components staged
    at v1, and pipeline ``three`` over them (``spec``: the rest of its YAML)."""
    plugin = FlakyGroups()
    config = "stages:\n  staging:\n    targets:\n      - kind: flakygroups\n"
    config += "  integration: {}\n  production: {}\n"
    ws = Project(tmp_path / "p", config, (fake_distribution("lockgate-fg", {"fg": plugin}),))
    refs = [f"alice:m{n}" for n in range(3)]
    for ref in refs:
        ws.stage_files(ref, {"VERSION": "v1\n", "main.py": "print(1)\n"})
    (ws.root / "pipelines").mkdir()
    text = f"components: [{', '.join(refs)}]\n{spec}"
    (ws.root / "pipelines" / "three.yaml").write_text(text)
    return plugin, ws, refs


def test_a_transient_group_failure_is_retried_and_a_final_one_changes_nothing(
    tmp_path: Path,
) -> None:
    plugin, ws, refs = _three_on_flaky_groups(tmp_path, "options: {retry_count: 2}\n")
    plugin.transient = 2
    project = ws.project()
    try:
        report = PipelineRunner(project).promote("three", to="staging")
    finally:
        project.close()
    assert report["status"] == "completed", report["cause"]
    assert all(s["attempts"] == 3 for s in report["step_results"])
    assert report["execution_summary"]["retries"] >= 2
    stage = ws.root / "stages" / "staging"
    assert sorted(p.name for p in stage.iterdir()) == ["m0", "m1", "m2"]
    for ref in refs:
        ws.stage_files(ref, {"VERSION": "v2\n", "main.py": "print(2)\n"})
    plugin.broken = True
    project = ws.project()
    try:
        report = PipelineRunner(project).promote("three", to="staging")
        pointers = {p.component_id: p.revision for p in project.state().pointers("staging")}
    finally:
        project.close()
    assert report["status"] == "failed" and "refused the switch" in report["cause"]
    assert all((stage / c / "VERSION").read_text() == "v1\n" for c in ("m0", "m1", "m2"))
    assert {p.name: p.readlink().name for p in stage.iterdir()} == pointers


def test_a_group_whose_commit_ran_over_a_timeout_is_switched_back_whole(
    tmp_path: Path,
) -> None:
    plugin, ws, _ = _three_on_flaky_groups(tmp_path, "steps:\n  alice:m1: {timeout: 0.5}\n")
    plugin.slow = 1.0
    project = ws.project()
    try:
        report = PipelineRunner(project).promote("three", to="staging")
        pointers = {p.component_id: p.revision for p in project.state().pointers("staging")}
    finally:
        project.close()
    assert report["status"] == "rolled_back", report["cause"]
    assert "alice:m1 took" in report["cause"] and "over its timeout of 0.5 s" in report["cause"]
    assert pointers == {} and list((ws.root / "stages" / "staging").iterdir()) == []


def test_without_an_atomic_exchange_a_crash_mid_conversion_is_finished_by_the_next_switch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where ``renameat2(RENAME_EXCHANGE)`` is missing, the first group switch renames the
    plain directory aside, then puts the symlink in place; killed between the two, the
    stage directory is missing until the next switch puts the prepared symlink in place."""
    from lockgate.builtin_plugins import directory_target

    ids = ["a", "b"]
    handles = _handles(tmp_path, ids)
    stage = tmp_path / "stages" / "production"
    target = DirectoryTarget(stage, tmp_path / "own-releases")
    for cid in ids:
        target.commit(target.prepare(cid, handles["v1"][cid]))
    monkeypatch.setattr(directory_target, "_exchange", lambda a, b: False)
    group = target_group_switch(target)
    assert group is not None
    group.commit_group(group.prepare_group(handles["v2"]))  # the fallback, uninterrupted
    assert stage.is_symlink() and (stage / "a" / "VERSION").read_text() == "v2\n"
    assert (stage.parent / ".production.gen-000000" / "a").is_symlink()
    # a crash between the two renames: the plain directory aside, the symlink not in place
    plain = tmp_path / "stages2" / "production"
    second = DirectoryTarget(plain, tmp_path / "own-releases")
    for cid in ids:
        second.commit(second.prepare(cid, handles["v1"][cid]))
    grouped = target_group_switch(second)
    assert grouped is not None
    grouped.prepare_group(handles["v2"])
    plain.rename(plain.parent / ".production.gen-000000")
    assert not plain.exists()
    second.prepare("a", handles["v2"]["a"])  # the next switch finishes the swap first
    assert plain.is_symlink() and second.deployed() == {
        cid: h.revision for cid, h in handles["v2"].items()
    }
