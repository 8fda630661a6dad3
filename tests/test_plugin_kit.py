"""``lockgate_kit``: an isolated project for testing one plugin.

Only lockgate's builtins and the plugins under test load, no ambient ``LOCKGATE_*``
variable reaches the project, and an installed plugin with the name of one under test is
left out with a warning (unless it is the same module).
"""

from __future__ import annotations

import os
import types
from pathlib import Path

import pytest

from conftest import write_distribution
from lockgate.plugin import Issue, hookimpl
from lockgate.testing import MemoryRoles, PluginKit, PluginShadowWarning


class TodoCheck:
    """A validator: an error for every file holding TODO."""

    @hookimpl
    def on_validate(self, subject):
        for path in subject.files:
            if b"TODO" in subject.read_bytes(path):
                yield Issue("error", "todo", "TODO left in", path=path)


class Announcer:
    """A notifier: remembers every promotion."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    @hookimpl
    def on_promote(self, event):
        self.seen.append((event.component, event.stage))


def test_ambient_variables_do_not_reach_the_project(
    lockgate_kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCKGATE__STATE__STORE", "no-such-store")
    monkeypatch.setenv("LOCKGATE_DISABLE_PLUGINS", "sqlite")
    monkeypatch.setenv("LOCKGATE_ACTOR", "mallory")
    kit = lockgate_kit(environ={"LOCKGATE_ACTOR": "alice"})
    assert not [k for k in os.environ if k.startswith("LOCKGATE")]
    monkeypatch.setenv("LOCKGATE__STATE__STORE", "set-after-the-kit")
    project = kit.open()
    assert project.config.state.store == "sqlite"
    assert project.plugins.info("sqlite").status == "loaded"
    assert project.actor == "alice"
    shown = {s["key"]: s for s in kit.cli("--json", "config", "show").json()["settings"]}
    assert (shown["state.store"]["value"], shown["state.store"]["source"]) == ("sqlite", "default")


def test_installed_third_party_plugins_do_not_load(lockgate_kit) -> None:
    project = lockgate_kit().open()
    assert project.plugins.infos  # the builtins
    assert all(info.builtin for info in project.plugins.infos.values())
    listed = lockgate_kit().cli("--json", "plugins").json()["plugins"]
    assert {p["builtin"] for p in listed} == {True}


def test_one_line_each_to_make_stage_validate_and_promote(lockgate_kit) -> None:
    announcer = Announcer()
    kit = lockgate_kit(extra=[("todo-check", TodoCheck()), announcer])
    assert kit.open().plugins.info("announcer").status == "loaded"
    kit.component("alice:etl", {"main.py": "print(1)\n"})
    kit.component("alice:wip", {"main.py": "# TODO\n"})
    assert kit.stage("alice:etl").created
    kit.stage("alice:wip")
    report = kit.validate("alice:etl", "alice:wip")
    assert report.component("alice:etl").ready
    (issue,) = report.component("alice:wip").issues
    assert (issue.code, issue.plugin) == ("todo", "todo-check")
    kit.promote("alice:etl", reason="ship")
    assert announcer.seen == [("alice:etl", "staging")]


def test_modules_are_named_after_their_last_part(lockgate_kit) -> None:
    module = types.ModuleType("lockgate_todo_check")
    module.on_validate = TodoCheck().on_validate  # type: ignore[attr-defined]
    kit = lockgate_kit(extra=[module])
    assert kit.open().plugins.info("todo-check").status == "loaded"


def test_only_loads_exactly_the_plugins_named(lockgate_kit) -> None:
    roles = MemoryRoles()
    kit = lockgate_kit(
        extra=[roles.distribution(), ("todo-check", TodoCheck())],
        only=["memory", "memory-roles", "todo-check"],
        config=(
            "state: {store: memory}\ncontent: {store: memory}\nsource: {name: memory}\n"
            "stages:\n  staging: {targets: [{kind: memory}]}\n"
        ),
    )
    assert sorted(kit.open().plugins.infos) == ["memory", "memory-roles", "todo-check"]
    roles.source.create("alice:etl")
    roles.source.write("alice:etl", "main.py", b"# TODO\n")
    kit.stage("alice:etl")
    assert not kit.validate("alice:etl").ready


def test_only_naming_an_unknown_plugin_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only= names 'nope', which is neither"):
        PluginKit(tmp_path, only=["sqlite", "nope"])


def test_an_installed_plugin_of_the_same_name_is_left_out_with_a_warning(
    lockgate_kit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    write_distribution(
        site,
        "lockgate-other-todo",
        "2.0",
        {"todo-check": "other_todo"},
        {"other_todo": "raise RuntimeError('never imported')\n"},
    )
    monkeypatch.syspath_prepend(str(site))
    with pytest.warns(PluginShadowWarning, match="installed plugin 'todo-check'") as caught:
        kit = lockgate_kit(extra=[("todo-check", TodoCheck())])
    assert "uninstall lockgate-other-todo" in str(caught[0].message)
    info = kit.open().plugins.info("todo-check")
    assert (info.status, info.distribution) == ("loaded", "lockgate-plugins-under-test")


def test_the_plugin_under_test_installed_is_no_shadow(
    lockgate_kit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    source = "from lockgate.plugin import hookimpl\n"
    write_distribution(
        site, "lockgate-mine", "1.0", {"mine": "lockgate_mine"}, {"lockgate_mine": source}
    )
    monkeypatch.syspath_prepend(str(site))
    import lockgate_mine  # type: ignore[import-not-found]

    kit = lockgate_kit(extra=[("mine", lockgate_mine)])  # warnings are errors here
    assert kit.open().plugins.info("mine").distribution == "lockgate-plugins-under-test"
