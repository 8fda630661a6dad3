"""Settings that moved into their plugin: the new keys work, the old ones still do, each
with one warning line naming the old key, where it was set and the new key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import copy_project, run_lockgate

ENV = {"LOCKGATE_DISABLE_PLUGINS": "teamdefaults"}

# (old key, new key, value, a command that shows the value took effect)
MOVED = [
    ("workspaces.root", "plugins.workspace.root", "trees"),
    ("workspaces.layout", "plugins.workspace.layout", "{workspace}/{component}"),
    ("workspaces.ignore", "plugins.workspace.ignore", ["*.tmp"]),
    ("workspaces.source", "source.name", "workspace"),
    ("staging.link", "plugins.local.link", "copy"),
    ("staging.max_file_size", "plugins.limits.staging_max_file_size", 40),
    ("staging.max_component_size", "plugins.limits.staging_max_component_size", 60),
    ("staging.max_files", "plugins.limits.staging_max_files", 2),
]


@pytest.fixture(scope="module")
def initialized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("template") / "project"
    assert run_lockgate("init", str(project), cwd=project.parent, env=ENV).returncode == 0
    return project


@pytest.fixture
def root(tmp_path: Path, initialized: Path) -> Path:
    return copy_project(initialized, tmp_path / "project")


def _set(root: Path, dotted: str, value: object) -> int:
    """Set ``dotted`` in lockgate.yaml; the line its key ends up on."""
    config = root / "lockgate.yaml"
    data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    node = data
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    text = yaml.safe_dump(data, sort_keys=False)
    config.write_text(text, encoding="utf-8")
    wanted, number = dotted.split("."), 0
    for depth, part in enumerate(wanted):
        lines = text.splitlines()
        number = next(
            n
            for n, line in enumerate(lines, 1)
            if n > number and line.startswith("  " * depth + f"{part}:")
        )
    return number


def _show(root: Path, env: dict[str, str] | None = None) -> tuple[dict[str, dict[str, str]], str]:
    done = run_lockgate("--json", "config", "show", cwd=root, env={**ENV, **(env or {})})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    return {r["key"]: r for r in out["settings"]}, "\n".join(out.get("warnings", []))


@pytest.mark.parametrize(("old", "new", "value"), MOVED, ids=[m[0] for m in MOVED])
def test_an_old_key_still_works_with_one_warning(
    root: Path, old: str, new: str, value: object
) -> None:
    line = _set(root, old, value)
    done = run_lockgate("ls", cwd=root, env=ENV)
    warnings = [w for w in done.stderr.splitlines() if "deprecated" in w]
    assert warnings == [
        f"lockgate: warning: {root / 'lockgate.yaml'}:{line}: {old} is deprecated; use {new}"
    ], done.stderr
    rows, json_warnings = _show(root)
    assert rows[new]["value"] == value
    assert rows[new]["source"] == f"file ({root / 'lockgate.yaml'}:{line}), as deprecated {old}"
    assert f"{old} is deprecated; use {new}" in json_warnings
    quiet = run_lockgate("-q", "ls", cwd=root, env=ENV)
    assert "deprecated" not in quiet.stderr


@pytest.mark.parametrize(("old", "new", "value"), MOVED, ids=[m[1] for m in MOVED])
def test_a_new_key_works_without_a_warning(root: Path, old: str, new: str, value: object) -> None:
    line = _set(root, new, value)
    rows, warnings = _show(root)
    assert rows[new]["value"] == value
    assert rows[new]["source"] == f"file ({root / 'lockgate.yaml'}:{line})"
    assert warnings == ""
    assert old not in rows


def test_an_old_environment_variable_names_the_new_one(root: Path) -> None:
    rows, warnings = _show(root, {"LOCKGATE__STAGING__LINK": "copy"})
    assert rows["plugins.local.link"]["value"] == "copy"
    assert warnings == (
        "environment LOCKGATE__STAGING__LINK: staging.link is deprecated; "
        "use plugins.local.link (LOCKGATE__PLUGINS__LOCAL__LINK)"
    )


def test_the_new_key_wins_over_the_old_one_in_the_same_file(root: Path) -> None:
    _set(root, "staging.link", "copy")
    _set(root, "plugins.local.link", "hardlink")
    rows, warnings = _show(root)
    assert rows["plugins.local.link"]["value"] == "hardlink"
    assert "staging.link is deprecated and ignored, as plugins.local.link is also set" in warnings


def _component(root: Path, workspaces: str = "workspaces") -> Path:
    comp = root / workspaces / "alice" / "scripts" / "etl"
    comp.mkdir(parents=True)
    (comp / "run.py").write_text("print('x' * 30)\n")
    (comp / "b.txt").write_text("b\n")
    (comp / "c.txt").write_text("c\n")
    return comp


@pytest.mark.parametrize("key", ["staging.max_files", "plugins.limits.staging_max_files"])
def test_the_staging_caps_refuse_a_staging_from_either_key(root: Path, key: str) -> None:
    _component(root)
    _set(root, key, 2)
    done = run_lockgate("stage", "alice:etl", cwd=root, env=ENV)
    assert done.returncode == 2, done.stderr
    assert "more than plugins.limits.staging_max_files (2)" in done.stderr


@pytest.mark.parametrize("key", ["workspaces.root", "plugins.workspace.root"])
def test_the_workspace_root_is_read_from_either_key(root: Path, key: str) -> None:
    _component(root, "trees")
    _set(root, key, "trees")
    done = run_lockgate("stage", "alice:etl", cwd=root, env=ENV)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("key", ["staging.link", "plugins.local.link"])
def test_the_link_mode_is_the_local_stores(root: Path, key: str) -> None:
    _component(root)
    _set(root, key, "copy")
    assert run_lockgate("stage", "alice:etl", cwd=root, env=ENV).returncode == 0
    done = run_lockgate("promote", "alice:etl", "--to", "staging", cwd=root, env=ENV)
    assert done.returncode == 0, done.stderr
    release = next((root / ".lockgate" / "releases").iterdir())
    assert (release / "b.txt").stat().st_nlink == 1  # copied, not hardlinked to the object
