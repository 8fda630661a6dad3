"""``lockgate state migrate``: what it refuses without a store that can take a history.
(The copy itself is tested where such a store lives: plugins/lockgate-postgres.)"""

from __future__ import annotations

from pathlib import Path

from lockgate.testing import run_cli

ENV = {"LOCKGATE_DISABLE_PLUGINS": "teamdefaults"}


def _project(root: Path) -> Path:
    root.mkdir()
    (root / "lockgate.yaml").write_text("project:\n  name: here\n")
    assert run_cli("init", str(root), env=ENV).exit_code == 0
    return root


def test_migrating_to_the_projects_own_store_is_refused(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    result = run_cli("state", "migrate", "--to", "sqlite", project=root, env=ENV)
    assert result.exit_code == 2 and "already in 'sqlite'" in result.stderr


def test_a_store_that_cannot_take_a_history_is_named(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    result = run_cli("state", "migrate", "--to", "memory", project=root, env=ENV)
    assert result.exit_code == 3, result.stderr
    assert "'memory' cannot take a whole history" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
