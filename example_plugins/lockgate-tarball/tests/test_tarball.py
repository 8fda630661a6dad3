"""The tarball target, end to end through the command line: stage → promote → rollback →
verify, as its users would run it."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from lockgate_tarball import TarballTarget

from lockgate.testing import TargetConformance

CONFIG = """\
stages:
  staging:
    targets:
      - kind: tarball
        options:
          path: archives/staging
  production: {}
"""


@pytest.fixture
def project(lockgate_project: Path) -> Path:
    (lockgate_project / "lockgate.yaml").write_text(CONFIG)
    component = lockgate_project / "workspaces" / "alice" / "scripts" / "etl"
    component.mkdir(parents=True)
    (component / "main.py").write_text("print('v1')\n")
    (component / "lib").mkdir()
    (component / "lib" / "util.py").write_text("X = 1\n")
    return lockgate_project


def _ok(result) -> dict:
    assert result.exit_code == 0, result.stderr
    return result.json()


def _stage(lockgate_cli, project: Path) -> str:
    return _ok(lockgate_cli("stage", "alice:etl", "--json", project=project))["revision"]


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def test_promote_writes_the_archive_and_points_current_at_it(project: Path, lockgate_cli) -> None:
    revision = _stage(lockgate_cli, project)
    done = _ok(lockgate_cli("promote", "alice:etl", "--to", "staging", "--json", project=project))
    stage_dir = project / "archives" / "staging"
    archive = stage_dir / f"etl-{revision}.tar.gz"
    assert _members(archive) == {"main.py": b"print('v1')\n", "lib/util.py": b"X = 1\n"}
    assert (stage_dir / "etl.current").read_text() == f"{revision}\n"
    assert done["locations"] == [str(stage_dir.resolve() / "etl.current")]
    # Nothing but the archive and its pointer: no temporary file is left behind.
    assert sorted(p.name for p in stage_dir.iterdir()) == [f"etl-{revision}.tar.gz", "etl.current"]
    assert _ok(lockgate_cli("verify", "--json", project=project))["ok"] is True


def test_rollback_switches_the_pointer_back_and_keeps_both_archives(
    project: Path, lockgate_cli
) -> None:
    first = _stage(lockgate_cli, project)
    _ok(lockgate_cli("promote", "alice:etl", "--to", "staging", "--json", project=project))
    (project / "workspaces" / "alice" / "scripts" / "etl" / "main.py").write_text("print('v2')\n")
    second = _stage(lockgate_cli, project)
    _ok(lockgate_cli("promote", "alice:etl", "--to", "staging", "--json", project=project))
    stage_dir = project / "archives" / "staging"
    assert (stage_dir / "etl.current").read_text() == f"{second}\n"
    assert _members(stage_dir / f"etl-{second}.tar.gz")["main.py"] == b"print('v2')\n"

    back = _ok(
        lockgate_cli(
            "rollback", "alice:etl", "--stage", "staging", "--to", first, "--json", project=project
        )
    )
    assert (back["revision"], back["previous_revision"]) == (first, second)
    assert (stage_dir / "etl.current").read_text() == f"{first}\n"
    assert (stage_dir / f"etl-{second}.tar.gz").is_file()  # archives are immutable history
    assert _ok(lockgate_cli("verify", "--json", project=project))["ok"] is True

    _ok(lockgate_cli("rollback", "alice:etl", "--stage", "staging", "--to", "none", "--json",
                     project=project))  # fmt: skip
    assert not (stage_dir / "etl.current").exists()
    assert _ok(lockgate_cli("verify", "--json", project=project))["ok"] is True


def test_the_same_revision_always_gives_the_same_archive_bytes(project: Path, lockgate_cli) -> None:
    revision = _stage(lockgate_cli, project)
    _ok(lockgate_cli("promote", "alice:etl", "--to", "staging", "--json", project=project))
    archive = project / "archives" / "staging" / f"etl-{revision}.tar.gz"
    before = archive.read_bytes()
    archive.unlink()
    _ok(lockgate_cli("rollback", "alice:etl", "--stage", "staging", "--to", "none", "--json",
                     project=project))  # fmt: skip
    _ok(lockgate_cli("promote", "alice:etl", "--to", "staging", "--rev", revision, "--json",
                     project=project))  # fmt: skip
    assert archive.read_bytes() == before


def test_verify_reports_a_damaged_archive_and_a_pointer_changed_behind_its_back(
    project: Path, lockgate_cli
) -> None:
    revision = _stage(lockgate_cli, project)
    _ok(lockgate_cli("promote", "alice:etl", "--to", "staging", "--json", project=project))
    stage_dir = project / "archives" / "staging"
    (stage_dir / f"etl-{revision}.tar.gz").write_bytes(b"not a gzip file")
    damaged = lockgate_cli("verify", "--json", project=project)
    assert damaged.exit_code == 1
    assert any("is damaged" in p for p in damaged.json()["problems"])
    (stage_dir / "etl.current").write_text("0" * 64 + "\n")
    moved = lockgate_cli("verify", "--json", project=project)
    assert any("not the current revision" in p for p in moved.json()["problems"])


def test_a_path_outside_the_project_is_refused_in_one_line(project: Path, lockgate_cli) -> None:
    (project / "lockgate.yaml").write_text(CONFIG.replace("archives/staging", "../elsewhere"))
    _stage(lockgate_cli, project)
    result = lockgate_cli("promote", "alice:etl", "--to", "staging", project=project)
    assert result.exit_code == 2
    assert "is outside the project" in result.stderr
    assert "Traceback" not in result.stderr


class TestTarballTargetConformance(TargetConformance):
    """The target conformance suite of lockgate.testing, run against this target."""

    @pytest.fixture
    def target(self, tmp_path: Path) -> TarballTarget:
        return TarballTarget(tmp_path / "archives")
