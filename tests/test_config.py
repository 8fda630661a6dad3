"""lockgate.yaml, environment overrides, plugin settings, and where each value came from."""

from __future__ import annotations

import types
from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate import ConfigError, hookimpl
from lockgate.core.config import read_layers
from lockgate.schema.yamlfile import MAX_YAML_BYTES, load_yaml_text
from lockgate.testing import fake_distribution, open_project


def _project(tmp_path: Path, text: str) -> Path:
    (tmp_path / "lockgate.yaml").write_text(text)
    return tmp_path


@attrs.frozen
class GateSettings:
    threshold: int = 3
    labels: list[str] = attrs.field(factory=list)
    strict: bool = False


def _gate_plugin() -> types.SimpleNamespace:
    @hookimpl
    def register_settings():
        return GateSettings

    @hookimpl
    def on_metrics_collect(settings):
        return {"threshold": settings.threshold}

    return types.SimpleNamespace(
        register_settings=register_settings, on_metrics_collect=on_metrics_collect
    )


def _open(root: Path, environ: dict[str, str] | None = None, **plugins: object):
    dists = [fake_distribution(f"{name}-dist", {name: obj}) for name, obj in plugins.items()]
    return open_project(root, extra=dists, installed=False, environ=environ)


def test_misspelled_top_level_key_names_file_line_and_suggestion(tmp_path: Path) -> None:
    root = _project(tmp_path, "project:\n  name: x\nplugnis:\n  disable: []\n")
    with pytest.raises(ConfigError) as info:
        _open(root)
    assert (
        str(info.value)
        == f"{root / 'lockgate.yaml'}:3: unknown key 'plugnis'; did you mean 'plugins'?"
    )


def test_misspelled_key_in_a_plugin_section_is_refused_with_suggestion(tmp_path: Path) -> None:
    root = _project(tmp_path, "plugins:\n  gate:\n    treshold: 4\n")
    with pytest.raises(
        ConfigError,
        match=r"lockgate.yaml:3: unknown key 'plugins.gate.treshold'; did you mean 'threshold'\?",
    ):
        _open(root, gate=_gate_plugin())


def test_unknown_plugin_section_suggests_an_installed_plugin(tmp_path: Path) -> None:
    root = _project(tmp_path, "plugins:\n  gaet:\n    threshold: 4\n")
    with pytest.raises(ConfigError, match=r"unknown key 'plugins.gaet'.*did you mean 'gate'"):
        _open(root, gate=_gate_plugin())


def test_duplicate_keys_are_refused_naming_both_lines(tmp_path: Path) -> None:
    root = _project(tmp_path, "state:\n  store: a\n  store: b\n")
    with pytest.raises(ConfigError, match=r":3: duplicate key 'state.store' \(first at line 2\)"):
        _open(root)


def test_wrong_type_names_the_key_and_the_value(tmp_path: Path) -> None:
    root = _project(tmp_path, "plugins:\n  gate:\n    threshold: many\n")
    with pytest.raises(
        ConfigError, match=r":3: plugins.gate.threshold: expected a whole number, got 'many'"
    ):
        _open(root, gate=_gate_plugin())


def test_plugin_settings_reach_the_plugins_hooks(tmp_path: Path) -> None:
    root = _project(tmp_path, "plugins:\n  gate:\n    threshold: 7\n")
    project = _open(root, gate=_gate_plugin())
    assert project.settings["gate"] == GateSettings(threshold=7)
    from lockgate.core.context import MetricsContext

    assert project.hooks.on_metrics_collect(MetricsContext(root, {})) == {"gate.threshold": 7}


def test_environment_overrides_win_and_are_typed_by_the_field(tmp_path: Path) -> None:
    root = _project(tmp_path, "state:\n  lock_timeout: 3\nplugins:\n  gate:\n    threshold: 7\n")
    env = {
        "LOCKGATE__STATE__LOCK_TIMEOUT": "2.5",
        "LOCKGATE__PLUGINS__GATE__THRESHOLD": "9",
        "LOCKGATE__PLUGINS__GATE__LABELS": "a, b",
        "LOCKGATE__PLUGINS__GATE__STRICT": "yes",
    }
    project = _open(root, env, gate=_gate_plugin())
    assert project.config.state.lock_timeout == 2.5
    assert project.settings["gate"] == GateSettings(threshold=9, labels=["a", "b"], strict=True)
    source = project.layers.source(("plugins", "gate", "threshold"))
    assert str(source) == "environment (LOCKGATE__PLUGINS__GATE__THRESHOLD)"


