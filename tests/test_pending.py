"""Pending approvals (``lockgate.operations.pending``, what the dashboard lists): a latest
revision waits when the first stage it is not live in requires approvals it does not
have; what counts follows the ``approvals`` validator."""

from __future__ import annotations

from pathlib import Path

from conftest import ProjectWorkspace
from lockgate.operations.approve import decide
from lockgate.operations.pending import pending_approvals
from lockgate.operations.promote import Promoter
from lockgate.operations.stage import Stager

CONFIG = """\
plugins:
  approvals:
    stages:
      integration:
        required: 2
      production:
        required: 1
        approvers: [carol]
"""


def pending(ws: ProjectWorkspace) -> dict[str, tuple[str, int, tuple[str, ...]]]:
    project = ws.project()
    try:
        return {
            p.component: (p.stage, p.required, p.approved_by) for p in pending_approvals(project)
        }
    finally:
        project.close()


def act(ws: ProjectWorkspace, actor: str, *steps: tuple[str, str]) -> None:
    project = ws.project(actor)
    try:
        for what, ref in steps:
            if what == "promote":
                Promoter(project).promote(ref)
            else:
                decide(project, ref, "approve" if what == "approve" else "reject", reason="no")
    finally:
        project.close()


def test_a_revision_waits_for_the_approvals_of_its_next_stage(tmp_path: Path) -> None:
    ws = ProjectWorkspace(tmp_path / "p", CONFIG)
    ws.stage_files("alice:etl", {"run.py": "x = 1\n"})
    assert pending(ws) == {}  # staging requires none
    act(ws, "alice", ("promote", "alice:etl"))
    assert pending(ws) == {"alice:etl": ("integration", 2, ())}


def test_an_approval_by_one_who_became_an_author_does_not_count(tmp_path: Path) -> None:
    ws = ProjectWorkspace(tmp_path / "p", CONFIG)
    revision = ws.stage_files("alice:etl", {"run.py": "x = 1\n"})
    act(ws, "alice", ("promote", "alice:etl"))
    act(ws, "bob", ("approve", "alice:etl"))
    assert pending(ws) == {"alice:etl": ("integration", 2, ("bob",))}
    project = ws.project("bob")
    try:  # bob changes the files and back: the approved revision again, bob among its authors
        for text in ("x = 2\n", "x = 1\n"):
            ws.write("alice:etl", {"run.py": text})
            Stager(project).stage("alice:etl")
    finally:
        project.close()
    assert pending(ws) == {"alice:etl": ("integration", 2, ())}
    project = ws.project()
    try:
        [waiting] = pending_approvals(project)
    finally:
        project.close()
    assert waiting.revision == revision and "bob" in waiting.authors


def test_approvals_that_count_are_listed_until_enough(tmp_path: Path) -> None:
    ws = ProjectWorkspace(tmp_path / "p", CONFIG)
    ws.stage_files("alice:etl", {"run.py": "x = 1\n"})
    act(ws, "alice", ("promote", "alice:etl"))
    act(ws, "bob", ("approve", "alice:etl"))
    assert pending(ws) == {"alice:etl": ("integration", 2, ("bob",))}
    act(ws, "dave", ("approve", "alice:etl"))
    assert pending(ws) == {}
    act(ws, "ops", ("promote", "alice:etl"))
    # production lists its approvers: bob's and dave's approvals do not count there
    assert pending(ws) == {"alice:etl": ("production", 1, ())}
    act(ws, "carol", ("approve", "alice:etl"))
    assert pending(ws) == {}


def test_a_rejected_revision_waits_for_nothing(tmp_path: Path) -> None:
    ws = ProjectWorkspace(tmp_path / "p", CONFIG)
    ws.stage_files("alice:etl", {"run.py": "x = 1\n"})
    act(ws, "alice", ("promote", "alice:etl"))
    act(ws, "bob", ("reject", "alice:etl"))
    assert pending(ws) == {}
