"""Optional capabilities of a state store: which revisions of a component were ever
live, and a revision's lineage.

Who counts as an author of a revision (:func:`lockgate.operations.approve.authors`)
walks its ancestry back to the last revision of the component that went live in one of
the project's stages. Answered from :meth:`StateStore.pointer_history`, that reads every
move of the component in every stage, a history that grows with every switch; a store
that offers :class:`LiveRevisions` answers the same question with one bounded query
(``SELECT DISTINCT revision`` over its pointer history, through the index by stage and
component id) and returns only the distinct revisions. A store without it costs only
that: the kernel reads the whole history, as before.

The walk itself reads who staged each revision and each revision's parent: answered
from :meth:`StateStore.events` and :meth:`StateStore.revisions`, that is every staging of
the component, a history that grows with every save a watcher stages. A store that
offers :class:`RevisionLineage` answers it with one query bounded by the walk, and finds
a revision by its id (or a prefix of it) without reading the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from lockgate.contracts.records import record
from lockgate.contracts.state import EventFilter, RevisionRecord

if TYPE_CHECKING:
    from lockgate.contracts.state import StateStore

__all__ = [
    "LineageStep",
    "LiveRevisions",
    "RevisionLineage",
    "lineage_of",
    "live_revisions",
    "ordered_lineage",
    "store_lineage",
    "store_live_revisions",
    "walk_lineage",
]


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


def live_revisions(
    state: StateStore, component: str, stages: tuple[str, ...] | None
) -> frozenset[str]:
    """The revisions of ``component`` ever live in one of ``stages`` (None: any): one
    bounded query where the store offers ``LiveRevisions``, else its whole pointer
    history read and filtered here (the same answer)."""
    reads = store_live_revisions(state)
    if reads is not None:
        return reads.live_revisions(component, stages)
    component_id = component.split(":", 1)[-1]
    changes = state.pointer_history(component_id=component_id)  # one read, every stage
    ladder = None if stages is None else set(stages)
    return frozenset(
        c.revision
        for c in changes
        if c.revision and c.component == component and (ladder is None or c.stage in ladder)
    )


@record
class LineageStep:
    """One revision of a lineage (:class:`RevisionLineage`): its id, its record (None:
    the store has none), and who staged it, each ``stage`` event's actor in order."""

    revision: str
    record: RevisionRecord | None
    stagers: tuple[str, ...] = ()


class RevisionLineage(Protocol):
    """What deciding a revision's authors and resolving a revision id read, bounded by
    what they are about rather than by how often the component was staged.

    ``revisions_starting(component, prefix, limit)``: the revisions of ``component``
    whose id starts with ``prefix``, in id order, at most ``limit`` of them: what
    ``sorted((r for r in revisions(component) if r.revision.startswith(prefix)),
    key=revision)[:limit]`` returns.

    ``lineage(component, revision, stages)``: the revisions that
    :func:`lockgate.operations.approve.authors` walks, in order: ``revision`` itself,
    then its parent, and so on, ending with the first revision that the store has no
    record of, whose parent is None, or whose parent was ever live in one of ``stages``
    (None: any stage; as :class:`LiveRevisions` answers), or before one already listed;
    each with its record and its stagers (:class:`LineageStep`).
    :func:`walk_lineage` is the reference, read from the store's other reads.
    """

    def revisions_starting(self, component: str, prefix: str, limit: int) -> list[RevisionRecord]:
        """At most ``limit`` revisions of ``component`` whose id starts with ``prefix``."""

    def lineage(
        self, component: str, revision: str, stages: Sequence[str] | None = None
    ) -> list[LineageStep]:
        """``revision`` and its ancestors back to the last one live in ``stages``."""


def store_lineage(store: object) -> RevisionLineage | None:
    """``store`` when it offers :class:`RevisionLineage`, else None."""
    offers = callable(getattr(store, "lineage", None))
    return store if offers else None  # type: ignore[return-value]


def lineage_of(
    state: StateStore, component: str, revision: str, stages: Sequence[str] | None
) -> list[LineageStep]:
    """:meth:`RevisionLineage.lineage` where ``state`` offers it, else :func:`walk_lineage`."""
    found = store_lineage(state)
    if found is not None:
        return found.lineage(component, revision, None if stages is None else tuple(stages))
    return walk_lineage(state, component, revision, stages)


def walk_lineage(
    state: StateStore, component: str, revision: str, stages: Sequence[str] | None
) -> list[LineageStep]:
    """The lineage read from every revision and every ``stage`` event of ``component``
    and the revisions ever live: what :meth:`RevisionLineage.lineage` must answer."""
    stagers: dict[str, list[str]] = {}
    for event in state.events(EventFilter(component=component, action="stage")):
        if event.revision:
            stagers.setdefault(event.revision, []).append(event.actor)
    records = {r.revision: r for r in state.revisions(component)}
    live = live_revisions(state, component, None if stages is None else tuple(stages))
    steps: list[LineageStep] = []
    seen: set[str] = set()
    current: str | None = revision
    while current is not None and current not in seen:
        seen.add(current)
        record = records.get(current)
        steps.append(LineageStep(current, record, tuple(stagers.get(current, ()))))
        if record is None or record.parent is None or record.parent in live:
            break
        current = record.parent
    return steps


def ordered_lineage(
    revision: str, reached: Mapping[str, tuple[RevisionRecord | None, Sequence[str]]]
) -> list[LineageStep]:
    """The lineage from ``revision`` through ``reached`` (each revision a store's query
    reached, with its record and stagers: ``revision`` and every ancestor whose child's
    walk went on to it), parent after parent: for a store that walks in one query and
    gets the steps back in no particular order. A parent not reached was live."""
    steps: list[LineageStep] = []
    seen: set[str] = set()
    current: str | None = revision
    while current is not None and current in reached and current not in seen:
        seen.add(current)
        record, stagers = reached[current]
        steps.append(LineageStep(current, record, tuple(stagers)))
        current = None if record is None else record.parent
    return steps
