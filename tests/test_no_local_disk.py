"""The kernel needs no local disk beyond ``lockgate.yaml``: with the in-memory state
store, content store, source and target selected, stage → validate → promote →
rollback → verify → history all work, and nothing else is ever written to the project.

The memory roles live in one process (the project's role factory keeps them), so the
operations run through the Python API, in one session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lockgate.contracts.state import EventFilter
from lockgate.core.session import Session
from lockgate.errors import MissingCapabilityError
from lockgate.operations.promote import Promoter
from lockgate.operations.reports import history
from lockgate.operations.stage import Stager
from lockgate.operations.validate import Validation
from lockgate.operations.verify import verify
from lockgate.testing import MemoryRoles, open_project

CONFIG = """\
state: {store: memory}
content: {store: memory}
source: {name: memory}
stages:
  staging: {targets: [{kind: memory}]}
  integration: {targets: [{kind: memory}]}
  production: {targets: [{kind: memory}]}
"""


def _on_disk(root: Path) -> set[str]:
    found = set()
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(Path(dirpath, name).relative_to(root).as_posix())
    return found


@pytest.fixture
def memory_project(tmp_path: Path) -> tuple[Path, MemoryRoles, Session]:
    root = tmp_path / "project"
    root.mkdir()
    (root / "lockgate.yaml").write_text(CONFIG)
    roles = MemoryRoles()
    project = open_project(root, extra=[roles.distribution()], installed=True)
    return root, roles, Session(project)


def test_the_whole_lifecycle_runs_on_memory_roles_with_nothing_on_disk(
    memory_project: tuple[Path, MemoryRoles, Session],
) -> None:
    root, roles, session = memory_project
    source = roles.source
    source.create("alice:etl")
    source.write("alice:etl", "run.py", b"print('v1')\n")
    source.write("alice:etl", "lib/util.py", b"X = 1\n")
    source.write("alice:etl", "component.yaml", b"version: '1.0'\ndescription: etl\n")

    first = Stager(session).stage("alice:etl")
    assert first.created and first.files == 3
    assert Stager(session).stage("alice:etl").created is False  # unchanged: nothing new

    report = Validation(session).run(["alice:etl"], stage="staging")
    assert report.ready, report.to_dict()
    assert report.components[0].revision == first.revision

    promoter = Promoter(session)
    promoted = promoter.promote("alice:etl", to="staging")
    assert promoted.changed and promoted.revision == first.revision
    assert roles.targets["staging"].deployed() == {"etl": first.revision}
    assert promoted.locations == ("memory://staging/etl",)

    source.write("alice:etl", "run.py", b"print('v2')\n")
    second = Stager(session).stage("alice:etl")
    assert second.created and second.revision != first.revision
    promoter.promote("alice:etl", to="staging")
    assert roles.targets["staging"].deployed() == {"etl": second.revision}

    back = promoter.rollback("alice:etl", stage="staging", reason="v2 is broken")
    assert (back.revision, back.previous_revision) == (first.revision, second.revision)
    assert roles.targets["staging"].deployed() == {"etl": first.revision}

    checked = verify(session)
    assert checked.ok, checked.problems
    assert checked.checked["entries"] == 1

    actions = [e.action for e in history(session, EventFilter(component="alice:etl"))]
    assert [a for a in actions if a != "validate"] == [
        "stage",
        "promote",
        "stage",
        "promote",
        "rollback",
    ]
    assert "validate" in actions

    # Nothing but the configuration is on disk: the memory state store holds the locks.
    assert _on_disk(root) == {"lockgate.yaml"}


def test_a_target_that_needs_a_directory_is_refused_in_one_line_without_releases(
    memory_project: tuple[Path, MemoryRoles, Session],
) -> None:
    """The memory content store keeps no releases: a revision handle cannot be laid out
    as a directory, and says so (the directory target then lays it out itself)."""
    _, roles, session = memory_project
    roles.source.create("alice:etl")
    roles.source.write("alice:etl", "run.py", b"print(1)\n")
    staged = Stager(session).stage("alice:etl")
    from lockgate.operations.revisions import revision_handle

    handle = revision_handle(session, staged.revision)
    with handle.open("run.py") as stream:
        assert stream.read() == b"print(1)\n"
    with pytest.raises(MissingCapabilityError, match="keeps no releases"):
        handle.materialize()
