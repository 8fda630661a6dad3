"""The audit log's hash chain: how an event is hashed, and how the chain is verified.

Each stored event carries ``prev_hash`` (the hash of the event before it, or 64 zeros for
the first) and ``hash``, the BLAKE3 digest of its canonical content *including* its
sequence number and ``prev_hash``. So editing an event breaks its own hash, deleting one
breaks the next event's ``prev_hash`` (and leaves a gap in the sequence), and reordering
breaks both: verification names the first sequence number where the chain fails.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from lockgate.core.contracts import AuditEvent, ChainedEvent
from lockgate.core.manifest import digest_bytes
from lockgate.core.records import record

__all__ = ["GENESIS", "ChainReport", "event_hash", "not_before", "verify_chain"]

GENESIS = "0" * 64


def event_hash(prev_hash: str, event: AuditEvent) -> str:
    """The chained hash of ``event`` (whose ``seq`` must be set) after ``prev_hash``."""
    content = {
        "seq": event.seq,
        "at": event.at,
        "actor": event.actor,
        "action": event.action,
        "component": event.component,
        "stage": event.stage,
        "revision": event.revision,
        "previous_revision": event.previous_revision,
        "reason": event.reason,
        "details": event.details,
        "prev": prev_hash,
    }
    if event.outcome != "ok":
        # Added in schema 2; left out when "ok" so that events written before it (all of
        # them successes) keep the hash they were given.
        content["outcome"] = event.outcome
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return digest_bytes(canonical.encode())


def not_before(at: str, previous: str | None) -> str:
    """``at``, or ``previous`` when ``at`` is earlier: an event's time never precedes the
    time of the event before it in the chain.

    Events are timed when they are prepared and chained when they are written, by several
    processes whose clocks (or a clock stepped back) need not agree; the chain's order is
    the truth, so its times follow it. Times that do not parse are left as they are.
    """
    if previous is None:
        return at
    import datetime as dt

    try:
        later = dt.datetime.fromisoformat(previous) > dt.datetime.fromisoformat(at)
    except (TypeError, ValueError):
        return at
    return previous if later else at


@record
class ChainReport:
    """The outcome of verifying the chain."""

    events: int
    first_bad_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "events": self.events,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
        }


def verify_chain(chain: Iterable[ChainedEvent]) -> ChainReport:
    """Walk the chain in sequence order; report the first event that does not fit."""
    expected_seq = 1
    prev = GENESIS
    count = 0
    for item in chain:
        seq = item.event.seq or 0
        if seq != expected_seq:
            if seq > expected_seq:
                missing = (
                    f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}-{seq - 1}"
                )
                return ChainReport(count, expected_seq, f"event {missing} is missing (deleted?)")
            return ChainReport(count, seq, f"event {seq} is out of order")
        if item.prev_hash != prev:
            return ChainReport(
                count,
                seq,
                f"event {seq} does not follow event {seq - 1} (edited, moved or deleted)",
            )
        if event_hash(item.prev_hash, item.event) != item.hash:
            return ChainReport(count, seq, f"event {seq} was altered after it was written")
        prev = item.hash
        expected_seq += 1
        count += 1
    return ChainReport(count)
