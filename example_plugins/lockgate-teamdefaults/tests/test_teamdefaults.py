"""The example plugin, tested as its authors would: through the installed entry point."""

from __future__ import annotations

from pathlib import Path

from lockgate.testing import CliResult


def test_plugin_is_discovered_through_its_installed_entry_point(lockgate_cli) -> None:
    result: CliResult = lockgate_cli("plugins", "--json")
    assert result.exit_code == 0, result.stderr
    plugins = {p["name"]: p for p in result.json()["plugins"]}
    info = plugins["teamdefaults"]
    assert info["distribution"] == "lockgate-teamdefaults"
    assert info["status"] == "loaded"
    assert info["builtin"] is False
    assert {"on_config_load", "on_metrics_collect", "register_settings"} <= set(info["hooks"])


def test_contributes_project_name_default_attributed_to_the_plugin(
    lockgate_project: Path, lockgate_cli
) -> None:
    (lockgate_project / "lockgate.yaml").write_text(
        "plugins:\n  teamdefaults:\n    project_name_prefix: dp-\n"
    )
    result = lockgate_cli("config", "show", "--json", project=lockgate_project)
    assert result.exit_code == 0, result.stderr
    settings = {s["key"]: s for s in result.json()["settings"]}
    assert settings["project.name"]["value"] == f"dp-{lockgate_project.name}"
    assert settings["project.name"]["source"] == "plugin (teamdefaults)"
    assert settings["plugins.teamdefaults.project_name_prefix"]["source"].startswith("file (")


def test_a_name_in_lockgate_yaml_wins_over_the_plugin_default(
    lockgate_project: Path, lockgate_cli
) -> None:
    (lockgate_project / "lockgate.yaml").write_text("project:\n  name: mine\n")
    settings = {
        s["key"]: s
        for s in lockgate_cli("config", "show", "--json", project=lockgate_project).json()[
            "settings"
        ]
    }
    assert settings["project.name"]["value"] == "mine"


def test_counts_workspaces_and_components(lockgate_project: Path, lockgate_cli) -> None:
    for ws, kind, comp in [
        ("alice", "scripts", "a"),
        ("alice", "builders", "b"),
        ("bob", "scripts", "c"),
    ]:
        (lockgate_project / "workspaces" / ws / kind / comp).mkdir(parents=True)
    metrics = lockgate_cli("metrics", "--json", project=lockgate_project).json()
    assert metrics["teamdefaults.workspaces"] == 2
    assert metrics["teamdefaults.components"] == 3


def test_misspelled_setting_is_refused_with_a_suggestion(
    lockgate_project: Path, lockgate_cli
) -> None:
    (lockgate_project / "lockgate.yaml").write_text("plugins:\n  teamdefaults:\n    teem: x\n")
    result = lockgate_cli("config", "validate", project=lockgate_project)
    assert result.exit_code == 2
    assert "lockgate.yaml:3" in result.stderr
    assert "plugins.teamdefaults.teem" in result.stderr
    assert "did you mean 'team'?" in result.stderr
