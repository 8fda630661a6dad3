"""Validation gates: the builtin validators, running validators safely, the cache, approvals."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from conftest import ENV, ProjectWorkspace, run_lockgate, write_distribution
from lockgate import (
    Issue,
    RefusedError,
    Severity,
    ValidationSubject,
    ValidatorInfo,
    hookimpl,
)
from lockgate.operations.approve import decide
from lockgate.operations.lifecycle import move_pointer
from lockgate.operations.stage import Stager
from lockgate.operations.validate import ReadinessReport, Validation
from lockgate.testing import fake_distribution, run_cli


class Workspace(ProjectWorkspace):
    """A project with helpers to write components, stage and validate them."""

    def stage(self, ref: str, files: Mapping[str, str | bytes], kind: str = "builders") -> str:
        return self.stage_files(ref, files, kind)

    def validate(self, *refs: str, actor: str = "alice", **kwargs: Any) -> ReadinessReport:
        project = self.project(actor)
        try:
            return Validation(project).run(list(refs), **kwargs)
        finally:
            project.close()


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "p")


def codes(report: ReadinessReport, ref: str, plugin: str | None = None) -> list[str]:
    return [i.code for i in report.component(ref).issues if plugin is None or i.plugin == plugin]


def only(report: ReadinessReport, ref: str, code: str) -> Issue:
    found = [i for i in report.component(ref).issues if i.code == code]
    assert len(found) == 1, report.component(ref).issues
    return found[0]


# --------------------------------------------------------------------------- readiness


def test_clean_component_is_ready_with_every_builtin_validator(ws: Workspace) -> None:
    ws.stage(
        "alice:prep",
        {
            "component.yaml": "version: '1.0'\ndescription: prep\n",
            "step.py": "def run():\n    return 1\n",
            "conf.json": '{"a": 1}',
            "conf.toml": "a = 1\n",
            "conf.yaml": "a: [1, 2]\n",
        },
    )
    report = ws.validate("alice:prep")
    assert report.ready, report.component("alice:prep").issues
    result = report.component("alice:prep")
    assert set(result.validators) >= {
        "manifest",
        "syntax",
        "limits",
        "secrets",
        "dependencies",
        "conflicts",
        "approvals",
    }
    assert "workflows" not in result.validators  # declared for type 'workflows' only
    data = report.to_dict()
    assert data["overall_ready"] is True
    assert data["component_results"]["alice:prep"]["ready"] is True
    assert data["integration_issues"] == []
    assert data["recommendations"] == []


def test_unstaged_component_is_not_ready_with_a_readable_issue(ws: Workspace) -> None:
    ws.write("alice:ghost", {"a.py": "x = 1"})
    report = ws.validate("alice:ghost")
    assert not report.ready
    issue = only(report, "alice:ghost", "cannot-validate")
    assert "never been staged" in issue.message
    assert report.recommendations == ["stage it: lockgate stage alice:ghost"]


# --------------------------------------------------------------------------- manifest


def _manifest_issues(tmp_path: Path, text: str) -> list[Issue]:
    """The manifest validator on its own: the builtin source refuses to stage a broken
    component.yaml, but a third-party source may hand one over."""
    from lockgate.builtin_plugins.validators import manifest

    (tmp_path / "component.yaml").write_text(text)
    subject = ValidationSubject(
        component="alice:m",
        workspace="alice",
        component_id="m",
        component_type="builders",
        stage="staging",
        root=tmp_path,
        files=("component.yaml",),
        sizes={"component.yaml": len(text)},
    )
    return manifest.on_validate(subject, manifest.ManifestSettings())


def test_manifest_reports_broken_yaml_with_its_line(tmp_path: Path) -> None:
    (issue,) = _manifest_issues(tmp_path, "version: '1'\ndepends_on: [a\nowners: []\n")
    assert issue.code == "manifest-invalid"
    assert issue.path == "component.yaml" and issue.line == 3
    assert "expected ',' or ']'" in issue.message


def test_manifest_reports_unknown_key_and_self_dependency_with_lines(tmp_path: Path) -> None:
    (issue,) = _manifest_issues(tmp_path, "version: '1'\nowner: [bob]\n")
    assert issue.line == 2 and "unknown key 'owner'; did you mean 'owners'?" in issue.message
    (issue,) = _manifest_issues(tmp_path, "version: '1'\ndepends_on:\n  - x\n  - m\n")
    assert issue.code == "manifest-self-dependency" and issue.line == 4
    assert _manifest_issues(tmp_path, "version: '1'\nowners: [bob]\n") == []


def test_a_broken_component_yaml_makes_the_workspace_not_ready(ws: Workspace) -> None:
    ws.write("alice:m", {"component.yaml": "version: '1'\nowner: [bob]\n"})
    result = run_cli("validate", "--workspace", "alice:m", project=ws.root, env=ENV)
    assert result.exit_code == 1
    assert "component.yaml:2: unknown key 'owner'" in result.stdout


def test_manifest_required_fields_per_type(tmp_path: Path) -> None:
    ws = Workspace(
        tmp_path / "p",
        "plugins:\n  manifest:\n    required:\n      builders: [version, owners]\n",
    )
    ws.stage("alice:ok", {"component.yaml": "version: '1'\nowners: [alice]\n"})
    ws.stage("alice:bad", {"component.yaml": "version: '1'\n"})
    ws.stage("alice:none", {"a.py": "x = 1\n"})
    ws.stage("alice:script", {"a.py": "x = 1\n"}, kind="scripts")
    report = ws.validate("alice:ok", "alice:bad", "alice:none", "alice:script")
    assert report.component("alice:ok").ready
    assert report.component("alice:script").ready  # no requirement for scripts
    missing = only(report, "alice:bad", "manifest-missing-field")
    assert "'owners'" in missing.message and missing.location == "component.yaml:1"
    assert codes(report, "alice:none", "manifest") == ["manifest-missing"]


# --------------------------------------------------------------------------- syntax


@pytest.mark.parametrize(
    ("name", "text", "line", "code"),
    [
        ("bad.py", "x = 1\ndef f(:\n    pass\n", 2, "syntax-python"),
        ("bad.json", '{\n  "a": 1,\n  "b": \n}\n', 4, "syntax-json"),
        ("bad.toml", "a = 1\nb = = 2\n", 2, "syntax-toml"),
        ("bad.yaml", "a: 1\nb: [1, 2\nc: 3\n", 3, "syntax-yaml"),
        ("deep/bad.yml", "a:\n  - b\n - c\n", 3, "syntax-yaml"),
    ],
)
def test_syntax_errors_point_at_file_and_line(
    ws: Workspace, name: str, text: str, line: int, code: str
) -> None:
    ws.stage("alice:s", {name: text, "good.py": "x = 1\n"})
    issue = only(ws.validate("alice:s"), "alice:s", code)
    assert issue.path == name
    assert issue.line == line
    assert issue.plugin == "syntax"


def test_syntax_accepts_application_yaml_tags_and_multiple_documents(ws: Workspace) -> None:
    ws.stage("alice:s", {"cf.yaml": "a: !Ref thing\n---\nb: 2\n"})
    assert ws.validate("alice:s").ready


def test_syntax_languages_are_configurable(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "p", "plugins:\n  syntax:\n    languages: [json]\n")
    ws.stage("alice:s", {"bad.py": "def (:\n"})
    assert ws.validate("alice:s").ready


def test_syntax_rejects_an_unknown_language_setting(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "p", "plugins:\n  syntax:\n    languages: [cobol]\n")
    result = run_cli("validate", project=ws.root, env=ENV)
    assert result.exit_code == 2
    assert "cobol" in result.stderr and "lockgate.yaml" in result.stderr


# --------------------------------------------------------------------------- limits


def test_limits_file_size_component_size_and_forbidden_types(tmp_path: Path) -> None:
    ws = Workspace(
        tmp_path / "p",
        "plugins:\n  limits:\n    max_file_size: 100\n    max_component_size: 150\n",
    )
    ws.stage("alice:ok", {"a.txt": "x" * 100})
    ws.stage("alice:big", {"a.txt": "x" * 101, "b.txt": "y" * 60, "lib/x.so": "elf"})
    report = ws.validate("alice:ok", "alice:big")
    assert report.component("alice:ok").ready
    assert sorted(codes(report, "alice:big", "limits")) == [
        "limits-component-size",
        "limits-file-size",
        "limits-forbidden-type",
    ]
    assert only(report, "alice:big", "limits-file-size").path == "a.txt"
    assert only(report, "alice:big", "limits-forbidden-type").path == "lib/x.so"


# --------------------------------------------------------------------------- secrets

AWS_KEY = "AKIA" + "Z7QXW3JK5PLM2NVB"
GH_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
PRIVATE_KEY = "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEow...\n"


def test_secrets_are_found_by_line_and_never_printed(ws: Workspace) -> None:
    ws.stage(
        "alice:leaky",
        {
            "settings.py": f"DEBUG = True\nKEY = '{AWS_KEY}'\n",
            "ci.yaml": f"steps:\n  - token: {GH_TOKEN}\n",
            "id_rsa": PRIVATE_KEY,
            ".env": "PASSWORD=hunter2\n",
            ".env.example": "PASSWORD=\n",
            "fixture.txt": f"{AWS_KEY}  # lockgate: allow-secret\n",
        },
    )
    report = ws.validate("alice:leaky")
    found = sorted(
        (i.location, i.code)
        for i in report.component("alice:leaky").issues
        if i.plugin == "secrets"
    )
    assert found == [
        (".env", "secrets-env-file"),
        ("ci.yaml:2", "secrets-found"),
        ("id_rsa:1", "secrets-found"),
        ("settings.py:2", "secrets-found"),
    ]
    rendered = str(report.to_dict())
    for secret in (AWS_KEY, GH_TOKEN, "hunter2", AWS_KEY[4:12]):
        assert secret not in rendered
    result = run_cli("validate", "alice:leaky", project=ws.root, env=ENV)
    assert result.exit_code == 1
    assert AWS_KEY not in result.stdout + result.stderr
    assert "possible AWS access key id (value not shown)" in result.stdout


def test_secrets_allow_patterns_and_extra_patterns(tmp_path: Path) -> None:
    ws = Workspace(
        tmp_path / "p",
        "plugins:\n  secrets:\n    allow: ['tests/*']\n"
        "    patterns:\n      internal token: 'itok_[0-9a-f]{16}'\n",
    )
    ws.stage("alice:c", {"tests/data.txt": AWS_KEY, "app.cfg": "t = itok_0123456789abcdef\n"})
    issue = only(ws.validate("alice:c"), "alice:c", "secrets-found")
    assert issue.location == "app.cfg:1" and "internal token" in issue.message


# --------------------------------------------------------------------------- dependencies


def test_dependencies_resolve_in_the_stage_or_together(ws: Workspace) -> None:
    ws.stage("alice:base", {"a.py": "x = 1\n"})
    ws.stage("alice:app", {"component.yaml": "depends_on: [base]\n", "a.py": "x = 2\n"})
    alone = ws.validate("alice:app", stage="integration")
    issue = only(alone, "alice:app", "dependency-missing")
    assert "'base'" in issue.message and "integration" in issue.message
    assert ws.validate("alice:app", "alice:base", stage="integration").ready
    project = ws.project()
    base = project.state().component("alice:base")
    assert base is not None
    move_pointer(
        project,
        stage="integration",
        component="alice:base",
        revision=base.latest_revision,
        action="promote",
    )
    project.close()
    assert ws.validate("alice:app", stage="integration").ready


def test_dependency_cycle_is_named_as_an_integration_issue(ws: Workspace) -> None:
    ws.stage("alice:a", {"component.yaml": "depends_on: [b]\n"})
    ws.stage("alice:b", {"component.yaml": "depends_on: [c]\n"})
    ws.stage("alice:c", {"component.yaml": "depends_on: [a]\n"})
    report = ws.validate("alice:a", "alice:b", "alice:c")
    assert not report.ready
    cycles = [i for i in report.integration_issues if i.code == "dependency-cycle"]
    assert cycles, report.integration_issues
    assert any("a → b → c → a" in i.message for i in cycles)
    assert set(cycles[0].components) == {"alice:a", "alice:b", "alice:c"}


# --------------------------------------------------------------------------- conflicts


def test_same_component_from_two_workspaces_is_a_conflict_naming_both(ws: Workspace) -> None:
    ws.stage("alice:prep", {"a.py": "x = 1\n"})
    ws.stage("bob:prep", {"a.py": "x = 2\n"})
    report = ws.validate("alice:prep")
    issue = only(report, "alice:prep", "conflict-same-component")
    assert set(issue.components) == {"alice:prep", "bob:prep"}
    assert report.to_dict()["integration_issues"][0]["components"] == ["alice:prep", "bob:prep"]
    # Identical contents are no conflict; a rejected rival is none either.
    ws.stage("bob:prep", {"a.py": "x = 1\n"})
    assert ws.validate("alice:prep").ready
    ws.stage("bob:prep", {"a.py": "x = 3\n"})
    project = ws.project("carol")
    decide(project, "bob:prep", "reject", reason="duplicate of alice's")
    project.close()
    assert ws.validate("alice:prep").ready


# --------------------------------------------------------------------------- workflows

GOOD_FLOW = """\
name: training
version: 2
actions: {notify: {}}
tasks:
  - name: prep
    action: prep
  - name: tell
    action: notify
    needs: [prep]
