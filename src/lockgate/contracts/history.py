"""Optional capability of a state store: which revisions of a component were ever live.

Who counts as an author of a revision (:func:`lockgate.operations.approve.authors`)
walks its ancestry back to the last revision of the component that went live in one of
the project's stages. Answered from :meth:`StateStore.pointer_history`, that reads every
move of the component in every stage, a history that grows with every switch; a store
that offers :class:`LiveRevisions` answers the same question with one bounded query
(``SELECT DISTINCT revision`` over its pointer history, through the index by stage and
component id) and returns only the distinct revisions. A store without it costs only
that: the kernel reads the whole history, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["LiveRevisions", "store_live_revisions"]


class LiveRevisions(Protocol):
    """``live_revisions(component, stages)``: every revision that a pointer of one of
    ``stages`` (None: of any stage) ever named for ``component`` (its ``ref``, as the
    pointer history records it), removals (no revision) left out: the set of the
    ``revision`` of each of its :meth:`~StateStore.pointer_history` entries."""

    def live_revisions(self, component: str, stages: Sequence[str] | None = None) -> frozenset[str]:
        """The revisions of ``component`` ever live in ``stages`` (None: any stage)."""


def store_live_revisions(store: object) -> LiveRevisions | None:
    """``store`` when it offers :class:`LiveRevisions`, else None."""
    offers = callable(getattr(store, "live_revisions", None))
    return store if offers else None  # type: ignore[return-value]