def test_environment_names_with_underscores_address_hyphenated_plugins(tmp_path: Path) -> None:
    root = _project(tmp_path, "{}\n")
    project = _open(
        root, {"LOCKGATE__PLUGINS__MY_GATE__THRESHOLD": "5"}, **{"my-gate": _gate_plugin()}
    )
    assert project.settings["my-gate"].threshold == 5


def test_unknown_environment_key_is_refused_naming_the_variable(tmp_path: Path) -> None:
    root = _project(tmp_path, "{}\n")
    with pytest.raises(
        ConfigError, match=r"environment LOCKGATE__STATE__STOER.*did you mean 'store'"
    ):
        _open(root, {"LOCKGATE__STATE__STOER": "x"})


def test_config_load_contributions_are_defaults_attributed_to_the_plugin(tmp_path: Path) -> None:
    @hookimpl
    def on_config_load(config):
        assert config["state"]["lock_timeout"] == 4
        return {"project": {"name": "from-plugin"}, "state": {"lock_timeout": 99}}

    root = _project(tmp_path, "state:\n  lock_timeout: 4\n")
    project = _open(root, team=types.SimpleNamespace(on_config_load=on_config_load))
    assert project.config.project.name == "from-plugin"
    assert project.config.state.lock_timeout == 4  # the file wins over a plugin default
    assert str(project.layers.source(("project", "name"))) == "plugin (team)"
    assert str(project.layers.source(("state", "lock_timeout"))).startswith("file (")


def test_config_load_cannot_change_plugin_selection(tmp_path: Path) -> None:
    @hookimpl
    def on_config_load():
        return {"plugins": {"disable": ["x"]}}

    root = _project(tmp_path, "{}\n")
    project = _open(root, sneaky=types.SimpleNamespace(on_config_load=on_config_load))
    info = project.plugins.infos["sneaky"]
    assert info.status == "failed"
    assert "cannot set plugins.disable" in (info.error or "")


def test_a_plugin_whose_config_hook_raises_is_unloaded_not_fatal(tmp_path: Path) -> None:
    @hookimpl
    def on_config_load():
        raise RuntimeError("no")

    root = _project(tmp_path, "{}\n")
    project = _open(
        root, bad=types.SimpleNamespace(on_config_load=on_config_load), gate=_gate_plugin()
    )
    assert project.plugins.infos["bad"].status == "failed"
    assert project.plugins.infos["gate"].status == "loaded"


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    root = _project(tmp_path, "# " + "x" * MAX_YAML_BYTES + "\n")
    with pytest.raises(ConfigError, match="limit"):
        _open(root)


