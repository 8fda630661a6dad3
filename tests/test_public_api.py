"""The public namespace stays exact, and the builtin plugins are declared like any other."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
from pathlib import Path

import lockgate
from lockgate.core.plugins import discover

REPO = Path(__file__).resolve().parents[1]

EXPECTED_BUILTINS = {
    "local",
    "memory",
    "sqlite",
    "workspace",
    "directory",
    "watch",
    "log",
    "webhook",
    "metrics",
    "approvals",
    "conflicts",
    "dependencies",
    "limits",
    "manifest",
    "secrets",
    "syntax",
    "workflows",
}


def test_all_is_exact_and_every_name_resolves() -> None:
    public = {n for n in dir(lockgate) if not n.startswith("_")} | {"__version__"}
    assert set(lockgate.__all__) == public
    for name in lockgate.__all__:
        assert getattr(lockgate, name) is not None


def test_importing_lockgate_imports_no_heavy_module() -> None:
    import subprocess

    code = (
        "import sys, lockgate\n"
        "print(sorted(m for m in ('yaml', 'pluggy', 'rich') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_declared_builtin_entry_points_equal_the_expected_set() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    assert set(declared.get("lockgate", {})) == EXPECTED_BUILTINS
    installed = {c.name for c in discover() if c.builtin}
    assert installed == EXPECTED_BUILTINS


def test_each_public_name_is_written_once_in_the_package() -> None:
    """``lockgate/__init__.py`` names each public name in one import line (``X as X``)
    and nowhere else: no ``__all__`` literal, no table of names beside the imports."""
    import re

    source = (REPO / "src" / "lockgate" / "__init__.py").read_text(encoding="utf-8")
    for name in lockgate.__all__:
        if name == "__version__":
            continue
        written = re.findall(rf"\b{name}\b", source)
        assert written == [name, name], f"{name} is written {len(written) // 2} times"
        assert f"{name} as {name}" in source
