"""A read memo over the state store for one planning pass of a switch.

Planning a promotion asks the state store the same questions several times: the gate's
context, the approval rules and the admissibility check each read the component, its
revisions, its approvals, the stage pointers and the pointer history. On an embedded
store each read costs microseconds; on a server each is a round trip. While a
:class:`ReadMemo` is installed (:func:`memo`), a read answered once is answered again
from memory, until any other call (a write, a lock) clears it; the memo ends before the
switch takes its locks. Where the kernel knows what it will read next, it asks for all of
it at once (:func:`read_together`): one call when the store offers ``ReadBatch``
(lockgate.contracts.read_batch), its answers kept like any other.

A stale answer cannot lose an update: everything a switch decides is read again under
its locks (the pointer, whose generation the record compares and swaps, the component's
status, the rejections), so a change that landed during planning makes the switch
refuse (``ConflictError``), as it would have without the memo.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, cast

from lockgate.contracts.read_batch import BATCHABLE, Ask, store_read_batch
from lockgate.contracts.state import ComponentRecord, StateStore
from lockgate.core.session import Session

__all__ = ["READS", "ReadMemo", "ask_together", "component_records", "memo", "read_together"]

#: Past this many refs, :func:`component_records` reads every component once instead of
#: each ref's record.
READ_EACH = 64

READS = BATCHABLE
"""The state store's reads a memo answers again (every other call clears it)."""


class ReadMemo:
    """The state store, with the answers of :data:`READS` kept until the next other call;
    ``answers``: some known already (:func:`read_together`), keyed as :func:`_answer`
    keys them."""

    def __init__(self, store: Any, answers: dict[Any, Any] | None = None) -> None:
        object.__setattr__(self, "_store", store)
        object.__setattr__(self, "_answers", {} if answers is None else answers)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance() sees the store's class
        return object.__getattribute__(self, "_store").__class__  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        store = object.__getattribute__(self, "_store")
        value = getattr(store, name)
        if name.startswith("_") or not callable(value) or isinstance(value, type):
            return value
        answers: dict[Any, Any] = object.__getattribute__(self, "_answers")
        if name in READS:
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


def _key(name: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return (name, args, ())


def _answer(
    answers: dict[Any, Any], name: str, read: Callable[..., Any], *args: Any, **kwargs: Any
) -> Any:
    key = (name, args, tuple(sorted(kwargs.items()))) if kwargs else _key(name, args)
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


def ask_together(session: Session, asks: Iterable[Ask]) -> None:
    """Under a memo (planning), read those of ``asks`` it cannot answer yet in one call
    when the state store offers ``ReadBatch``; their answers join the memo and last as
    long as it does. Otherwise nothing: each is read when asked."""
    if isinstance(session.memo, ReadMemo):
        _batch(session, object.__getattribute__(session.memo, "_answers"), asks)


def _batch(session: Session, known: dict[Any, Any], asks: Iterable[Ask]) -> bool:
    """Read into ``known`` those of ``asks`` it lacks, in one call; whether the store
    offers ``ReadBatch``."""
    batch = store_read_batch(session.project.state())
    if batch is None:
        return False
    wanted = [a for a in dict.fromkeys(asks) if _key(a.name, a.args) not in known]
    if wanted:
        for ask, answer in zip(wanted, batch.read_batch(wanted), strict=True):
            known[_key(ask.name, ask.args)] = _copy(answer)
    return True


@contextlib.contextmanager
def read_together(session: Session, asks: Iterable[Ask]) -> Iterator[None]:
    """Read ``asks`` now, in one call when the state store offers ``ReadBatch``, and
    answer them (asked as the asks name them) from that until the block ends or the store
    is called for anything else: read now, they are as fresh as the reads they stand for
    (a switch's checks under its locks, its record). Without the capability, or under a
    memo already (see :func:`ask_together`), nothing more than that memo."""
    known: dict[Any, Any] = {}
    if session.memo is not None or not _batch(session, known, asks):
        yield
        return
    session.memo = cast(StateStore, ReadMemo(session.project.state(), known))
    try:
        yield
    finally:
        session.memo = None


def component_records(
    session: Session,
    refs: Sequence[str],
    every: Callable[[], Iterable[ComponentRecord]] | None = None,
) -> dict[str, ComponentRecord]:
    """The records of ``refs`` the state store has, by ref: read together (under a memo,
    into it), or for more than :data:`READ_EACH` refs from one read of every component
    (``every``, which a caller may keep for more; default: the store's ``components()``)."""
    if len(refs) > READ_EACH:
        wanted = set(refs)
        everything = session.state().components() if every is None else every()
        return {r.component: r for r in everything if r.component in wanted}
    asks = [Ask("component", (ref,)) for ref in refs]
    ask_together(session, asks)
    with read_together(session, asks):
        state = session.state()
        found = {ref: state.component(ref) for ref in refs}
    return {ref: record for ref, record in found.items() if record is not None}
