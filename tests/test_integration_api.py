"""The integration manager API: every example of docs/integration-api.md, run for real.

The examples are read from the page itself, so the documentation cannot drift from what
runs. They execute in order, in one namespace, against a real temporary project; the
only thing replaced is the placeholder path ``/path/to/workspace``.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

import pytest

from lockgate import (
    ComponentStatus,
    InputError,
    ProjectNotFoundError,
    StagedComponent,
    WorkspaceIntegrationManager,
    WorkspaceManager,
)
from lockgate.operations.init import init_project

DOC = Path(__file__).resolve().parents[1] / "docs" / "integration-api.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
ENV = {"LOCKGATE_DISABLE_PLUGINS": "teamdefaults", "LOCKGATE_ACTOR": "alice"}


def _component(root: Path, ref: str, files: dict[str, str], kind: str = "builders") -> None:
    ws, cid = ref.split(":")
    base = root / "workspaces" / ws / kind / cid
    base.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (base / name).write_text(text)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    root = tmp_path / "project"
    init_project(root)
    _component(root, "alice:data_preprocessing", {"step.py": "def run():\n    return 1\n"})
    _component(root, "alice:feature_eng", {"step.py": "def run():\n    return 2\n"})
    _component(root, "alice:data_prep", {"step.py": "X = 1\n"})
    _component(root, "bob:training", {"train.py": "Y = 2\n"})
    _component(root, "bob:broken", {"train.py": "def (:\n"})
    return root


def run_block(index: int, namespace: dict[str, Any], root: Path) -> str:
    code = BLOCKS[index].replace("/path/to/workspace", str(root))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"{DOC.name}[{index}]", "exec"), namespace)
    return out.getvalue()


def test_the_page_has_every_example_of_the_reference() -> None:
    assert len(BLOCKS) == 17  # the reference's 16, and the pipelines section's
    for block in BLOCKS:
        for line in block.splitlines():
            if line.startswith(("from ", "import ")):
                assert line.startswith("from lockgate import"), line


def test_every_example_runs_in_order_and_does_what_the_text_says(project: Path) -> None:
    ns: dict[str, Any] = {}
    assert run_block(0, ns, project) == "Current stage: staging\n"

    ns["component"] = StagedComponent("c", "alice", "builders")
    ns["component"].status = ComponentStatus.APPROVED
    assert run_block(1, ns, project) == "Component ready for promotion\n"

    out = run_block(2, ns, project)
    assert out.startswith("Component status: staged\nStaged at: 20")
    out = run_block(3, ns, project)
    assert "Component ID: data_preprocessing\nStatus: staged\nApproval history: []" in out

    out = run_block(4, ns, project)
    assert out.startswith("Pipeline created at: 20")
    assert run_block(5, ns, project) == (
        "Pipeline ID: ml_pipeline_v1\nComponent count: 2\nStatus: pending\n"
    )

    assert run_block(6, ns, project) == "Staged components: 0\n"

    out = run_block(7, ns, project)
    staging_path = out.splitlines()[0].removeprefix("Component staged at: ")
    assert (Path(staging_path) / "step.py").read_text() == "def run():\n    return 1\n"
    assert "Staged at: 20" in out

    out = run_block(8, ns, project)  # bob:model_training was never staged
    assert out.startswith("Integration issues: []\nRecommendations: ['stage it: lockgate")
    assert "alice:data_preprocessing: READY" in out
    assert "bob:model_training: NOT READY" in out

    out = run_block(9, ns, project)
    lines = out.splitlines()
    assert lines[0].startswith("Component promoted at: 20")
    production = Path(lines[1].removeprefix("Production path: "))
    assert production == project / "stages" / "production" / "data_preprocessing"
    assert (production / "step.py").read_text().endswith("return 1\n")

    out = run_block(10, ns, project)  # no earlier production revision: removed
    assert out.startswith("Component rolled back at: 20")
    assert not production.exists()

    out = run_block(11, ns, project)
    assert "Staged components: 1\nIntegration pipelines: 0\n" in out
    assert "data_preprocessing: rollback" in out

    out = run_block(12, ns, project)
    assert "Total staged components: 1\nPromotion success rate: 1.0\n" in out
    assert "By type: {'builders': 1}" in out
    assert "By workspace: {'alice': 1}" in out

    for index in (13, 14, 15):
        assert run_block(index, ns, project) == ""  # they only define the workflows
    manager = ns["integration_manager"]

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert ns["stage_component_workflow"](manager, "feature_eng", "alice") is True
    assert "Component successfully promoted to production" in out.getvalue()
    assert (project / "stages" / "production" / "feature_eng" / "step.py").is_file()

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert ns["stage_component_workflow"](manager, "broken", "bob") is False
    assert out.getvalue().startswith("Component not ready:")

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ns["manage_integration_pipeline"](manager, [("data_prep", "alice"), ("training", "bob")])
    assert out.getvalue() == "Pipeline successfully integrated\n"
    for cid in ("data_prep", "training"):
        assert (project / "stages" / "production" / cid).is_dir()

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ns["manage_integration_pipeline"](manager, [("training", "bob"), ("broken", "bob")])
    assert out.getvalue().startswith("Pipeline validation failed:")
    # The rollback pass removed 'training' from production (it had nothing earlier).
    assert not (project / "stages" / "production" / "training").exists()

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ns["safe_integration_workflow"](manager, "broken", "bob")
    text = out.getvalue()
    assert text.startswith("Integration failed: Validation failed:")
    assert "Rollback also failed:" in text  # never promoted: nothing to roll back

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ns["safe_integration_workflow"](manager, "data_prep", "alice")
    assert out.getvalue() == ""  # promoted already: a no-op success, nothing to report

    # The pipelines section (an addition to the reference): training climbs back.
    assert run_block(16, ns, project) == "completed 1.0 []\n"
    assert (project / "pipelines" / "ml_pipeline_v1.yaml").is_file()
    assert (project / "stages" / "production" / "training").is_dir()


def _manager(project: Path) -> WorkspaceIntegrationManager:
    return WorkspaceIntegrationManager(WorkspaceManager(project))


def test_promoting_what_is_current_is_a_no_op_that_says_so(project: Path) -> None:
    manager = _manager(project)
    manager.stage_for_integration("data_prep", "alice")
    first = manager.promote_to_production("data_prep")
    assert first["success"] and "note" not in first
    again = manager.promote_to_production("data_prep")
    assert again["success"] is True
    assert "already current" in again["note"]
    assert [s["changed"] for s in again["stages"]] == [False, False, False]


def test_expected_failures_come_back_as_issues(project: Path) -> None:
    manager = _manager(project)
    unknown = manager.promote_to_production("nothing_here")
    assert unknown["success"] is False
    assert unknown["issues"] == ["no staged component has id 'nothing_here'; stage it first"]
    missing = manager.stage_for_integration("nothing_here", "alice")
    assert (
        missing["success"] is False and "no component 'alice:nothing_here'" in missing["issues"][0]
    )
    nothing = manager.rollback_integration("data_prep")
    assert nothing["success"] is False
    assert nothing["issues"] == [
        "nothing is current for data_prep in production; nothing to roll back"
    ]
    manager.stage_for_integration("broken", "bob")
    refused = manager.promote_to_production("broken")
    assert refused["success"] is False and "is not ready for staging" in refused["issues"][0]


def test_programming_errors_raise(project: Path, tmp_path: Path) -> None:
    with pytest.raises(ProjectNotFoundError):
        WorkspaceManager(tmp_path / "nowhere")
    with pytest.raises(InputError):
        _manager(project).validate_integration_readiness(["data_prep"])


def test_rollback_goes_to_the_last_good_revision_and_is_audited(project: Path) -> None:
    manager = _manager(project)
    manager.stage_for_integration("data_prep", "alice")
    one = manager.promote_to_production("data_prep")
    _component(project, "alice:data_prep", {"step.py": "X = 2\n"})
    manager.stage_for_integration("data_prep", "alice")
    two = manager.promote_to_production("data_prep")
    assert two["previous_revision"] == one["revision"]
    back = manager.rollback_integration("data_prep")
    assert back["success"] and back["revision"] == one["revision"] and not back["removed"]
    deployed = project / "stages" / "production" / "data_prep" / "step.py"
    assert deployed.read_text() == "X = 1\n"
    actions = [
        a["activity"]["action"] for a in manager.get_integration_summary()["recent_activities"]
    ]
    assert "rollback" in actions
    staged = manager.staged_component("alice:data_prep")
    assert staged.to_dict()["revision"] == two["revision"]


def test_workspace_manager_lists_workspaces_and_components(project: Path) -> None:
    manager = WorkspaceManager(project, actor="ci")
    assert manager.list_workspaces() == ["alice", "bob"]
    found = {c["ref"]: c for c in manager.discover_components("bob")}
    assert set(found) == {"bob:broken", "bob:training"}
    assert found["bob:training"]["component_type"] == "builders"
    assert manager.project.actor == "ci"
    manager.close()


def test_create_initialises_a_project_where_there_is_none(tmp_path: Path) -> None:
    manager = WorkspaceManager(tmp_path / "fresh", create=True)
    assert (tmp_path / "fresh" / "lockgate.yaml").is_file()
    assert manager.list_workspaces() == []
    assert WorkspaceIntegrationManager(manager).get_integration_summary()["staged_components"] == 0
