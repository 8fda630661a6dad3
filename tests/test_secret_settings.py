"""Settings fields declared secret (``lockgate.plugin.secret``) are never shown as they
are: ``config show`` renders the resolved configuration through ``redacted``."""

from __future__ import annotations

import types
from pathlib import Path

import attrs

from lockgate.plugin import hookimpl, redacted, secret
from lockgate.testing import fake_distribution, open_project


def _no_password(dsn: str) -> str:
    return dsn.split("@")[-1] if "@" in dsn else dsn


@attrs.frozen
class Inner:
    token: str = secret(default="")
    label: str = "inner"


@attrs.frozen
class VaultSettings:
    url: str = "https://vault.invalid"
    token: str = secret(default="")
    dsn: str = secret(default="", redact=_no_password)
    inner: Inner = attrs.field(factory=Inner)
    tags: list[str] = attrs.field(factory=list)


def _plugin() -> types.SimpleNamespace:
    @hookimpl
    def register_settings():
        return VaultSettings

    return types.SimpleNamespace(register_settings=register_settings)


def test_redacted_hides_secret_fields_and_keeps_the_rest() -> None:
    settings = VaultSettings(token="s3cr3t", dsn="postgresql://u:pw@db.invalid/x", tags=["a"])
    assert redacted(settings) == {
        "url": "https://vault.invalid",
        "token": "***",
        "dsn": "db.invalid/x",
        "inner": {"token": "", "label": "inner"},
        "tags": ["a"],
    }


def test_a_redactor_that_fails_hides_the_whole_value() -> None:
    def broken(value: str) -> str:
        raise ValueError(value)

    @attrs.frozen
    class Broken:
        key: str = secret(default="", redact=broken)

    assert redacted(Broken(key="s3cr3t")) == {"key": "***"}


def test_non_settings_values_pass_through() -> None:
    assert redacted({"a": 1}) == {"a": 1}


def test_config_show_never_shows_a_secret(tmp_path: Path) -> None:
    (tmp_path / "lockgate.yaml").write_text(
        "plugins:\n  vault:\n    token: s3cr3t\n    dsn: postgresql://u:s3cr3t@db.invalid/x\n"
    )
    dist = fake_distribution("vault-dist", {"vault": _plugin()})
    project = open_project(tmp_path, extra=[dist], installed=False)
    shown = project.resolved()["plugins"]["vault"]
    assert shown["token"] == "***" and shown["dsn"] == "db.invalid/x"
    assert "s3cr3t" not in repr(project.resolved())
    assert project.settings["vault"].token == "s3cr3t"  # the plugin still gets the value


def test_the_section_of_a_plugin_that_did_not_load_hides_secret_looking_keys(
    tmp_path: Path,
) -> None:
    """No settings class says which fields are secret when the plugin is disabled or
    failed: the keys decide, and config show (text and JSON) never prints the value."""
    (tmp_path / "lockgate.yaml").write_text(
        "plugins:\n  disable: [vault]\n  vault:\n    dsn: postgresql://u:s3cr3t@db/x\n"
        "    nested:\n      api_key: s3cr3t\n      host: db.example\n    pool_size: 4\n"
    )
    dist = fake_distribution("vault-dist", {"vault": _plugin()})
    project = open_project(tmp_path, extra=[dist], installed=False)
    shown = project.resolved()["plugins"]["vault"]
    assert shown == {
        "dsn": "***",
        "nested": {"api_key": "***", "host": "db.example"},
        "pool_size": 4,
    }
    assert "s3cr3t" not in repr(project.resolved())
