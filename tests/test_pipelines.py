"""Pipelines: members that climb the ladder together, all or nothing.

Everything is real: projects on disk, the SQLite state store, the builtin ``directory``
target (and, for failures, a target that wraps it and fails on purpose), the command line
in-process, and real subprocesses for crashes and a concurrent promotion.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import ENV, ProjectWorkspace, subprocess_env
from lockgate import hookimpl
from lockgate.builtin_plugins.directory_target import DirectoryTarget
from lockgate.contracts.state import EventFilter
from lockgate.errors import ConfigError, RefusedError
from lockgate.operations.pipeline import FAILPOINTS, PipelineRunner
from lockgate.plugin import TransientError
from lockgate.testing import CliResult, fake_distribution, run_cli

MEMBERS = ("alice:prep", "alice:train", "alice:flow")
PIPELINE = """\
components: [alice:prep, alice:train, alice:flow]
depends_on:
  alice:flow: [alice:train]
"""
RANDOM_KILLS = int(os.environ.get("LOCKGATE_PIPELINE_KILLS", "12"))
RANDOM_SEED = int(os.environ.get("LOCKGATE_PIPELINE_SEED", "1"))
"""Read when the module is imported: every test runs with the LOCKGATE_* variables removed."""
FLAKY_STAGES = """\
stages:
  staging: {}
  integration: {}
  production:
    targets:
      - kind: flaky
"""


ONE_BY_ONE = """\
stages:
  staging:
    targets:
      - kind: directory
        options: {generations: false}
  integration: {}
  production: {}
