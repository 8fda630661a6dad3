"""The target suite passes for the builtin ``directory`` target and the memory twin."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lockgate.builtin_plugins.directory_target import DirectoryTarget
from lockgate.core.contracts import Target
from lockgate.testing import MemoryTarget, TargetConformance

from conftest import ENV, run_lockgate


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
