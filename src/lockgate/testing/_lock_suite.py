"""The lock tests of the state-store conformance suite (``StateStore.lock``).

A part of :class:`~lockgate.testing.StateStoreConformance`, kept in a module of its own:
every state store provides the kernel's two locks, ``operation`` (exclusive, or shared
by the switches of single components) and ``staging`` (shared for stagings, exclusive
for gc), and the component locks ``operation/<id>`` (``component_lock``), with an owner
and a lease. These
tests run in one process, so they show exclusion between two holders of one store
object (another file descriptor, another thread); that a dead process never blocks is
the store's own promise, which its own tests prove with real processes (the ``sqlite``
store's in ``tests/test_promotion.py``).

The optional ``LockSet`` capability (``lock_set``: several locks in one call, as a switch
takes them) is tested where a store offers it, and skipped otherwise: a set must behave
as its locks taken one by one, nested, would; the reads given to it (``reads``, where the
store offers ``ReadBatch`` too) must be answered as if read under it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence

import pytest

from lockgate.contracts.lock_set import LockSet, store_lock_set
from lockgate.contracts.locks import LOCK_NAMES, LockOwner, component_lock
from lockgate.contracts.read_batch import Ask, answer_each, store_read_batch
from lockgate.contracts.state import Intent, StateStore
from lockgate.errors import LockedError

__all__ = ["StateStoreLockConformance"]

LEASE = 3600.0
HOST = "conformance.invalid"  # no real host: nothing may look its pid up
AT = "2026-11-20T10:00:00.000000+00:00"


def _owner(pid: int = 4242, operation: str = "held-by-suite") -> LockOwner:
    return LockOwner(pid=pid, host=HOST, operation=operation)


def _take(
    store: StateStore, name: str, *, shared: bool = False, pid: int = 4242, timeout: float = 0
) -> contextlib.AbstractContextManager[LockOwner]:
    return store.lock(name, owner=_owner(pid), lease=LEASE, timeout=timeout, shared=shared)


def _take_set(
    store: StateStore,
    locks: Sequence[tuple[str, bool]],
    *,
    pid: int = 4242,
    timeout: float = 0,
) -> contextlib.AbstractContextManager[LockOwner]:
    """``store.lock_set(locks, …)``, or the test skipped when the store offers none."""
    return _lock_set(store).lock_set(locks, owner=_owner(pid), lease=LEASE, timeout=timeout)


def _lock_set(store: StateStore) -> LockSet:
    """The store's ``LockSet``, or the test skipped (in the test's own thread)."""
    offered = store_lock_set(store)
    if offered is None:
        pytest.skip("the store offers no LockSet (optional)")
    return offered


ETL = component_lock("etl")
SWITCH = [("operation", True), (ETL, False)]
"""What a switch of component ``etl`` takes: ``operation`` shared, then its lock."""


def _free(store: StateStore, *names: str) -> None:
    """Every lock of ``names`` is free: no holder, and taken exclusively at once."""
    for name in names:
        assert store.holder(name) is None, name
        with _take(store, name, pid=5454):
            pass


class StateStoreLockConformance:
    """The lock behaviours every state store must show (mixed into the suite)."""

    @pytest.mark.parametrize("name", LOCK_NAMES)
    def test_a_free_lock_has_no_holder(self, store: StateStore, name: str) -> None:
        assert store.holder(name) is None

    def test_lock_grants_the_owner_stamped_with_its_lease(self, store: StateStore) -> None:
        before = time.time()
        with _take(store, "operation") as granted:
            after = time.time()
            assert (granted.pid, granted.host, granted.operation) == (4242, HOST, "held-by-suite")
            assert granted.since is not None and granted.lease_until is not None
            assert before + LEASE <= granted.lease_until <= after + LEASE
            assert granted.within_lease() and not granted.past_lease()

    @pytest.mark.parametrize("name", LOCK_NAMES)
    def test_holder_reports_the_owner_while_held(self, store: StateStore, name: str) -> None:
        with _take(store, name) as granted:
            assert store.holder(name) == granted

    def test_a_shared_lock_has_a_holder(self, store: StateStore) -> None:
        with _take(store, "staging", shared=True):
            assert store.holder("staging") is not None

    @pytest.mark.parametrize("name", LOCK_NAMES)
    def test_an_exclusive_lock_excludes_another(self, store: StateStore, name: str) -> None:
        with _take(store, name), pytest.raises(LockedError), _take(store, name, pid=4343):
            pass  # pragma: no cover - the second lock must not be granted

    def test_shared_holders_share(self, store: StateStore) -> None:
        with _take(store, "staging", shared=True), _take(store, "staging", shared=True, pid=2):
            assert store.holder("staging") is not None

    def test_a_shared_lock_excludes_an_exclusive_one(self, store: StateStore) -> None:
        with (
            _take(store, "staging", shared=True),
            pytest.raises(LockedError),
            _take(store, "staging", pid=4343),
        ):
            pass  # pragma: no cover

    def test_an_exclusive_lock_excludes_a_shared_one(self, store: StateStore) -> None:
        with (
            _take(store, "staging"),
            pytest.raises(LockedError),
            _take(store, "staging", shared=True, pid=4343),
        ):
            pass  # pragma: no cover

    def test_locks_of_different_names_are_independent(self, store: StateStore) -> None:
        with _take(store, "operation"), _take(store, "staging", pid=4343):
            assert store.holder("operation") is not None and store.holder("staging") is not None

    @pytest.mark.parametrize(("name", "shared"), [("operation", False), ("staging", True)])
    def test_the_timeout_error_names_the_holder(
        self, store: StateStore, name: str, shared: bool
    ) -> None:
        """What the kernel waits for: the operation lock exclusively, the staging lock
        shared while gc holds it exclusively. The one-line error names who holds it."""
        with (
            _take(store, name),
            pytest.raises(LockedError) as raised,
            _take(store, name, shared=shared, pid=4343, timeout=0.05),
        ):
            pass  # pragma: no cover
        message = raised.value.message
        assert "pid 4242" in message and HOST in message, message
        assert "\n" not in message

    @pytest.mark.parametrize("name", LOCK_NAMES)
    def test_a_lock_is_released_when_its_block_ends(self, store: StateStore, name: str) -> None:
        with _take(store, name):
            pass
        assert store.holder(name) is None
        with _take(store, name, pid=4343) as granted:
            assert store.holder(name) == granted

    def test_a_lock_is_released_when_its_block_raises(self, store: StateStore) -> None:
        with pytest.raises(RuntimeError), _take(store, "operation"):
            raise RuntimeError("the operation failed")
        assert store.holder("operation") is None
        with _take(store, "operation", pid=4343):
            pass

    def test_shared_locks_are_released_when_their_blocks_end(self, store: StateStore) -> None:
        with _take(store, "staging", shared=True), _take(store, "staging", shared=True, pid=2):
            pass
        assert store.holder("staging") is None
        with _take(store, "staging", pid=4343):
            pass

    def test_a_waiter_gets_the_lock_once_it_is_released(self, store: StateStore) -> None:
        """Another thread waits (up to a minute) while this one holds the lock; it is
        granted only after this one let go."""
        holding = threading.Event()
        seen: list[object] = []

        def wait_for_it() -> None:
            try:
                with _take(store, "operation", pid=4343, timeout=60) as granted:
                    seen.append(holding.is_set() or granted)
            except BaseException as exc:  # reported by the assertion below
                seen.append(exc)

        with _take(store, "operation"):
            holding.set()
            waiter = threading.Thread(target=wait_for_it)
            waiter.start()
            holding.clear()  # from here on the lock is being released
        waiter.join(120)
        assert not waiter.is_alive()
        [got] = seen
        assert isinstance(got, LockOwner) and got.pid == 4343, got

    def test_break_lock_frees_a_held_lock(self, store: StateStore) -> None:
        with _take(store, "operation"):
            store.break_lock("operation")
            assert store.holder("operation") is None
            with _take(store, "operation", pid=4343) as second:
                assert store.holder("operation") == second

    def test_the_release_of_a_broken_lock_does_not_free_the_next_holder(
        self, store: StateStore
    ) -> None:
        broken = _take(store, "operation")
        broken.__enter__()
        store.break_lock("operation")
        with _take(store, "operation", pid=4343) as second:
            broken.__exit__(None, None, None)  # the old holder finishes now
            assert store.holder("operation") == second
            with pytest.raises(LockedError), _take(store, "operation", pid=5454):
                pass  # pragma: no cover

    def test_break_lock_of_a_free_lock_changes_nothing(self, store: StateStore) -> None:
        store.break_lock("operation")
        assert store.holder("operation") is None
        with _take(store, "operation"):
            pass

    # ------------------------------------------------------------------ component locks

    def test_component_locks_of_different_components_are_independent(
        self, store: StateStore
    ) -> None:
        """Two switches of different components, each holding the operation lock shared
        and its component's lock, hold their locks at once."""
        with (
            _take(store, "operation", shared=True),
            _take(store, component_lock("etl")) as etl,
            _take(store, "operation", shared=True, pid=4343),
            _take(store, component_lock("report"), pid=4343) as report,
        ):
            assert store.holder(component_lock("etl")) == etl
            assert store.holder(component_lock("report")) == report
            assert store.holder("operation") is not None

    def test_a_component_lock_excludes_another_switch_of_that_component(
        self, store: StateStore
    ) -> None:
        with (
            _take(store, component_lock("etl")),
            pytest.raises(LockedError) as raised,
            _take(store, component_lock("etl"), pid=4343, timeout=0.05),
        ):
            pass  # pragma: no cover
        message = raised.value.message
        assert "etl" in message and "pid 4242" in message and "\n" not in message, message

    def test_switches_exclude_a_whole_project_operation_and_back(self, store: StateStore) -> None:
        """A switch holds the operation lock shared: gc, recover or approve (exclusive)
        waits for every switch, and a switch waits for them."""
        with (
            _take(store, "operation", shared=True),
            _take(store, component_lock("etl")),
            pytest.raises(LockedError),
            _take(store, "operation", pid=4343),
        ):
            pass  # pragma: no cover
        with (
            _take(store, "operation"),
            pytest.raises(LockedError),
            _take(store, "operation", shared=True, pid=4343),
        ):
            pass  # pragma: no cover

    def test_a_component_lock_is_released_when_its_block_ends(self, store: StateStore) -> None:
        with _take(store, component_lock("etl")):
            pass
        assert store.holder(component_lock("etl")) is None
        with _take(store, component_lock("etl"), pid=4343) as granted:
            assert store.holder(component_lock("etl")) == granted

    def test_breaking_the_operation_lock_breaks_every_component_lock(
        self, store: StateStore
    ) -> None:
        """``lockgate unlock --force`` frees the project: the component locks too, and
        the release of a broken holder frees nothing taken since."""
        broken = _take(store, component_lock("etl"))
        broken.__enter__()
        store.break_lock("operation")
        assert store.holder(component_lock("etl")) is None
        with _take(store, component_lock("etl"), pid=4343) as second:
            broken.__exit__(None, None, None)
            assert store.holder(component_lock("etl")) == second
            with pytest.raises(LockedError), _take(store, component_lock("etl"), pid=5454):
                pass  # pragma: no cover

    # ------------------------------------------------------------------ lock sets

    def test_a_lock_set_excludes_single_holders_of_its_locks_and_back(
        self, store: StateStore
    ) -> None:
        with _take_set(store, SWITCH):
            for name, shared in ((ETL, False), ("operation", False)):
                with pytest.raises(LockedError), _take(store, name, shared=shared, pid=4343):
                    pass  # pragma: no cover
        for name in (ETL, "operation"):  # exclusive single holders exclude the set
            with (
                _take(store, name),
                pytest.raises(LockedError),
                _take_set(store, SWITCH, pid=4343),
            ):
                pass  # pragma: no cover

    def test_a_lock_set_shares_its_shared_locks(self, store: StateStore) -> None:
        """Switches of different components hold ``operation`` shared together, with a
        single shared holder too; a set naming a component held already is refused."""
        report = [("operation", True), (component_lock("report"), False)]
        with (
            _take_set(store, SWITCH),
            _take_set(store, report, pid=4343) as second,
            _take(store, "operation", shared=True, pid=5454),
        ):
            assert store.holder(component_lock("report")) == second
            with pytest.raises(LockedError), _take_set(store, SWITCH, pid=6565):
                pass  # pragma: no cover

    def test_holder_reports_the_owner_of_each_lock_of_a_lock_set(self, store: StateStore) -> None:
        """Each lock names the set's owner (stamped once for all, or once for each, as
        nested ``lock`` calls would: the set yields its last lock's)."""
        with _take_set(store, [("operation", False), ("staging", False)]) as granted:
            assert (granted.pid, granted.host, granted.operation) == (4242, HOST, "held-by-suite")
            assert granted.lease_until is not None and granted.within_lease()
            assert store.holder("staging") == granted
            first = store.holder("operation")
            assert first is not None and first.to_dict().keys() == granted.to_dict().keys()
            assert (first.pid, first.host, first.operation) == (4242, HOST, "held-by-suite")
        with _take_set(store, SWITCH) as granted:
            assert store.holder(ETL) == granted
            assert store.holder("operation") is not None

    def test_a_lock_set_refused_names_the_holder_and_holds_nothing(self, store: StateStore) -> None:
        """Its second lock busy: after the timeout the error names who holds that one,
        and the first, taken meanwhile, is free again."""
        with _take(store, ETL):
            with (
                pytest.raises(LockedError) as raised,
                _take_set(store, [("operation", False), (ETL, False)], pid=4343, timeout=0.05),
            ):
                pass  # pragma: no cover
            message = raised.value.message
            assert "etl" in message and "pid 4242" in message and "\n" not in message, message
            _free(store, "operation")
            with pytest.raises(LockedError), _take_set(store, SWITCH, pid=4343, timeout=0.05):
                pass  # pragma: no cover
            _free(store, "operation")  # the shared one too
        _free(store, "operation", ETL)

    def test_a_lock_set_refused_at_its_first_lock_names_its_holder(self, store: StateStore) -> None:
        with _take(store, "operation"):
            with (
                pytest.raises(LockedError) as raised,
                _take_set(store, SWITCH, pid=4343, timeout=0.05),
            ):
                pass  # pragma: no cover
            assert "pid 4242" in raised.value.message, raised.value.message
            _free(store, ETL)
        _free(store, "operation", ETL)

    def test_a_lock_set_is_released_when_its_block_ends_or_raises(self, store: StateStore) -> None:
        with _take_set(store, SWITCH):
            pass
        _free(store, "operation", ETL)
        with pytest.raises(RuntimeError), _take_set(store, SWITCH):
            raise RuntimeError("the switch failed")
        _free(store, "operation", ETL)

    def test_a_lock_set_never_holds_a_later_lock_while_waiting_for_an_earlier(
        self, store: StateStore
    ) -> None:
        """A holder of ``operation`` exclusive may wait for a component lock while a set
        waits for ``operation``: the set holds nothing while it waits, so neither waits
        on the other in a circle, and the set is granted once both are released."""
        _lock_set(store)
        seen: list[object] = []

        def switch() -> None:
            try:
                with _take_set(store, SWITCH, pid=4343, timeout=60) as granted:
                    seen.append(granted)
            except BaseException as exc:  # reported by the assertion below
                seen.append(exc)

        with _take(store, "operation"):
            waiter = threading.Thread(target=switch)
            waiter.start()
            time.sleep(0.1)  # a chance for the set to be waiting (no assertion on time)
            with _take(store, ETL, timeout=5):
                pass
        waiter.join(120)
        assert not waiter.is_alive()
        [got] = seen
        assert isinstance(got, LockOwner) and got.pid == 4343, got

    def test_breaking_the_operation_lock_frees_a_held_lock_set(self, store: StateStore) -> None:
        """``unlock --force`` frees both locks of a switch's set, and the set's late
        release frees nothing taken since."""
        broken = _take_set(store, SWITCH)
        broken.__enter__()
        store.break_lock("operation")
        assert store.holder("operation") is None and store.holder(ETL) is None
        _free(store, "operation")
        with _take(store, ETL, pid=4343) as second:
            broken.__exit__(None, None, None)
            assert store.holder(ETL) == second
            with pytest.raises(LockedError), _take(store, ETL, pid=5454):
                pass  # pragma: no cover

    def test_a_lock_set_given_reads_answers_them_as_read_under_it(self, store: StateStore) -> None:
        """``reads``: the holder's first batch of reads under the set is answered as the
        reads alone would be then, also after a write of the holder's own (a store that
        read them with its locks must read them again)."""
        offered = _lock_set(store)
        batch = store_read_batch(store)
        if batch is None:
            pytest.skip("the store offers no ReadBatch (optional)")
        reads = [Ask("open_intents"), Ask("pointer", ("staging", "etl"))]
        intent = Intent(id="i-suite", operation="promote", owner="1@host", created_at=AT)
        owner = _owner()
        with offered.lock_set(SWITCH, owner=owner, lease=LEASE, timeout=0, reads=reads):
            assert batch.read_batch(reads) == answer_each(store, reads)
        with offered.lock_set(SWITCH, owner=owner, lease=LEASE, timeout=0, reads=reads):
            store.open_intent(intent)
            answered = batch.read_batch(reads)
            assert answered == answer_each(store, reads)
            assert [i.id for i in answered[0]] == ["i-suite"]
        _free(store, "operation", ETL)
