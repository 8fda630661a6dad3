"""A read memo over the state store for one planning pass of a switch.

Planning a promotion asks the state store the same questions several times: the gate's
context, the approval rules and the admissibility check each read the component, its
revisions, its approvals, the stage pointers and the pointer history. On an embedded
store each read costs microseconds; on a server each is a round trip. While a
:class:`ReadMemo` is installed (:func:`memo`), a read answered once is answered again
from memory, until any other call (a write, a lock) clears it; the memo ends before the
switch takes its locks.

A stale answer cannot lose an update: everything a switch decides is read again under
its locks (the pointer, whose generation the record compares and swaps, the component's
status, the rejections), so a change that landed during planning makes the switch
refuse (``ConflictError``), as it would have without the memo.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, cast

from lockgate.contracts.state import StateStore
from lockgate.core.session import Session

__all__ = ["READS", "ReadMemo", "memo"]

READS = frozenset(
    {
        "approvals",
        "component",
        "components",
        "events",
        "live_at",
        "live_revisions",
        "pointer",
        "pointer_history",
        "pointers",
        "revisions",
        "validation_results",
    }
)
"""The state store's reads a memo answers again (every other call clears it)."""


class ReadMemo:
    """The state store, with the answers of :data:`READS` (or of ``reads``) kept until the
    next other call; ``answers``: some known already (lockgate.operations.locked_reads),
    keyed as :func:`_answer` keys them."""

    def __init__(
        self, store: Any, answers: dict[Any, Any] | None = None, reads: frozenset[str] = READS
    ) -> None:
        object.__setattr__(self, "_store", store)
        object.__setattr__(self, "_answers", {} if answers is None else answers)
        object.__setattr__(self, "_reads", reads)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance() sees the store's class
        return object.__getattribute__(self, "_store").__class__  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        store = object.__getattribute__(self, "_store")
        value = getattr(store, name)
        if name.startswith("_") or not callable(value) or isinstance(value, type):
            return value
        answers: dict[Any, Any] = object.__getattribute__(self, "_answers")
        if name in object.__getattribute__(self, "_reads"):
            return functools.partial(_answer, answers, name, value)
        return functools.partial(_cleared, answers, value)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(object.__getattribute__(self, "_store"), name, value)


def _copy(value: Any) -> Any:
    """A fresh container (records are frozen): a caller may change what it was given."""
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def _answer(
    answers: dict[Any, Any], name: str, read: Callable[..., Any], *args: Any, **kwargs: Any
) -> Any:
    key = (name, args, tuple(sorted(kwargs.items())))
    try:
        if key in answers:
            return _copy(answers[key])
    except TypeError:  # an unhashable argument: asked every time
        return read(*args, **kwargs)
    answer = read(*args, **kwargs)
    answers[key] = _copy(answer)
    return answer


def _cleared(answers: dict[Any, Any], call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    answers.clear()
    return call(*args, **kwargs)


@contextlib.contextmanager
def memo(session: Session) -> Iterator[None]:
    """Answer repeated state reads of ``session`` from memory until the block ends (a
    session already under a memo keeps it)."""
    if session.memo is not None:
        yield
        return
    session.memo = cast(StateStore, ReadMemo(session.project.state()))
    try:
        yield
    finally:
        session.memo = None
