"""Fixtures and helpers to test a plugin against a real project, without installing it.

* ``lockgate_project`` — a fresh initialised project directory (a ``Path``);
* ``lockgate_cli`` — run the ``lockgate`` command line in-process: ``lockgate_cli("plugins",
  "--json", project=path)`` returns a :class:`CliResult`;
  both see the installed environment (every installed plugin, every ``LOCKGATE_*``
  variable), as a user's shell would; ``lockgate_kit`` (``lockgate.testing._kit``) makes
  an isolated project instead;
* :func:`fake_distribution` — a distribution whose entry points name plugin objects held
  in memory, so discovery, selection and loading are exercised exactly as for a real one;
* :func:`open_project` — open a project with extra (fake) distributions beside the
  installed ones.
"""

from __future__ import annotations

import itertools
import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from lockgate.contracts.records import record

if TYPE_CHECKING:
    from lockgate.core.project import Project

if sys.version_info >= (3, 12):
    from importlib import metadata
else:  # pragma: no cover
    import importlib_metadata as metadata

__all__ = [
    "CliResult",
    "FakeDistribution",
    "fake_distribution",
    "lockgate_cli",
    "lockgate_project",
    "open_project",
    "run_cli",
]

_counter = itertools.count()


class FakeDistribution(metadata.Distribution):
    """An in-memory distribution: METADATA and entry_points.txt, nothing on disk."""

    def __init__(self, name: str, version: str, entry_points: Mapping[str, str]) -> None:
        self._files = {
            "METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
            "entry_points.txt": "[lockgate]\n"
            + "".join(f"{ep} = {target}\n" for ep, target in entry_points.items()),
        }

    def read_text(self, filename: str) -> str | None:
        return self._files.get(filename)

    def locate_file(self, path: Any) -> Path:  # pragma: no cover - nothing is on disk
        return Path("/nonexistent") / str(path)


def fake_distribution(
    name: str, plugins: Mapping[str, object], *, version: str = "1.0"
) -> FakeDistribution:
    """A distribution ``name`` whose ``lockgate`` entry points load the given objects.

    Each object is placed in ``sys.modules`` under a private module name, so the entry
    point's ``load()`` imports it like any plugin. A string value is used as the entry
    point's target verbatim (``"some.module:attr"``), to test import failures.
    """
    targets: dict[str, str] = {}
    for ep_name, obj in plugins.items():
        if isinstance(obj, str):
            targets[ep_name] = obj
            continue
        module_name = f"_lockgate_fake_plugin_{next(_counter)}"
        module = obj if isinstance(obj, types.ModuleType) else types.ModuleType(module_name)
        if module is not obj:
            module.plugin = obj  # type: ignore[attr-defined]
            targets[ep_name] = f"{module_name}:plugin"
        else:
            targets[ep_name] = module_name
        sys.modules[module_name] = module
    return FakeDistribution(name, version, targets)


def open_project(
    root: Path | None,
    *,
    extra: Sequence[metadata.Distribution] = (),
    installed: bool = True,
    environ: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> Project:
    """Open ``root`` with ``extra`` distributions beside (or instead of) the installed ones."""
    from lockgate.core.project import Project

    dists = [*(metadata.distributions() if installed else ()), *extra]
    env = dict(environ) if environ is not None else {}
    return Project.open(root, environ=env, distributions=dists, require=root is not None, **kwargs)


@record
class CliResult:
    """What a command printed and returned."""

    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """``stdout`` parsed as JSON."""
        import json

        return json.loads(self.stdout)


def run_cli(
    *args: str,
    project: Path | None = None,
    env: Mapping[str, str | None] | None = None,
    distributions: Sequence[metadata.Distribution] | None = None,
) -> CliResult:
    """Run ``lockgate ARGS`` in-process with click's runner.

    ``env`` is laid over this process's environment for the run (a None value removes a
    variable); ``distributions`` replaces the installed ones plugins are discovered in.
    """
    from click.testing import CliRunner

    from lockgate.cli.context import AppContext
    from lockgate.cli.main import cli

    argv = [*(("-C", str(project)) if project is not None else ()), *args]
    runner = CliRunner()
    app = AppContext(distributions=distributions)
    try:
        result = runner.invoke(cli, argv, env=dict(env or {}), catch_exceptions=False, obj=app)
    finally:
        app.close()  # the command's connections, not left to the garbage collector
    return CliResult(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def lockgate_project(tmp_path: Path) -> Iterator[Path]:
    """A freshly initialised project directory."""
    from lockgate.operations.init import init_project

    root = tmp_path / "project"
    init_project(root)
    yield root


@pytest.fixture
def lockgate_cli() -> Any:
    """:func:`run_cli`, as a fixture."""
    return run_cli
