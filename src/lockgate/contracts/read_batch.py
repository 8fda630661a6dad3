"""Optional capability of a state store: several reads answered in one call.

A switch reads the state store a dozen times: planning asks for the component, its
revisions, the pointers, the approvals, the audit events its rules weigh; under its
locks it asks again for what must be fresh; its record re-reads the component and the
pointer. On an embedded store each read costs microseconds; on a database server each
is a statement, a round trip and a fixed cost on both sides, whatever it reads. A store
that offers :class:`ReadBatch` answers a list of reads (:class:`Ask`) at once, and the
kernel asks, at each point where it knows what it will read next, for all of it together
(``lockgate.operations.read_memo.read_together``); the answers then stand for those
reads until the kernel calls the store for anything else. A store without it costs only
that: the kernel reads one by one, as it always did.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from lockgate.contracts.records import record

__all__ = ["BATCHABLE", "Ask", "ReadBatch", "answer_each", "store_read_batch"]

BATCHABLE = frozenset(
    {
        "approvals",
        "component",
        "components",
        "components_by_id",
        "events",
        "live_at",
        "lineage",
        "live_revisions",
        "open_intents",
        "pointer",
        "pointer_history",
        "pointers",
        "revisions",
        "revisions_starting",
        "validation_results",
    }
)
"""The reads an :class:`Ask` may name: the state store's reads (``StateStore``, and the
``ComponentsById``, ``LiveRevisions``, ``RevisionLineage`` and ``ValidationResults``
capabilities) whose answers depend only on their arguments and the store's contents."""


@record
class Ask:
    """One read: the store's method ``name`` (one of :data:`BATCHABLE`) with ``args``,
    positional and hashable, as the kernel passes them."""

    name: str
    args: tuple[Any, ...] = ()

    def __attrs_post_init__(self) -> None:
        if self.name not in BATCHABLE:
            raise ValueError(f"{self.name!r} is not a read a batch may ask for")


class ReadBatch(Protocol):
    """``read_batch(asks)`` answers each ask as its own read would (:func:`answer_each`
    is the reference), all as they stand at one moment, or each as fresh as its own read:
    whoever asks reads again what it must not take from an earlier moment."""

    def read_batch(self, asks: Sequence[Ask]) -> list[Any]:
        """The answers, in the order of ``asks``."""


def answer_each(store: object, asks: Sequence[Ask]) -> list[Any]:
    """What :meth:`ReadBatch.read_batch` must answer: each ask read on its own."""
    return [getattr(store, ask.name)(*ask.args) for ask in asks]


def store_read_batch(store: object) -> ReadBatch | None:
    """``store`` when it offers :class:`ReadBatch`, else None."""
    offers = callable(getattr(store, "read_batch", None))
    return store if offers else None  # type: ignore[return-value]
