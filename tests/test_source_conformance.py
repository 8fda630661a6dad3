"""The source suite passes for the builtin ``workspace`` source and the memory twin."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockgate.builtin_plugins.workspace import Layout, WorkspaceSource
from lockgate.testing import DirectoryComponentFiles, MemorySource, SourceConformance, SourceFixture
from suite_runner import failed, run_suite


class TestWorkspaceSource(SourceConformance):
    @pytest.fixture
    def source(self, tmp_path: Path) -> SourceFixture:
        root = tmp_path / "project" / "workspaces"
        root.mkdir(parents=True)
        workspace = WorkspaceSource(
            project_root=tmp_path / "project",
            root=root,
            layout=Layout.parse("{workspace}/{type}/{component}"),
            cache_dir=tmp_path / "project" / ".lockgate" / "cache" / "stat",
        )
        return SourceFixture(workspace, DirectoryComponentFiles(root))


class TestMemorySource(SourceConformance):
    @pytest.fixture
    def source(self) -> SourceFixture:
        memory = MemorySource()
        return SourceFixture(memory, memory)


# Sources each broken in one way, run through the suite in one pytest subprocess with a
# sound source as the control (a failure can then only come from the breakage).
BROKEN_SOURCES = """
import pytest
from lockgate.contracts.source import ScanResult
from lockgate.testing import MemorySource, SourceConformance, SourceFixture

class TestControl(SourceConformance):
    @pytest.fixture
    def source(self):
        memory = MemorySource()
        return SourceFixture(memory, memory)

class LossySource(MemorySource):
    def scan(self, component):
        found = super().scan(component)
        kept = tuple(f for f in found.files if "/" not in f.path)  # top level only
        return ScanResult(found.component, kept, found.revision)

class TestLossy(SourceConformance):
    @pytest.fixture
    def source(self):
        lossy = LossySource()
        return SourceFixture(lossy, lossy)

class TrustingSource(MemorySource):
    # Remembers by path alone: an edited file keeps its old digest and revision.
    def __init__(self):
        super().__init__()
        self.memo = {}

    def remember(self, scan, digests, revision=None):
        self.memo[scan.component.ref] = ({**digests}, revision)

    def scan(self, component):
        found = super().scan(component)
        digests, revision = self.memo.get(component.ref, ({}, None))
        files = tuple(f._replace(digest=digests.get(f.path)) for f in found.files)
        return ScanResult(found.component, files, revision)

class TestTrusting(SourceConformance):
    @pytest.fixture
    def source(self):
        trusting = TrustingSource()
        return SourceFixture(trusting, trusting)
"""


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    outcomes = run_suite(tmp_path_factory.mktemp("suite"), BROKEN_SOURCES)
    assert failed(outcomes["TestControl"]) == set()
    return outcomes


def test_the_suite_fails_a_source_that_loses_files(outcomes: dict[str, dict[str, str]]) -> None:
    assert {
        "test_scan_lists_every_file_with_its_bytes",
        "test_scan_tells_executables_and_symlinks",
    } <= failed(outcomes["TestLossy"])
    assert outcomes["TestLossy"]["test_discover_finds_every_component_with_its_type"] == "passed"


def test_the_suite_fails_a_source_that_vouches_for_stale_digests(
    outcomes: dict[str, dict[str, str]],
) -> None:
    assert {
        "test_a_changed_file_is_not_vouched_for",
        "test_an_added_or_removed_file_is_not_vouched_for",
        "test_remembering_a_scan_older_than_an_edit_vouches_for_nothing_stale",
    } <= failed(outcomes["TestTrusting"])
    assert outcomes["TestTrusting"]["test_what_is_remembered_is_vouched_for_honestly"] == "passed"
