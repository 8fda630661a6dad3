"""``lockgate plugin new``: a ready plugin distribution of each kind.

The fast tests check what is written and what is refused; the slow one installs a
distribution of every kind into one fresh virtual environment (lockgate from this
checkout) and runs each one's own tests there, as its author would right after
scaffolding it. It also builds lockgate's wheel and sdist to check that they carry the
templates.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, run_lockgate, subprocess_env
from lockgate.operations.scaffold import KINDS
from lockgate.testing import run_cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RUFF_RULES = "E,F,W,I,B,UP,SIM,RUF,C4,PIE,RET"


def lockgate_imports(path: Path) -> set[str]:
    """Every ``lockgate.*`` module a Python file imports, wherever the import is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return {m for m in found if m == "lockgate" or m.startswith("lockgate.")}


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_writes_a_distribution_on_the_public_api(kind: str, tmp_path: Path) -> None:
    directory = tmp_path / "plugin"
    result = run_cli(
        "--json", "plugin", "new", "todo-check", "--kind", kind, "--dir", str(directory)
    )
    assert result.exit_code == 0, result.stderr
    module = "lockgate_todo_check"
    assert result.json()["files"] == [
        "pyproject.toml",
        "README.md",
        f"src/{module}/__init__.py",
        "tests/test_plugin.py",
    ]
    meta = tomllib.loads((directory / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "lockgate-todo-check"
    assert meta["project"]["entry-points"]["lockgate"] == {"todo-check": module}
    assert meta["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == [f"src/{module}"]
    assert lockgate_imports(directory / "src" / module / "__init__.py") == {"lockgate.plugin"}
    assert lockgate_imports(directory / "tests" / "test_plugin.py") <= {
        "lockgate.plugin",
        "lockgate.testing",
    }
    readme = (directory / "README.md").read_text()
    assert "__" not in readme.replace("__init__", "")  # every placeholder filled in
    assert f"--kind {kind}" in readme
    declared = meta["project"]["entry-points"]["lockgate.hooks"]["todo-check"]
    assert declared_hooks(declared) == implemented_hooks(directory / "src" / module)
    if "(" in declared:  # a provider hook: the name it registers is the plugin's
        assert declared.endswith("(todo-check)")


def declared_hooks(text: str) -> set[str]:
    from lockgate.core.plugins import make_plugin_manager
    from lockgate.core.selection import Declaration

    pm = make_plugin_manager()
    known = {n for n in vars(pm.hook) if getattr(pm.hook, n).spec is not None}
    return set(Declaration.parse(text, known).hooks)


def implemented_hooks(package: Path) -> set[str]:
    """The hooks the generated module implements, read from its source (hookimpl-marked
    functions), without importing it into this process."""
    tree = ast.parse((package / "__init__.py").read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any(ast.unparse(d).startswith("hookimpl") for d in node.decorator_list)
    }


def test_the_written_code_passes_the_linter_as_its_own_project(tmp_path: Path) -> None:
    for kind in KINDS:
        assert (
            run_cli(
                "plugin", "new", f"my-{kind}", "--kind", kind, "--dir", str(tmp_path / kind)
            ).exit_code
            == 0
        )
    for kind in KINDS:
        for check in (
            ["check", "--select", RUFF_RULES, "--target-version", "py310"],
            ["format", "--check"],
        ):
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "ruff",
                    *check[:1],
                    "--isolated",
                    "--line-length",
                    "100",
                    *check[1:],
                    ".",
                ],
                cwd=tmp_path / kind,
                capture_output=True,
                text=True,
            )
            assert done.returncode == 0, f"{kind}: {done.stdout}{done.stderr}"


def test_the_default_directory_is_the_distribution_name(tmp_path: Path) -> None:
    done = run_lockgate("plugin", "new", "jsonl2", "--kind", "notifier", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "lockgate-jsonl2" / "src" / "lockgate_jsonl2" / "__init__.py").is_file()
    # the tests' extra, which brings pytest to a fresh environment
    assert "next: pip install -e '" in done.stdout and "lockgate-jsonl2[test]'" in done.stdout


def test_a_name_given_with_the_distribution_prefix_names_the_same_plugin(tmp_path: Path) -> None:
    data = run_cli(
        "--json", "plugin", "new", "lockgate-audit-mail", "--kind", "notifier",
        "--dir", str(tmp_path / "p"),
    ).json()  # fmt: skip
    assert (data["plugin"], data["distribution"], data["module"]) == (
        "audit-mail",
        "lockgate-audit-mail",
        "lockgate_audit_mail",
    )


def test_an_existing_directory_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine\n")
    done = run_lockgate("plugin", "new", "x", "--kind", "validator", "--dir", "taken", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "already exists; give a new directory with --dir" in done.stderr
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        ("Todo_Check", "validator", "is not a plugin name"),
        ("2fast", "validator", "is not a plugin name"),
        ("a--b", "validator", "is not a plugin name"),
        ("x" * 41, "validator", "is longer than 40 characters"),
        ("sqlite", "store", "is a builtin plugin's"),
        ("init", "command", "'lockgate init' is a lockgate command already"),
        ("plugins", "command", "'lockgate plugins' is a lockgate command already"),
    ],
)
def test_a_bad_name_is_refused_in_one_line(
    name: str, kind: str, expected: str, tmp_path: Path
) -> None:
    result = run_cli("plugin", "new", name, "--kind", kind, "--dir", str(tmp_path / "p"))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert expected in result.stderr
    assert not (tmp_path / "p").exists()


