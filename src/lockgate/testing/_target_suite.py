"""The conformance suite every stage-target plugin must pass.

A target (the ``Target`` protocol of :mod:`lockgate.contracts`) deploys a stage's
current revisions in two steps: ``prepare`` does everything slow and invisible,
``commit`` switches one entry atomically, ``abort`` drops a prepared switch. What the
suite can observe of atomicity it checks: ``deployed()`` and ``check()`` show the old
revision until the commit and the new one after it, never anything else, and an abort
leaves the old one. Use it from a plugin's tests::

    import pytest
    from lockgate.testing import TargetConformance

    class TestMyTarget(TargetConformance):
        @pytest.fixture
        def target(self, releases):
            return MyTarget(...)

The fixture returns a fresh target with nothing deployed. ``prepare`` receives a
``RevisionHandle``: a target reads the files through ``open(path)``, or asks for a
directory with ``materialize()``. ``releases`` is the suite's own fixture: the directory
where ``materialize()`` lays out each revision, as ``<releases>/<revision>/`` (the
``local`` store's ``.lockgate/releases/``); a target that links to or copies from release
directories is built on it, one that does not ignores it.

The optional capabilities ``Collectable`` (``collect(keep, dry_run)``, what ``gc`` asks
a target to remove) and ``GroupSwitch`` (``prepare_group``, ``commit_group``,
``abort_group``: several entries switched in one atomic step) are tested when the target
offers them and skipped otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from lockgate.contracts.manifest import FileEntry, Manifest
from lockgate.contracts.target import (
    Collectable,
    GroupSwitch,
    Prepared,
    PreparedGroup,
    RevisionHandle,
    Target,
    target_collect,
    target_group_switch,
)
from lockgate.core.content import materialize_files
from lockgate.testing._memory_content import MemoryContentStore

__all__ = ["TargetConformance"]


def _commit(
    target: Target, component_id: str, revision: str | None, handle: RevisionHandle | None
) -> None:
    """Deploy ``handle`` (``revision`` is its id, named for the reader of each test)."""
    assert handle is None or handle.revision == revision
    target.commit(target.prepare(component_id, handle))


class TargetConformance:
    """The behaviours every :class:`~lockgate.contracts.target.Target` must show.

    Subclass it as ``class TestMyTarget(TargetConformance)`` and define a ``target``
    fixture returning a fresh target (it may use the suite's ``releases`` fixture).
    """

    @pytest.fixture
    def releases(self, tmp_path: Path) -> Path:
        """Where the suite materializes the revisions it deploys."""
        path = tmp_path / "releases"
        path.mkdir()
        return path

    @pytest.fixture
    def revisions(self, releases: Path) -> Mapping[str, tuple[str, RevisionHandle]]:
        """Three revisions ``r1``, ``r2``, ``r3``: name -> (revision id, handle).

        Each handle reads its files from an in-memory content store, and its
        ``materialize()`` returns ``<releases>/<revision>/``, laid out on first use."""
        store = MemoryContentStore()
        made: dict[str, tuple[str, RevisionHandle]] = {}
        for n in (1, 2, 3):
            files = {"run.py": f"print({n})\n".encode(), "lib/util.py": b"X = %d\n" % n}
            manifest = Manifest(
                [FileEntry(p, "file", len(d), store.put_bytes(d)) for p, d in files.items()]
            )
            revision = store.put_manifest(manifest)
            release = releases / revision

            def materialize(manifest: Manifest = manifest, release: Path = release) -> Path:
                if not release.is_dir():
                    materialize_files(store, manifest, release)
                return release

            made[f"r{n}"] = (revision, RevisionHandle(revision, manifest, store, materialize))
        return made

    # ------------------------------------------------------------------ nothing yet

    def test_a_new_target_deploys_nothing(self, target: Target) -> None:
        assert target.deployed() == {}

    def test_check_reports_an_entry_never_deployed(
        self, target: Target, revisions: Mapping[str, tuple[str, RevisionHandle]]
    ) -> None:
        problems = target.check("etl", revisions["r1"][0])
        assert problems and all(isinstance(p, str) and p for p in problems)

    def test_location_names_each_entry(self, target: Target) -> None:
        where = target.location("etl")
        assert isinstance(where, str) and where
        assert target.location("etl") == where
        assert target.location("report") != where

    # ------------------------------------------------------------------ prepare, commit

    def test_prepare_names_what_it_prepared(
        self, target: Target, revisions: Mapping[str, tuple[str, RevisionHandle]]
    ) -> None:
        revision, release = revisions["r1"]
        prepared = target.prepare("etl", release)
        assert isinstance(prepared, Prepared)
        assert (prepared.component_id, prepared.revision) == ("etl", revision)
        target.abort(prepared)

    def test_commit_deploys_the_revision(
        self, target: Target, revisions: Mapping[str, tuple[str, RevisionHandle]]
    ) -> None:
        revision, release = revisions["r1"]
        _commit(target, "etl", revision, release)
        assert target.deployed() == {"etl": revision}
        assert target.check("etl", revision) == []

    def test_a_prepared_switch_is_invisible_until_committed(
        self, target: Target, revisions: Mapping[str, tuple[str, RevisionHandle]]
    ) -> None:
        (r1, rel1), (r2, rel2) = revisions["r1"], revisions["r2"]
        _commit(target, "etl", r1, rel1)
        prepared = target.prepare("etl", rel2)
        assert target.deployed() == {"etl": r1}
        target.commit(prepared)
        assert target.deployed() == {"etl": r2}
        assert target.check("etl", r2) == []
        assert target.check("etl", r1) != []

    def test_a_first_deployment_is_invisible_until_committed(
        self, target: Target, revisions: Mapping[str, tuple[str, RevisionHandle]]
    ) -> None:
        revision, release = revisions["r1"]
        prepared = target.prepare("etl", release)
        assert target.deployed() == {}
        target.commit(prepared)
        assert target.deployed() == {"etl": revision}

    def test_each_switch_shows_the_old_revision_or_the_new(
        self, target: Target, revisions: Mapping[str, tuple[str, RevisionHandle]]
    ) -> None:
        steps = ["r1", "r2", "r3", None, "r2", "r1"]
        now: str | None = None
        for step in steps:
            revision, release = revisions[step] if step else (None, None)
            prepared = target.prepare("etl", release)
            assert target.deployed().get("etl") == now
            target.commit(prepared)
            assert target.deployed().get("etl") == revision
            if revision is not None:
                assert target.check("etl", revision) == []
            now = revision

    # ------------------------------------------------------------------ abort

    def test_abort_leaves_the_old_revision(
        self, target: Target, revisions: Mapping[str, tuple[str, RevisionHandle]]
    ) -> None:
        (r1, rel1), (r2, rel2) = revisions["r1"], revisions["r2"]
        _commit(target, "etl", r1, rel1)
        target.abort(target.prepare("etl", rel2))
        assert target.deployed() == {"etl": r1}
        assert target.check("etl", r1) == []
        _commit(target, "etl", r2, rel2)  # and the same switch can be made afterwards
        assert target.deployed() == {"etl": r2}

    def test_abort_of_a_first_deployment_leaves_nothing(
        self, target: Target, revisions: Mapping[str, tuple[str, RevisionHandle]]
    ) -> None:
        revision, release = revisions["r1"]
        target.abort(target.prepare("etl", release))
        assert target.deployed() == {}
        assert target.check("etl", revision) != []

    def test_abort_of_a_removal_keeps_the_entry(
        self, target: Target, revisions: Mapping[str, tuple[str, RevisionHandle]]
    ) -> None:
        revision, release = revisions["r1"]
        _commit(target, "etl", revision, release)
        target.abort(target.prepare("etl", None))
        assert target.deployed() == {"etl": revision}
        assert target.check("etl", revision) == []

    # ------------------------------------------------------------------ removal

    def test_committing_a_removal_removes_the_entry(
        self, target: Target, revisions: Mapping[str, tuple[str, RevisionHandle]]
    ) -> None:
        revision, release = revisions["r1"]
        _commit(target, "etl", revision, release)
        prepared = target.prepare("etl", None)
        assert prepared.revision is None
        assert target.deployed() == {"etl": revision}
        target.commit(prepared)
        assert target.deployed() == {}
        assert target.check("etl", revision) != []

    def test_removing_an_entry_never_deployed_is_no_error(self, target: Target) -> None:
        _commit(target, "etl", None, None)
        _commit(target, "etl", None, None)
        assert target.deployed() == {}

    # ------------------------------------------------------------------ repeated after a crash

    def test_deploying_the_deployed_revision_again_changes_nothing(
        self, target: Target, revisions: Mapping[str, tuple[str, RevisionHandle]]
    ) -> None:
        revision, release = revisions["r1"]
        _commit(target, "etl", revision, release)
        _commit(target, "etl", revision, release)
        assert target.deployed() == {"etl": revision}
        assert target.check("etl", revision) == []

    def test_recovery_prepares_then_aborts_what_is_already_deployed(
        self, target: Target, revisions: Mapping[str, tuple[str, RevisionHandle]]
    ) -> None:
        # What recovery does for every open intent: prepare the recorded revision, then
        # commit it unless the target already shows it.
        revision, release = revisions["r1"]
        _commit(target, "etl", revision, release)
        prepared = target.prepare("etl", release)
        assert target.deployed().get("etl") == revision
        target.abort(prepared)
        assert target.deployed() == {"etl": revision}
        assert target.check("etl", revision) == []

    def test_an_abandoned_prepare_does_not_stop_the_next_switch(
        self, target: Target, revisions: Mapping[str, tuple[str, RevisionHandle]]
    ) -> None:
        (r1, rel1), (_r2, rel2), (r3, rel3) = (revisions[n] for n in ("r1", "r2", "r3"))
        _commit(target, "etl", r1, rel1)
        target.prepare("etl", rel2)  # a crash: neither committed nor aborted
        assert target.deployed() == {"etl": r1}
        _commit(target, "etl", r3, rel3)
        assert target.deployed() == {"etl": r3}
        assert target.check("etl", r3) == []

    # ------------------------------------------------------------------ several entries

    def test_entries_switch_independently(
        self, target: Target, revisions: Mapping[str, tuple[str, RevisionHandle]]
    ) -> None:
        (r1, rel1), (r2, rel2), (_r3, rel3) = (revisions[n] for n in ("r1", "r2", "r3"))
        _commit(target, "etl", r1, rel1)
        _commit(target, "report", r2, rel2)
        assert target.deployed() == {"etl": r1, "report": r2}
        one = target.prepare("etl", rel3)
        two = target.prepare("report", None)
        target.commit(two)
        assert target.deployed() == {"etl": r1}
        target.abort(one)
        assert target.deployed() == {"etl": r1}
        assert target.check("etl", r1) == []
        assert target.check("report", r2) != []

    def test_the_same_revision_may_be_deployed_under_two_ids(
        self, target: Target, revisions: Mapping[str, tuple[str, RevisionHandle]]
    ) -> None:
        revision, release = revisions["r1"]
        _commit(target, "etl", revision, release)
        _commit(target, "etl-copy", revision, release)
        assert target.deployed() == {"etl": revision, "etl-copy": revision}
        _commit(target, "etl", None, None)
        assert target.deployed() == {"etl-copy": revision}
        assert target.check("etl-copy", revision) == []

    # ------------------------------------------------------------------ Collectable

    @pytest.fixture
    def collector(self, target: Target) -> Collectable:
        """The target's ``collect`` capability; the tests using it skip without one."""
        found = target_collect(target)
        if found is None:
            pytest.skip("the target offers no Collectable")
        return found

    def test_collect_keeps_what_is_kept_and_a_dry_run_removes_nothing(
        self,
        target: Target,
        collector: Collectable,
        revisions: Mapping[str, tuple[str, RevisionHandle]],
    ) -> None:
        (r1, rel1), (r2, rel2) = revisions["r1"], revisions["r2"]
        _commit(target, "etl", r1, rel1)
        _commit(target, "etl", r2, rel2)
        everything = frozenset(r for r, _ in revisions.values())
        assert collector.collect(everything, True) == []
        assert collector.collect(everything, False) == []
        would = collector.collect(frozenset({r2}), True)
        assert isinstance(would, list) and set(would) <= {r1} and would == sorted(would)
        assert collector.collect(frozenset({r2}), True) == would  # a dry run removed nothing
        assert collector.collect(frozenset({r2}), False) == would
        assert collector.collect(frozenset({r2}), False) == []  # nothing left to remove
        assert target.deployed() == {"etl": r2}
        assert target.check("etl", r2) == []

    def test_collect_never_removes_what_is_deployed(
        self,
        target: Target,
        collector: Collectable,
        revisions: Mapping[str, tuple[str, RevisionHandle]],
    ) -> None:
        (r1, rel1), (r2, rel2) = revisions["r1"], revisions["r2"]
        _commit(target, "etl", r1, rel1)
        _commit(target, "report", r2, rel2)
        removed = collector.collect(frozenset({r2}), False)  # r1 deployed, yet not kept
        assert r1 not in removed and r2 not in removed
        assert target.deployed() == {"etl": r1, "report": r2}
        assert target.check("etl", r1) == []
        assert target.check("report", r2) == []

    def test_a_collected_revision_can_be_deployed_again(
        self,
        target: Target,
        collector: Collectable,
        revisions: Mapping[str, tuple[str, RevisionHandle]],
    ) -> None:
        (r1, rel1), (r2, rel2) = revisions["r1"], revisions["r2"]
        _commit(target, "etl", r1, rel1)
        _commit(target, "etl", r2, rel2)
        collector.collect(frozenset({r2}), False)
        _commit(target, "etl", r1, rel1)
        assert target.deployed() == {"etl": r1}
        assert target.check("etl", r1) == []

    # ------------------------------------------------------------------ GroupSwitch

    @pytest.fixture
    def grouper(self, target: Target) -> GroupSwitch:
        """The target's ``GroupSwitch`` capability; the tests using it skip without one."""
        found = target_group_switch(target)
        if found is None:
            pytest.skip("the target offers no GroupSwitch")
        return found

    def test_a_group_switch_shows_every_entry_old_or_every_entry_new(
        self,
        target: Target,
        grouper: GroupSwitch,
        revisions: Mapping[str, tuple[str, RevisionHandle]],
    ) -> None:
        (r1, rel1), (r2, rel2), (r3, rel3) = (revisions[n] for n in ("r1", "r2", "r3"))
        _commit(target, "etl", r1, rel1)
        _commit(target, "report", r1, rel1)
        prepared = grouper.prepare_group({"etl": rel2, "report": rel2, "flow": rel3})
        assert isinstance(prepared, PreparedGroup)
        assert dict(prepared.revisions) == {"etl": r2, "report": r2, "flow": r3}
        assert target.deployed() == {"etl": r1, "report": r1}  # invisible until committed
        grouper.commit_group(prepared)
        assert target.deployed() == {"etl": r2, "report": r2, "flow": r3}
        for cid, rev in (("etl", r2), ("report", r2), ("flow", r3)):
            assert target.check(cid, rev) == []
        grouper.commit_group(prepared)  # a repeat after a crash is no error
        assert target.deployed() == {"etl": r2, "report": r2, "flow": r3}

    def test_a_group_removes_entries_and_leaves_those_it_does_not_name(
        self,
        target: Target,
        grouper: GroupSwitch,
        revisions: Mapping[str, tuple[str, RevisionHandle]],
    ) -> None:
        (r1, rel1), (r2, rel2) = revisions["r1"], revisions["r2"]
        for cid in ("a", "b", "c"):
            _commit(target, cid, r1, rel1)
        grouper.commit_group(grouper.prepare_group({"a": None, "b": rel2}))
        assert target.deployed() == {"b": r2, "c": r1}
        # single switches go on working after a group switch, and groups after them
        _commit(target, "c", r2, rel2)
        grouper.commit_group(grouper.prepare_group({"b": rel1, "a": rel1}))
        assert target.deployed() == {"a": r1, "b": r1, "c": r2}

    def test_an_aborted_group_leaves_every_entry_as_it_was(
        self,
        target: Target,
        grouper: GroupSwitch,
        revisions: Mapping[str, tuple[str, RevisionHandle]],
    ) -> None:
        (r1, rel1), (r2, rel2) = revisions["r1"], revisions["r2"]
        _commit(target, "etl", r1, rel1)
        grouper.abort_group(grouper.prepare_group({"etl": rel2, "new": rel2}))
        assert target.deployed() == {"etl": r1}
        assert target.check("etl", r1) == []
        # an abandoned prepare (a crash) does not stop the next group
        grouper.prepare_group({"etl": None})
        grouper.commit_group(grouper.prepare_group({"etl": rel2}))
        assert target.deployed() == {"etl": r2}
