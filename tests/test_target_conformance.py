"""The target suite passes for the builtin ``directory`` target and the memory twin."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ENV, run_lockgate
from lockgate.builtin_plugins.directory_target import DirectoryTarget
from lockgate.contracts.target import Target
from lockgate.testing import MemoryTarget, TargetConformance
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


def test_the_suite_fails_a_target_whose_commit_does_not_switch(tmp_path: Path) -> None:
    outcomes = run_suite(
        tmp_path,
        """
        import pytest
        from lockgate.testing import MemoryTarget, TargetConformance

        class StuckTarget(MemoryTarget):
            def commit(self, prepared):
                pass  # says nothing, switches nothing

        class TestStuck(TargetConformance):
            @pytest.fixture
            def target(self):
                return StuckTarget()

        class TestControl(TargetConformance):
            @pytest.fixture
            def target(self):
                return MemoryTarget()
        """,
    )
    assert failed(outcomes["TestControl"]) == set()
    assert {
        "test_commit_deploys_the_revision",
        "test_a_prepared_switch_is_invisible_until_committed",
        "test_committing_a_removal_removes_the_entry",
    } <= failed(outcomes["TestStuck"])
    assert outcomes["TestStuck"]["test_a_new_target_deploys_nothing"] == "passed"


def test_the_suite_fails_a_target_that_switches_on_prepare(tmp_path: Path) -> None:
    outcomes = run_suite(
        tmp_path,
        """
        import pytest
        from lockgate.testing import MemoryTarget, TargetConformance

        class EagerTarget(MemoryTarget):
            def prepare(self, component_id, revision):
                prepared = super().prepare(component_id, revision)
                self.commit(prepared)  # visible before the commit: not atomic
                return prepared

        class TestEager(TargetConformance):
            @pytest.fixture
            def target(self):
                return EagerTarget()
        """,
    )
    assert {
        "test_a_prepared_switch_is_invisible_until_committed",
        "test_abort_leaves_the_old_revision",
        "test_each_switch_shows_the_old_revision_or_the_new",
    } <= failed(outcomes["TestEager"])
