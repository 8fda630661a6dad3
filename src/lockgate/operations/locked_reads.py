"""What a switch checks again under its locks, its reads in one round trip when the state
store offers them together (``SwitchReads``, lockgate.contracts.switch_reads).

Under its locks a switch settles interrupted switches (the open intents), refuses when
the pointer moved since it was planned (its generation) and refuses a revision that is
no longer admissible (the component's status, a rejection that landed while the gates
ran). Those are four reads; a store that offers ``SwitchReads`` answers them in one,
and while the checks run the session's state answers those four questions from it
(a :class:`~lockgate.operations.read_memo.ReadMemo` given the answers, cleared by any
other call, as when recovery writes). The answers are read under the locks, so they are
as fresh as the reads they stand for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol, cast

from lockgate.contracts.state import StateStore
from lockgate.contracts.switch_reads import store_switch_reads
from lockgate.core.session import Session
from lockgate.errors import ConflictError
from lockgate.operations.read_memo import READS, ReadMemo
from lockgate.operations.recover import recover_pending

__all__ = ["fresh_reads", "recheck"]


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
) -> int:
    """Under the switch's locks: settle interrupted switches, refuse when the pointer
    moved since planning (``ConflictError``) or when ``admissible`` refuses; the
    generation the switch moves the pointer from."""
    with fresh_reads(session, base.stage, base.component_id, component, base.revision):
        recover_pending(session, locked=True)
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
    return generation


@contextlib.contextmanager
def fresh_reads(
    session: Session, stage: str, component_id: str, component: str, revision: str | None
) -> Iterator[None]:
    """Read the open intents, the pointer, the component and the revision's approvals at
    once when the store can, and answer them (asked as the kernel asks them) from that
    until the block ends; without the capability, or under a memo already, nothing."""
    state = session.project.state()
    reads = store_switch_reads(state)
    if reads is None or session.memo is not None:
        yield
        return
    view = reads.switch_reads(stage, component_id, component, revision)
    answers: dict[Any, Any] = {
        ("open_intents", (), ()): view.open_intents,
        ("pointer", (stage, component_id), ()): view.pointer,
        ("component", (component,), ()): view.component,
    }
    if revision is not None:
        answers[("approvals", (component, revision), ())] = view.approvals
    session.memo = cast(StateStore, ReadMemo(state, answers, READS | {"open_intents"}))
    try:
        yield
    finally:
        session.memo = None
