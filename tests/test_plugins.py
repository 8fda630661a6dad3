"""Discovery, selection, isolation and ordering of plugins (fake distributions)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from lockgate import Issue, PluginHookError, PluginLoadError, hookimpl
from lockgate.core.plugins import Selection, discover, load_plugins
from lockgate.testing import fake_distribution, open_project


def _metrics_plugin(value: int) -> types.SimpleNamespace:
    @hookimpl
    def on_metrics_collect():
        return {"value": value}

    return types.SimpleNamespace(on_metrics_collect=on_metrics_collect)


def test_discovery_reads_name_distribution_and_version_without_importing() -> None:
    dist = fake_distribution("acme-gates", {"acme": "acme_never_imported_module"}, version="2.3")
    (cand,) = discover([dist])
    assert (cand.name, cand.distribution, cand.version) == ("acme", "acme-gates", "2.3")
    assert not cand.builtin
    assert "acme_never_imported_module" not in sys.modules


def test_same_entry_point_listed_twice_counts_once() -> None:
    dist = fake_distribution("acme", {"acme": "x_mod"})
    assert len(discover([dist, dist])) == 1


def test_import_error_is_recorded_and_other_plugins_still_load(tmp_path: Path) -> None:
    broken = fake_distribution(
        "broken-dist", {"broken": "lockgate_test_missing_module"}, version="0.9"
    )
    good = fake_distribution("good-dist", {"good": _metrics_plugin(1)})
    project = open_project(None, extra=[broken, good], installed=False)
    infos = project.plugins.infos
    assert infos["broken"].status == "failed"
    assert infos["broken"].distribution == "broken-dist"
    assert infos["broken"].version == "0.9"
    assert "ModuleNotFoundError" in (infos["broken"].error or "")
    assert infos["good"].status == "loaded"


def test_strict_mode_turns_a_load_failure_into_a_plugin_error() -> None:
    broken = fake_distribution("broken-dist", {"broken": "lockgate_test_missing_module"})
    with pytest.raises(PluginLoadError, match=r"plugin 'broken' \(broken-dist 1.0\) failed"):
        open_project(None, extra=[broken], installed=False, strict_plugins=True)
    with pytest.raises(PluginLoadError):
        open_project(
            None, extra=[broken], installed=False, environ={"LOCKGATE_STRICT_PLUGINS": "1"}
        )


def test_hook_with_an_argument_the_spec_lacks_fails_pluggy_validation() -> None:
    @hookimpl
    def on_promote(event, nonsense):  # pragma: no cover - never called
        pass

    dist = fake_distribution("bad", {"bad": types.SimpleNamespace(on_promote=on_promote)})
    project = open_project(None, extra=[dist], installed=False)
    info = project.plugins.infos["bad"]
    assert info.status == "failed"
    assert "nonsense" in (info.error or "")


def test_unknown_hook_name_is_refused_with_a_suggestion() -> None:
    @hookimpl
    def on_promot(event):  # pragma: no cover - never called
        pass

    dist = fake_distribution("typo", {"typo": types.SimpleNamespace(on_promot=on_promot)})
    info = open_project(None, extra=[dist], installed=False).plugins.infos["typo"]
    assert info.status == "failed"
    assert "did you mean 'on_promote'" in (info.error or "")


def test_wrapper_implementations_are_refused() -> None:
    @hookimpl(wrapper=True)
    def on_promote(event):  # pragma: no cover - never called
        return (yield)

    dist = fake_distribution("wrap", {"wrap": types.SimpleNamespace(on_promote=on_promote)})
    info = open_project(None, extra=[dist], installed=False).plugins.infos["wrap"]
    assert info.status == "failed"
    assert "wrapper" in (info.error or "")


def test_two_distributions_claiming_one_name_keep_the_first() -> None:
    first = fake_distribution("dist-a", {"same": _metrics_plugin(1)})
    second = fake_distribution("dist-b", {"same": _metrics_plugin(2)})
    project = open_project(None, extra=[first, second], installed=False)
    assert project.plugins.infos["same"].status == "loaded"
    clash = project.plugins.infos["same@dist-b"]
    assert clash.status == "failed"
    assert "already used" in (clash.error or "")


@pytest.mark.parametrize(
    ("config_disable", "only", "env", "expected"),
    [
        ([], None, {}, {"alpha", "beta"}),
        (["alpha"], None, {}, {"beta"}),
        ([], ["alpha"], {}, {"alpha"}),
        ([], None, {"LOCKGATE_DISABLE_PLUGINS": "beta"}, {"alpha"}),
        ([], None, {"LOCKGATE_LOAD_PLUGINS": ""}, set()),
        ([], None, {"LOCKGATE_LOAD_PLUGINS": "beta"}, {"beta"}),
        # Disable always wins over an allowlist.
        (["alpha"], ["alpha", "beta"], {"LOCKGATE_LOAD_PLUGINS": "alpha,beta"}, {"beta"}),
    ],
)
def test_one_precedence_rule_decides_which_plugins_load(
    config_disable: list[str], only: list[str] | None, env: dict[str, str], expected: set[str]
) -> None:
    dists = [
        fake_distribution("alpha-dist", {"alpha": "lockgate_test_alpha_not_importable"}),
        fake_distribution("beta-dist", {"beta": "lockgate_test_beta_not_importable"}),
    ]
    selection = Selection.from_settings(disable=config_disable, only=only, environ=env)
    plugins = load_plugins(discover(dists), selection)
    attempted = {n for n, i in plugins.infos.items() if i.status != "disabled"}
    assert attempted == expected
    for name, info in plugins.infos.items():
        if name not in expected:
            assert info.reason


def test_load_plugins_env_does_not_block_builtins() -> None:
    dist = fake_distribution("lockgate", {"core-ish": "lockgate_test_builtin_missing"})
    selection = Selection.from_settings(environ={"LOCKGATE_LOAD_PLUGINS": ""})
    plugins = load_plugins(discover([dist]), selection)
    assert plugins.infos["core-ish"].status == "failed"  # attempted, i.e. not blocked


def test_call_order_is_by_name_within_a_band_and_plugins_order_overrides() -> None:
    calls: list[str] = []

    def plugin(name: str, **opts: bool) -> types.SimpleNamespace:
        @hookimpl(**opts)
        def on_metrics_collect():
            calls.append(name)

        return types.SimpleNamespace(on_metrics_collect=on_metrics_collect)

    def run(order: list[str]) -> list[str]:
        calls.clear()
        dists = [
            fake_distribution("d1", {"zeta": plugin("zeta")}),
            fake_distribution("d2", {"alpha": plugin("alpha")}),
            fake_distribution("d3", {"mid": plugin("mid")}),
            fake_distribution("d4", {"last": plugin("last", trylast=True)}),
            fake_distribution("d5", {"zz-first": plugin("zz-first", tryfirst=True)}),
        ]
        plugins = load_plugins(discover(dists), Selection.from_settings(order=order, environ={}))
        from lockgate.core.context import MetricsContext
        from lockgate.core.hooks import HookRunner

        HookRunner(plugins).on_metrics_collect(MetricsContext(None, {}))
        return list(calls)

    assert run([]) == ["zz-first", "alpha", "mid", "zeta", "last"]
    assert run(["zeta", "mid"]) == ["zz-first", "zeta", "mid", "alpha", "last"]


def test_a_raising_hook_names_plugin_distribution_version_and_hook() -> None:
    class Boom(RuntimeError):
        pass

    @hookimpl
    def on_metrics_collect():
        raise Boom("disk on fire")

    dist = fake_distribution(
        "acme-metrics",
        {"acme": types.SimpleNamespace(on_metrics_collect=on_metrics_collect)},
        version="4.2",
    )
    project = open_project(None, extra=[dist], installed=False)
    from lockgate.core.context import MetricsContext

    with pytest.raises(PluginHookError) as info:
        project.hooks.on_metrics_collect(MetricsContext(None, {}))
    message = str(info.value)
    assert "plugin 'acme' (acme-metrics 4.2)" in message
    assert "on_metrics_collect" in message
    assert "disk on fire" in message
    assert isinstance(info.value.__cause__, Boom)
    assert info.value.exit_code == 3


def test_validator_issues_are_attributed_to_the_implementing_plugin() -> None:
    @hookimpl
    def on_validate(subject):
        return [Issue("error", "x", "bad", plugin="somebody-else")]

    dist = fake_distribution("v", {"checker": types.SimpleNamespace(on_validate=on_validate)})
    project = open_project(None, extra=[dist], installed=False)
    (validator,) = project.hooks.validators()
    (issue,) = validator.call(None)  # type: ignore[arg-type]
    assert issue.plugin == "checker"
    assert issue.blocking


def test_announce_failures_are_collected_not_raised() -> None:
    import datetime as dt

    from lockgate import ChangeEvent

    seen: list[str] = []

    @hookimpl
    def on_promote(event):
        raise ValueError("webhook down")

    def ok_promote(event):
        seen.append(event.component)

    ok = types.SimpleNamespace(on_promote=hookimpl(ok_promote))
    dists = [
        fake_distribution("n1", {"notify": types.SimpleNamespace(on_promote=on_promote)}),
        fake_distribution("n2", {"other": ok}),
    ]
    project = open_project(None, extra=dists, installed=False)
    event = ChangeEvent(
        "promote", "alice:x", "production", "r2", "r1", "me", dt.datetime.now(dt.timezone.utc)
    )
    failures = project.hooks.on_promote(event)
    assert [f.plugin for f in failures] == ["notify"]
    assert seen == ["alice:x"]


def test_duplicate_role_registration_names_both_plugins() -> None:
    def provider(tag: str) -> types.SimpleNamespace:
        @hookimpl
        def register_state_stores(register):
            register("shared", lambda ctx: tag)

        return types.SimpleNamespace(register_state_stores=register_state_stores)

    dists = [
        fake_distribution("p1", {"one": provider("1")}),
        fake_distribution("p2", {"two": provider("2")}),
    ]
    project = open_project(None, extra=dists, installed=False)
    with pytest.raises(PluginHookError, match=r"'two'.*'one' .* already did"):
        project.roles.available("state")


def test_missing_role_is_explained_in_one_line_when_every_plugin_is_disabled(
    tmp_path: Path,
) -> None:
    from lockgate.errors import MissingCapabilityError
    from lockgate.operations.init import init_project

    init_project(tmp_path)
    project = open_project(tmp_path, environ={"LOCKGATE_DISABLE_PLUGINS": ""}, installed=False)
    with pytest.raises(MissingCapabilityError) as info:
        project.roles.build("state", "sqlite")
    assert "\n" not in str(info.value)
    assert "no state store named 'sqlite'" in str(info.value)


def test_installed_scan_reads_dist_info_name_version_and_first_wins(tmp_path: Path) -> None:
    from conftest import write_distribution
    from lockgate.core.plugins import _scan_sys_path

    first, second = tmp_path / "first", tmp_path / "second"
    write_distribution(first, "Acme_Gates", "2.0.1", {"acme": "acme_mod:plugin"}, {})
    write_distribution(second, "acme-gates", "1.0", {"old": "old_mod"}, {})
    (first / "other-1.0.dist-info").mkdir()  # no entry_points.txt: skipped quietly
    saved = sys.path[:]
    sys.path[:0] = [str(first), str(second)]
    try:
        found = {c.name: c for c in _scan_sys_path()}
    finally:
        sys.path[:] = saved
    assert (found["acme"].distribution, found["acme"].version) == ("acme-gates", "2.0.1")
    assert found["acme"].value == "acme_mod:plugin"
    assert "old" not in found  # the same distribution later on sys.path is shadowed


PLUGIN_SOURCE = (
    "from lockgate.plugin import hookimpl\n\n"
    "@hookimpl\ndef on_metrics_collect():\n    return {'one': 1.0}\n"
)


@pytest.mark.parametrize(
    ("dirname", "pkg_info_version", "version"),
    [
        ("eggy_gates.egg-info", "3.2.1", "3.2.1"),  # an in-place (develop) install
        ("eggy_gates-0.9-py3.11.egg-info", None, "0.9"),  # an old setuptools install
    ],
)
def test_an_egg_info_distribution_is_discovered_and_loaded(
    tmp_path: Path, dirname: str, pkg_info_version: str | None, version: str
) -> None:
    """Plugins installed by setuptools as ``.egg-info`` are found as importlib.metadata
    finds them (the entry-point scanner used to read ``.dist-info`` names only)."""
    from conftest import run_lockgate

    site = tmp_path / "site"
    info = site / dirname
    info.mkdir(parents=True)
    (info / "entry_points.txt").write_text(
        "[console_scripts]\nx = y:z\n\n[lockgate]\neggy = eggy_mod\n"
    )
    if pkg_info_version is not None:
        (info / "PKG-INFO").write_text(
            f"Metadata-Version: 2.1\nName: eggy-gates\nVersion: {pkg_info_version}\n\nbody\n"
        )
    (site / "eggy_mod.py").write_text(PLUGIN_SOURCE)
    done = run_lockgate("--json", "plugins", cwd=tmp_path, site=site)
    assert done.returncode == 0, done.stderr
    plugins = {p["name"]: p for p in json.loads(done.stdout)["plugins"]}
    assert plugins["eggy"]["status"] == "loaded", plugins["eggy"]
    assert (plugins["eggy"]["distribution"], plugins["eggy"]["version"]) == ("eggy-gates", version)