"""
BAD_FLOW = """\
name: training
version: 2
tasks:
  - name: prep
    action: prep
  - name: prep
    action: train
  - action: prep
    needs: [nowhere]
"""


def test_workflows_are_checked_per_file_with_their_ref(ws: Workspace) -> None:
    ws.stage("alice:prep", {"a.py": "x = 1\n"})
    ws.stage("alice:flows", {"good.yaml": GOOD_FLOW, "bad.yaml": BAD_FLOW}, kind="workflows")
    ws.stage("alice:more", {"nameless.yml": "version: 1\ntasks: []\n"}, kind="workflows")
    report = ws.validate("alice:flows", "alice:more", "alice:prep")
    issues = [i for i in report.component("alice:flows").issues if i.plugin == "workflows"]
    assert sorted((i.location, i.code) for i in issues) == [
        ("bad.yaml:6", "workflow-duplicate-task"),
        ("bad.yaml:7", "workflow-undefined-action"),
        ("bad.yaml:8", "workflow-missing-field"),
        ("bad.yaml:9", "workflow-unknown-task"),
    ]
    assert all(i.message.startswith("workflow flows.bad: ") for i in issues)
    assert "'train'" in only(report, "alice:flows", "workflow-undefined-action").message
    more = sorted(i.message for i in report.component("alice:more").issues)
    assert more == [
        "workflow more.nameless: missing field 'name'",
        "workflow more.nameless: missing field 'tasks'",
    ]


def test_workflows_validator_skips_other_types(ws: Workspace) -> None:
    ws.stage("alice:b", {"flow.yaml": "just: data\n"})
    assert ws.validate("alice:b").ready


# --------------------------------------------------------------------------- approvals

APPROVALS = (
    "plugins:\n  approvals:\n    stages:\n      production:\n        required: 2\n"
    "        approvers: [bob, carol, dan]\n"
)


def test_approvals_per_stage_allowlist_and_self_approval(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "p", APPROVALS)
    ws.stage("alice:app", {"a.py": "x = 1\n"})
    assert ws.validate("alice:app", stage="integration").ready  # 0 required there
    missing = only(ws.validate("alice:app", stage="production"), "alice:app", "approval-missing")
    assert "needs 2 approvals from bob, carol, dan to enter production, has 0" in missing.message
    with pytest.raises(RefusedError, match="cannot approve it"):
        decide(ws.project("alice"), "alice:app", "approve")
    for actor in ("bob", "eve"):  # eve is not on the allowlist
        decide(ws.project(actor), "alice:app", "approve")
    missing = only(ws.validate("alice:app", stage="production"), "alice:app", "approval-missing")
    assert "has 1 (bob)" in missing.message
    decide(ws.project("carol"), "alice:app", "approve", comment="ok")
    assert ws.validate("alice:app", stage="production").ready


def test_restaging_voids_approvals_and_rejection_blocks(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "p", "plugins:\n  approvals:\n    required: 1\n")
    first = ws.stage("alice:app", {"a.py": "x = 1\n"})
    decide(ws.project("bob"), "alice:app", "approve")
    assert ws.validate("alice:app").ready
    second = ws.stage("alice:app", {"a.py": "x = 2\n"})
    assert second != first
    assert codes(ws.validate("alice:app"), "alice:app", "approvals") == ["approval-missing"]
    decide(ws.project("bob"), "alice:app", "approve")
    decide(ws.project("carol"), "alice:app", "reject", reason="breaks the nightly run")
    rejected = only(ws.validate("alice:app"), "alice:app", "approval-rejected")
    assert rejected.message == "rejected by carol: breaks the nightly run"


def test_approve_and_reject_commands_are_recorded_and_audited(ws: Workspace) -> None:
    revision = ws.stage("alice:app", {"a.py": "x = 1\n"})
    self_approval = run_cli("approve", "alice:app", project=ws.root, env=ENV)
    assert self_approval.exit_code == 1
    assert "alice is an author of alice:app" in self_approval.stderr
    assert "Traceback" not in self_approval.stderr
    bob = {**ENV, "LOCKGATE_ACTOR": "bob"}
    ok = run_cli("approve", "alice:app", "--comment", "lgtm", "--json", project=ws.root, env=bob)
    assert ok.exit_code == 0, ok.stderr
    assert ok.json()["status"] == "approved" and ok.json()["revision"] == revision
    again = run_cli("approve", "alice:app", project=ws.root, env=bob)
    assert again.exit_code == 0 and "already approved by you" in again.stdout
    no_reason = run_cli("reject", "alice:app", project=ws.root, env=bob)
    assert no_reason.exit_code == 2 and "--reason" in no_reason.stderr
    rejected = run_cli("reject", "alice:app", "--reason", "no", project=ws.root, env=bob)
    assert rejected.exit_code == 0 and "rejected by bob" in rejected.stdout
    project = ws.project()
    actions = [(e.action, e.actor) for e in project.state().events()]
    assert ("approve", "bob") in actions and ("reject", "bob") in actions
    assert [a.decision for a in project.state().approvals("alice:app", revision)] == [
        "approve",
        "reject",
    ]
    record = project.state().component("alice:app")
    assert record is not None and record.status.value == "rejected"


# --------------------------------------------------------------------------- running safely


class Sleeper:
    """A validator that never returns."""

    @hookimpl
    def on_validate(self, subject: Any) -> list[Issue]:
        time.sleep(3600)
        return []


class Raiser:
    @hookimpl
    def on_validate(self, subject: Any) -> list[Issue]:
        raise RuntimeError("validator exploded")


class Counter:
    """Counts calls; declares itself cacheable with a version."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def describe_validator(self) -> ValidatorInfo:
        return ValidatorInfo(cache=True, version="7")

    @hookimpl
    def on_validate(self, subject: Any) -> list[Issue]:
        self.calls += 1
        return [Issue(Severity.WARNING, "counted", f"call {self.calls}", path="a.py", line=1)]


