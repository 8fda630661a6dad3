"""Names read back from the state store are checked like user input before any file is
touched: a row edited with SQL to climb out of the project is refused with one line.

Each test builds a real project (stage, promote to staging), edits ``.lockgate/state.db``
with ``sqlite3`` and runs the real ``lockgate`` in a subprocess.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import blake3
import pytest

from conftest import ENV, copy_project, run_lockgate

ESCAPE = "x/../../../../outside/victim.txt"
"""From ``project/stages/staging``: ``x/..`` is the stage directory, four ``..`` lead to
the directory holding the project, where the victim lives."""
AT = "2026-01-01T00:00:00.000000+00:00"
COMMANDS = [
    ("ls",),
    ("recover",),
    ("verify",),
    ("promote", "alice:etl", "--to", "staging"),
    ("rollback", "alice:etl", "--stage", "staging"),
    ("gc",),
    ("sync",),
    ("history", "alice:etl"),
]


@pytest.fixture(scope="module")
def promoted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("template") / "project"
    assert run_lockgate("init", str(root), cwd=root.parent, env=ENV).returncode == 0
    comp = root / "workspaces" / "alice" / "scripts" / "etl"
    comp.mkdir(parents=True)
    (comp / "run.py").write_text("print(1)\n")
    for args in (("stage", "alice:etl"), ("promote", "alice:etl", "--to", "staging")):
        done = run_lockgate(*args, cwd=root, env=ENV)
        assert done.returncode == 0, done.stderr
    # What an attacker needs for the paths to resolve: directories beside the entries.
    (root / "stages" / "staging" / "x").mkdir()
    (root / "stages" / "staging" / ".x").mkdir()
    return root


@pytest.fixture
def project(tmp_path: Path, promoted: Path) -> Path:
    root = copy_project(promoted, tmp_path / "project")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "victim.txt").write_text("precious\n")
    return root


def _sql(root: Path, statement: str, *params: object) -> None:
    db = sqlite3.connect(root / ".lockgate" / "state.db")
    try:
        with db:
            db.execute(statement, params)
    finally:
        db.close()


def _revision(root: Path) -> str:
    db = sqlite3.connect(root / ".lockgate" / "state.db")
    try:
        return str(db.execute("SELECT revision FROM pointers").fetchone()[0])
    finally:
        db.close()


def _intent(root: Path, **payload: object) -> None:
    revision = _revision(root)
    full = {
        "stage": "staging",
        "component_id": "etl",
        "component": "alice:etl",
        "revision": revision,
        "previous_revision": None,
        "generation": 2,
        **payload,
    }
    _sql(
        root,
        "INSERT INTO intents VALUES ('crafted', 'promote', '1@host', ?, ?, 'open')",
        AT,
        json.dumps(full),
    )


def _pointer(root: Path, stage: str, component_id: str, revision: str | None = None) -> None:
    _sql(
        root,
        "INSERT INTO pointers VALUES (?, ?, 'alice:etl', ?, 1, ?, 'mallory')",
        stage,
        component_id,
        revision or _revision(root),
        AT,
    )


def _assert_refused_everywhere(root: Path, *, must_refuse: tuple[str, ...] = ("ls",)) -> None:
    victim = root.parent / "outside" / "victim.txt"
    for args in COMMANDS:
        done = run_lockgate(*args, cwd=root, env=ENV)
        # The victim is still the regular file it was, and nothing was added beside it.
        assert not victim.is_symlink(), args
        assert victim.read_text() == "precious\n", args
        assert sorted(p.name for p in victim.parent.iterdir()) == ["victim.txt"], args
        assert done.returncode != 5, (args, done.stderr)
        # One line: the error (and, from a command that only reads, one warning that
        # recovery is pending).
        lines = [ln for ln in done.stderr.splitlines() if "warning: recovery pending" not in ln]
        assert len(lines) <= 1, (args, done.stderr)
        if args[0] == "sync" and args[0] in must_refuse:  # reports each component: exit 1
            assert done.returncode == 1, (args, done.stdout, done.stderr)
            assert "the state store holds" in done.stdout, (args, done.stdout)
        elif args[0] in must_refuse:
            assert done.returncode == 2, (args, done.stdout, done.stderr)
            assert "the state store holds" in done.stderr, (args, done.stderr)
            assert "edited or damaged" in done.stderr


def test_crafted_pointer_and_intent_cannot_write_outside(project: Path) -> None:
    _pointer(project, "staging", ESCAPE)
    _intent(project, component_id=ESCAPE)
    _assert_refused_everywhere(project, must_refuse=("recover", "verify", "promote"))


def test_crafted_intent_alone_cannot_remove_a_file_outside(project: Path) -> None:
    # With no pointer for the id, recovery would "remove" the entry: rename the victim.
    _intent(project, component_id=ESCAPE)
    # Commands that only read never recover, so they never act on an intent.
    changing = tuple(c[0] for c in COMMANDS if c[0] not in ("ls", "verify", "history"))
    _assert_refused_everywhere(project, must_refuse=changing)


@pytest.mark.parametrize(
    "payload",
    [
        {"revision": "../../../outside/victim.txt"},
        {"stage": "../../outside"},
        {"component": "alice:../../outside"},
        {"generation": "two"},
    ],
)
def test_crafted_intent_fields_are_refused(project: Path, payload: dict[str, object]) -> None:
    _intent(project, **payload)
    _assert_refused_everywhere(project, must_refuse=("recover", "promote"))


def test_crafted_pointer_revision_is_refused(project: Path) -> None:
    _pointer(project, "staging", "etl2", "../../../../outside/victim.txt")
    _assert_refused_everywhere(project, must_refuse=("verify",))


def test_crafted_component_row_is_refused(project: Path) -> None:
    _sql(project, "UPDATE components SET component_id = ?", ESCAPE)
    _assert_refused_everywhere(project, must_refuse=("ls",))


def test_crafted_manifest_cannot_link_outside(project: Path) -> None:
    """A manifest object with a matching digest, whose symlink leaves the release."""
    entry = {"path": "run.py", "kind": "symlink", "size": 2, "digest": "0" * 64}
    entry["target"] = "../../../../outside/victim.txt"
    data = json.dumps(
        {"format": 1, "files": [entry]}, sort_keys=True, separators=(",", ":")
    ).encode()
    revision = blake3.blake3(data).hexdigest()
    obj = project / ".lockgate" / "objects" / revision[:2] / revision[2:]
    obj.parent.mkdir(parents=True, exist_ok=True)
    obj.write_bytes(data)
    _sql(
        project,
        "INSERT INTO revisions (component, revision, created_at, actor, stage, files, size) "
        "VALUES ('alice:etl', ?, ?, 'mallory', 'staging', 1, 2)",
        revision,
        AT,
    )
    promote = ("promote", "alice:etl", "--to", "staging", "--rev", revision)
    forced = (*promote, "--force", "--reason", "test")
    for args in (promote, forced):
        done = run_lockgate(*args, cwd=project, env=ENV)
        assert done.returncode in (1, 2), done.stderr
        assert done.stderr.count("\n") == 1
        assert "points outside the revision" in done.stderr
        assert not (project / ".lockgate" / "releases" / revision).exists()


def test_directory_target_keeps_entries_inside_its_directory(tmp_path: Path) -> None:
    """Defence in depth: the target itself refuses an id that is not one path segment."""
    from lockgate.builtin_plugins.directory_target import DirectoryTarget
    from lockgate.contracts.target import Prepared
    from lockgate.errors import InputError

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    stage = tmp_path / "stages" / "staging"
    (stage / "x").mkdir(parents=True)
    target = DirectoryTarget(stage, tmp_path / "releases")
    for component_id in ("x/../../../victim.txt", "..", "a\nb"):
        with pytest.raises(InputError, match="refusing to deploy it outside"):
            target.prepare(component_id, None)
        with pytest.raises(InputError, match="refusing to deploy it outside"):
            target.commit(Prepared(component_id, None, None))
    assert victim.read_text() == "precious\n"
