"""Plugins that declare their hooks (``lockgate.hooks``) are imported when first needed."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pluggy
import pytest

from conftest import run_lockgate, write_distribution
from lockgate import hookspecs
from lockgate.core.hooks import HookRunner
from lockgate.core.plugins import Candidate, discover, load_plugins, make_plugin_manager
from lockgate.core.selection import Declaration, Selection
from lockgate.plugin import hookimpl

KNOWN = {name for name in dir(hookspecs) if name.startswith(("on_", "register_", "describe_"))}

TARGET = """
from lockgate.plugin import hookimpl

@hookimpl
def register_targets(register):
    register("ftp", lambda ctx: None)
"""
SNEAKY = (
    TARGET
    + """
@hookimpl
def on_stage(event):
    pass
"""
)
BROKEN = "raise RuntimeError('boom at import')\n"

OPEN = """
import sys
from lockgate.core.project import Project
project = Project.open(sys.argv[1])
print("open", "lazyftp" in sys.modules, project.plugins.info("ftp").imported)
print("available", "ftp" in project.roles.available("target"), "lazyftp" in sys.modules)
project.plugins.need("register_targets", "ftp")
info = project.plugins.info("ftp")
print("needed", "lazyftp" in sys.modules, info.status, info.error)
"""


def test_a_declaration_lists_hooks_and_the_names_they_register() -> None:
    found = Declaration.parse("register_settings  register_targets(a, b) on_stage", KNOWN)
    assert found.hooks == {"register_settings", "register_targets", "on_stage"}
    assert found.names_for("register_targets") == {"a", "b"}
    assert found.names_for("on_stage") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("on_stgae", "declares unknown hook 'on_stgae'; did you mean 'on_stage'?"),
        ("on_stage; rm", "is not a list of hook names"),
        ("", "is not a list of hook names"),
    ],
)
def test_a_declaration_that_cannot_be_read_is_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        Declaration.parse(text, KNOWN)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_every_installed_declaration_is_what_its_plugin_implements() -> None:
    """Each lockgate.hooks line (the builtins' in pyproject.toml, the distributions')
    names exactly the hooks its module implements and the names it registers."""
    checked = 0
    for cand in discover():
        if cand.declaration is None:
            continue
        pm = make_plugin_manager()
        declared = Declaration.parse(cand.declaration, KNOWN)
        plugin = cand.entry_point.load()
        pm.register(plugin, name=cand.name)
        hooks = {h.name for h in pm.get_hookcallers(plugin) or ()}
        assert hooks == declared.hooks, cand.name
        for hook in hooks:
            names = declared.names_for(hook)
            if names is None or hook == "register_commands":
                continue
            registered: list[str] = []
            caller: pluggy.HookCaller = getattr(pm.hook, hook)
            caller(register=lambda name, factory, found=registered: found.append(name))
            assert set(registered) == names, (cand.name, hook)
        checked += 1
    assert checked >= 17  # the builtins at least


def _project(root: Path) -> Path:
    root.mkdir()
    (root / "lockgate.yaml").write_text("project:\n  name: lazy\n")
    return root


def _site(tmp_path: Path, module: str, declared: str) -> Path:
    site = tmp_path / "site"
    write_distribution(
        site,
        "lockgate-ftp",
        "1.0",
        {"ftp": "lazyftp"},
        {"lazyftp": module},
        hooks={"ftp": declared},
    )
    return site


def test_a_declared_plugin_is_imported_when_a_name_it_registers_is_needed(
    tmp_path: Path,
) -> None:
    site = _site(tmp_path, TARGET, "register_targets(ftp)")
    root = _project(tmp_path / "p")
    proc = run_lockgate(str(root), cwd=root, site=site, python_code=OPEN)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "open False False",
        "available True False",
        "needed True loaded None",
    ]


def test_a_plugin_implementing_a_hook_it_did_not_declare_fails_naming_it(
    tmp_path: Path,
) -> None:
    site = _site(tmp_path, SNEAKY, "register_targets(ftp)")
    root = _project(tmp_path / "p")
    proc = run_lockgate(str(root), cwd=root, site=site, python_code=OPEN)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.splitlines()[-1]
    assert last.startswith("needed True failed implements on_stage, which its lockgate.hooks")


def test_a_broken_declared_plugin_stays_out_of_the_way_until_needed(tmp_path: Path) -> None:
    site = _site(tmp_path, BROKEN, "register_targets(ftp)")
    root = _project(tmp_path / "p")
    workspace = root / "workspaces" / "alice" / "scripts" / "hello"
    workspace.mkdir(parents=True)
    (workspace / "run.py").write_text("print(1)\n")
    staged = run_lockgate("stage", "alice:hello", cwd=root, site=site)
    assert staged.returncode == 0, staged.stderr
    assert "boom" not in staged.stderr
    listed = run_lockgate("plugins", "--json", cwd=root, site=site)
    assert '"error": "RuntimeError: boom at import"' in listed.stdout.replace("\n", "")
    strict = run_lockgate("--strict-plugins", "stage", "alice:hello", cwd=root, site=site)
    assert strict.returncode == 3
    assert "plugin 'ftp' (lockgate-ftp 1.0) failed to load: RuntimeError: boom" in strict.stderr


def test_a_declaration_that_cannot_be_read_fails_the_plugin_in_one_line(
    tmp_path: Path,
) -> None:
    site = _site(tmp_path, TARGET, "register_targets(ftp")
    root = _project(tmp_path / "p")
    listed = run_lockgate("plugins", "--json", cwd=root, site=site)
    (ftp,) = [p for p in json.loads(listed.stdout)["plugins"] if p["name"] == "ftp"]
    assert ftp["status"] == "failed"
    assert ftp["error"].startswith("its lockgate.hooks entry point 'register_targets(ftp'")
    assert "is not a list of hook names" in ftp["error"]


class _Target:
    """A plugin object registering one target name (``x-<plugin>``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    @hookimpl
    def register_targets(self, register: object) -> None:
        register(f"x-{self.name}", lambda ctx: None)  # type: ignore[operator]


class _Loader:
    def __init__(self, plugin: object, loaded: list[str], name: str) -> None:
        self.plugin, self.loaded, self.name = plugin, loaded, name

    def load(self) -> object:
        self.loaded.append(self.name)
        return self.plugin


def test_the_call_order_does_not_depend_on_when_a_plugin_was_imported() -> None:
    loaded: list[str] = []
    candidates = [
        Candidate(
            name,
            name,
            "lockgate-x",
            "1",
            _Loader(_Target(name), loaded, name),
            declaration="register_targets" if name == "b" else None,
        )
        for name in ("c", "b", "a")
    ]
    plugins = load_plugins(candidates, Selection(), eager=())
    assert loaded == ["a", "c"]  # b declared its hook: not imported yet
    assert not plugins.info("b").imported
    names = list(HookRunner(plugins).register_role("register_targets"))
    assert loaded == ["a", "c", "b"]
    assert names == ["x-a", "x-b", "x-c"]  # by name, as if all were imported at once


class _SlowLoader(_Loader):
    def __init__(self, plugin: object, loaded: list[str], name: str, gate: threading.Event):
        super().__init__(plugin, loaded, name)
        self.gate = gate

    def load(self) -> object:
        self.gate.wait(5)  # both threads are asking by now
        return super().load()


def test_threads_needing_the_same_plugin_import_it_once() -> None:
    loaded: list[str] = []
    gate = threading.Event()
    loader = _SlowLoader(_Target("b"), loaded, "b", gate)
    cand = Candidate("b", "b", "lockgate-x", "1", loader, declaration="register_targets(x-b)")
    plugins = load_plugins([cand], Selection(), eager=())
    threads = [
        threading.Thread(target=plugins.need, args=("register_targets", "x-b")) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(10)
    assert loaded == ["b"]
    assert plugins.info("b").status == "loaded"
