"""Time as lockgate records it: UTC, ISO 8601, microseconds.

Every record (events, intents, approvals, pointer history) carries a timestamp made by
:func:`now_iso`, and every time a user types (``--at``, ``--since``) is read by
:func:`parse_time` into the same format, so the two sort against each other as strings.
"""

from __future__ import annotations

import datetime as dt
import time

from lockgate.errors import InputError

__all__ = ["elapsed_ms", "now_iso", "parse_time"]


def now_iso() -> str:
    """The current UTC time, ISO 8601 with microseconds (the format every record uses)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def elapsed_ms(started: float | None) -> dict[str, float]:
    """``{"duration_ms": ...}``: the milliseconds since ``started`` (a
    ``time.perf_counter()`` reading), for an audit event's details; ``{}`` when
    ``started`` is None. Stage, validate, promote and rollback events carry it (from the
    operation's start to its commit), so durations survive the process that measured
    them: ``lockgate metrics`` reads them back from the audit log."""
    if started is None:
        return {}
    return {"duration_ms": round((time.perf_counter() - started) * 1000, 3)}


def parse_time(text: str, *, option: str = "--at") -> str:
    """An ISO 8601 time (``2026-11-20T10:00``, a date, or ``now``) as a UTC timestamp string.

    A time without a zone is read in the machine's local time zone, as ``date`` would.
    The result sorts correctly against every timestamp lockgate records.
    """
    raw = text.strip()
    if raw == "now":
        moment = dt.datetime.now(dt.timezone.utc)
    else:
        try:
            moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise InputError(
                f"{option} {text!r} is not a time; write e.g. 2026-11-20T10:00, "
                "2026-11-20T10:00+01:00, 2026-11-20 or now"
            ) from None
        if moment.tzinfo is None:
            moment = moment.astimezone()  # local time, as a person means it
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")
