"""Configuration values are checked, not only their types: stage names follow the name
rules, the state database stays in ``.lockgate/``, a ladder has a stage, and timeouts and
limits refuse NaN, infinities, negative and absurd values. Each case is given in
``lockgate.yaml`` and as a ``LOCKGATE__…`` variable, and run through ``lockgate config
validate`` and a normal command (``lockgate ls``) as real subprocesses.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ENV, copy_project, run_lockgate

# (YAML, environment variable, value for it, what the one-line error says)
CASES = [
    ("stages:\n  a/b: {}\n", "LOCKGATE__STAGES", "{a/b: {}}", "stage name 'a/b' contains a path"),
    (
        "stages:\n  ../workspaces/x: {}\n",
        "LOCKGATE__STAGES__../WORKSPACES/X__DESCRIPTION",
        "x",
        "stage name '../workspaces/x' contains a path separator",
    ),
    (
        'stages:\n  "bad\\x1b[31m": {}\n',
        "LOCKGATE__STAGES",
        '{"bad\\t": {}}',
        "contains NUL or control characters",
    ),
    ("stages: {}\n", "LOCKGATE__STAGES", "{}", "stages: no stage is configured"),
    (
        "plugins:\n  sqlite:\n    path: ../../elsewhere.db\n",
        "LOCKGATE__PLUGINS__SQLITE__PATH",
        "../../elsewhere.db",
        "leaves .lockgate/",
    ),
    ("state:\n  lock_timeout: .nan\n", "LOCKGATE__STATE__LOCK_TIMEOUT", "nan", "finite number"),
    ("state:\n  lock_timeout: -1\n", "LOCKGATE__STATE__LOCK_TIMEOUT", "-1", "must be >= 0"),
    ("state:\n  lock_timeout: 100000\n", "LOCKGATE__STATE__LOCK_TIMEOUT", "1e12", "must be <="),
    ("validation:\n  timeout: .inf\n", "LOCKGATE__VALIDATION__TIMEOUT", "inf", "finite number"),
    ("staging:\n  max_files: -5\n", "LOCKGATE__STAGING__MAX_FILES", "-5", "must be >= 1"),
    ("staging:\n  workers: 99999999\n", "LOCKGATE__STAGING__WORKERS", "99999999", "must be <="),
    ("gc:\n  grace: .inf\n", "LOCKGATE__GC__GRACE", "inf", "finite number"),
    (
        "plugins:\n  approvals:\n    required: -1\n",
        "LOCKGATE__PLUGINS__APPROVALS__REQUIRED",
        "-1",
        "must be >= 0",
    ),
    (
        "plugins:\n  limits:\n    max_files: -3\n",
        "LOCKGATE__PLUGINS__LIMITS__MAX_FILES",
        "-3",
        "must be >= 0",
    ),
    (
        "plugins:\n  watch:\n    debounce_ms: 99999999999\n",
        "LOCKGATE__PLUGINS__WATCH__DEBOUNCE_MS",
        "99999999999",
        "must be <= 3600000",
    ),
    (
        "plugins:\n  sqlite:\n    busy_timeout: .nan\n",
        "LOCKGATE__PLUGINS__SQLITE__BUSY_TIMEOUT",
        "nan",
        "finite number",
    ),
]


@pytest.fixture(scope="module")
def initialized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("template") / "project"
    assert run_lockgate("init", str(root), cwd=root.parent, env=ENV).returncode == 0
    return root


@pytest.fixture
def project(tmp_path: Path, initialized: Path) -> Path:
    return copy_project(initialized, tmp_path / "project")


def _refused(root: Path, env: dict[str, str], where: str, says: str) -> None:
    for args in (("config", "validate"), ("ls",)):
        done = run_lockgate(*args, cwd=root, env={**ENV, **env})
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith(f"lockgate: error: {where}"), done.stderr
        assert says in done.stderr, done.stderr
    assert not (root.parent / "elsewhere.db").exists()


@pytest.mark.parametrize(("yaml", "var", "value", "says"), CASES, ids=[c[1] for c in CASES])
def test_bad_value_in_the_file_is_refused_with_its_line(
    project: Path, yaml: str, var: str, value: str, says: str
) -> None:
    config = project / "lockgate.yaml"
    config.write_text(yaml)
    bad_line = yaml.count("\n")  # the last line of the snippet holds the value
    _refused(project, {}, f"{config}:{bad_line}: ", says)


@pytest.mark.parametrize(("yaml", "var", "value", "says"), CASES, ids=[c[1] for c in CASES])
def test_bad_value_from_the_environment_is_refused_naming_it(
    project: Path, yaml: str, var: str, value: str, says: str
) -> None:
    _refused(project, {var: value}, f"environment {var}: ", says)


def test_sqlite_path_outside_is_allowed_when_asked(project: Path) -> None:
    config = project / "lockgate.yaml"
    config.write_text(
        "plugins:\n  sqlite:\n    path: ../../elsewhere.db\n    allow_outside: true\n"
    )
    done = run_lockgate("ls", cwd=project, env=ENV)
    assert done.returncode == 0, done.stderr
    assert (project.parent / "elsewhere.db").is_file()


def test_sqlite_path_through_a_symlink_out_of_lockgate_is_refused(project: Path) -> None:
    outside = project.parent / "outside"
    outside.mkdir()
    (project / ".lockgate" / "away").symlink_to(outside)
    env = {"LOCKGATE__PLUGINS__SQLITE__PATH": "away/state.db"}
    done = run_lockgate("ls", cwd=project, env={**ENV, **env})
    assert done.returncode == 2, done.stderr
    assert "resolves outside .lockgate/" in done.stderr
    assert list(outside.iterdir()) == []


def test_sane_values_still_load(project: Path) -> None:
    config = project / "lockgate.yaml"
    config.write_text(
        "stages:\n  dev-1: {}\n  prod.eu: {}\nstate:\n  lock_timeout: 0\n"
        + "validation:\n  timeout: 600\nplugins:\n  sqlite:\n    path: sub/state.db\n"
    )
    done = run_lockgate("config", "validate", cwd=project, env=ENV)
    assert done.returncode == 0, done.stderr
    assert run_lockgate("ls", cwd=project, env=ENV).returncode == 0