def test_a_hanging_validator_times_out_attributed_and_the_run_finishes(tmp_path: Path) -> None:
    dist = fake_distribution("lockgate-sleepy", {"sleepy": Sleeper()})
    ws = Workspace(tmp_path / "p", "validation:\n  timeout: 1.0\n", extra=(dist,))
    for n in range(3):
        ws.stage(f"alice:c{n}", {"a.py": f"x = {n}\n"})
    started = time.monotonic()
    report = ws.validate("alice:c0", "alice:c1", "alice:c2")
    elapsed = time.monotonic() - started
    assert elapsed < 1.0 + 1.0, elapsed
    assert not report.ready
    for n in range(3):
        issue = only(report, f"alice:c{n}", "validator-timeout")
        assert issue.plugin == "sleepy" and "1 s" in issue.message
        # The other validators' results are still there.
        assert "syntax" in report.component(f"alice:c{n}").validators


def test_hanging_validators_on_a_single_worker_time_out_one_after_another(
    tmp_path: Path,
) -> None:
    """A worker written off at its deadline is replaced while calls are still queued: with
    ``workers: 1`` every call of a validator that never returns times out in turn (the
    run used to wait for ever on the first stuck worker)."""
    dist = fake_distribution("lockgate-sleepy", {"sleepy": Sleeper()})
    config = "validation:\n  timeout: 0.5\n  workers: 1\n"
    ws = Workspace(tmp_path / "p", config, extra=(dist,))
    for n in range(2):
        ws.stage(f"alice:c{n}", {"a.py": f"x = {n}\n"})
    done: list[Any] = []
    runner = threading.Thread(
        target=lambda: done.append(ws.validate("alice:c0", "alice:c1")), daemon=True
    )
    runner.start()
    runner.join(timeout=30)
    assert done, "validate never returned"
    for n in range(2):
        assert only(done[0], f"alice:c{n}", "validator-timeout").plugin == "sleepy"


