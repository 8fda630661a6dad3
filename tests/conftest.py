"""Shared test helpers: real on-disk distributions, projects on disk, subprocess runners."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from lockgate.core.project import Project
from lockgate.operations.init import init_project
from lockgate.operations.stage import Stager
from lockgate.testing import open_project

# Property tests check what holds, never how fast: no per-example deadline, and no failure
# because examples came slowly on a loaded machine (hypothesis's own timing checks).
settings.register_profile("lockgate", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("lockgate")

REPO = Path(__file__).resolve().parents[1]
# What a test project is opened with: no team defaults, and alice as the actor.
ENV = {"LOCKGATE_DISABLE_PLUGINS": "teamdefaults", "LOCKGATE_ACTOR": "alice"}
# Tests play several people on one machine, so their projects allow claiming the actor
# (a project that requires approvals refuses it unless it says so).
PLAYS_PEOPLE = "\nidentity:\n  allow_override: true\n"


def plays_people(config: str) -> str:
    """``config`` (a lockgate.yaml text) allowing ``LOCKGATE_ACTOR``, unless it says
    something of its own about identity."""
    return config if "identity:" in config else config.rstrip("\n") + PLAYS_PEOPLE


def write_distribution(
    site: Path,
    name: str,
    version: str,
    entry_points: Mapping[str, str],
    modules: Mapping[str, str],
    hooks: Mapping[str, str] | None = None,
) -> None:
    """A real installed distribution (dist-info + modules) in directory ``site``;
    ``hooks`` are its ``lockgate.hooks`` entries (what each plugin declares)."""
    site.mkdir(parents=True, exist_ok=True)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "RECORD").write_text("")
    lines = "".join(f"{ep} = {target}\n" for ep, target in entry_points.items())
    declared = "".join(f"{ep} = {what}\n" for ep, what in (hooks or {}).items())
    declared = f"\n[lockgate.hooks]\n{declared}" if declared else ""
    (info / "entry_points.txt").write_text(f"[lockgate]\n{lines}{declared}")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)


def copy_project(template: Path, root: Path) -> Path:
    """A copy at ``root`` of the project at ``template`` (made once by a module- or
    session-scoped fixture, never changed by a test); returns ``root``.

    A project refers to its own files by relative paths (its stage links too), so the
    copy works at ``root`` as the template does where it was made. ``root`` must have the
    template's directory name: ``lockgate init`` names the project after it.
    """
    assert root.name == template.name, (root, template)
    shutil.copytree(template, root, symlinks=True)
    return root


def run_lockgate(
    *args: str,
    cwd: Path,
    site: Path | None = None,
    env: Mapping[str, str] | None = None,
    python_code: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run lockgate (or ``python -c python_code``) in a real subprocess."""
    full_env = subprocess_env({"PYTHONPATH": str(site)} if site is not None else None, env)
    if python_code is not None:
        cmd = [sys.executable, "-c", python_code, *args]
    else:
        cmd = [sys.executable, "-m", "lockgate", *args]
    return subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60)


def subprocess_env(*layers: Mapping[str, str] | None) -> dict[str, str]:
    """This process's environment without any ``LOCKGATE*`` variable, with ``layers``
    applied on top in order (None: nothing)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE")}
    for layer in layers:
        env.update(layer or {})
    return env


def start_python(
    code: str, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    """``python -c code args...`` in a real subprocess, stdout and stderr piped as text
    (``env``: None inherits this process's environment)."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_workers(procs: Sequence[subprocess.Popen[str]], timeout: float) -> list[Any]:
    """Wait for worker processes in turn; return the JSON each printed as its last line.

    Each must finish within ``timeout`` seconds (else every worker is killed and the test
    fails), exit 0 and print no traceback.
    """
    results = []
    for n, proc in enumerate(procs):
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
                p.wait()
            pytest.fail(f"worker{n} did not finish within {timeout:g} s")
        assert proc.returncode == 0, f"worker{n} exited {proc.returncode}:\n{err}"
        assert "Traceback" not in err, f"worker{n}:\n{err}"
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


class ProjectWorkspace:
    """A fresh project on disk (``init_project``, then ``config`` as its lockgate.yaml if
    given) with helpers to write component files, stage them and open the project.

    ``extra``: plugins registered on every open, besides the installed ones.
    """

    def __init__(self, root: Path, config: str = "", extra: tuple[Any, ...] = ()) -> None:
        init_project(root)
        if config:
            (root / "lockgate.yaml").write_text(plays_people(config))
        self.root = root
        self.extra = extra

    def project(self, actor: str = "alice") -> Project:
        """Open the project as ``actor`` (with :data:`ENV`); the caller closes it."""
        return open_project(self.root, extra=self.extra, environ={**ENV, "LOCKGATE_ACTOR": actor})

    def component_dir(self, ref: str, kind: str = "builders") -> Path:
        ws, cid = ref.split(":")
        return self.root / "workspaces" / ws / kind / cid

    def write(self, ref: str, files: Mapping[str, str | bytes], kind: str = "builders") -> str:
        """Write ``files`` (text or bytes) into the component's directory; returns ``ref``."""
        base = self.component_dir(ref, kind)
        base.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            path = base / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, bytes):
                path.write_bytes(data)
            else:
                path.write_text(data)
        return ref

    def stage_files(
        self, ref: str, files: Mapping[str, str | bytes], kind: str = "builders"
    ) -> str:
        """:meth:`write` the files, then stage the component; returns the revision."""
        self.write(ref, files, kind)
        project = self.project()
        try:
            return Stager(project).stage(ref).revision
        finally:
            project.close()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """An empty directory to put real distributions in (added to PYTHONPATH)."""
    path = tmp_path / "site"
    path.mkdir()
    return path


@pytest.fixture(autouse=True)
def _clean_lockgate_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in list(os.environ):
        if var.startswith("LOCKGATE"):
            monkeypatch.delenv(var)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` run first (in their collected order; the rest keep theirs).

    ``make test`` spreads tests over one pytest-xdist worker per core as workers free up:
    a test of half a minute that starts near the end keeps one worker busy while the
    others have nothing left to do. Started first, the long tests overlap with the short
    ones. (Every test is independent of the others, so the order changes nothing else.)
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
