"""How many statements one promotion sends to PostgreSQL: a count, not a time.

A promote on the ``postgres`` stores is a series of round trips, and its latency beside
SQLite's is mostly their number (docs/performance.md, "Promotion on PostgreSQL, one
runner and many"). Every statement psycopg sends is counted here (``Cursor.execute`` and
``executemany``, whether the connection is pooled, a lock's own, or in pipeline mode)
over one ``promote --to staging --rev`` of a component between two retained revisions,
in a project opened once, after two switches that warm it up. The ceiling is what a
promotion sends now: a change that adds a statement to every switch fails here, and
whoever lowers the count lowers the ceiling.
"""

from __future__ import annotations

import collections
import json
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lockgate.core.project import Project
from lockgate.operations.promote import Promoter
from lockgate.operations.stage import Stager

MAX_STATEMENTS = 41
"""Statements one promotion sends (46 before planning read each answer once)."""

_OTHERS = "amqp,jsonl,nats,redis,tarball,teamdefaults"  # only postgres and the builtins


@contextmanager
def counting() -> Iterator[collections.Counter[str]]:
    """Every statement psycopg sends meanwhile, by where in lockgate it was sent from."""
    sent: collections.Counter[str] = collections.Counter()
    originals = {name: getattr(psycopg.Cursor, name) for name in ("execute", "executemany")}

    def counted(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: psycopg.Cursor[Any], *args: Any, **kwargs: Any) -> Any:
            frames = [
                f"{Path(f.filename).name}:{f.name}"
                for f in traceback.extract_stack()[:-1]
                if ("lockgate" in f.filename) and "psycopg" not in Path(f.filename).name
            ]
            sent[f"{name} from {' < '.join(reversed(frames[-3:]))}"] += 1
            return call(self, *args, **kwargs)

        return wrapper

    for name, call in originals.items():
        setattr(psycopg.Cursor, name, counted(name, call))
    try:
        yield sent
    finally:
        for name, call in originals.items():
            setattr(psycopg.Cursor, name, call)


@pytest.fixture
def switching(lockgate_project: Path, pg_dsn: str, project_key: str) -> Iterator[Any]:
    """A project on the postgres stores with one component staged twice, both revisions
    promoted into staging once; a function promoting to the other revision."""
    root = lockgate_project
    config = root / "lockgate.yaml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "plugins:\n  disable: []\n",
            "state:\n  store: postgres\ncontent:\n  store: postgres\nplugins:\n  disable: []\n"
            f"  postgres:\n    dsn: {json.dumps(pg_dsn)}\n    project: {project_key}\n",
        ),
        encoding="utf-8",
    )
    assert "store: postgres" in config.read_text(encoding="utf-8")
    folder = root / "workspaces" / "team" / "scripts" / "etl"
    folder.mkdir(parents=True)
    project = Project.open(root, environ={"LOCKGATE_DISABLE_PLUGINS": _OTHERS})
    try:
        stager, promoter = Stager(project), Promoter(project)
        revisions = []
        for version in ("A", "B"):
            (folder / "main.py").write_text(f"VERSION = {version!r}\n", encoding="utf-8")
            revisions.append(stager.stage("team:etl").revision)
        turn = iter(range(1_000))

        def promote() -> None:
            result = promoter.promote("team:etl", to="staging", rev=revisions[next(turn) % 2])
            assert result.changed and result.revision is not None

        promote()
        promote()
        yield promote
    finally:
        project.close()


def test_a_promotion_sends_at_most_its_statements(switching: Any) -> None:
    with counting() as sent:
        switching()
    total = sum(sent.values())
    where = "\n".join(f"{n} {site}" for site, n in sent.most_common())
    assert 0 < total <= MAX_STATEMENTS, f"{total} statements (at most {MAX_STATEMENTS}):\n{where}"
