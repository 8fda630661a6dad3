"""What a switch checks again under its locks, its reads in one round trip when the state
store offers ``ReadBatch`` (lockgate.contracts.read_batch).

Under its locks a switch settles interrupted switches (the open intents), refuses when
the pointer moved since it was planned (its generation) and refuses a revision that is
no longer admissible (the component's status, a rejection that landed while the gates
ran). Those are four reads; a store that offers ``ReadBatch`` answers them in one, and
while the checks run the session's state answers those four questions from it
(:func:`~lockgate.operations.read_memo.read_together`: cleared by any other call, as
when recovery writes). The answers are read under the locks, so they are as fresh as the
reads they stand for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from lockgate.contracts.read_batch import Ask
from lockgate.contracts.state import ComponentRecord, Pointer
from lockgate.core.session import Session
from lockgate.errors import ConflictError
from lockgate.operations.read_memo import read_together
from lockgate.operations.recover import recover_pending

__all__ = ["recheck", "switch_asks"]


class _Planned(Protocol):
    """What a switch planned (a ``SwitchResult``)."""

    @property
    def stage(self) -> str: ...
    @property
    def component_id(self) -> str: ...
    @property
    def revision(self) -> str | None: ...


def recheck(
    session: Session,
    base: _Planned,
    component: str,
    expected_generation: int,
    action: str,
    admissible: Callable[[], None],
) -> tuple[ComponentRecord, Pointer | None] | None:
    """Under the switch's locks: settle interrupted switches, refuse when the pointer
    moved since planning (``ConflictError``) or when ``admissible`` refuses; the
    component's record and its pointer as read here, under the locks (what the switch's
    record is decided from; None when the component has no record)."""
    asks = switch_asks(base.stage, base.component_id, component, base.revision)
    with read_together(session, asks):
        recover_pending(session, locked=True)
        record = session.state().component(component)
        pointer = session.state().pointer(base.stage, base.component_id)
        generation = pointer.generation if pointer else 0
        if generation != expected_generation:
            raise ConflictError(
                f"{base.stage}/{base.component_id} changed while this {action} was being "
                f"planned (generation {generation}, expected {expected_generation}): "
                "another change won; look again and retry"
            )
        # What the gates saw may be stale: a rejection can have landed while they ran.
        admissible()
    return None if record is None else (record, pointer)


def switch_asks(stage: str, component_id: str, component: str, revision: str | None) -> list[Ask]:
    """The reads of :func:`recheck`, as its checks ask them: the open intents, the
    pointer, the component and the approvals of ``revision``."""
    asks = [
        Ask("open_intents"),
        Ask("pointer", (stage, component_id)),
        Ask("component", (component,)),
    ]
    if revision is not None:
        asks.append(Ask("approvals", (component, revision)))
    return asks