def test_an_unknown_kind_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("plugin", "new", "x", "--kind", "state-store", "--dir", str(tmp_path / "p"))
    assert result.exit_code == 2
    assert "'validator', 'notifier', 'target', 'store', 'command'" in result.stderr


# ---------------------------------------------------------------- installed and tested


def _venv(root: Path) -> Path:
    """A fresh virtual environment that sees this one's packages (lockgate from this
    checkout, pytest) through a ``.pth`` file, with its own site-packages to install
    into: nothing is downloaded but the build backend, when this one lacks it."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    inner = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    outer = sysconfig.get_paths()["purelib"]
    Path(inner, "_lockgate_checkout.pth").write_text(f"import site; site.addsitedir({outer!r})\n")
    return python


def _pip(python: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", "-q", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    python = _venv(tmp_path_factory.mktemp("venv") / "env")
    # The generated distributions build with hatchling (and editables, for -e).
    probe = subprocess.run([str(python), "-c", "import hatchling, editables"], capture_output=True)
    if probe.returncode != 0:
        done = _pip(python, "install", "hatchling", "editables")
        if done.returncode != 0:
            pytest.skip(f"the build backend hatchling could not be installed: {done.stderr[-300:]}")
    return python


@pytest.mark.slow
def test_every_kind_installs_and_passes_its_own_tests(venv: Path, tmp_path: Path) -> None:
    dirs = {kind: tmp_path / f"lockgate-my-{kind}" for kind in KINDS}
    for kind, directory in dirs.items():
        done = run_lockgate(
            "plugin", "new", f"my-{kind}", "--kind", kind, "--dir", str(directory), cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
    editable = [arg for d in dirs.values() for arg in ("-e", str(d))]
    done = _pip(venv, "install", "--no-build-isolation", "--no-deps", *editable)
    assert done.returncode == 0, done.stderr
    where = subprocess.run(
        [str(venv), "-c", "import lockgate; print(lockgate.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert Path(where.strip()).is_relative_to(REPO / "src")
    # Ambient variables a kit must keep out (and no options of this run's pytest).
    env = subprocess_env(
        {"LOCKGATE_DISABLE_PLUGINS": "my-validator", "LOCKGATE__STATE__STORE": "x"}
    )
    env.pop("PYTEST_ADDOPTS", None)
    for kind, directory in dirs.items():
        done = subprocess.run(
            [
                str(venv),
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--basetemp",
                str(tmp_path / f"t-{kind}"),
            ],
            cwd=directory,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, f"{kind}:\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
        assert " passed" in done.stdout and "failed" not in done.stdout


@pytest.mark.slow
def test_the_wheel_and_the_sdist_carry_the_templates(venv: Path, tmp_path: Path) -> None:
    templates = sorted(
        p.relative_to(REPO / "src").as_posix()
        for p in (REPO / "src" / "lockgate" / "templates").rglob("*.tmpl")
    )
    assert len(templates) == 2 + 3 * len(KINDS)
    code = (
        "import sys, hatchling.build as b; "
        "print(b.build_wheel(sys.argv[1])); print(b.build_sdist(sys.argv[1]))"
    )
    done = subprocess.run(
        [str(venv), "-c", code, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    wheel_name, sdist_name = done.stdout.split()
    with zipfile.ZipFile(tmp_path / wheel_name) as wheel:
        assert set(templates) <= set(wheel.namelist())
    with tarfile.open(tmp_path / sdist_name) as sdist:
        top = sdist_name.removesuffix(".tar.gz")
        names = {n.removeprefix(f"{top}/src/") for n in sdist.getnames()}
    assert set(templates) <= names
