"""Optional capability of a state store: a pointer move recorded with the audit events
that come before its own, in one transaction.

A promotion's gate appends a ``validate`` event, then the switch records the move (the
pointer, the status, the history and its own event). A store that offers
:class:`MoveWithEvents` records both at once: one durable commit and one hold of the
audit chain's head instead of two, which on a server shared by many runners is the row
they all queue on. A store without it costs only that: the kernel appends the events
first, then moves the pointer, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    ) -> Pointer:
        """Append ``before``, then move the pointer as ``move_pointer`` does."""


def store_move_with_events(store: object) -> MoveWithEvents | None:
    """``store`` when it offers :class:`MoveWithEvents`, else None."""
    offers = callable(getattr(store, "move_pointer_after", None))
    return store if offers else None  # type: ignore[return-value]
