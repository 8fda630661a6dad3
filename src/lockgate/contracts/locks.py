"""The records of the lock contract every state store provides (``StateStore.lock``).

The kernel holds named locks, and asks the state store for them, so a store that many
hosts share (a database) can coordinate them with its own locks:

``operation``
    the project-wide operation lock. Operations that change the project as a whole or
    decide on a revision (recover, approve, reject, remove, gc, state migrate, unlock)
    hold it *exclusive* for their whole duration. A promote or rollback holds it
    *shared*, together with the component lock of the component it switches, so
    switches of different components run side by side while a whole-project operation
    still excludes them all.
``operation/<component id>`` (:func:`component_lock`)
    a component lock: exclusive, held (under ``operation`` shared) by the switch of that
    component, and by a pipeline run for each of its members, taken in sorted order so
    two runs never wait on each other in a circle. It is also how recovery tells a live
    holder's open intent from a dead one's: an intent whose component lock can be taken
    (without waiting) belongs to a process that died. :meth:`StateStore.break_lock` of
    ``operation`` breaks every component lock too.
``staging``
    each staging holds it *shared* from its first look at the stored objects until its
    revision is recorded, and ``gc`` holds it *exclusive* while it decides what to remove
    and removes it: gc never takes an object a staging is about to record a revision
    with, and stagings still run side by side.

A holder is a :class:`LockOwner`: the process (pid, host), the operation, since when, and
its lease — how long it is presumed working. A lease is not a timeout: a holder past its
lease keeps its lock and is reported; ``lockgate unlock --force`` breaks it (and a holder
that is alive and within its lease only with ``--force`` twice). A dead holder never
blocks: the store must release a lock when its holder dies (``flock`` and database
advisory locks are released with the process or the session).
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from typing import Any

from lockgate.contracts.clock import now_iso
from lockgate.contracts.records import record
from lockgate.errors import LockedError

__all__ = [
    "COMPONENT_LOCK_PREFIX",
    "LOCK_NAMES",
    "LockOwner",
    "component_lock",
    "hostname",
    "locked_error",
    "locks_for",
    "parent_lock",
]

LOCK_NAMES = ("operation", "staging")
"""The project-wide locks the kernel asks a state store for (besides component locks)."""

COMPONENT_LOCK_PREFIX = "operation/"
"""What every component lock's name starts with (see :func:`component_lock`)."""


def component_lock(component_id: str) -> str:
    """The name of the component lock of ``component_id`` (a checked component id)."""
    return COMPONENT_LOCK_PREFIX + component_id


def locks_for(
    name: str, shared: bool, components: Collection[str] | None
) -> list[tuple[str, bool]]:
    """The locks to take, in order, as (name, shared): lock ``name`` alone; or, for a
    switch of ``components`` (component ids), ``operation`` shared and then each
    component lock, exclusive, in sorted order, so that two holders of several never wait
    on each other in a circle."""
    if components is None:
        return [(name, shared)]
    return [("operation", True)] + [(component_lock(c), False) for c in sorted(set(components))]


def parent_lock(name: str) -> str:
    """The project-wide lock ``name`` belongs to: ``operation`` for a component lock,
    else ``name`` itself (breaking the parent breaks its component locks)."""
    return name.split("/", 1)[0]


def hostname() -> str:
    """This host's name, as locks and intents record it (``uname -n``, what
    ``socket.gethostname()`` returns, without importing ``socket`` at start-up)."""
    return os.uname().nodename


