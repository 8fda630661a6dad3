"""An isolated project for testing one plugin: ``lockgate_kit`` and :class:`PluginKit`.

A plugin's tests should pass or fail on the plugin alone, whatever else the machine has.
The kit's project therefore starts clean:

* **no ambient variable**: the project is opened with an environment holding no
  ``LOCKGATE_*`` variable but those the test hands in (``environ=``); making a kit
  removes every ``LOCKGATE_*`` variable from the process's environment for the rest of
  the test, and the kit's in-process command line removes any set since for its run;
* **no installed third-party plugin**: plugins are discovered in lockgate's own
  distribution (the builtins) and in the plugins under test (``extra=``), never in the
  other distributions installed beside them; ``only=`` narrows that to exactly the
  plugins named.

An installed plugin with the name of one under test is left out too, but it is a trap
(a real project finds both, and the second fails to load), so the kit warns with a
:class:`PluginShadowWarning` unless the installed one is the same module (the plugin
under test, installed with ``pip install -e``).

One line each to make a component, stage it, validate it and promote it::

    def test_flags_todo(lockgate_kit):
        kit = lockgate_kit(extra=[("todo-check", lockgate_todo_check)])
        kit.component("alice:etl", {"main.py": "# TODO\\n"})
        kit.stage("alice:etl")
        assert not kit.validate("alice:etl").ready
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import types
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from lockgate.testing._project import CliResult, FakeDistribution, fake_distribution, run_cli

if TYPE_CHECKING:
    from lockgate.contracts.models import ReadinessReport, StageResult
    from lockgate.core.project import Project
    from lockgate.operations.switch import SwitchResult

if sys.version_info >= (3, 12):
    from importlib import metadata
else:  # pragma: no cover
    import importlib_metadata as metadata

__all__ = ["PluginKit", "PluginShadowWarning", "kits"]

ENV_PREFIX = "LOCKGATE"
BUILTIN_DISTRIBUTION = "lockgate"
GROUP = "lockgate"
UNDER_TEST = "lockgate-plugins-under-test"

_counter = itertools.count()


class PluginShadowWarning(pytest.PytestWarning):
    """An installed plugin has the name of a plugin under test."""


def plugin_name(obj: object) -> str:
    """The plugin name a bare module or object in ``extra`` gets: its module's last
    part (or its class's name), ``lockgate_`` dropped, in kebab case:
    ``lockgate_todo_check`` → ``todo-check``, ``MemoryRoles()`` → ``memory-roles``."""
    if isinstance(obj, types.ModuleType):
        base = obj.__name__.rpartition(".")[2].removeprefix("lockgate_")
    else:
        base = re.sub(r"(?<!^)(?=[A-Z])", "_", type(obj).__name__).lower()
    return base.replace("_", "-")


def _under_test(extra: Sequence[Any]) -> list[metadata.Distribution]:
    """``extra`` as distributions: given ones kept, the rest in one fake distribution."""
    dists: list[metadata.Distribution] = []
    plugins: dict[str, object] = {}
    for item in extra:
        if isinstance(item, metadata.Distribution):
            dists.append(item)
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            plugins[item[0]] = item[1]
        else:
            plugins[plugin_name(item)] = item
    if plugins:
        dists.append(fake_distribution(UNDER_TEST, plugins))
    return dists


def _entry_points(dist: metadata.Distribution) -> dict[str, str]:
    return {ep.name: ep.value for ep in dist.entry_points if ep.group == GROUP}


def _narrowed(dist: metadata.Distribution, only: frozenset[str] | None) -> FakeDistribution:
    """``dist`` as seen by the kit: its ``lockgate`` entry points (those in ``only``)."""
    points = {n: v for n, v in _entry_points(dist).items() if only is None or n in only}
    return FakeDistribution(dist.metadata["Name"], dist.version, points)


def _origin(value: str) -> str | None:
    """The module a fake entry point's object comes from (None: not imported yet)."""
    module_name, _, attr = value.partition(":")
    obj: Any = sys.modules.get(module_name.strip())
    for part in filter(None, attr.strip().split(".")):
        obj = getattr(obj, part, None)
    if obj is None:
        return None
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    return getattr(obj, "__module__", None)


def shadowing(under_test: Sequence[metadata.Distribution]) -> list[str]:
    """One message per installed third-party plugin named like a plugin under test and
    loading another module (nothing is imported to find out)."""
    from lockgate.core.plugins import discover

    faked = {n: v for d in under_test for n, v in _entry_points(d).items()}
    messages = []
    for cand in discover():
        if cand.builtin or cand.name not in faked:
            continue
        installed = cand.value.partition(":")[0].strip()
        origin = _origin(faked[cand.name]) or faked[cand.name]
        if installed == origin:
            continue  # the plugin under test itself, installed (pip install -e)
        messages.append(
            f"the installed plugin '{cand.name}' ({cand.distribution} {cand.version}, "
            f"{cand.value}) has the name of the plugin under test ({origin}); the kit "
            f"loads only the one under test, but a project would find both and fail to "
            f"load one: rename the plugin under test or uninstall {cand.distribution}"
        )
    return messages


class PluginKit:
    """A project in a temporary directory that loads lockgate's builtin plugins and the
    plugins under test only, opened with a clean environment.

    ``root`` is the initialised project; :meth:`open` opens it (once, then the same
    project until :meth:`configure` changes ``lockgate.yaml``); :meth:`cli` runs the
    command line on it in-process.
    """

    def __init__(
        self,
        root: Path,
        *,
        extra: Sequence[Any] = (),
        only: Sequence[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root
        self.under_test = _under_test(extra)
        self.only = frozenset(only) if only is not None else None
        self.environ = dict(environ or {})
        self._project: Project | None = None
        self.distributions = self._distributions()

    def _distributions(self) -> list[metadata.Distribution]:
        builtin: metadata.Distribution = metadata.Distribution.from_name(BUILTIN_DISTRIBUTION)
        dists: list[metadata.Distribution] = [
            _narrowed(d, self.only) for d in [builtin, *self.under_test]
        ]
        if self.only is not None:
            known = {n for d in dists for n in _entry_points(d)}
            unknown = sorted(self.only - known)
            if unknown:
                everything = sorted(
                    n for d in [builtin, *self.under_test] for n in _entry_points(d)
                )
                raise ValueError(
                    f"only= names '{unknown[0]}', which is neither a builtin plugin nor "
                    f"one in extra=; the plugins are: {', '.join(everything)}"
                )
        return dists

    # ------------------------------------------------------------------ the project

    def open(self) -> Project:
        """The project, opened as a command would open it, but isolated (see the module
        docstring); the same object until :meth:`configure` or :meth:`close`."""
        if self._project is None:
            from lockgate.core.project import Project

            self._project = Project.open(
                self.root, environ=self.environ, distributions=self.distributions
            )
        return self._project

    def configure(self, text: str) -> None:
        """Replace ``lockgate.yaml`` with ``text``; the next :meth:`open` reads it."""
        (self.root / "lockgate.yaml").write_text(text, encoding="utf-8")
        self.close()

    def close(self) -> None:
        """Release what the open project holds (it is opened again when next needed)."""
        if self._project is not None:
            self._project.close()
            self._project = None

    def cli(self, *args: str, env: Mapping[str, str] | None = None) -> CliResult:
        """``lockgate -C ROOT ARGS`` in-process: the kit's plugins and environment (with
        ``env`` on top), every ambient ``LOCKGATE_*`` variable removed for the run."""
        self.close()  # the command opens the project itself (and may change it)
        clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith(ENV_PREFIX)}
        clean.update(self.environ)
        clean.update(env or {})
        return run_cli(*args, project=self.root, env=clean, distributions=self.distributions)

    # ------------------------------------------------------------------ one line each

    def component(
        self,
        ref: str,
        files: Mapping[str, str | bytes] | None = None,
        *,
        component_type: str = "scripts",
    ) -> str:
        """Write component ``ref`` (``workspace:id``) into the ``workspace`` source's
        directory: ``files`` by relative path (default: one ``main.py``). Returns ``ref``."""
        from lockgate.testing._files import DirectoryComponentFiles

        writer = DirectoryComponentFiles(self.root / "workspaces")
        writer.create(ref, component_type=component_type)
        for path, data in (files or {"main.py": "print('hello')\n"}).items():
            writer.write(ref, path, data.encode() if isinstance(data, str) else data)
        return ref

    def stage(self, ref: str, *, to: str | None = None) -> StageResult:
        """Stage ``ref`` (for stage ``to``; default: the first), as ``lockgate stage``."""
        from lockgate.operations.stage import Stager

        return Stager(self.open()).stage(ref, to=to)

    def validate(self, *refs: str, stage: str | None = None) -> ReadinessReport:
        """Validate the latest revision of ``refs`` for ``stage``, as ``lockgate validate``."""
        from lockgate.operations.validate import Validation

        return Validation(self.open()).run(list(refs), stage, use_cache=False)

    def promote(
        self,
        ref: str,
        *,
        to: str | None = None,
        reason: str | None = None,
        rev: str | None = None,
    ) -> SwitchResult:
        """Promote ``ref`` (to ``to``; default: one rung up; ``rev``: that revision), as
        ``lockgate promote``."""
        from lockgate.operations.promote import Promoter

        return Promoter(self.open()).promote(ref, to=to, reason=reason, rev=rev)


MakeKit = Callable[..., PluginKit]


def kits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeKit]:
    """What the ``lockgate_kit`` fixture yields: make an isolated :class:`PluginKit`,
    ``make(extra=[...], only=[...], environ={...}, config="...")``, each in a fresh
    project directory under ``tmp_path``; every kit is closed at the end.

    Making a kit also removes every ``LOCKGATE_*`` variable from this process's
    environment for the rest of the test (``monkeypatch`` restores them), so what reads
    it directly in-process (failpoints) starts clean too: hand variables in with
    ``environ=``."""
    from lockgate.operations.init import init_project

    made: list[PluginKit] = []

    def make(
        *,
        extra: Sequence[Any] = (),
        only: Sequence[str] | None = None,
        environ: Mapping[str, str] | None = None,
        config: str | None = None,
    ) -> PluginKit:
        for name in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
            monkeypatch.delenv(name)
        root = tmp_path / f"kit-{next(_counter)}"
        init_project(root)
        kit = PluginKit(root, extra=extra, only=only, environ=environ)
        for message in shadowing(kit.under_test):
            warnings.warn(PluginShadowWarning(message), stacklevel=2)
        if config is not None:
            kit.configure(config)
        made.append(kit)
        return kit

    yield make
    for kit in made:
        kit.close()
