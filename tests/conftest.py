"""Shared test helpers: real on-disk distributions and a subprocess runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def write_distribution(
    site: Path,
    name: str,
    version: str,
    entry_points: Mapping[str, str],
    modules: Mapping[str, str],
) -> None:
    """A real installed distribution (dist-info + modules) in directory ``site``."""
    site.mkdir(parents=True, exist_ok=True)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "RECORD").write_text("")
    lines = "".join(f"{ep} = {target}\n" for ep, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[lockgate]\n{lines}")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)


def run_lockgate(
    *args: str,
    cwd: Path,
    site: Path | None = None,
    env: Mapping[str, str] | None = None,
    python_code: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run lockgate (or ``python -c python_code``) in a real subprocess."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE")}
    if site is not None:
        full_env["PYTHONPATH"] = str(site)
    full_env.update(env or {})
    if python_code is not None:
        cmd = [sys.executable, "-c", python_code, *args]
    else:
        cmd = [sys.executable, "-m", "lockgate", *args]
    return subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60)


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