"""


class Flaky:
    """Plugin ``flaky``: a ``directory`` target whose commit fails for the component ids
    in ``fail``, and ``transient[id]`` times with a TransientError."""

    def __init__(self) -> None:
        self.fail: set[str] = set()
        self.transient: dict[str, int] = {}
        self.calls: list[str] = []
        self.slow: dict[str, float] = {}
        """Seconds ``prepare`` takes for a component id (a slow upload)."""

    @hookimpl
    def register_targets(self, register: Any) -> None:
        register("flaky", self.build)

    def build(self, ctx: Any) -> Any:
        inner = DirectoryTarget.from_context(ctx)
        plugin = self

        class Target:
            # A target that switches member by member (no GroupSwitch), as most remote
            # targets do: runs prepare, commit in order and switch back on a failure.
            group_switch = False

            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

            def prepare(self, component_id: str, revision: Any) -> Any:
                if revision is not None:
                    time.sleep(plugin.slow.get(component_id, 0))
                return inner.prepare(component_id, revision)

            def commit(self, prepared: Any) -> None:
                cid = prepared.component_id
                plugin.calls.append(cid)
                if prepared.revision is not None and plugin.transient.get(cid):
                    plugin.transient[cid] -= 1
                    raise TransientError(f"{cid}: the remote is busy")
                if prepared.revision is not None and cid in plugin.fail:
                    raise OSError(f"{cid}: the remote refused the switch")
                inner.commit(prepared)

        return Target()


class Project(ProjectWorkspace):
    def __init__(self, root: Path, config: str = "", flaky: Flaky | None = None) -> None:
        extra = (fake_distribution("lockgate-flaky", {"flaky": flaky}),) if flaky else ()
        super().__init__(root, config, extra)
        (root / "pipelines").mkdir()
        (root / "pipelines" / "ml.yaml").write_text(PIPELINE)
        self.revisions = {}
        for ref in MEMBERS:
            self.revisions[ref] = self.stage_files(ref, {"main.py": f"print('{ref} one')\n"})

    def cli(self, *args: str) -> CliResult:
        return run_cli(*args, project=self.root, env=ENV)

    def ok(self, *args: str) -> CliResult:
        result = self.cli(*args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        return result

    def runner_do(self, method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        project = self.project()
        try:
            return dict(getattr(PipelineRunner(project), method)(*args, **kwargs))
        finally:
            project.close()

    def entries(self, stage: str) -> dict[str, str]:
        where = self.root / "stages" / stage
        if not where.is_dir():
            return {}
        return {p.name: p.readlink().name for p in where.iterdir()}

    def pointers(self, stage: str) -> dict[str, str | None]:
        project = self.project()
        try:
            return {p.component_id: p.revision for p in project.state().pointers(stage)}
        finally:
            project.close()

    def events(self, **where: Any) -> list[Any]:
        project = self.project()
        try:
            return project.state().events(EventFilter(**where))
        finally:
            project.close()

    def climb(self, *stages: str) -> None:
        for stage in stages:
            self.ok("pipeline", "promote", "ml", "--to", stage)


def ids(revisions: dict[str, str]) -> dict[str, str]:
    return {ref.split(":")[1]: rev for ref, rev in revisions.items()}


def test_a_three_level_pipeline_climbs_to_production(tmp_path: Path) -> None:
    ws = Project(tmp_path / "p")
    (ws.component_dir("alice:train") / "component.yaml").write_text("depends_on: [prep]\n")
    ws.stage_files("alice:train", {"main.py": "print('train one')\n"})
    plan = json.loads(ws.ok("pipeline", "plan", "ml", "--to", "staging", "--json").stdout)
    assert plan["levels"] == [["alice:prep"], ["alice:train"], ["alice:flow"]]
    assert [s["action"] for s in plan["steps"]] == ["promote"] * 3
    for stage in ("staging", "integration", "production"):
        report = json.loads(ws.ok("pipeline", "promote", "ml", "--to", stage, "--json").stdout)
        assert report["status"] == "completed" and report["success_rate"] == 1.0
        assert report["total_steps"] == report["completed_steps"] == 3
        assert [s["component"] for s in report["step_results"]] == list(MEMBERS)
    project = ws.project()
    try:
        live = {p.component_id: p.revision for p in project.state().pointers("production")}
    finally:
        project.close()
    assert set(live) == {"prep", "train", "flow"}
    assert ws.entries("production") == live
    again = json.loads(ws.ok("pipeline", "plan", "ml", "--to", "production", "--json").stdout)
    assert {s["action"] for s in again["steps"]} == {"current"}
    shown = json.loads(ws.ok("pipeline", "show", "ml", "--run", "2", "--json").stdout)
    assert shown["stage"] == "integration" and shown["run"] == 2
    summary = json.loads(ws.ok("summary", "--json").stdout)
    assert summary["integration_pipelines"] == 1
    # every member's switch names the run
    runs = {e.details["run"] for e in ws.events(action="promote", stage="production")}
    assert runs == {ws.events(action="pipeline")[-1].details["run"]}


def test_a_failing_gate_refuses_the_whole_run_before_anything_moves(tmp_path: Path) -> None:
    ws = Project(tmp_path / "p")
    ws.stage_files("alice:flow", {"main.py": "def broken(:\n"})
    (ws.root / "pipelines" / "ml.yaml").write_text(PIPELINE + "options:\n  fail_fast: false\n")
    ws.stage_files("alice:train", {"main.py": "def also broken(:\n"})
    result = ws.cli("pipeline", "promote", "ml", "--to", "staging", "--json")
    assert result.exit_code == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "failed" and "before anything moved" in report["cause"]
    refused = {s["component"] for s in report["step_results"] if s["status"] == "refused"}
    assert refused == {"alice:train", "alice:flow"}  # fail_fast: false reports both
    assert ws.entries("staging") == {} and ws.pointers("staging") == {}
    assert ws.events(action="promote") == []
    assert ws.events(action="pipeline")[-1].outcome == "failed"


def test_a_refused_run_reaches_on_failure_with_its_report(tmp_path: Path) -> None:
    heard: list[tuple[str, str, str]] = []

    class Listener:
        @hookimpl
        def on_failure(self, event: Any) -> None:
            report = event.details.get("report") or {}
            heard.append((event.action, event.details["outcome"], str(report.get("status"))))

    ws = Project(tmp_path / "p")
    ws.stage_files("alice:flow", {"main.py": "def broken(:\n"})
    ws.extra = (fake_distribution("lockgate-listener", {"listener": Listener()}),)
    report = ws.runner_do("promote", "ml", to="staging")
    assert report["status"] == "failed"
    assert ("pipeline", "failed", "failed") in heard


def test_a_target_failing_on_the_third_member_switches_the_first_two_back(
    tmp_path: Path,
) -> None:
    flaky = Flaky()
    ws = Project(tmp_path / "p", FLAKY_STAGES, flaky)
    runner = ws.runner_do
    for stage in ("staging", "integration", "production"):
        assert runner("promote", "ml", to=stage)["status"] == "completed"
    before = ws.pointers("production")
    assert ws.entries("production") == before
    for ref in MEMBERS:
        ws.stage_files(ref, {"main.py": f"print('{ref} two')\n"})
    for stage in ("staging", "integration"):
        assert runner("promote", "ml", to=stage)["status"] == "completed"
    flaky.fail = {"flow"}
    report = runner("promote", "ml", to="production", reason="release two")
    assert report["status"] == "rolled_back", report
    assert "alice:flow" in report["cause"] and "refused the switch" in report["cause"]
    statuses = {s["component"]: s["status"] for s in report["step_results"]}
    assert statuses == {
        "alice:prep": "rolled_back",
        "alice:train": "rolled_back",
        "alice:flow": "failed",
    }
    assert ws.pointers("production") == before
    assert ws.entries("production") == before
    # the audit log tells the story: two promoted, then switched back, tied to the run
    run = report["run_id"]
    story = [
        (e.action, e.component)
        for e in ws.events(stage="production")
        if e.details.get("run") == run and e.action in ("promote", "rollback")
    ]
    assert story == [
        ("promote", "alice:prep"),
        ("promote", "alice:train"),
        ("rollback", "alice:train"),
        ("rollback", "alice:prep"),
    ]
    recorded = ws.events(action="pipeline")[-1]
    assert recorded.details["report"]["status"] == "rolled_back"


def test_a_transient_failure_is_retried(tmp_path: Path) -> None:
    flaky = Flaky()
    ws = Project(tmp_path / "p", FLAKY_STAGES, flaky)
    (ws.root / "pipelines" / "ml.yaml").write_text(PIPELINE + "options:\n  retry_count: 3\n")
    ws.climb("staging", "integration")
    flaky.transient = {"train": 2}
    report = ws.runner_do("promote", "ml", to="production")
    assert report["status"] == "completed", (report["cause"], report["step_results"])
    train = next(s for s in report["step_results"] if s["component"] == "alice:train")
    assert train["attempts"] == 3 and len(train["issues"]) == 2
    assert report["execution_summary"]["retries"] == 2
    assert ws.entries("production") == ws.pointers("production")
    # a failure not marked transient is final at once
    for ref in MEMBERS:
        ws.stage_files(ref, {"main.py": f"print('{ref} three')\n"})
    ws.climb("staging", "integration")
    flaky.fail = {"train"}
    report = ws.runner_do("promote", "ml", to="production")
    train = next(s for s in report["step_results"] if s["component"] == "alice:train")
    assert report["status"] == "rolled_back" and train["attempts"] == 1


def test_a_step_over_its_timeout_fails_the_run(tmp_path: Path) -> None:
    flaky = Flaky()
    ws = Project(tmp_path / "p", FLAKY_STAGES, flaky)
    ws.climb("staging", "integration")
    (ws.root / "pipelines" / "ml.yaml").write_text(
        PIPELINE + "steps:\n  alice:train: {timeout: 0.000001}\n"
    )
    report = ws.runner_do("promote", "ml", to="production")
    assert report["status"] == "rolled_back" and "timeout" in report["cause"]
    assert ws.pointers("production") == {} and ws.entries("production") == {}


def test_a_timeout_stops_a_slow_switch_before_it_is_made_visible(tmp_path: Path) -> None:
    """The timeout is honoured while a member switches: a prepare that runs past it is
    not committed (never visible), and the members before it are switched back."""
    flaky = Flaky()
    ws = Project(tmp_path / "p", FLAKY_STAGES, flaky)
    ws.climb("staging", "integration")
    (ws.root / "pipelines" / "ml.yaml").write_text(
        PIPELINE + "steps:\n  alice:train: {timeout: 0.2}\n"
    )
    flaky.slow = {"train": 0.6}
    report = ws.runner_do("promote", "ml", to="production")
    assert report["status"] == "rolled_back", report
    assert "alice:train ran over its timeout of 0.2 s" in report["cause"]
    assert "stopped before the switch was made visible" in report["cause"]
    assert "train" not in flaky.calls  # never committed
    assert ws.pointers("production") == {} and ws.entries("production") == {}


def test_a_cycle_is_refused_naming_the_whole_cycle(tmp_path: Path) -> None:
    ws = Project(tmp_path / "p")
    (ws.root / "pipelines" / "ml.yaml").write_text(
        PIPELINE + "  alice:prep: [alice:flow]\n  alice:train: [alice:prep]\n"
    )
    result = ws.cli("pipeline", "plan", "ml", "--to", "staging")
    assert result.exit_code == 1
    message = result.stderr
    assert "cycle" in message and all(m in message for m in MEMBERS), message


def test_the_file_is_checked_with_lines_and_suggestions(tmp_path: Path) -> None:
    ws = Project(tmp_path / "p")
    path = ws.root / "pipelines" / "ml.yaml"
    path.write_text(PIPELINE + "option:\n  fail_fast: false\n")
    result = ws.cli("pipeline", "plan", "ml", "--to", "staging")
    assert "ml.yaml:4" in result.stderr and "did you mean 'options'" in result.stderr
    path.write_text(PIPELINE.replace("alice:flow: [alice:train]", "alice:flow: [alice:trian]"))
    result = ws.cli("pipeline", "plan", "ml", "--to", "staging")
    assert "ml.yaml:3" in result.stderr and "did you mean 'alice:train'" in result.stderr
    result = ws.cli("pipeline", "plan", "ml2", "--to", "staging")
    assert result.exit_code != 0 and "did you mean 'ml'" in result.stderr
    with pytest.raises(ConfigError):
        from lockgate.operations.pipeline_spec import load_pipeline

        path.write_text("components: [alice:prep, alice:prep]\n")
        load_pipeline(ws.root, "ml")


def test_a_dry_run_changes_nothing(tmp_path: Path) -> None:
    ws = Project(tmp_path / "p")
    events = len(ws.events())
    report = json.loads(
        ws.ok("pipeline", "promote", "ml", "--to", "staging", "--dry-run", "--json").stdout
    )
    assert report["status"] == "planned" and report["dry_run"]
    assert ws.entries("staging") == {} and ws.pointers("staging") == {}
    assert len(ws.events()) == events


def test_pipeline_rollback_returns_every_member_to_before_the_last_run(tmp_path: Path) -> None:
    ws = Project(tmp_path / "p")
    ws.climb("staging")
    first = ws.pointers("staging")
    for ref in MEMBERS[:2]:
        ws.stage_files(ref, {"main.py": f"print('{ref} two')\n"})
    ws.climb("staging")
    assert ws.pointers("staging") != first
    report = json.loads(ws.ok("pipeline", "rollback", "ml", "--json").stdout)
    assert report["kind"] == "rollback" and report["status"] == "completed"
    assert [s["component"] for s in report["step_results"]] == ["alice:train", "alice:prep"]
    assert ws.pointers("staging") == first and ws.entries("staging") == first
    # the promote run it undid is no longer at its revisions: a second rollback refuses
    assert ws.cli("pipeline", "rollback", "ml").exit_code == 1


def test_a_concurrent_single_promotion_of_a_member_is_refused_while_a_run_holds_the_lock(
    tmp_path: Path,
) -> None:
    ws = Project(tmp_path / "p")
    pause = tmp_path / "pause"
    pause.mkdir()
    env = subprocess_env(
        ENV,
        {
            "LOCKGATE_FAILPOINTS": "pipeline.group_after_switch:pause",
            "LOCKGATE_PAUSE_DIR": str(pause),
        },
    )
    run = subprocess.Popen(
        [sys.executable, "-m", "lockgate", "pipeline", "promote", "ml", "--to", "staging"],
        cwd=ws.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (pause / "pipeline.group_after_switch.paused").exists():
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()
            time.sleep(0.02)
        single = subprocess.run(
            [sys.executable, "-m", "lockgate", "promote", "alice:flow", "--to", "staging"],
            cwd=ws.root,
            env=subprocess_env(ENV, {"LOCKGATE__STATE__LOCK_TIMEOUT": "0.3"}),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert single.returncode == 4 and "lock" in single.stderr, single.stderr
    finally:
        (pause / "pipeline.group_after_switch.resume").touch()
        _, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert set(ws.pointers("staging")) == {"prep", "train", "flow"}
    # one promote event per member, all from the run
    promoted = ws.events(action="promote", stage="staging")
    assert len(promoted) == 3 and all("run" in e.details for e in promoted)


@pytest.mark.parametrize(
    "failpoint",
    [
        *FAILPOINTS,
        "promote.after_intent",
        "promote.after_switch",
        "promote.after_record",
        "rollback.after_switch",
    ],
)
def test_a_run_killed_at_each_failpoint_is_settled_whole(tmp_path: Path, failpoint: str) -> None:
    """kill -9 at a failpoint: the next command finishes or undoes the whole run."""
    # the member-by-member failpoints on a directory target without generations
    one_by_one = not failpoint.startswith("pipeline.group_")
    ws = Project(tmp_path / "p", ONE_BY_ONE if one_by_one else "")
    ws.climb("staging")
    before = ws.pointers("staging")
    for ref in MEMBERS:
        ws.stage_files(ref, {"main.py": f"print('{ref} two')\n"})
    args = ["pipeline", "promote", "ml", "--to", "staging"]
    env = {"LOCKGATE_FAILPOINTS": failpoint}
    if failpoint.startswith(("rollback.", "pipeline.after_undo")):
        # a run that fails on its last member and dies while switching the others back
        (ws.root / "pipelines" / "ml.yaml").write_text(
            PIPELINE + "steps:\n  alice:flow: {timeout: 0.000001}\n"
        )
    crashed = subprocess.run(
        [sys.executable, "-m", "lockgate", *args],
        cwd=ws.root,
        env=subprocess_env(ENV, env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert crashed.returncode == -9, (crashed.stdout, crashed.stderr)
    recovered = ws.ok("recover", "--json")
    assert any(r["operation"] == "pipeline" for r in json.loads(recovered.stdout))
    after = ws.pointers("staging")
    staged = {ref.split(":")[1] for ref in MEMBERS}
    assert set(after) == staged
    assert after == before or all(after[c] != before[c] for c in staged), "a mix"
    assert ws.entries("staging") == after
    project = ws.project()
    try:
        assert project.state().open_intents() == []
    finally:
        project.close()
    last = ws.events(action="pipeline")[-1].details["report"]
    assert last["status"] == ("completed" if after != before else "rolled_back")


def test_a_missing_member_and_a_refused_rollback_say_what_to_do(tmp_path: Path) -> None:
    ws = Project(tmp_path / "p")
    with pytest.raises(RefusedError, match="no completed run"):
        ws.runner_do("rollback", "ml")
    (ws.root / "pipelines" / "ml.yaml").write_text("components: [alice:prep, alice:nope]\n")
    result = ws.cli("pipeline", "plan", "ml", "--to", "staging")
    assert result.exit_code != 0 and "nope" in result.stderr
    (ws.root / "pipelines" / "ml.yaml").write_text("components: [alice:prep, bob:prep]\n")
    result = ws.cli("pipeline", "plan", "ml", "--to", "staging")
    assert result.exit_code == 1 and "list it once" in result.stderr, result.stderr


def test_the_python_api_creates_validates_promotes_and_rolls_back_a_pipeline(
    tmp_path: Path,
) -> None:
    from lockgate import (
        IntegrationPipeline,
        StagedComponent,
        WorkspaceIntegrationManager,
        WorkspaceManager,
    )

    ws = Project(tmp_path / "p")
    manager = WorkspaceIntegrationManager(WorkspaceManager(ws.root, environ=ENV))
    try:
        pipeline = IntegrationPipeline(
            "api",
            [
                StagedComponent("prep", "alice", "builders"),
                StagedComponent("flow", "alice", "builders"),
            ],
            depends_on={"alice:flow": ["alice:prep"]},
        )
        assert pipeline.to_dict()["status"] == "pending"
        created = manager.create_integration_pipeline(pipeline)
        assert created["success"] and (ws.root / "pipelines" / "api.yaml").is_file()
        bad = manager.create_integration_pipeline(
            "bad", ["alice:prep"], depends_on={"x:y": ["alice:prep"]}
        )
        assert not bad["success"] and "not a member" in bad["issues"][0]
        checked = manager.validate_integration_pipeline("api")
        assert checked["success"] and checked["overall_ready"] and checked["stage"] == "staging"
        assert ws.pointers("staging") == {}
        done = manager.promote_integration_pipeline("api")
        assert done["success"] and done["status"] == "completed" and done["stage"] == "production"
        assert [r["stage"] for r in done["runs"]] == ["staging", "integration", "production"]
        assert set(ws.pointers("production")) == {"prep", "flow"}
        assert manager.integration_pipeline("api").to_dict()["status"] == "completed"
        assert manager.get_integration_summary()["integration_pipelines"] == 2
        back = manager.rollback_integration_pipeline("api")
        assert back["success"] and back["kind"] == "rollback"
        assert ws.pointers("production") == {}
        missing = manager.promote_integration_pipeline("nope")
        assert not missing["success"] and "no pipeline 'nope'" in missing["issues"][0]
    finally:
        manager.workspace_manager.close()


def test_the_reference_pipeline_example_runs_as_written(tmp_path: Path) -> None:
    from lockgate import WorkspaceIntegrationManager, WorkspaceManager

    ws = Project(tmp_path / "p")
    integration_manager = WorkspaceIntegrationManager(WorkspaceManager(ws.root, environ=ENV))

    # --- as in the reference, "Integration Pipeline Management"
    def manage_integration_pipeline(integration_manager: Any, components: Any) -> None:
        staged_components = []
        for comp_id, workspace in components:
            result = integration_manager.stage_for_integration(comp_id, workspace)
            if result["success"]:
                staged_components.append(f"{workspace}:{comp_id}")
        validation = integration_manager.validate_integration_readiness(staged_components)
        if validation["overall_ready"]:
            for comp_id, _workspace in components:
                integration_manager.promote_to_production(comp_id)
            print("Pipeline successfully integrated")
        else:
            print("Pipeline validation failed:", validation["integration_issues"])
            for comp_id, _workspace in components:
                integration_manager.rollback_integration(comp_id)

    try:
        manage_integration_pipeline(integration_manager, [("prep", "alice"), ("train", "alice")])
        assert {"prep", "train"} <= set(ws.pointers("production"))
    finally:
        integration_manager.workspace_manager.close()


def test_fail_fast_names_the_first_problem_and_a_rejection_refuses_the_run(
    tmp_path: Path,
) -> None:
    ws = Project(tmp_path / "p")
    ws.stage_files("alice:train", {"main.py": "def broken(:\n"})
    ws.stage_files("alice:flow", {"main.py": "def also broken(:\n"})
    report = ws.runner_do("promote", "ml", to="staging")  # fail_fast: true by default
    refused = [s["component"] for s in report["step_results"] if s["status"] == "refused"]
    assert report["status"] == "failed" and refused == ["alice:train"]
    assert ws.pointers("staging") == {}

    ws.stage_files("alice:train", {"main.py": "print('fixed')\n"})
    ws.stage_files("alice:flow", {"main.py": "print('fixed')\n"})
    ws.ok("reject", "alice:flow", "--reason", "not this one")
    events = len(ws.events())
    dry = ws.runner_do("promote", "ml", to="staging", dry_run=True)
    assert dry["status"] == "failed" and "alice:flow" in dry["cause"]
    assert len(ws.events()) == events  # a dry run records nothing, not even the refusal
    report = ws.runner_do("promote", "ml", to="staging")
    assert report["status"] == "failed" and "alice:flow" in report["cause"]
    assert ws.pointers("staging") == {} and ws.entries("staging") == {}


def test_the_next_command_that_changes_something_settles_an_interrupted_run(
    tmp_path: Path,
) -> None:
    ws = Project(tmp_path / "p")
    crashed = subprocess.run(
        [sys.executable, "-m", "lockgate", "pipeline", "promote", "ml", "--to", "staging"],
        cwd=ws.root,
        env=subprocess_env(ENV, {"LOCKGATE_FAILPOINTS": "pipeline.group_after_pointer"}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert crashed.returncode == -9
    assert list(ws.pointers("staging").values()).count(None) == 0
    assert len(ws.pointers("staging")) == 1  # the group switched, one pointer moved, killed
    # a command that only reads warns and leaves it
    looked = ws.cli("ls")
    assert "recovery pending" in looked.stderr and "pipeline run of ml" in looked.stderr
    assert len(ws.pointers("staging")) == 1
    # a command that changes something settles it first: the whole run undone
    ws.stage_files("alice:prep", {"main.py": "print('prep two')\n"})
    assert ws.pointers("staging") == {} and ws.entries("staging") == {}
    last = ws.events(action="pipeline")[-1].details["report"]
    assert last["status"] == "rolled_back" and "interrupted" in last["cause"]
    stats = json.loads(ws.ok("stats", "--json").stdout)
    assert stats["integration_operations"]["pipeline_runs"]["total"] == 1
    listed = json.loads(ws.ok("pipeline", "list", "--json").stdout)
    assert listed == [
        {"pipeline_id": "ml", "runs": 1, "last_status": "rolled_back", "last_stage": "staging"}
    ]


@pytest.mark.slow
def test_random_kills_never_leave_a_mixed_stage_or_an_unfinished_run(tmp_path: Path) -> None:
    """kill -9 a run at a random moment or a random failpoint, again and again (some runs
    are made to fail on their last member, so kills land while they switch back too): after
    ``lockgate recover`` every member is at its revision from before the run or every
    member at the new one, the stage shows what the pointers say, and no intent is open.
    ``LOCKGATE_PIPELINE_KILLS`` (default 12) and ``LOCKGATE_PIPELINE_SEED`` set the run."""
    import random

    rng = random.Random(RANDOM_SEED)
    kills = RANDOM_KILLS
    points = [
        *FAILPOINTS,
        "promote.after_prepare",
        "promote.after_switch",
        "promote.after_record",
        "rollback.after_switch",
        "rollback.after_record",
    ]
    ws = Project(tmp_path / "p")
    failing = PIPELINE + "steps:\n  alice:flow: {timeout: 0.000001}\n"
    outcomes: dict[str, int] = {}
    for n in range(kills):
        for ref in MEMBERS:
            ws.stage_files(ref, {"main.py": f"print('{ref} {n}')\n"})
        fails = rng.random() < 0.35
        (ws.root / "pipelines" / "ml.yaml").write_text(failing if fails else PIPELINE)
        before = ws.pointers("staging")
        env = dict(ENV)
        if rng.random() < 0.5:
            env["LOCKGATE_FAILPOINTS"] = rng.choice(points)
        proc = subprocess.Popen(
            [sys.executable, "-m", "lockgate", "pipeline", "promote", "ml", "--to", "staging"],
            cwd=ws.root,
            env=subprocess_env(env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        # The interpreter starts in about 0.3-0.6 s; a run that ends sooner (at its
        # failpoint, or done) is not waited for.
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=rng.uniform(0.2, 1.2))
        proc.kill()
        _, err = proc.communicate(timeout=60)
        assert "Traceback" not in err, err
        ws.ok("recover")
        after = ws.pointers("staging")
        new = {ref.split(":")[1] for ref in MEMBERS}
        moved = {c for c in new if after.get(c) != before.get(c)}
        assert moved in (set(), new), f"kill {n}: a mix ({sorted(moved)} moved)"
        assert ws.entries("staging") == {c: r for c, r in after.items() if r}
        project = ws.project()
        try:
            assert project.state().open_intents() == []
        finally:
            project.close()
        key = "new" if moved else "old"
        outcomes[key] = outcomes.get(key, 0) + 1
    print(f"pipeline kills: {kills}, members left at: {outcomes}")
    assert sum(outcomes.values()) == kills
