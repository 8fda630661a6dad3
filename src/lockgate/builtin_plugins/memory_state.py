"""Builtin plugin ``memory``: a state store held in memory (``state.store: memory``).

It keeps the same contract as ``sqlite`` — the conformance tests run against both — and
serves tests and throwaway runs; nothing survives the process.
"""

from __future__ import annotations

import threading
from typing import Any

import attrs

from lockgate.builtin_plugins.sqlite_state import GENESIS, event_hash
from lockgate.core.contracts import AuditEvent, ComponentRecord, RevisionRecord
from lockgate.hookspecs import hookimpl

__all__ = ["MemoryStateStore"]


@hookimpl
def register_state_stores(register: Any) -> None:
    register("memory", lambda ctx: MemoryStateStore())


class MemoryStateStore:
    """The state store in process memory, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._components: dict[str, ComponentRecord] = {}
        self._revisions: dict[str, list[RevisionRecord]] = {}
        self._events: list[tuple[AuditEvent, str]] = []

    def component(self, ref: str) -> ComponentRecord | None:
        return self._components.get(ref)

    def components(self, workspace: str | None = None) -> list[ComponentRecord]:
        return [
            c
            for _, c in sorted(self._components.items())
            if workspace is None or c.workspace == workspace
        ]

    def revisions(self, ref: str) -> list[RevisionRecord]:
        return list(self._revisions.get(ref, ()))

    def events(self, component: str | None = None) -> list[AuditEvent]:
        return [e for e, _ in self._events if component is None or e.component == component]

    def record_revision(
        self, revision: RevisionRecord, component: ComponentRecord, event: AuditEvent
    ) -> None:
        with self._lock:
            self._components[component.component] = component
            known = self._revisions.setdefault(revision.component, [])
            if all(r.revision != revision.revision for r in known):
                known.append(revision)
            prev = self._events[-1][1] if self._events else GENESIS
            stored = attrs.evolve(event, seq=len(self._events) + 1)
            self._events.append((stored, event_hash(prev, stored)))

    def close(self) -> None:
        pass
