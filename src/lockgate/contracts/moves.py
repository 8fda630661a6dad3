"""Optional capability of a state store: a pointer move recorded with the audit events
that come before its own, in one transaction.

A promotion's gate appends a ``validate`` event, then the switch records the move (the
pointer, the status, the history and its own event). A store that offers
:class:`MoveWithEvents` records both at once: one durable commit and one hold of the
audit chain's head instead of two, which on a server shared by many runners is the row
they all queue on. A store without it costs only that: the kernel appends the events
first, then moves the pointer, as before.

The move can also carry the statuses its status may be set from (``status_from``, the
sources of its action in the status machine): the store then sets the component's status
only if it is one of those at the move, in the move's transaction. So a caller that read
the component under its locks need not read it again just before the move to decide the
status: the store decides it from the status it finds (a rejection that landed meanwhile
stays; the move stands).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from lockgate.contracts.models import ComponentStatus
from lockgate.contracts.state import AuditEvent, Pointer, PointerChange

__all__ = ["MoveWithEvents", "store_move_with_events"]


class MoveWithEvents(Protocol):
    """``move_pointer_after(before, change, …)`` is ``move_pointer(change, …)`` with the
    events of ``before`` appended to the audit log first, in order, all in the same
    transaction: all or nothing (a ``ConflictError`` from the compare-and-swap appends
    none of them)."""

    def move_pointer_after(
        self,
        before: Sequence[AuditEvent],
        change: PointerChange,
        *,
        expected_generation: int,
        status: ComponentStatus | None,
        event: AuditEvent,
        status_from: Collection[ComponentStatus] | None = None,
    ) -> Pointer:
        """Append ``before``, then move the pointer as ``move_pointer`` does. With
        ``status_from``, ``status`` is set only if the component's status is one of
        ``status_from`` at the move (else it is left as it is, and the rest is recorded
        all the same)."""


def store_move_with_events(store: object) -> MoveWithEvents | None:
    """``store`` when it offers :class:`MoveWithEvents`, else None."""
    offers = callable(getattr(store, "move_pointer_after", None))
    return store if offers else None  # type: ignore[return-value]
