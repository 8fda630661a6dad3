"""``lockgate ls`` (``list_components``) through the workspace source's stat cache: the
digests a listing had to compute are remembered, so listing an unchanged tree again
costs stat calls only, and a change made since is still seen."""

from __future__ import annotations

import os
import time
from pathlib import Path

from conftest import ProjectWorkspace
from lockgate.contracts.refs import ComponentRef
from lockgate.core.session import Session
from lockgate.operations.listing import diff_component, list_components

REF = "alice:etl"


def changes(ws: ProjectWorkspace) -> dict[str, str]:
    project = ws.project()
    try:
        return {f"{r.workspace}:{r.component_id}": r.change for r in list_components(project)}
    finally:
        project.close()


def vouched(ws: ProjectWorkspace) -> str | None:
    """The revision the source's scan vouches the files make up (None: it cannot)."""
    project = ws.project()
    try:
        source = Session(project).source()
        return source.scan(source.find(ComponentRef.parse(REF))).revision
    finally:
        project.close()


def test_a_listing_remembers_what_it_hashed(tmp_path: Path) -> None:
    ws = ProjectWorkspace(tmp_path / "p")
    revision = ws.stage_files(REF, {"run.py": "x = 1\n", "lib/util.py": "y = 2\n"})
    for path in ws.component_dir(REF).rglob("*.py"):
        os.utime(path)  # touched: the stat cache no longer vouches for them
    time.sleep(0.1)  # past the racy window of the next cache write
    assert vouched(ws) is None
    assert changes(ws) == {REF: "unchanged"}  # hashed, and remembered
    assert vouched(ws) == revision
    assert changes(ws) == {REF: "unchanged"}  # from the cache: nothing hashed
    # an edit that keeps the size is still seen
    (ws.component_dir(REF) / "run.py").write_text("x = 3\n")
    assert changes(ws) == {REF: "changed: +0 ~1 -0"}
    assert vouched(ws) is None
    time.sleep(0.1)
    assert changes(ws) == {REF: "changed: +0 ~1 -0"}  # remembered, not as the revision
    assert vouched(ws) is None
    (ws.component_dir(REF) / "run.py").write_text("x = 1\n")
    time.sleep(0.1)
    assert changes(ws) == {REF: "unchanged"}
    assert vouched(ws) == revision


def test_a_diff_against_the_workspace_remembers_too(tmp_path: Path) -> None:
    ws = ProjectWorkspace(tmp_path / "p")
    revision = ws.stage_files(REF, {"run.py": "x = 1\n"})
    os.utime(ws.component_dir(REF) / "run.py")
    time.sleep(0.1)
    assert vouched(ws) is None
    project = ws.project()
    try:
        assert diff_component(project, ComponentRef.parse(REF), None, None, patch=False).diff.empty
    finally:
        project.close()
    assert vouched(ws) == revision
