"""``lockgate.testing``: what it exports, and that loading it as a pytest plugin is cheap."""

from __future__ import annotations

import subprocess
import sys

import lockgate.conformance
import lockgate.testing
from conftest import subprocess_env


def test_every_exported_name_resolves() -> None:
    for name in lockgate.testing.__all__:
        assert getattr(lockgate.testing, name) is not None, name
    assert sorted(dir(lockgate.testing)) == sorted(lockgate.testing.__all__)


def test_the_old_conformance_module_names_the_same_suites() -> None:
    for name in lockgate.conformance.__all__:
        assert getattr(lockgate.conformance, name) is getattr(lockgate.testing, name)


def test_the_suites_are_not_collected_on_their_own() -> None:
    for name in lockgate.testing.__all__:
        if name.endswith("Conformance"):
            assert not name.startswith("Test")


def test_loading_the_pytest_plugin_imports_no_suite_or_twin() -> None:
    code = (
        "import sys, lockgate.testing\n"
        "print(sorted(m for m in sys.modules if m.startswith('lockgate.testing._')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['lockgate.testing._project']"
