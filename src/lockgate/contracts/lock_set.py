"""Optional capability of a state store: several locks taken in one call.

A promote or rollback holds two locks, ``operation`` shared and its component's lock
exclusive (:func:`~lockgate.contracts.locks.locks_for`). Taken one by one, as
``StateStore.lock`` takes them, each is its own round trip to a server, its own release
and, on a store whose locks live in database sessions, its own connection. A store that
offers :class:`LockSet` takes them all at once; the kernel (``Session.lock``) then asks
for every lock a switch still has to take in one call. A store without it costs only
that: the kernel takes them one by one, nested, as before.

The capability promises what the nested ``lock`` calls promise, nothing less: the same
exclusion against holders of single locks and of other sets, the same ``holder()``
answers, one ``timeout`` for the whole set, the ``LockedError`` of
:func:`~lockgate.contracts.locks.locked_error` naming the holder of the lock it could
not get, and the order: a later lock is never held while an earlier one is waited for,
so two holders of overlapping sets never wait on each other in a circle.

A switch's first reads under its locks (``reads``, the asks of one ``ReadBatch`` call)
can go with the locks: a store that offers ``ReadBatch`` too may read them in the round
trip that takes the locks, once they are granted, and answer the holder's next
``read_batch`` of exactly those asks from what it read. They are then as fresh as a read
made after the locks were granted, which is what they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from lockgate.contracts.locks import LockOwner
from lockgate.contracts.read_batch import Ask

__all__ = ["LockSet", "store_lock_set"]


class LockSet(Protocol):
    """``lock_set(locks, …)`` holds several named locks for one ``with`` block."""

    def lock_set(
        self,
        locks: Sequence[tuple[str, bool]],
        *,
        owner: LockOwner,
        lease: float,
        timeout: float,
        reads: Sequence[Ask] = (),
    ) -> AbstractContextManager[LockOwner]:
        """Hold every lock of ``locks``, each ``(name, shared)``, as if each were taken
        with ``lock(name, owner=…, lease=…, timeout=…, shared=shared)`` in the order
        given, nested: the same exclusion and ``holder()`` answers while held; waiting
        up to ``timeout`` seconds in all, then ``LockedError`` (``locked_error``) naming
        the holder of the lock it could not get, holding none of them; never holding a
        later lock while waiting for an earlier one. All are released when the block
        ends or raises, and when the holder dies. Yields ``owner`` as granted (``since``
        now, ``lease_until`` ``lease`` seconds from now). ``reads``: the asks of the
        holder's first ``read_batch`` under the locks (given only to a store that offers
        ``ReadBatch``; a store may ignore them, or read them once the locks are granted
        and answer that call from it)."""


def store_lock_set(store: object) -> LockSet | None:
    """``store`` when it offers :class:`LockSet`, else None."""
    offers = callable(getattr(store, "lock_set", None))
    return store if offers else None  # type: ignore[return-value]
