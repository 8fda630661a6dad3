"""Every suite example of docs/conformance.md runs as written, against stand-ins for the
third-party classes it names, and passes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from suite_runner import failed, run_suite

DOC = Path(__file__).resolve().parents[1] / "docs" / "conformance.md"

# The classes and fixtures the examples take from their (imaginary) plugin.
STAND_INS = """
import types
import pytest
from lockgate.builtin_plugins.directory_target import DirectoryTarget
from lockgate.builtin_plugins.workspace import Layout, WorkspaceSource
from lockgate.testing import MemoryContentStore, MemoryStateStore


def PostgresStateStore(dsn):
    return MemoryStateStore()


def S3Store(bucket):
    return MemoryContentStore()


def GitSource(root):
    root.mkdir(parents=True, exist_ok=True)
    layout = Layout.parse("{workspace}/{type}/{component}")
    return WorkspaceSource(root.parent, root, layout, root.parent / "cache")


def ArchiveTarget(directory, releases):
    return DirectoryTarget(directory, releases)


@pytest.fixture
def postgresql():
    return types.SimpleNamespace(dsn="postgresql://stand-in")


@pytest.fixture
def bucket():
    return "stand-in"
"""


@pytest.mark.slow
def test_every_suite_example_runs_and_passes(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    examples = [b for b in blocks if "Conformance)" in b]
    names = [re.search(r"class (\w+)\(", b).group(1) for b in examples]  # type: ignore[union-attr]
    assert len(examples) == 4, names
    outcomes = run_suite(tmp_path, STAND_INS + "\n\n".join(examples))
    for name in names:
        assert outcomes.get(name), f"{name} ran no test"
        assert failed(outcomes[name]) == set(), name
