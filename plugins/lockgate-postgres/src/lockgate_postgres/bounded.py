"""The ``postgres`` store's bounded reads: what every gate asks, answered through indexes
without reading what grows with the project or with the component's history
(``ComponentsById``, ``LiveRevisions``, ``RevisionLineage``; the queries are in
:mod:`lockgate_postgres.reads`, so that a batch asks them too). Mixed into
:class:`~lockgate_postgres.state.PostgresStateStore`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lockgate.plugin import ComponentRecord, LineageStep, RevisionRecord
from lockgate_postgres import reads

__all__ = ["BoundedReads"]


class BoundedReads:
    """The bounded reads over ``self._read`` (the store's: one query, its answer)."""

    def _read(self, query: reads.Query) -> Any:
        raise NotImplementedError  # provided by the store

    def components_by_id(self, component_ids: tuple[str, ...]) -> list[ComponentRecord]:
        """``ComponentsById``: through ``components_by_id`` (schema version 8)."""
        return self._read(reads.components_by_id(component_ids))  # type: ignore[no-any-return]

    def live_revisions(self, component: str, stages: Sequence[str] | None = None) -> frozenset[str]:
        """``LiveRevisions``: the distinct revisions, a skip scan of an index (reads.py)."""
        return self._read(reads.live_revisions(component, stages))  # type: ignore[no-any-return]

    def revisions_starting(self, component: str, prefix: str, limit: int) -> list[RevisionRecord]:
        """``RevisionLineage``: a revision by its id or a prefix of it (reads.py)."""
        found = self._read(reads.revisions_starting(component, prefix, limit))
        return found  # type: ignore[no-any-return]

    def lineage(
        self, component: str, revision: str, stages: Sequence[str] | None = None
    ) -> list[LineageStep]:
        """``RevisionLineage``: one recursive query (reads.py)."""
        return self._read(reads.lineage(component, revision, stages))  # type: ignore[no-any-return]
