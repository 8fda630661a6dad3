"""The audit log's hash chain: how an event is hashed, and how the chain is verified.

Each stored event carries ``prev_hash`` (the hash of the event before it, or 64 zeros for
the first) and ``hash``, the BLAKE3 digest of its canonical content *including* its
sequence number and ``prev_hash``. So editing an event breaks its own hash, deleting one
breaks the next event's ``prev_hash`` (and leaves a gap in the sequence), and reordering
breaks both: verification names the first sequence number where the chain fails.

Beyond the events: :func:`verify_state` re-derives the records gates and rollbacks rely
on (approvals, revisions, pointers) from the chain and compares, and :func:`chain_head` /
:func:`check_head` let a head kept outside the project show deleted newest events.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence

from lockgate.contracts.manifest import digest_bytes
from lockgate.contracts.records import record
from lockgate.contracts.state import (
    Approval,
    AuditEvent,
    ChainedEvent,
    EventFilter,
    PointerChange,
    StateStore,
    store_results,
)
from lockgate.errors import InputError

__all__ = [
    "GENESIS",
    "ChainReport",
    "chain_head",
    "check_head",
    "event_hash",
    "not_before",
    "parse_head",
    "verdict_digest",
    "verify_chain",
    "verify_state",
]

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


# --------------------------------------------------------------------------- state vs chain
#
# The chain covers the audit events. Every other record a gate or a rollback relies on
# — approvals and rejections, revisions, stage pointers and their history, a component's
# latest revision — is written in the same transaction as an event that carries the same
# facts, so each record can be re-derived from the (verified) chain and compared. A row
# inserted, edited or deleted with SQL then no longer matches its event, and an event
# cannot be forged without breaking the chain. (A component's status is not compared:
# it is a summary the gates do not rely on; approvals, rejections and pointers are.)

_MAX_PROBLEMS = 50
# The actions whose events go with a record: staging (revisions), approve and reject
# (approvals), and the two that move stage pointers (operations/lifecycle.py move_pointer).
_RECORD_ACTIONS = ("stage", "approve", "reject", "promote", "rollback")


def _key_text(*parts: object) -> str:
    return " ".join(str(p) for p in parts if p is not None)


def _approval_key(a: Approval) -> tuple[str, str, str, str, str, str]:
    return (a.component, a.revision, a.actor, a.decision, a.at, a.comment or "")


def _event_approval_key(e: AuditEvent) -> tuple[str, str, str, str, str, str]:
    comment = e.details.get("comment") if isinstance(e.details, dict) else None
    text = comment if e.action == "approve" else (e.reason or comment)
    return (
        str(e.component),
        str(e.revision),
        e.actor,
        e.action,
        e.at,
        str(text) if text else "",
    )


def verify_state(state: StateStore) -> list[str]:
    """Records that no audit event explains, or events whose record is gone.

    Run after :func:`verify_chain` says the chain is intact (a broken chain makes every
    comparison moot). Returns one line per problem, at most 50.
    """
    # Only the actions that write records are read (validate events, the bulk of a big
    # log, are not), each through the store's action index.
    events = sorted(
        (
            e
            for action in _RECORD_ACTIONS
            for e in state.events(EventFilter(action=action))
            if e.outcome == "ok"
        ),
        key=lambda e: e.seq or 0,
    )
    problems: list[str] = []
    refs = {r.component for r in state.components()} | {e.component for e in events if e.component}
    # Approvals and rejections: the same multiset as the approve/reject events.
    want: Counter[tuple[str, ...]] = Counter(
        _event_approval_key(e) for e in events if e.action in ("approve", "reject")
    )
    have: Counter[tuple[str, ...]] = Counter()
    for ref in sorted(refs):
        have.update(_approval_key(a) for a in state.approvals(ref))
    for key in sorted(have - want):
        problems.append(
            f"approvals: {key[3]} of {key[0]} {key[1][:12]} by {key[2]} at {key[4]} has no "
            "audit event (inserted or edited outside lockgate?)"
        )
    for key in sorted(want - have):
        problems.append(
            f"approvals: the {key[3]} of {key[0]} {key[1][:12]} by {key[2]} at {key[4]} in the "
            "audit log is missing from the approvals (deleted or edited outside lockgate?)"
        )
    # Revisions: each row was first recorded by a stage event with the same facts.
    first_staged: dict[tuple[str, str], AuditEvent] = {}
    last_staged: dict[str, str] = {}
    for e in events:
        if e.action == "stage" and e.component and e.revision:
            first_staged.setdefault((e.component, e.revision), e)
            last_staged[e.component] = e.revision
    rows: set[tuple[str, str]] = set()
    for ref in sorted(refs):
        for rev in state.revisions(ref):
            rows.add((rev.component, rev.revision))
            staged = first_staged.get((rev.component, rev.revision))
            if staged is None:
                problems.append(
                    f"revisions: {rev.component} {rev.revision[:12]} has no stage event "
                    "(inserted outside lockgate?)"
                )
            elif (staged.actor, staged.at) != (rev.actor, rev.created_at) or (
                staged.details.get("files", rev.files),
                staged.details.get("size", rev.size),
            ) != (rev.files, rev.size):
                problems.append(
                    f"revisions: {rev.component} {rev.revision[:12]} differs from its stage "
                    f"event {staged.seq} (edited outside lockgate?)"
                )
    for component, revision in sorted(set(first_staged) - rows):
        problems.append(
            f"revisions: {component} {revision[:12]} was staged (event "
            f"{first_staged[component, revision].seq}) but its record is gone"
        )
    for known in state.components():
        expected = last_staged.get(known.component)
        if known.latest_revision != expected:
            problems.append(
                f"components: {known.component}'s latest revision is "
                f"{(known.latest_revision or 'none')[:12]}, but the audit log's last staging "
                f"says {(expected or 'none')[:12]} (edited outside lockgate?)"
            )
    problems.extend(_verify_pointers(state, events))
    problems.extend(_verify_verdicts(state, sorted(rows)))
    return problems[:_MAX_PROBLEMS]


def verdict_digest(value: str) -> str:
    """What a ``validate`` event records (``details.verdicts``) of a stored verdict."""
    return digest_bytes(value.encode())[:32]


def _verify_verdicts(state: StateStore, rows: Sequence[tuple[str, str]]) -> list[str]:
    """Validators' verdicts kept by the store (``ValidationResults``) against the
    ``validate`` events that recorded their digests: a gate reuses them, so one written
    outside lockgate must show."""
    results = store_results(state)
    if results is None:
        return []
    revisions = sorted({revision for _, revision in rows})
    stored = {r: results.validation_results(r) for r in revisions}
    if not any(stored.values()):
        return []
    vouched: set[tuple[str | None, str, str]] = set()
    for e in state.events(EventFilter(action="validate")):
        verdicts = e.details.get("verdicts")
        if isinstance(verdicts, dict):
            vouched.update((e.revision, str(k), str(v)) for k, v in verdicts.items())
    return [
        f"verdicts: validator result {key[:12]} of revision {revision[:12]} has no validate "
        "event (inserted or edited outside lockgate?)"
        for revision in revisions
        for key, value in sorted(stored[revision].items())
        if (revision, key, verdict_digest(value)) not in vouched
    ]


def _verify_pointers(state: StateStore, events: Sequence[AuditEvent]) -> list[str]:
    """Pointers and their history against the events that moved them."""
    problems: list[str] = []
    moves: dict[tuple[str, str], list[AuditEvent]] = {}
    for e in events:
        if e.stage and e.component and "generation" in e.details:
            moves.setdefault((e.stage, e.component.split(":", 1)[-1]), []).append(e)
    history: dict[tuple[str, str], list[PointerChange]] = {}
    for change in state.pointer_history():
        history.setdefault((change.stage, change.component_id), []).append(change)
    for key in sorted(set(moves) | set(history)):
        stage, component_id = key
        expected = [
            (e.component, e.revision, e.previous_revision, int(str(e.details["generation"])),
             e.at, e.actor, e.action, e.reason)
            for e in moves.get(key, [])
        ]  # fmt: skip
        recorded = [
            (c.component, c.revision, c.previous_revision, c.generation, c.at, c.actor,
             c.action, c.reason)
            for c in history.get(key, [])
        ]  # fmt: skip
        if expected != recorded:
            first = next(
                (i for i, (a, b) in enumerate(zip(expected, recorded, strict=False)) if a != b),
                min(len(expected), len(recorded)),
            )
            problems.append(
                f"pointer history: {stage}/{component_id} differs from the audit log at move "
                f"{first + 1} ({len(recorded)} recorded, {len(expected)} in the log; edited "
                "outside lockgate?)"
            )
        pointer = state.pointer(stage, component_id)
        now = (pointer.component, pointer.revision, pointer.generation) if pointer else None
        last = expected[-1] if expected else None
        want = (last[0], last[1], last[3]) if last else None
        if now != want:
            shown = (pointer.revision or "none")[:12] if pointer else "none"
            wanted = (last[1] or "none")[:12] if last else "none"
            problems.append(
                f"pointers: {stage}/{component_id} is at {shown}, but the audit log's last move "
                f"put {wanted} there (moved outside lockgate?)"
            )
    for pointer in state.pointers():
        if (pointer.stage, pointer.component_id) not in moves and pointer.revision:
            problems.append(
                f"pointers: {pointer.stage}/{pointer.component_id} is at "
                f"{pointer.revision[:12]} and no audit event moved it there"
            )
    return problems


# --------------------------------------------------------------------------- the head


def chain_head(state: StateStore) -> str:
    """``SEQ:HASH`` of the newest event (``0:`` and 64 zeros for an empty log).

    Kept outside ``.lockgate/`` (a CI log, a ticket), it makes deleting the newest
    events, or all of them, detectable: see :func:`check_head`.
    """
    seq, digest = 0, GENESIS
    for item in state.chain(max(0, state.counts().events - 1)):
        seq, digest = item.event.seq or 0, item.hash
    return f"{seq}:{digest}"


def parse_head(text: str) -> tuple[int | None, str]:
    """``SEQ:HASH`` or a bare ``HASH`` (at least 8 hex digits); InputError otherwise."""
    seq_text, _, digest = text.strip().rpartition(":")
    digest = digest.lower()
    if (
        (seq_text and not seq_text.isdigit())
        or len(digest) < 8
        or not all(c in "0123456789abcdef" for c in digest)
    ):
        raise InputError(
            f"--head {text!r}: expected SEQ:HASH as printed by 'lockgate audit head' "
            "(or at least 8 hex digits of the hash)"
        )
    return (int(seq_text) if seq_text else None), digest


def check_head(chain: Iterable[ChainedEvent], head: str) -> str | None:
    """Why the log does not reach the recorded ``head`` (None when it does)."""
    seq, digest = parse_head(head)
    last = 0
    for item in chain:
        last = item.event.seq or 0
        if item.hash.startswith(digest) and (seq is None or seq == last):
            return None
        if seq is not None and last == seq:
            return (
                f"event {seq} is not the recorded head {digest[:12]}: the log was rewritten "
                "from there on"
            )
    if seq == 0 and digest == GENESIS[: len(digest)]:
        return None
    where = f"event {seq}" if seq is not None else f"an event with hash {digest[:12]}"
    return (
        f"the recorded head is {where} but the log ends at event {last}: newest events were deleted"
    )