@record
class LockOwner:
    """Who holds a lock: a process (``pid`` on ``host``) running ``operation``, holding it
    ``since`` (ISO time) and presumed working until ``lease_until`` (seconds since the
    epoch). The store stamps ``since`` and ``lease_until`` when it grants the lock (see
    :meth:`stamped`). A field the store does not know is None: a holder that has not
    written its owner yet, or holders of a shared lock the store cannot name.
    """

    pid: int | None = None
    host: str | None = None
    operation: str | None = None
    since: str | None = None
    lease_until: float | None = None

    @classmethod
    def current(cls, operation: str) -> LockOwner:
        """This process, about to run ``operation`` (not stamped yet)."""
        return cls(pid=os.getpid(), host=hostname(), operation=operation)

    def stamped(self, lease: float) -> LockOwner:
        """This owner as granted now: ``since`` now, ``lease_until`` ``lease`` s from now."""
        return LockOwner(
            pid=self.pid,
            host=self.host,
            operation=self.operation,
            since=now_iso(),
            lease_until=time.time() + lease,
        )

    @property
    def known(self) -> bool:
        """Whether the store knows which process this is."""
        return self.pid is not None

    def describe(self) -> str:
        """``pid 123 on host (promote since 2026-…)``, or what is known."""
        if not self.known:
            return "a process that has not written its owner yet"
        return f"pid {self.pid} on {self.host} ({self.operation} since {self.since})"

    def past_lease(self) -> bool:
        """Whether its lease has ended (an unknown lease has not)."""
        return self.lease_until is not None and self.lease_until < time.time()

    def within_lease(self) -> bool:
        """Whether the holder should be presumed working: its lease has not ended and, on
        this host, its process exists. An unknown owner counts as within its lease."""
        if self.past_lease():
            return False
        if self.host == hostname() and self.pid is not None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
        return True

    def to_dict(self) -> dict[str, Any]:
        """The known fields (what a lock file and the ``unlock`` audit event hold)."""
        fields = {
            "pid": self.pid,
            "host": self.host,
            "operation": self.operation,
            "since": self.since,
            "lease_until": self.lease_until,
        }
        return {k: v for k, v in fields.items() if v is not None}

    @classmethod
    def from_dict(cls, data: object) -> LockOwner:
        """An owner from what :meth:`to_dict` wrote; a field of the wrong type is unknown
        (a lock file is read from disk, whatever is in it)."""
        data = data if isinstance(data, dict) else {}

        def typed(key: str, kind: type | tuple[type, ...]) -> Any:
            value = data.get(key)
            return value if isinstance(value, kind) and not isinstance(value, bool) else None

        return cls(
            pid=typed("pid", int),
            host=typed("host", str),
            operation=typed("operation", str),
            since=typed("since", str),
            lease_until=typed("lease_until", (int, float)),
        )


def locked_error(
    name: str, holder: LockOwner | None, *, shared: bool, waited: float, where: str
) -> LockedError:
    """The error a store raises when lock ``name`` stayed held for ``waited`` seconds.

    ``holder`` is who holds it (None or not :attr:`~LockOwner.known` when the store cannot
    tell), ``shared`` whether the waiter wanted it shared, ``where`` what the store calls
    the lock (a file, a table). Every store says the same thing, naming the holder.
    """
    if name == "staging":
        by = ""
        if holder is not None and holder.known:
            by = f"pid {holder.pid} on {holder.host} since {holder.since}, "
        if shared:  # a staging waits for an exclusive holder: garbage collection
            return LockedError(
                f"garbage collection holds {where} ({by}waited {waited:g} s); "
                "stage again when it finishes"
            )
        return LockedError(
            f"a staging in progress holds {where} ({by}waited {waited:g} s); "
            "run gc again when it finishes"
        )
    if holder is None or not holder.known:
        return LockedError(
            f"another lockgate operation holds {where} (waited {waited:g} s); "
            "retry when it finishes"
        )
    if name.startswith(COMPONENT_LOCK_PREFIX):
        component = name.removeprefix(COMPONENT_LOCK_PREFIX)
        return LockedError(
            f"component {component} is being switched by {holder.describe()}"
            + (", past its lease" if holder.past_lease() else "")
            + f" (waited {waited:g} s); retry when it finishes"
        )
    if holder.past_lease():
        return LockedError(
            f"the project is locked by {holder.describe()}, past its lease: if that "
            "process is hung, run 'lockgate unlock --force --reason TEXT'"
        )
    return LockedError(f"the project is locked by {holder.describe()}; retry when it finishes")
