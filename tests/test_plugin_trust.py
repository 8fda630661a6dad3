"""A platform team can trust its plugin set: gates fail closed while a plugin is broken,
every plugin and role name in the configuration is checked, and ``plugins.require`` pins
the set. Real subprocesses of the CLI against real installed distributions (dist-info and
egg-info) on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import ENV, copy_project, run_lockgate, write_distribution

BROKEN = 'raise ImportError("no module named licence_db")\n'
ARGUMENT_TYPO = """\
import pluggy

hookimpl = pluggy.HookimplMarker("lockgate")


@hookimpl
def on_promote(event, contxt):
    pass
"""


def write_egg_info(
    site: Path, name: str, version: str, entry: str, module: str, source: str
) -> None:
    """A distribution installed the old way (``setup.py develop``): ``<name>.egg-info``."""
    info = site / f"{name.replace('-', '_')}.egg-info"
    info.mkdir(parents=True)
    (info / "PKG-INFO").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[lockgate]\n{entry} = {module}\n")
    (site / f"{module}.py").write_text(source)


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("template") / "project"
    assert run_lockgate("init", str(root), cwd=root.parent, env=ENV).returncode == 0
    files = root / "workspaces" / "alice" / "builders" / "prep"
    files.mkdir(parents=True)
    (files / "builder.py").write_text("def build(step):\n    return step\n")
    assert run_lockgate("sync", cwd=root, env=ENV).returncode == 0
    return root


@pytest.fixture
def project(tmp_path: Path, synced: Path) -> Path:
    return copy_project(synced, tmp_path / "project")


def lockgate(
    root: Path, *args: str, site: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return run_lockgate(*args, cwd=root, site=site, env={**ENV, **env})


def set_plugins(root: Path, text: str) -> None:
    config = root / "lockgate.yaml"
    config.write_text(config.read_text().replace("plugins:\n  disable: []\n", text, 1))


# ------------------------------------------------------------------ gates fail closed


@pytest.mark.parametrize("layout", ["dist-info", "egg-info"])
def test_a_plugin_that_fails_to_load_fails_the_gates_closed(
    project: Path, site: Path, layout: str
) -> None:
    if layout == "dist-info":
        write_distribution(
            site, "lockgate-licence", "1.2", {"licence": "licence_gate"}, {"licence_gate": BROKEN}
        )
    else:
        write_egg_info(site, "lockgate-licence", "1.2", "licence", "licence_gate", BROKEN)

    listed = json.loads(lockgate(project, "plugins", "--json", site=site).stdout)
    assert {p["name"]: p["status"] for p in listed["plugins"]}["licence"] == "failed"

    validated = lockgate(project, "validate", "alice:prep", site=site)
    assert validated.returncode == 1, validated.stderr
    assert "plugin-unavailable" in validated.stdout
    assert "plugin 'licence' (lockgate-licence 1.2) failed to load" in validated.stdout
    # one warning line on every non-strict command while the plugin is broken
    warnings = [line for line in validated.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "gates fail closed" in warnings[0], validated.stderr

    dry = lockgate(project, "promote", "alice:prep", "--dry-run", site=site)
    assert "gates: not ready: 1 error" in dry.stdout, dry.stdout  # a dry run reports
    refused = lockgate(project, "promote", "alice:prep", site=site)
    assert refused.returncode == 1
    assert "plugin 'licence' (lockgate-licence 1.2) failed to load" in refused.stderr
    assert not (project / "stages" / "staging" / "prep").exists()

    forced = lockgate(
        project, "promote", "alice:prep", "--force", "--reason", "licence db down", site=site
    )
    assert forced.returncode == 0, forced.stderr
    log = json.loads(lockgate(project, "log", "--json", site=site).stdout)  # newest first
    promoted = next(e for e in log if e["action"] == "promote" and e["outcome"] == "ok")
    assert promoted["details"]["forced"] is True and promoted["reason"] == "licence db down"
    assert "plugin-unavailable" in promoted["details"]["skipped_issues"][0]
    assert promoted["details"]["gates"]["not_loaded"]["licence"].startswith("failed:")


def test_disabling_the_broken_plugin_in_the_file_reopens_the_gates(
    project: Path, site: Path
) -> None:
    write_distribution(
        site, "lockgate-licence", "1.2", {"licence": "licence_gate"}, {"licence_gate": BROKEN}
    )
    set_plugins(project, "plugins:\n  disable: [licence]\n")
    validated = lockgate(project, "validate", "alice:prep", site=site)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "warning" not in validated.stderr


def test_a_misspelled_hook_argument_is_named_with_a_suggestion(project: Path, site: Path) -> None:
    write_distribution(
        site, "lockgate-notify", "0.3", {"notify": "notify"}, {"notify": ARGUMENT_TYPO}
    )
    listed = json.loads(lockgate(project, "plugins", "--json", site=site).stdout)
    notify = {p["name"]: p for p in listed["plugins"]}["notify"]
    assert notify["status"] == "failed"
    assert notify["error"] == (
        "hook 'on_promote' has no argument 'contxt' (it takes event, settings, context); "
        "did you mean 'context'?"
    )


# ------------------------------------------------------------------ every name is checked


@pytest.mark.parametrize(
    ("plugins", "key", "suggestion"),
    [
        ("plugins:\n  only: [licence-headr]\n", "plugins.only", None),
        ("plugins:\n  disable: [aprovals]\n", "plugins.disable", "approvals"),
        ("plugins:\n  order: [secretz]\n", "plugins.order", "secrets"),
    ],
)
def test_config_validate_catches_a_misspelled_plugin_name(
    project: Path, plugins: str, key: str, suggestion: str | None
) -> None:
    set_plugins(project, plugins)
    result = lockgate(project, "config", "validate")
    assert result.returncode == 2, result.stdout
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert f"lockgate.yaml:9: {key}: no installed plugin is named" in line
    if suggestion:
        assert f"did you mean '{suggestion}'?" in line
    else:  # nothing close: the installed plugins are listed
        assert "; installed plugins: " in line and " approvals, conflicts, " in line


def test_a_misspelled_gates_skip_name_is_caught(project: Path) -> None:
    config = project / "lockgate.yaml"
    config.write_text(
        config.read_text() + "\nstages:\n  staging:\n    gates:\n      skip: [secret]\n"
    )
    result = lockgate(project, "config", "validate")
    assert result.returncode == 2
    assert (
        "stages.staging.gates.skip: no installed plugin is named 'secret'; did you mean 'secrets'?"
        in result.stderr
    )


@pytest.mark.parametrize("variable", ["LOCKGATE_DISABLE_PLUGINS", "LOCKGATE_LOAD_PLUGINS"])
def test_a_misspelled_name_in_the_environment_lists_is_caught(project: Path, variable: str) -> None:
    result = lockgate(project, "ls", **{variable: "teamdefaults,tarbal"})
    assert result.returncode == 2, result.stdout
    assert result.stderr.strip() == (
        f"lockgate: error: environment {variable}: no installed plugin is named 'tarbal'; "
        "did you mean 'tarball'?"
    )


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        (
            "state:\n  store: sqlit\n",
            "state.store: no state store is named 'sqlit'; did you mean 'sqlite'?",
        ),
        (
            "stages:\n  staging:\n    targets:\n      - kind: directroy\n",
            "stages.<stage>.targets[].kind: no stage target is named 'directroy'; did you mean "
            "'directory'?",
        ),
    ],
)
def test_a_misspelled_role_name_is_caught_when_the_project_opens(
    project: Path, yaml: str, message: str
) -> None:
    config = project / "lockgate.yaml"
    config.write_text(config.read_text() + "\n" + yaml)
    for args in (("config", "validate"), ("ls",)):
        result = lockgate(project, *args)
        assert result.returncode == 2, result.stdout
        assert message in result.stderr, result.stderr


# ------------------------------------------------------------------ plugins.require


def test_an_unsatisfied_requirement_refuses_changes_and_lets_reads_run(project: Path) -> None:
    set_plugins(
        project, 'plugins:\n  disable: [tarball]\n  require: [approvals, "lockgate-tarball>=0.1"]\n'
    )
    check = lockgate(project, "config", "validate")
    assert check.returncode == 3, check.stdout
    assert (
        "required plugin 'tarball' (lockgate-tarball 0.1.0) is disabled: disabled by "
        "plugins.disable; nothing was changed" in check.stderr
    )
    assert check.stderr.count("\n") == 1, check.stderr  # its error, not a warning as well
    listed = lockgate(project, "ls")
    assert listed.returncode == 0 and "alice" in listed.stdout
    assert "warning: required plugin 'tarball'" in listed.stderr
    approved = lockgate(project, "approve", "alice:prep", LOCKGATE_ACTOR="bob")
    assert approved.returncode == 3, approved.stdout + approved.stderr
    assert "required plugin 'tarball'" in approved.stderr
    events = json.loads(lockgate(project, "log", "--json").stdout)
    assert not [e for e in events if e["action"] == "approve"]


@pytest.mark.parametrize(
    ("require", "problem"),
    [
        ('"lockgate-tarball>=9"', "does not match 'lockgate-tarball>=9': install a version >=9"),
        ("[licence-header]", "required plugin 'licence-header' is not installed"),
    ],
)
def test_a_wrong_version_or_a_missing_plugin_is_named(
    project: Path, require: str, problem: str
) -> None:
    entries = require if require.startswith("[") else f"[{require}]"
    set_plugins(project, f"plugins:\n  disable: []\n  require: {entries}\n")
    check = lockgate(project, "config", "validate", "--json")
    assert check.returncode == 3
    report = json.loads(check.stdout)
    assert report["valid"] is False
    assert problem in report["plugins_required_unsatisfied"][0]


def test_a_satisfied_requirement_is_quiet(project: Path) -> None:
    set_plugins(
        project, 'plugins:\n  disable: []\n  require: [approvals, "lockgate-tarball>=0.1,<1"]\n'
    )
    check = lockgate(project, "config", "validate")
    assert check.returncode == 0 and check.stderr == ""
    assert lockgate(project, "promote", "alice:prep").returncode == 0


def test_an_unreadable_requirement_points_at_its_line(project: Path) -> None:
    set_plugins(project, 'plugins:\n  disable: []\n  require: ["bad name>>"]\n')
    result = lockgate(project, "ls")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "lockgate.yaml:10: plugins.require: 'bad name>>' is not a plugin name" in result.stderr


def test_plugins_shows_what_each_distribution_says_of_itself(project: Path, site: Path) -> None:
    write_distribution(site, "lockgate-notify", "0.3", {"notify": "notify"}, {"notify": ""})
    metadata = site / "lockgate_notify-0.3.dist-info" / "METADATA"
    metadata.write_text(
        metadata.read_text()
        + "Summary: Posts promotions to chat\nAuthor: Platform Team\n"
        + "Project-URL: Homepage, https://example.org/notify\n"
    )
    listed = json.loads(lockgate(project, "plugins", "--json", site=site).stdout)
    notify = {p["name"]: p for p in listed["plugins"]}["notify"]
    assert (notify["summary"], notify["author"], notify["home_page"]) == (
        "Posts promotions to chat",
        "Platform Team",
        "https://example.org/notify",
    )
    verbose = lockgate(project, "-v", "plugins", site=site)
    assert (
        "lockgate-notify: Posts promotions to chat | Platform Team | https://example.org/notify"
        in verbose.stdout
    )


@pytest.mark.parametrize("command", [("sync",), ("promote", "alice:prep"), ("gc",)])
def test_commands_that_change_state_refuse_up_front(
    project: Path, command: tuple[str, ...]
) -> None:
    set_plugins(project, "plugins:\n  disable: [tarball]\n  require: [tarball]\n")
    builder = project / "workspaces" / "alice" / "builders" / "prep" / "builder.py"
    builder.write_text(builder.read_text() + "changed = True\n")
    before = lockgate(project, "log", "--json").stdout
    result = lockgate(project, *command)
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        "lockgate: error: required plugin 'tarball' (lockgate-tarball 0.1.0) is disabled: "
        "disabled by plugins.disable; nothing was changed: install or enable it, or remove it "
        f"from plugins.require ({project / 'lockgate.yaml'}:10)"
    ]
    assert lockgate(project, "log", "--json").stdout == before
