"""The command line: init, plugins, config, metrics, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_lockgate, write_distribution
from lockgate.testing import run_cli

BROKEN = "raise RuntimeError('exploded at import')\n"
WORKING = (
    "from lockgate import hookimpl\n@hookimpl\ndef on_metrics_collect():\n    return {'up': 1}\n"
)


def _init(path: Path) -> Path:
    assert run_cli("init", str(path)).exit_code == 0
    return path


# ------------------------------------------------------------------ init


def test_init_creates_the_project_and_is_idempotent(tmp_path: Path) -> None:
    first = run_cli("init", str(tmp_path / "p"), "--json").json()
    assert first["created"] == ["lockgate.yaml", "workspaces/", ".lockgate/", ".gitignore entry"]
    second = run_cli("init", str(tmp_path / "p"), "--json").json()
    assert second["created"] == []
    assert (tmp_path / "p" / ".gitignore").read_text().count(".lockgate/") == 1


def test_init_prepares_the_state_store(tmp_path: Path) -> None:
    import sqlite3

    from lockgate.builtin_plugins.sqlite_state import MIGRATIONS

    result = run_cli("init", str(tmp_path / "p"))
    assert result.exit_code == 0
    assert "ready    state store 'sqlite'" in result.stdout
    db = sqlite3.connect(tmp_path / "p" / ".lockgate" / "state.db")
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    finally:
        db.close()
    assert run_cli("init", str(tmp_path / "p"), "--json").json()["state"] == "sqlite"


def test_init_with_a_broken_config_creates_the_project_and_warns(tmp_path: Path) -> None:
    (tmp_path / "lockgate.yaml").write_text("plugnis:\n  disable: []\n")
    result = run_cli("init", str(tmp_path))
    assert result.exit_code == 0
    assert result.stderr.count("\n") == 1
    assert "lockgate: warning: the project is created but not ready:" in result.stderr
    assert "unknown key 'plugnis'; did you mean 'plugins'?" in result.stderr
    assert (tmp_path / "workspaces").is_dir()
    assert not (tmp_path / ".lockgate" / "state.db").exists()
    data = run_cli("init", str(tmp_path), "--json").json()
    assert data["state"] is None
    assert len(data["warnings"]) == 1


def test_init_never_clobbers_an_existing_config(tmp_path: Path) -> None:
    (tmp_path / "lockgate.yaml").write_text("project:\n  name: precious\n")
    (tmp_path / ".gitignore").write_text("node_modules/")
    result = run_cli("init", str(tmp_path), "--json").json()
    assert "lockgate.yaml" in result["kept"]
    assert (tmp_path / "lockgate.yaml").read_text() == "project:\n  name: precious\n"
    assert (tmp_path / ".gitignore").read_text() == "node_modules/\n.lockgate/\n"


def test_init_refuses_when_a_directory_name_is_taken_by_a_file(tmp_path: Path) -> None:
    (tmp_path / "workspaces").write_text("oops")
    result = run_cli("init", str(tmp_path))
    assert result.exit_code == 2
    assert "workspaces: exists and is not a directory" in result.stderr


# ------------------------------------------------------------------ errors


def test_misspelled_key_exits_2_with_one_line(tmp_path: Path) -> None:
    root = _init(tmp_path)
    (root / "lockgate.yaml").write_text("plugnis:\n  disable: []\n")
    result = run_cli("config", "validate", project=root)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "lockgate.yaml:1: unknown key 'plugnis'; did you mean 'plugins'?" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("damage", ["garbage", "directory"])
def test_an_unopenable_state_database_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    root = _init(tmp_path)
    db = root / ".lockgate" / "state.db"
    db.unlink()
    if damage == "garbage":
        db.write_bytes(b"not a database, but long enough to look like a header" * 4)
    else:
        db.mkdir()
    result = run_cli("ls", project=root)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"{db}: cannot open the state database (" in result.stderr
    assert "restore it from a backup" in result.stderr
    again = run_cli("init", str(root))  # init keeps its files and warns
    assert again.exit_code == 0
    assert "not ready" in again.stderr and "cannot open the state database" in again.stderr


def test_no_project_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("config", "validate", project=tmp_path)
    assert result.exit_code == 2
    assert "no lockgate.yaml there" in result.stderr


def test_unknown_command_suggests_the_closest(tmp_path: Path) -> None:
    result = run_cli("promte")
    assert result.exit_code == 2
    assert "did you mean 'promote'?" in result.stderr


def test_plugin_alone_shows_its_commands_and_points_to_plugins() -> None:
    result = run_cli("plugin")
    assert result.exit_code in (0, 2)  # click: a group without a command shows its help
    assert "new" in result.stdout + result.stderr
    assert "'lockgate plugins'" in result.stdout + result.stderr


def test_config_validate_accepts_a_fresh_project(tmp_path: Path) -> None:
    root = _init(tmp_path)
    result = run_cli("config", "validate", project=root)
    assert result.exit_code == 0, result.stderr
    assert "valid" in result.stdout


def test_config_show_reports_sources(tmp_path: Path) -> None:
    root = _init(tmp_path)
    result = run_cli("--json", "config", "show", project=root, env={"LOCKGATE__STATE__STORE": "x"})
    settings = {s["key"]: s for s in result.json()["settings"]}
    assert settings["state.store"] == {
        "key": "state.store",
        "value": "x",
        "source": "environment (LOCKGATE__STATE__STORE)",
    }
    assert settings["content.store"]["source"] == "default"
    assert settings["project.name"]["source"].startswith("file (")


# ------------------------------------------------------------------ real installed plugins


def test_broken_installed_plugin_is_listed_failed_and_others_load(
    tmp_path: Path, site: Path
) -> None:
    write_distribution(
        site, "lockgate-broken", "0.3.1", {"broken": "lg_broken"}, {"lg_broken": BROKEN}
    )
    write_distribution(site, "lockgate-works", "1.0", {"works": "lg_works"}, {"lg_works": WORKING})
    result = run_lockgate("--json", "plugins", cwd=tmp_path, site=site)
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)["plugins"]}
    broken = plugins["broken"]
    assert (broken["status"], broken["distribution"], broken["version"]) == (
        "failed",
        "lockgate-broken",
        "0.3.1",
    )
    assert "RuntimeError: exploded at import" in broken["error"]
    assert plugins["works"]["status"] == "loaded"
    assert plugins["works"]["hooks"] == ["on_metrics_collect"]


def test_strict_mode_exits_3_on_a_broken_plugin(tmp_path: Path, site: Path) -> None:
    write_distribution(
        site, "lockgate-broken", "0.3.1", {"broken": "lg_broken"}, {"lg_broken": BROKEN}
    )
    for args, env in [
        (("--strict-plugins", "plugins"), {}),
        (("plugins",), {"LOCKGATE_STRICT_PLUGINS": "1"}),
    ]:
        result = run_lockgate(*args, cwd=tmp_path, site=site, env=env)
        assert result.returncode == 3, result.stderr
        assert "plugin 'broken' (lockgate-broken 0.3.1) failed to load" in result.stderr
        assert "Traceback" not in result.stderr


def test_init_warns_of_a_broken_plugin_in_strict_mode_only(tmp_path: Path, site: Path) -> None:
    write_distribution(
        site, "lockgate-broken", "0.3.1", {"broken": "lg_broken"}, {"lg_broken": BROKEN}
    )
    lenient = run_lockgate("init", str(tmp_path / "a"), cwd=tmp_path, site=site)
    assert lenient.returncode == 0 and "ready    state store 'sqlite'" in lenient.stdout
    strict = run_lockgate("--strict-plugins", "init", str(tmp_path / "b"), cwd=tmp_path, site=site)
    assert strict.returncode == 0, strict.stderr
    assert "ready" not in strict.stdout and "created  lockgate.yaml" in strict.stdout
    assert "not ready: plugin 'broken' (lockgate-broken 0.3.1) failed to load" in strict.stderr


def test_config_works_when_every_third_party_plugin_fails(tmp_path: Path, site: Path) -> None:
    _init(tmp_path)
    write_distribution(
        site, "lockgate-broken", "0.3.1", {"broken": "lg_broken"}, {"lg_broken": BROKEN}
    )
    result = run_lockgate("config", "validate", cwd=tmp_path, site=site)
    assert result.returncode == 0, result.stderr
    assert "broken" in result.stderr  # warned, not fatal


PROBE = (
    "import sys\n"
    "from lockgate.cli.main import cli\n"
    "code = cli.main(args=sys.argv[1:], standalone_mode=False)\n"
    "print('LOADED' if 'lg_works' in sys.modules else 'ABSENT')\n"
)


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (("plugins",), {}, "LOADED"),
        (("plugins",), {"LOCKGATE_LOAD_PLUGINS": ""}, "ABSENT"),
        (("plugins",), {"LOCKGATE_DISABLE_PLUGINS": "works"}, "ABSENT"),
        (("--version",), {}, "ABSENT"),
        (("--help",), {}, "ABSENT"),
    ],
)
def test_blocked_plugins_and_help_never_import_plugin_modules(
    tmp_path: Path, site: Path, args: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    write_distribution(site, "lockgate-works", "1.0", {"works": "lg_works"}, {"lg_works": WORKING})
    result = run_lockgate(*args, cwd=tmp_path, site=site, env=env, python_code=PROBE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == expected


def test_a_kernel_command_imports_only_its_own_module(tmp_path: Path) -> None:
    _init(tmp_path)
    probe = (
        "import sys\n"
        "from lockgate.cli.main import cli\n"
        "cli.main(args=sys.argv[1:], standalone_mode=False)\n"
        "print(sorted(m for m in sys.modules if m.endswith('_cmd')))\n"
    )
    result = run_lockgate("ls", cwd=tmp_path, python_code=probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "['lockgate.cli.ls_cmd']"


def test_plugin_commands_are_added_and_clashes_refused(tmp_path: Path, site: Path) -> None:
    source = (
        "import click\n"
        "from lockgate import hookimpl\n"
        "@click.command('hello')\n"
        "def hello():\n"
        "    click.echo('hello from a plugin')\n"
        "@hookimpl\n"
        "def register_commands(register):\n"
        "    register(hello)\n"
    )
    write_distribution(site, "lockgate-hello", "1.0", {"hello": "lg_hello"}, {"lg_hello": source})
    result = run_lockgate("hello", cwd=tmp_path, site=site)
    assert (result.returncode, result.stdout) == (0, "hello from a plugin\n")
    clash = source.replace("'hello'", "'init'")
    write_distribution(site, "lockgate-clash", "1.0", {"clash": "lg_clash"}, {"lg_clash": clash})
    result = run_lockgate("hello", cwd=tmp_path, site=site)
    assert result.returncode == 3
    assert "adds command 'init', which the lockgate kernel already provides" in result.stderr


def test_metrics_are_attributed_per_plugin(tmp_path: Path, site: Path) -> None:
    write_distribution(site, "lockgate-works", "1.0", {"works": "lg_works"}, {"lg_works": WORKING})
    result = run_lockgate("--json", "metrics", cwd=tmp_path, site=site)
    assert json.loads(result.stdout)["works.up"] == 1


def test_a_plugin_hook_error_exits_3_in_one_line(tmp_path: Path, site: Path) -> None:
    source = WORKING.replace("return {'up': 1}", "raise KeyError('gone')")
    write_distribution(site, "lockgate-works", "2.0", {"works": "lg_works"}, {"lg_works": source})
    result = run_lockgate("metrics", cwd=tmp_path, site=site)
    assert result.returncode == 3
    assert result.stderr.strip().count("\n") == 0
    assert "plugin 'works' (lockgate-works 2.0) failed in hook on_metrics_collect" in result.stderr


def test_version_prints_the_package_version() -> None:
    from lockgate import __version__

    result = run_cli("--version")
    assert result.stdout.strip() == f"lockgate {__version__}"


# ------------------------------------------------------------------ the cyclic collector

GC_PROBE = (
    "import gc\n"
    "import click\n"
    "from lockgate import hookimpl\n"
    "@click.command('gcstate')\n"
    "def gcstate():\n"
    "    click.echo(f'command: {gc.isenabled()}')\n"
    "@hookimpl\n"
    "def register_commands(register):\n"
    "    register(gcstate)\n"
    "@hookimpl\n"
    "def on_metrics_collect():\n"
    "    return {'gc_on': int(gc.isenabled())}\n"
)


def test_kernel_commands_run_without_the_collector_and_plugin_commands_with_it(
    tmp_path: Path, site: Path
) -> None:
    write_distribution(site, "lockgate-gc", "1.0", {"gcprobe": "lg_gc"}, {"lg_gc": GC_PROBE})
    plugin = run_lockgate("gcstate", cwd=tmp_path, site=site)
    assert (plugin.returncode, plugin.stdout) == (0, "command: True\n"), plugin.stderr
    kernel = run_lockgate("--json", "metrics", cwd=tmp_path, site=site)
    assert kernel.returncode == 0, kernel.stderr
    assert json.loads(kernel.stdout)["gcprobe.gc_on"] == 0


def test_in_process_runs_leave_the_collector_as_they_found_it() -> None:
    import gc

    frozen = gc.get_freeze_count()
    assert gc.isenabled()
    assert run_cli("--version").exit_code == 0
    assert run_cli("no-such-command").exit_code == 2
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen
    gc.disable()
    try:
        assert run_cli("--version").exit_code == 0
        assert not gc.isenabled()  # a caller's choice is kept, too
    finally:
        gc.enable()
