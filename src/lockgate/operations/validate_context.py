"""The state reads behind a validation run's contexts: the batch's own records, and the
views of the rest of the project (``staged``, ``current``) that read only what a
validator asks about (:mod:`lockgate.contracts.peers`).

Validators run in threads of their own (:mod:`lockgate.operations.validate_pool`), so
the views read through :class:`ContextReads`, one read at a time under its lock, and
only until the run closes it: a validator abandoned at its deadline, or one that kept the
context, must not read the state store while the operation goes on to write it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from lockgate.contracts.models import PeerComponent
from lockgate.contracts.peers import StagedPeers, StagePointers, components_by_id
from lockgate.contracts.read_batch import Ask
from lockgate.contracts.state import ComponentRecord
from lockgate.core.session import Session
from lockgate.errors import LockgateError
from lockgate.operations.read_memo import ask_together, component_records, read_together

__all__ = ["ContextReads", "staged_peers"]

_T = TypeVar("_T")


def staged_peers(records: Iterable[ComponentRecord]) -> tuple[PeerComponent, ...]:
    """Each of ``records`` with a staged revision, as a validator's context shows it."""
    return tuple(
        PeerComponent(
            component=r.component,
            component_id=r.component_id,
            component_type=r.component_type,
            revision=r.latest_revision,
            status=r.status.value,
        )
        for r in records
        if r.latest_revision is not None
    )


class ContextReads:
    """One validation run's reads of the state store, for the kernel and for the views
    its validators' contexts hold; :meth:`close` ends the views' reads."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._lock = threading.Lock()
        self._open = True
        self._staged: StagedPeers | None = None
        self._current: dict[str, StagePointers] = {}
        self._every: list[ComponentRecord] | None = None

    def close(self) -> None:
        """No view reads again (one reading now finishes first)."""
        with self._lock:
            self._open = False

    def records(self, refs: Sequence[str]) -> dict[str, ComponentRecord]:
        """The records of ``refs`` the store has: read together, or for many refs taken
        from one read of every component, which the ``staged`` view then answers from."""
        return component_records(self.session, refs, self._every_component)

    def _every_component(self) -> list[ComponentRecord]:
        if self._every is None:
            self._every = self.session.state().components()
        return self._every

    def read_whole(self, stages: Iterable[str]) -> None:
        """Read every component, and the every pointer of ``stages``, now: for a batch
        so large (the whole project validated) that asking id by id would cost more."""
        len(self.staged())
        for stage in stages:
            len(self.current(stage))

    def staged(self) -> StagedPeers:
        """Every component's latest revision, read as asked (one view for the run)."""
        if self._staged is None:
            self._staged = StagedPeers(
                lambda: self._guarded(self._every_peer), lambda ids: self._guarded(self._peers, ids)
            )
        return self._staged

    def current(self, stage: str) -> StagePointers:
        """What ``stage`` holds, read as asked (one view per stage for the run)."""
        if stage not in self._current:
            self._current[stage] = StagePointers(
                lambda: self._guarded(self._every_pointer, stage),
                lambda ids: self._guarded(self._pointers, stage, ids),
            )
        return self._current[stage]

    def _guarded(self, read: Callable[..., _T], *args: object) -> _T:
        with self._lock:
            if not self._open:
                raise LockgateError(
                    "a validator's context reads the project only while on_validate runs; "
                    "read what it needs before returning"
                )
            return read(*args)

    def _every_peer(self) -> tuple[PeerComponent, ...]:
        return staged_peers(self._every_component())

    def _peers(self, component_ids: tuple[str, ...]) -> tuple[PeerComponent, ...]:
        return staged_peers(components_by_id(self.session.state(), component_ids))

    def _every_pointer(self, stage: str) -> Mapping[str, str]:
        pointers = self.session.state().pointers(stage)
        return {p.component_id: p.revision for p in pointers if p.revision}

    def _pointers(self, stage: str, component_ids: tuple[str, ...]) -> Mapping[str, str]:
        asks = [Ask("pointer", (stage, i)) for i in component_ids]
        ask_together(self.session, asks)
        with read_together(self.session, asks):
            state = self.session.state()
            found = {i: state.pointer(stage, i) for i in component_ids}
        return {i: p.revision for i, p in found.items() if p is not None and p.revision}
