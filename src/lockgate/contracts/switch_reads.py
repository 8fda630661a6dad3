"""Optional capability of a state store: what a switch reads again under its locks, in
one round trip.

Under its locks a switch reads again what it must not take from planning: the open
intents (an interrupted switch is settled first), the pointer (whose generation it
compares and swaps), the component (its status) and the approvals of the revision it
moves to (a rejection that landed while the gates ran). On an embedded store these are
four reads of microseconds; on a server they are four statements and four round trips.
A store that offers :class:`SwitchReads` answers all four at once; the kernel then
answers those four questions from that answer until its checks are done
(``lockgate.operations.locked_reads``). A store without it costs only that: the kernel
reads them one by one, as before.
"""

from __future__ import annotations

from typing import Protocol

from lockgate.contracts.records import record
from lockgate.contracts.state import Approval, ComponentRecord, Intent, Pointer

__all__ = ["SwitchReads", "SwitchView", "store_switch_reads"]


@record
class SwitchView:
    """The four answers, each what its own read returns: ``open_intents()``,
    ``pointer(stage, component_id)``, ``component(component)`` and ``approvals(component,
    revision)`` (empty when ``revision`` is None)."""

    open_intents: list[Intent]
    pointer: Pointer | None
    component: ComponentRecord | None
    approvals: list[Approval]


class SwitchReads(Protocol):
    """``switch_reads(…)`` answers four reads at once, as they stand at one moment (or
    each as fresh as its own read would be: a switch asks under its locks)."""

    def switch_reads(
        self, stage: str, component_id: str, component: str, revision: str | None
    ) -> SwitchView:
        """The open intents, the pointer of ``component_id`` in ``stage``, the record of
        ``component`` and the approvals of its ``revision``."""


def store_switch_reads(store: object) -> SwitchReads | None:
    """``store`` when it offers :class:`SwitchReads`, else None."""
    offers = callable(getattr(store, "switch_reads", None))
    return store if offers else None  # type: ignore[return-value]
