"""``lockgate remove``: retiring a component, with real projects, the SQLite state store
and the builtin ``directory`` target."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ENV, ProjectWorkspace, subprocess_env
from lockgate.contracts.models import ComponentStatus
from lockgate.contracts.state import EventFilter
from lockgate.core.session import as_session
from lockgate.errors import RefusedError
from lockgate.operations.pipeline import PipelineRunner
from lockgate.testing import CliResult, run_cli


class Project(ProjectWorkspace):
    def cli(self, *args: str) -> CliResult:
        return run_cli(*args, project=self.root, env=ENV)

    def ok(self, *args: str) -> CliResult:
        result = self.cli(*args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        return result

    def entries(self, stage: str) -> dict[str, str]:
        where = self.root / "stages" / stage
        if not where.is_dir():
            return {}
        return {p.name: p.readlink().name for p in where.iterdir() if not p.name.startswith(".")}

    def pointers(self, stage: str) -> dict[str, str | None]:
        project = self.project()
        try:
            return {p.component_id: p.revision for p in project.state().pointers(stage)}
        finally:
            project.close()

    def status(self, ref: str) -> ComponentStatus:
        project = self.project()
        try:
            record = project.state().component(ref)
            assert record is not None
            return record.status
        finally:
            project.close()

    def events(self, **where: object) -> list[object]:
        project = self.project()
        try:
            return list(project.state().events(EventFilter(**where)))  # type: ignore[arg-type]
        finally:
            project.close()


def _promoted_everywhere(tmp_path: Path) -> tuple[Project, str]:
    ws = Project(tmp_path / "p")
    revision = ws.stage_files("alice:etl", {"main.py": "print('etl')\n"})
    ws.stage_files("alice:report", {"main.py": "print('report')\n"})
    for stage in ("staging", "integration", "production"):
        ws.ok("promote", "alice:etl", "--to", stage)
        ws.ok("promote", "alice:report", "--to", stage)
    return ws, revision


def test_remove_takes_the_component_out_of_every_stage_and_retires_it(tmp_path: Path) -> None:
    ws, revision = _promoted_everywhere(tmp_path)
    result = ws.ok("remove", "alice:etl", "--reason", "replaced by etl2", "--json")
    data = json.loads(result.stdout)
    assert [s["stage"] for s in data["removed_from"]] == ["production", "integration", "staging"]
    assert all(s["revision"] == revision for s in data["removed_from"]) and data["retired"]
    for stage in ("staging", "integration", "production"):
        assert "etl" not in ws.pointers(stage) and "etl" not in ws.entries(stage)
        assert "report" in ws.pointers(stage) and ws.entries(stage) == ws.pointers(stage)
    assert ws.status("alice:etl") is ComponentStatus.RETIRED
    # each switch audited, tied to the reason, and the retirement itself
    removes = ws.events(component="alice:etl", action="remove")
    assert [(e.stage, e.previous_revision, e.reason) for e in removes] == [  # type: ignore[attr-defined]
        (s, revision, "replaced by etl2") for s in ("production", "integration", "staging")
    ]
    retire = ws.events(component="alice:etl", action="retire")
    assert len(retire) == 1 and retire[0].reason == "replaced by etl2"  # type: ignore[attr-defined]
    # the history keeps every revision: nothing is deleted by removing
    history = json.loads(ws.ok("history", "alice:etl", "--json").stdout)
    assert revision in json.dumps(history)
    again = ws.ok("remove", "alice:etl", "--reason", "again")
    assert "already retired; nothing to do" in again.stdout


def test_ls_and_sync_stop_reporting_a_retired_component(tmp_path: Path) -> None:
    ws, _ = _promoted_everywhere(tmp_path)
    shutil.rmtree(ws.component_dir("alice:report"))
    ls = ws.ok("ls", "--json")
    rows = {r["component"]: r for r in json.loads(ls.stdout)}
    assert rows["alice:report"]["change"] == "missing from workspace"
    ws.ok("remove", "report", "--reason", "gone")
    rows = {r["component"]: r for r in json.loads(ws.ok("ls", "--json").stdout)}
    assert rows["alice:report"]["status"] == "retired"
    assert rows["alice:report"]["change"] == "retired"
    # a retired component still in its workspace is left alone by sync, even changed
    ws.ok("remove", "alice:etl", "--reason", "retired, files kept")
    ws.write("alice:etl", {"main.py": "print('changed')\n"})
    sync = ws.ok("sync", "--json")
    assert json.loads(sync.stdout)["retired"] == ["alice:etl"]
    assert json.loads(sync.stdout)["staged"] == 0
    assert ws.status("alice:etl") is ComponentStatus.RETIRED
    text = ws.ok("sync").stdout
    assert "alice:etl: retired, left alone ('lockgate stage alice:etl' brings it back)" in text
    # staging it by name brings it back
    ws.ok("stage", "alice:etl")
    assert ws.status("alice:etl") is ComponentStatus.STAGED


def test_staging_an_unchanged_retired_component_by_name_brings_it_back(tmp_path: Path) -> None:
    ws, _ = _promoted_everywhere(tmp_path)
    ws.ok("remove", "alice:etl", "--reason", "paused")
    with pytest.raises(RefusedError, match="is retired: cannot promote"):
        project = ws.project()
        try:
            from lockgate.operations.promote import Promoter

            Promoter(project).promote("alice:etl", to="staging")
        finally:
            project.close()
    ws.ok("stage", "alice:etl")
    assert ws.status("alice:etl") is ComponentStatus.STAGED
    ws.ok("promote", "alice:etl", "--to", "staging")
    assert "etl" in ws.entries("staging")


def test_remove_needs_a_reason_and_a_known_component(tmp_path: Path) -> None:
    ws, _ = _promoted_everywhere(tmp_path)
    missing = ws.cli("remove", "alice:etl")
    assert missing.exit_code != 0 and "--reason" in missing.stderr
    assert "Traceback" not in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    unknown = ws.cli("remove", "alice:nope", "--reason", "x")
    assert unknown.exit_code != 0 and "never been staged" in unknown.stderr
    dry = ws.ok("remove", "alice:etl", "--reason", "x", "--dry-run")
    assert "would take it out of production" in dry.stdout
    assert "etl" in ws.pointers("production") and ws.status("alice:etl") is not (
        ComponentStatus.RETIRED
    )


def test_a_pipeline_naming_a_retired_component_is_refused_in_one_line(tmp_path: Path) -> None:
    ws, _ = _promoted_everywhere(tmp_path)
    (ws.root / "pipelines").mkdir()
    (ws.root / "pipelines" / "ml.yaml").write_text("components: [alice:etl, alice:report]\n")
    ws.ok("remove", "alice:etl", "--reason", "superseded")
    planned = ws.cli("pipeline", "plan", "ml", "--to", "staging")
    assert planned.exit_code != 0
    lines = planned.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in planned.stderr
    assert "pipeline ml: member alice:etl is retired (by alice at" in lines[0]
    assert ": superseded); take it out of pipelines/ml.yaml" in lines[0]
    project = ws.project()
    try:
        with pytest.raises(RefusedError, match="is retired"):
            PipelineRunner(project).promote("ml", to="staging")
    finally:
        project.close()


def test_gc_reclaims_a_retired_component_past_the_retention_window(tmp_path: Path) -> None:
    ws = Project(tmp_path / "p", "gc:\n  keep: 1\n  grace: 0\n")
    first = ws.stage_files("alice:etl", {"main.py": "print(1)\n"})
    ws.ok("promote", "alice:etl", "--to", "staging")
    second = ws.stage_files("alice:etl", {"main.py": "print(2)\n"})
    ws.ok("promote", "alice:etl", "--to", "staging")
    ws.ok("remove", "alice:etl", "--reason", "done")
    project = ws.project()
    try:
        from lockgate.operations.gc import retained_revisions

        kept = retained_revisions(as_session(project))
    finally:
        project.close()
    # its latest revision is not kept for its own sake; the stage's retention still keeps
    # what was live last (previous), and the older revision goes
    assert second in kept and first not in kept


def test_a_removal_killed_midway_is_finished_by_running_it_again(tmp_path: Path) -> None:
    ws, revision = _promoted_everywhere(tmp_path)
    crashed = subprocess.run(
        [sys.executable, "-m", "lockgate", "remove", "alice:etl", "--reason", "bye"],
        cwd=ws.root,
        env=subprocess_env(ENV, {"LOCKGATE_FAILPOINTS": "remove.after_switch"}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert crashed.returncode == -9, crashed.stderr
    # the next command settles the interrupted switch: the stage matches its pointer
    ws.ok("recover")
    assert ws.entries("production") == ws.pointers("production")
    assert ws.status("alice:etl") is not ComponentStatus.RETIRED
    ws.ok("remove", "alice:etl", "--reason", "bye")
    for stage in ("staging", "integration", "production"):
        assert "etl" not in ws.pointers(stage) and "etl" not in ws.entries(stage)
    assert ws.status("alice:etl") is ComponentStatus.RETIRED
    removes = ws.events(component="alice:etl", action="remove")
    assert {e.stage for e in removes} == {"staging", "integration", "production"}  # type: ignore[attr-defined]
    assert all(e.previous_revision == revision for e in removes)  # type: ignore[attr-defined]


def test_the_integration_manager_retires_a_component(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lockgate import WorkspaceIntegrationManager, WorkspaceManager

    ws, revision = _promoted_everywhere(tmp_path)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    manager = WorkspaceIntegrationManager(WorkspaceManager(ws.root))
    try:
        refused = manager.retire_component("etl", "")
        assert refused["success"] is False and "--reason" in refused["issues"][0]
        done = manager.retire_component("etl", "superseded")
        assert done["success"] is True and done["issues"] == []
        assert done["removed_from"] == [
            {"stage": s, "revision": revision} for s in ("production", "integration", "staging")
        ]
        assert isinstance(done["retired_at"], str)
    finally:
        manager.workspace_manager.close()
    assert ws.status("alice:etl") is ComponentStatus.RETIRED
