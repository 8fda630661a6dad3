"""Validators' verdicts kept in the state store: reused by gates, per content or per stage.

A state store that offers ``ValidationResults`` keeps each cacheable validator's issues
per revision; a promotion's gate reuses them (the store is the record gates trust), so a
revision climbing the ladder is read once by a validator that declares ``per_stage=False``.
Files under ``.lockgate/`` are never a gate's source, and a dry run writes nothing.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from conftest import ProjectWorkspace
from lockgate import Issue, Severity, ValidatorInfo, hookimpl
from lockgate.builtin_plugins.sqlite_state import SqliteStateStore
from lockgate.contracts.state import store_results
from lockgate.operations.promote import Promoter
from lockgate.operations.validate import ReadinessReport, Validation
from lockgate.testing import fake_distribution

REF = "alice:c"


class Counting:
    """A cacheable validator that counts its calls per stage."""

    def __init__(self, *, per_stage: bool, cache: bool = True, fail: bool = False) -> None:
        self.per_stage, self.cache, self.fail = per_stage, cache, fail
        self.stages: list[str] = []

    @hookimpl
    def describe_validator(self) -> ValidatorInfo:
        return ValidatorInfo(cache=self.cache, per_stage=self.per_stage, version="1")

    @hookimpl
    def on_validate(self, subject: Any) -> list[Issue]:
        self.stages.append(subject.stage)
        if self.fail:
            return [Issue(Severity.ERROR, "counted-no", "refused", path="a.py")]
        return []


class Lab(ProjectWorkspace):
    def validate(self, *refs: str, **kwargs: Any) -> ReadinessReport:
        project = self.project()
        try:
            return Validation(project).run(list(refs), **kwargs)
        finally:
            project.close()

    def promote(self, ref: str = REF, **kwargs: Any) -> Any:
        project = self.project()
        try:
            return Promoter(project).promote(ref, **kwargs)
        finally:
            project.close()

    def verdicts(self, revision: str) -> dict[str, str]:
        db = sqlite3.connect(self.root / ".lockgate" / "state.db")
        try:
            rows = db.execute(
                "SELECT key, value FROM validation_results WHERE revision = ?", (revision,)
            )
            return dict(rows.fetchall())
        finally:
            db.close()


def lab(tmp_path: Path, **validators: Counting) -> Lab:
    return Lab(tmp_path / "p", extra=(fake_distribution("lockgate-counting", validators),))


def test_a_revision_climbing_the_ladder_is_read_once_by_a_content_validator(
    tmp_path: Path,
) -> None:
    content, staged, uncached = (
        Counting(per_stage=False),
        Counting(per_stage=True),
        Counting(per_stage=False, cache=False),
    )
    ws = lab(tmp_path, content=content, staged=staged, uncached=uncached)
    revision = ws.stage_files(REF, {"a.py": "x = 1\n"})
    for stage in ("staging", "integration", "production"):
        assert ws.promote(REF, to=stage).revision == revision
    assert content.stages == ["staging"]  # one verdict serves every rung
    assert staged.stages == ["staging", "integration", "production"]
    assert uncached.stages == ["staging", "integration", "production"]
    assert ws.verdicts(revision), "the verdicts are in the state store"


def test_a_stored_failure_still_refuses_every_later_gate(tmp_path: Path) -> None:
    failing = Counting(per_stage=False, fail=True)
    ws = lab(tmp_path, failing=failing)
    ws.stage_files(REF, {"a.py": "x = 1\n"})
    assert not ws.validate(REF).ready
    project = ws.project()
    try:
        with pytest.raises(Exception, match="not ready"):
            Promoter(project).promote(REF, to="staging")
    finally:
        project.close()
    assert failing.stages == ["staging"]  # the refusal came from the stored verdict


def test_a_new_revision_is_validated_afresh(tmp_path: Path) -> None:
    content = Counting(per_stage=False)
    ws = lab(tmp_path, content=content)
    ws.stage_files(REF, {"a.py": "x = 1\n"})
    ws.promote(REF, to="staging")
    ws.stage_files(REF, {"a.py": "x = 2\n"})
    ws.promote(REF, to="staging")
    assert content.stages == ["staging", "staging"]


def test_a_dry_run_writes_no_verdict(tmp_path: Path) -> None:
    content = Counting(per_stage=False)
    ws = lab(tmp_path, content=content)
    revision = ws.stage_files(REF, {"a.py": "x = 1\n"})
    ws.promote(REF, to="staging", dry_run=True)
    assert ws.verdicts(revision) == {}
    ws.promote(REF, to="staging")
    assert content.stages == ["staging", "staging"]
    assert ws.verdicts(revision)


def test_verdicts_from_lockgate_validate_serve_the_gate(tmp_path: Path) -> None:
    content = Counting(per_stage=False)
    ws = lab(tmp_path, content=content)
    ws.stage_files(REF, {"a.py": "x = 1\n"})
    assert ws.validate(REF).ready
    ws.promote(REF, to="staging")
    ws.promote(REF, to="integration")
    assert len(content.stages) == 1


class Forgetful:
    """The sqlite store without the ValidationResults capability."""

    def __init__(self, inner: SqliteStateStore) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name in ("validation_results", "record_validation_results"):
            raise AttributeError(name)
        return getattr(self._inner, name)


class ForgetfulPlugin:
    @hookimpl
    def register_state_stores(self, register: Any) -> None:
        register("forgetful", lambda ctx: Forgetful(SqliteStateStore.from_context(ctx)))


def test_without_the_capability_only_lockgate_validate_reuses_results(tmp_path: Path) -> None:
    content = Counting(per_stage=False)
    ws = Lab(
        tmp_path / "p",
        "state:\n  store: forgetful\n",
        extra=(
            fake_distribution("lockgate-counting", {"content": content}),
            fake_distribution("lockgate-forgetful", {"forgetful": ForgetfulPlugin()}),
        ),
    )
    ws.stage_files(REF, {"a.py": "x = 1\n"})
    project = ws.project()
    try:
        assert store_results(project.state()) is None
    finally:
        project.close()
    ws.validate(REF)
    ws.validate(REF)
    assert len(content.stages) == 1  # the second run read .lockgate/cache/validation/
    assert list((ws.root / ".lockgate" / "cache" / "validation").rglob("*.json"))
    ws.promote(REF, to="staging")
    ws.promote(REF, to="integration")
    assert len(content.stages) == 3  # each gate called it again


def test_store_results_sees_the_capability() -> None:
    class Bare:
        pass

    class Keeps:
        def validation_results(self, revision: str) -> dict[str, str]:
            return {}

        def record_validation_results(self, revision: str, values: Any) -> None:
            pass

    assert store_results(Bare()) is None
    keeps = Keeps()
    assert store_results(keeps) is keeps
