"""The ``postgres`` store's advisory lock keys: lock ``name`` of a project at an epoch as
the two halves of an advisory key (:class:`Key`), and the expression that tries several
in order (:func:`in_order`), for :mod:`lockgate_postgres.locks`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import attrs

__all__ = ["Key", "advisory_key", "in_order"]


def advisory_key(project: str, name: str, epoch: int) -> tuple[int, int]:
    """The two 31-bit halves of lock ``name``'s key in ``project`` at ``epoch``."""
    digest = hashlib.blake2b(f"lockgate\0{project}\0{name}\0{epoch}".encode()).digest()
    return (
        int.from_bytes(digest[:4], "big") & 0x7FFFFFFF,
        int.from_bytes(digest[4:8], "big") & 0x7FFFFFFF,
    )


def in_order(wanted: Sequence[tuple[Key, bool]]) -> tuple[str, list[int]]:
    """An expression trying the keys of ``wanted`` (each with whether it is shared) in
    order, stopping at the first refused: how many were granted; and its arguments.
    Nested ``CASE``s, whose order of evaluation PostgreSQL guarantees: a key after a
    refused one is never tried, so no holder ever has a later lock without the earlier
    ones, not even for a moment (a recovery's probe of a component lock would take
    such a moment for a live switch)."""
    expression = str(len(wanted))
    for i in reversed(range(len(wanted))):
        take = "pg_try_advisory_lock_shared" if wanted[i][1] else "pg_try_advisory_lock"
        expression = f"CASE WHEN {take}(%s::int4, %s::int4) THEN {expression} ELSE {i} END"
    return expression, [half for key, _ in wanted for half in (key.high, key.low)]


@attrs.frozen
class Key:
    """Lock ``name``'s advisory key at ``epoch`` (the epoch of its parent lock)."""

    name: str
    epoch: int
    high: int
    low: int

    @classmethod
    def of(cls, project: str, name: str, epoch: int) -> Key:
        return cls(name, epoch, *advisory_key(project, name, epoch))