def test_alias_bomb_is_refused_not_expanded(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    with pytest.raises(ConfigError, match="YAML nodes"):
        load_yaml_text("\n".join(lines) + "\n", tmp_path / "lockgate.yaml")


def test_unsafe_tags_are_refused(tmp_path: Path) -> None:
    for text in (
        "x: !!python/object/apply:os.system ['echo hi']\n",
        "x: !!python/name:os.system\n",
    ):
        with pytest.raises(ConfigError, match=r"invalid YAML|unsupported YAML tag"):
            load_yaml_text(text, tmp_path / "l.yaml")


def test_a_non_mapping_file_is_refused(tmp_path: Path) -> None:
    root = _project(tmp_path, "- just\n- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        _open(root)


def test_empty_file_means_all_defaults(tmp_path: Path) -> None:
    project = _open(_project(tmp_path, ""))
    assert project.config.state.store == "sqlite"
    assert str(project.layers.source(("state", "store"))) == "default"


# Prefixed so that no key is a YAML boolean or null ("yes", "no", "null"), which the
# dumper would quote.
_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8).map("k".__add__)


@given(st.dictionaries(_keys, st.dictionaries(_keys, st.integers(), max_size=4), max_size=4))
def test_every_key_line_is_recorded_for_arbitrary_nested_mappings(
    data: dict[str, dict[str, int]],
) -> None:
    import yaml

    text = yaml.safe_dump(data, sort_keys=False)
    doc = load_yaml_text(text, Path("x.yaml"))
    assert doc.data == data
    lines = text.splitlines()
    for key, inner in data.items():
        assert lines[doc.lines[(key,)] - 1].startswith(f"{key}:")
        for sub in inner:
            assert lines[doc.lines[(key, sub)] - 1].strip().startswith(f"{sub}:")


def test_read_layers_without_a_file_uses_only_the_environment() -> None:
    layers = read_layers(None, {"LOCKGATE__CONTENT__STORE": "s3"})
    assert layers.kernel_config().content.store == "s3"


def test_yaml_cache_serves_unchanged_files_and_notices_edits(tmp_path: Path) -> None:
    import os

    from lockgate.schema.yamlfile import load_yaml_file

    cfg = tmp_path / "lockgate.yaml"
    cfg.write_text("project:\n  name: one\n")
    cache = tmp_path / "cache"
    first = load_yaml_file(cfg, cache_dir=cache)
    assert any(cache.iterdir())
    again = load_yaml_file(cfg, cache_dir=cache)
    assert again.data == first.data == {"project": {"name": "one"}}
    assert again.lines == first.lines
    # An edit within the same timestamp tick, with the stat put back, is still seen: the
    # cache is keyed by the bytes, not by the stat.
    st = cfg.stat()
    cfg.write_text("project:\n  name: two\n")
    os.utime(cfg, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert load_yaml_file(cfg, cache_dir=cache).data == {"project": {"name": "two"}}
    # A damaged cache entry is ignored.
    for entry in cache.iterdir():
        entry.write_bytes(b"not marshal")
    assert load_yaml_file(cfg, cache_dir=cache).data == {"project": {"name": "two"}}
    # A copy of the file elsewhere (a moved or copied project) is served from the cache.
    copy = tmp_path / "elsewhere" / "lockgate.yaml"
    copy.parent.mkdir()
    copy.write_text("project:\n  name: two\n")
    entries = sorted(cache.iterdir())
    doc = load_yaml_file(copy, cache_dir=cache)
    assert doc.path == copy and doc.data == {"project": {"name": "two"}}
    assert sorted(cache.iterdir()) == entries


def test_yaml_cache_keeps_a_bounded_number_of_entries(tmp_path: Path) -> None:
    from lockgate.schema import yamlfile

    cfg = tmp_path / "c.yaml"
    cache = tmp_path / "cache"
    for n in range(yamlfile.CACHE_ENTRIES + 1):
        cfg.write_text(f"n: {n}\n")
        assert yamlfile.load_yaml_file(cfg, cache_dir=cache).data == {"n": n}
    kept = len(list(cache.iterdir()))
    assert kept <= yamlfile.CACHE_ENTRIES // 2 + 1
    assert yamlfile.load_yaml_file(cfg, cache_dir=cache).data == {"n": yamlfile.CACHE_ENTRIES}


def test_unchanged_config_loads_without_importing_yaml(tmp_path: Path) -> None:
    import subprocess
    import sys

    from lockgate.operations.init import init_project

    init_project(tmp_path)
    code = (
        "import sys\n"
        "from lockgate.core.project import Project\n"
        f"Project.open({str(tmp_path)!r}, environ={{}})\n"
        "print('yaml' in sys.modules)\n"
    )
    run = [sys.executable, "-c", code]
    # init parsed the starter config: even the first command does not import the parser.
    out = subprocess.run(run, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    (tmp_path / "lockgate.yaml").write_text("project:\n  name: edited\n")
    out = subprocess.run(run, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
    out = subprocess.run(run, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("validation:\n  timeout: 0\n", 2, "'timeout' must be > 0"),
        ("validation:\n  workers: -1\n", 2, "'workers' must be >= 0"),
        ("gc:\n  keep: 0\n", 2, "'keep' must be >= 1"),
        ("gc:\n  grace: -5\n", 2, "'grace' must be >= 0"),
    ],
)
def test_out_of_range_settings_name_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    root = _project(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        _open(root)
    assert str(info.value).startswith(f"{root / 'lockgate.yaml'}:{line}: ")
    assert message in str(info.value)