def test_a_raising_validator_is_attributed_and_blocks_but_others_report(ws: Workspace) -> None:
    ws.extra = (fake_distribution("lockgate-raiser", {"raiser": Raiser()}),)
    ws.stage("alice:c", {"bad.py": "def (:\n"})
    report = ws.validate("alice:c")
    failed = only(report, "alice:c", "validator-failed")
    assert failed.plugin == "raiser" and "validator exploded" in failed.message
    assert only(report, "alice:c", "syntax-python").line == 1


def test_cli_exits_within_timeout_when_a_validator_hangs(tmp_path: Path, site: Path) -> None:
    write_distribution(
        site,
        "lockgate-hang",
        "1.0",
        {"hang": "lockgate_hang"},
        {
            "lockgate_hang": "import time\nfrom lockgate import hookimpl\n\n"
            "@hookimpl\ndef on_validate(subject):\n    time.sleep(3600)\n"
        },
    )
    ws = Workspace(tmp_path / "p", "validation:\n  timeout: 1\n")
    ws.stage("alice:c", {"a.py": "x = 1\n"})
    started = time.monotonic()
    proc = run_lockgate(
        "validate",
        "alice:c",
        cwd=ws.root,
        site=site,
        env={"LOCKGATE_DISABLE_PLUGINS": "teamdefaults"},
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    assert "validator-timeout" in proc.stdout and "[hang]" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert elapsed < 1 + 1 + 2.5, elapsed  # timeout + 1 s, plus interpreter start-up


def test_results_are_cached_per_revision_and_bypassed_with_no_cache(ws: Workspace) -> None:
    counter = Counter()
    ws.extra = (fake_distribution("lockgate-counter", {"counter": counter}),)
    ws.stage("alice:c", {"a.py": "x = 1\n"})
    first = ws.validate("alice:c")
    assert counter.calls == 1 and first.component("alice:c").cached == 0
    second = ws.validate("alice:c")
    assert counter.calls == 1
    assert [i.message for i in second.component("alice:c").issues] == ["call 1"]
    assert second.component("alice:c").issues[0].plugin == "counter"
    assert second.component("alice:c").cached >= 5  # counter + the cacheable builtins
    ws.validate("alice:c", use_cache=False)
    assert counter.calls == 2
    ws.validate("alice:c", stage="production")  # another stage: another key
    assert counter.calls == 3
    ws.stage("alice:c", {"a.py": "x = 2\n"})  # a new revision
    ws.validate("alice:c")
    assert counter.calls == 4


_VERDICT = (
    "from lockgate import Issue, Severity, hookimpl\n\n"
    "@hookimpl\n"
    "def on_validate(subject):\n"
    "    return {issues}\n"
)


@pytest.mark.parametrize(
    ("install", "seen"),
    [
        ("editable", True),  # direct_url.json says so, though the module is beside it
        ("develop", True),  # NAME.egg-info in the source directory (setup.py develop)
        ("elsewhere", True),  # the module is not where its distribution was installed
        ("released", False),  # named by its version: a new version is a new key
    ],
)
def test_an_edit_to_a_plugin_that_its_version_does_not_name_is_validated_again(
    tmp_path: Path, site: Path, install: str, seen: bool
) -> None:
    """A plugin module edited between two ``lockgate validate`` runs: an editable install,
    or a module its distribution does not hold, is called again without ``--no-cache``."""
    code = tmp_path / "code" if install == "elsewhere" else site
    code.mkdir(exist_ok=True)
    if install == "develop":
        info = site / "lockgate_verdict.egg-info"
        info.mkdir()
        (info / "PKG-INFO").write_text(
            "Metadata-Version: 2.1\nName: lockgate-verdict\nVersion: 1.0\n"
        )
        (info / "entry_points.txt").write_text("[lockgate]\nverdict = lockgate_verdict\n")
    else:
        write_distribution(site, "lockgate-verdict", "1.0", {"verdict": "lockgate_verdict"}, {})
    if install == "editable":
        direct = {"url": code.as_uri(), "dir_info": {"editable": True}}
        (site / "lockgate_verdict-1.0.dist-info" / "direct_url.json").write_text(json.dumps(direct))
    module = code / "lockgate_verdict.py"
    module.write_text(_VERDICT.format(issues="[]"))
    ws = Workspace(tmp_path / "p")
    ws.stage("alice:c", {"a.py": "x = 1\n"})
    env = {**ENV, "PYTHONPATH": os.pathsep.join(dict.fromkeys([str(site), str(code)]))}

    def validate() -> tuple[int, list[str]]:
        proc = run_lockgate("validate", "alice:c", "--json", cwd=ws.root, env=env)
        assert proc.returncode in (0, 1), proc.stderr
        report = json.loads(proc.stdout)
        issues = report["component_results"]["alice:c"]["issues"]
        return proc.returncode, [i["code"] for i in issues]

    assert validate() == (0, [])
    module.write_text(_VERDICT.format(issues='[Issue(Severity.ERROR, "verdict-no", "now no")]'))
    assert validate() == ((1, ["verdict-no"]) if seen else (0, []))
    code_after, _ = validate()
    assert code_after == (1 if seen else 0)  # the new verdict is cached in turn


def test_cache_key_includes_settings(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "p")
    ws.stage("alice:c", {"bad.py": "def (:\n"})
    assert not ws.validate("alice:c").ready
    (ws.root / "lockgate.yaml").write_text("plugins:\n  syntax:\n    languages: [json]\n")
    assert ws.validate("alice:c").ready


def test_a_disabled_validator_is_not_run(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "p", "plugins:\n  disable: [syntax]\n")
    ws.stage("alice:c", {"bad.py": "def (:\n"})
    report = ws.validate("alice:c")
    assert report.ready and "syntax" not in report.component("alice:c").validators


def test_validator_types_are_honoured(ws: Workspace) -> None:

    class ScriptsOnly:
        @hookimpl
        def describe_validator(self) -> ValidatorInfo:
            return ValidatorInfo(types=("scripts",))

        @hookimpl
        def on_validate(self, subject: Any) -> list[Issue]:
            return [Issue(Severity.ERROR, "no-scripts", "scripts are frozen")]

    ws.extra = (fake_distribution("lockgate-scripts", {"scriptsonly": ScriptsOnly()}),)
    ws.stage("alice:b", {"a.py": "x = 1\n"})
    ws.stage("alice:s", {"a.py": "x = 1\n"}, kind="scripts")
    report = ws.validate("alice:b", "alice:s")
    assert report.component("alice:b").ready
    assert codes(report, "alice:s", "scriptsonly") == ["no-scripts"]


def test_workspace_mode_validates_unstaged_edits(ws: Workspace) -> None:
    ws.stage("alice:c", {"a.py": "x = 1\n"})
    ws.write("alice:c", {"a.py": "def (:\n"})
    assert ws.validate("alice:c").ready
    report = ws.validate("alice:c", workspace=True)
    assert not report.ready and report.component("alice:c").revision is None
    assert only(report, "alice:c", "syntax-python").location == "a.py:1"


def test_validate_command_table_json_and_exit_codes(ws: Workspace) -> None:
    ws.stage("alice:good", {"a.py": "x = 1\n"})
    ws.stage("alice:bad", {"b.py": "def (:\n"})
    ok = run_cli("validate", "alice:good", project=ws.root, env=ENV)
    assert ok.exit_code == 0 and "ready" in ok.stdout
    bad = run_cli("validate", project=ws.root, env=ENV)
    assert bad.exit_code == 1
    assert "alice:bad: error syntax-python b.py:1:" in bad.stdout
    assert "not ready: 1 error" in bad.stdout
    data = run_cli("validate", "--json", project=ws.root, env=ENV).json()
    assert set(data) >= {"overall_ready", "component_results", "integration_issues"}
    assert data["component_results"]["alice:bad"]["issues"][0]["location"] == "b.py:1"
    unknown = run_cli("validate", "--stage", "prod", "alice:good", project=ws.root, env=ENV)
    assert unknown.exit_code == 2 and "no stage 'prod'" in unknown.stderr
    project = ws.project()
    outcomes = [
        (e.component, e.outcome) for e in project.state().events() if e.action == "validate"
    ]
    assert ("alice:good", "ok") in outcomes and ("alice:bad", "failed") in outcomes


def test_revalidating_many_unchanged_components_is_served_from_cache(ws: Workspace) -> None:
    refs = [ws.write(f"alice:c{n:03d}", {"a.py": f"x = {n}\n"}) for n in range(40)]
    project = ws.project()
    Stager(project).sync()
    project.close()
    first = ws.validate(*refs)
    assert first.ready and all(r.cached == 0 for r in first.components)
    second = ws.validate(*refs)
    assert all(r.cached == 4 for r in second.components)  # every cacheable builtin


def test_per_file_results_are_remembered_by_digest_not_by_path(ws: Workspace) -> None:
    files = {f"m{n}.py": f"X = {n}\n" for n in range(5)}
    ws.stage("alice:c", {**files, "k.txt": "nothing\n"})
    assert ws.validate("alice:c").ready
    ws.stage("alice:c", {"m3.py": "def (:\n", "k.txt": f"key = {AWS_KEY}\n"})
    report = ws.validate("alice:c")
    assert only(report, "alice:c", "syntax-python").location == "m3.py:1"
    assert only(report, "alice:c", "secrets-found").location == "k.txt:1"
    ws.stage("alice:c", {"m3.py": "X = 3\n", "k.txt": "nothing\n"})  # back to known digests
    assert ws.validate("alice:c").ready
    ws.stage("alice:d", {"other.py": "def (:\n"})  # same bad bytes as m3.py had, another path
    assert only(ws.validate("alice:d"), "alice:d", "syntax-python").location == "other.py:1"


class _Unreadable:
    """A subject whose file went away after it was listed (a release gc removed)."""

    sizes: Mapping[str, int] = {"a.py": 10}

    def read_bytes(self, path: str) -> bytes:
        raise FileNotFoundError(2, "No such file or directory", path)


def test_a_file_a_validator_cannot_read_fails_the_gate_instead_of_being_skipped() -> None:
    """The builtin validators' reader raises on a file it cannot read (the call is then
    a failed gate, naming the validator); it used to return None, as for a binary file,
    so the secrets and syntax checks passed a revision they never read."""
    from lockgate.builtin_plugins.validators._files import read_text

    with pytest.raises(FileNotFoundError):
        read_text(_Unreadable(), "a.py", 1 << 20)  # type: ignore[arg-type]
