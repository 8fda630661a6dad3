"""Events out: the dispatcher that delivers the audit log's events to the notifiers.

The outbox is the audit log itself: every change appends its event in the transaction
that makes it, and every refusal or failure worth knowing is audited, so an event exists
exactly when what it tells happened (``lockgate.contracts.events``). The state store's
``EventDeliveries`` capability keeps what has been done with each event per notifier.

A delivery pass (:meth:`Outbox.deliver`), under the state store's ``events`` lock (one
dispatcher at a time; a command that finds it held leaves the work to its holder):

1. **pending first** — per notifier, its due ``pending`` rows in sequence order; a
   component whose earlier event is still pending waits for it (in order per
   component; a dead letter no longer holds the others back);
2. **then the events after its cursor** — a batch at a time, each becomes a row (those
   the notifier's ``types`` and ``stages`` select) and is sent when due; the batch's
   rows are written with the cursor that passes them, in one write. A notifier seen for
   the first time starts at the newest event (``backlog: new``) or at the first one
   (``backlog: all``): :meth:`Outbox.prime`;
3. **outcomes** — delivered; or failed, with the next attempt after an exponential
   backoff with jitter (never sooner than the receiver's ``Retry-After``); or dead,
   after ``max_attempts`` attempts, after ``max_age_hours``, or at once when the
   receiver refused the message itself. A notifier whose receiver failed is left alone
   for the rest of the pass (it is down or slow); a pass never outlives its budget;
4. **retain** — a pass without a budget (``lockgate events deliver``) forgets delivered
   rows older than ``retention_hours`` (the events themselves stay in the audit log).

A notifier that offers ``deliver_batch`` (``BatchNotifier``: the broker notifiers) is
handed the due rows of a batch at once, so their acknowledgements are awaited together
instead of one round trip each; a row is still marked delivered only by its own
acknowledgement. Rows are written ``BATCH`` at a time. A process killed anywhere loses
nothing: an event sent but not yet marked delivered is sent again (at least once;
receivers de-duplicate by the event's ``id``).
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Iterator
from itertools import islice

import attrs

from lockgate.contracts.events import (
    Delivery,
    DeliveryError,
    EventDeliveries,
    Message,
    Notifier,
    NotifierSection,
    batch_delivery,
    store_deliveries,
)
from lockgate.contracts.locks import LockOwner
from lockgate.contracts.records import record
from lockgate.contracts.state import ChainedEvent, EventFilter
from lockgate.core.session import Session
from lockgate.errors import (
    InputError,
    LockedError,
    LockgateError,
    MissingCapabilityError,
    NotFoundError,
    environment_fault,
)
from lockgate.operations.announce import shutdown  # re-exported: it lives there now

__all__ = ["DeliveryReport", "Outbox", "close_notifiers", "deliver_after_command", "shutdown"]

BATCH = 100
"""Events materialized, and delivery rows written, per write: fewer writes, against at
most this many events sent again after a crash."""
DEFAULT_TIMEOUT = 10.0
"""Seconds one delivery may take when the pass has no budget."""
NOTIFIER_IDLE = 30.0
"""Seconds a notifier the project keeps may stay unused before it is built afresh."""


class _Kept:
    """A notifier the project keeps, and when it was last handed out."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier, self.used = notifier, time.monotonic()

    def close(self) -> None:
        close = getattr(self.notifier, "close", None)
        if callable(close):
            close()


def close_notifiers(session: Session) -> None:
    """Close the notifiers the project keeps (the command line does so when a command
    ends); the next delivery builds them again."""
    session.project.forget("notifier:")


@record
class DeliveryReport:
    """What one pass did: ``delivered``, ``failed`` (will be retried), ``dead`` (given
    up in this pass), ``pending`` (left for later) per notifier; ``busy`` when another
    dispatcher held the outbox."""

    delivered: dict[str, int] = attrs.field(factory=dict)
    failed: dict[str, int] = attrs.field(factory=dict)
    dead: dict[str, int] = attrs.field(factory=dict)
    pending: dict[str, int] = attrs.field(factory=dict)
    busy: bool = False

    def to_dict(self) -> dict[str, object]:
        return attrs.asdict(self)


def _at(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat(timespec="microseconds")


def _seconds(at: str) -> float:
    return dt.datetime.fromisoformat(at).timestamp()


class Outbox:
    """The outbox of one session's project: its notifiers, their deliveries."""

    def __init__(
        self,
        session: Session,
        *,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.session = session
        self.settings = session.config.events
        self.clock = clock
        self.jitter = jitter
        self._notifiers: dict[str, Notifier] = {}
        self._messages: dict[int, Message] = {}

    # ------------------------------------------------------------------ parts

    @property
    def sections(self) -> list[NotifierSection]:
        """The configured notifiers (``events.notifiers``), names checked unique."""
        seen: set[str] = set()
        for section in self.settings.notifiers:
            if section.label in seen:
                raise InputError(
                    f"events.notifiers: two notifiers are named {section.label!r}; give "
                    "each of the same kind its own 'name'"
                )
            seen.add(section.label)
        return list(self.settings.notifiers)

    def store(self) -> EventDeliveries:
        """The state store's ``EventDeliveries``, or one clear error."""
        found = store_deliveries(self.session.state())
        if found is None:
            store = self.session.config.state.store
            raise MissingCapabilityError(
                f"the state store {store!r} keeps no outbox (EventDeliveries), so "
                "events.notifiers cannot be delivered; select a store that does (sqlite, "
                "memory, postgres) with state.store, or remove events.notifiers"
            )
        return found

    def notifier(self, section: NotifierSection) -> Notifier:
        """The notifier of ``section``: the project's, built once and kept (with its
        connection) from one delivery to the next until the project closes; one left
        unused for ``NOTIFIER_IDLE`` seconds is built afresh (a broker drops a
        connection that did not answer its heartbeats meanwhile)."""
        if section.label not in self._notifiers:
            project, key = self.session.project, f"notifier:{section.label}"
            options = {**section.options, "name": section.label}
            built: list[_Kept] = []

            def build() -> _Kept:
                built.append(_Kept(self.session.roles.build("notifier", section.kind, options)))
                return built[-1]

            kept, now = project.kept(key, build), time.monotonic()
            if not built and now - kept.used > NOTIFIER_IDLE:
                project.forget(key)
                kept = project.kept(key, build)
            kept.used = now
            self._notifiers[section.label] = kept.notifier
        return self._notifiers[section.label]

    def source(self) -> str:
        """The CloudEvents ``source``: ``events.source``, else ``lockgate://<project>``."""
        return self.settings.source or f"lockgate://{self.session.project.name}"

    def message(self, seq: int) -> Message:
        """The message of event ``seq``, read from the chain once per pass."""
        if seq not in self._messages:
            item = next(iter(self.session.state().chain(seq - 1)), None)
            if item is None or item.event.seq != seq:
                raise NotFoundError(f"event {seq} is not in the audit log")
            self._messages[seq] = Message.of(item.event, item.hash, self.source())
        return self._messages[seq]

    def head(self) -> int:
        """The newest event's seq (0: none)."""
        newest = self.session.state().events(EventFilter(newest_first=True, limit=1))
        return newest[0].seq or 0 if newest else 0

    def close(self) -> None:
        """Forget the notifiers (the project keeps them, and closes them with itself)."""
        self._notifiers.clear()

    # ------------------------------------------------------------------ cursors

    def prime(self) -> None:
        """Give every notifier seen for the first time its cursor (see the module doc)."""
        sections = self.sections
        if not sections:
            return
        store = self.store()
        new = [s for s in sections if store.delivery_cursor(s.label) is None]
        head = self.head() if any(s.backlog == "new" for s in new) else 0
        for section in new:
            store.record_deliveries(
                section.label, [], cursor=head if section.backlog == "new" else 0
            )

    def _batches(
        self, section: NotifierSection, cursor: int, deadline: float | None
    ) -> Iterator[tuple[list[Delivery], int]]:
        """The events after ``cursor``, ``BATCH`` at a time, as new ``pending`` rows (those
        the notifier selects) with the seq the cursor moves to once they are written."""
        chain: Iterator[ChainedEvent] = iter(self.session.state().chain(cursor))
        while deadline is None or self.clock() < deadline:
            batch = list(islice(chain, BATCH))
            if not batch:
                return
            now, rows = _at(self.clock()), []
            for item in batch:
                message = Message.of(item.event, item.hash, self.source())
                self._messages[message.seq] = message
                if section.wants(message):
                    rows.append(
                        Delivery(section.label, message.seq, message.component, next_at=now,
                                 updated_at=now)
                    )  # fmt: skip
            yield rows, batch[-1].event.seq or cursor

    # ------------------------------------------------------------------ delivering

    def deliver(self, budget: float | None = None, *, wait: float = 0.0) -> DeliveryReport:
        """One pass over every notifier within ``budget`` seconds (None: until nothing is
        due). ``wait``: seconds to wait for another dispatcher's pass to end."""
        report = DeliveryReport()
        sections = self.sections
        if not sections:
            return report
        store = self.store()
        for section in sections:  # a notifier that cannot be built is one clear error
            self.notifier(section)
        deadline = None if budget is None else self.clock() + budget
        owner = LockOwner.current("events")
        try:
            with self.session.locking_state().lock("events", owner=owner, lease=300, timeout=wait):
                self.prime()
                for section in sections:
                    _Pass(self, section, store, deadline).run(report)
                if budget is None:  # retention: by the dispatcher, not after every command
                    store.forget_deliveries(
                        _at(self.clock() - self.settings.retention_hours * 3600)
                    )
        except LockedError:
            return attrs.evolve(report, busy=True)
        return report

    def _attempt(self, section: NotifierSection, row: Delivery, left: float | None) -> Delivery:
        """Deliver one row's message; the row as it stands after the attempt."""
        message = self.message(row.seq)
        timeout = DEFAULT_TIMEOUT if left is None else max(0.01, left)
        try:
            self.notifier(section).deliver(message, timeout)
        except DeliveryError as exc:
            return self._failed(row, message, exc)
        except LockgateError as exc:  # the notifier refused
            return self._failed(row, message, DeliveryError(exc.message))
        except Exception as exc:  # a notifier's bug: recorded, retried like a failure
            return self._failed(row, message, DeliveryError(f"{type(exc).__name__}: {exc}"))
        return attrs.evolve(
            row,
            state="delivered",
            attempts=row.attempts + 1,
            last_error=None,
            updated_at=_at(self.clock()),
        )

    def _attempt_batch(
        self, section: NotifierSection, rows: list[Delivery], left: float | None
    ) -> list[Delivery]:
        """Deliver ``rows``' messages through the notifier's ``deliver_batch`` (their
        acknowledgements awaited together); each row as it stands after the attempt."""
        messages = [self.message(row.seq) for row in rows]
        timeout = DEFAULT_TIMEOUT if left is None else max(0.01, left)
        batch = batch_delivery(self.notifier(section))
        assert batch is not None
        try:
            outcomes = list(batch.deliver_batch(messages, timeout))
            if len(outcomes) != len(messages):  # a notifier's bug: nothing counts as sent
                raise DeliveryError(
                    f"deliver_batch returned {len(outcomes)} outcomes for {len(messages)} messages"
                )
        except DeliveryError as exc:
            outcomes = [exc] * len(messages)
        except LockgateError as exc:  # the notifier refused
            outcomes = [DeliveryError(exc.message)] * len(messages)
        except Exception as exc:  # a notifier's bug: recorded, retried like a failure
            outcomes = [DeliveryError(f"{type(exc).__name__}: {exc}")] * len(messages)
        now = _at(self.clock())
        return [
            self._failed(row, message, error)
            if error is not None
            else attrs.evolve(
                row, state="delivered", attempts=row.attempts + 1, last_error=None, updated_at=now
            )
            for row, message, error in zip(rows, messages, outcomes, strict=True)
        ]

    def _failed(self, row: Delivery, message: Message, exc: DeliveryError) -> Delivery:
        attempts = row.attempts + 1
        now = self.clock()
        age = now - _seconds(str(message.cloud["time"]))
        give_up = (
            exc.permanent
            or attempts >= self.settings.max_attempts
            or age > self.settings.max_age_hours * 3600
        )
        delay = self.backoff(attempts, exc.retry_after)
        return attrs.evolve(
            row,
            state="dead" if give_up else "pending",
            attempts=attempts,
            next_at=_at(now + delay),
            last_error=exc.message[:500] + (" (permanent)" if exc.permanent else ""),
            updated_at=_at(now),
        )

    def backoff(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds before attempt ``attempts + 1``: ``backoff * 2**(attempts-1)`` capped at
        ``backoff_max``, the upper half of it jittered ("equal jitter"), and never less
        than the receiver's ``retry_after``."""
        ceiling = min(self.settings.backoff_max, self.settings.backoff * 2.0 ** (attempts - 1))
        delay: float = ceiling / 2 + self.jitter() * ceiling / 2
        return max(delay, retry_after or 0.0)

    # ------------------------------------------------------------------ managing

    def rows(self, state: str | None = None) -> list[Delivery]:
        """Delivery rows of every configured notifier (of one state), by seq."""
        store = self.store()
        names = {s.label for s in self.sections}
        return [d for d in store.deliveries(state=state) if d.notifier in names]  # type: ignore[arg-type]

    def retry(self, seqs: list[int] | None) -> list[Delivery]:
        """Make dead deliveries pending again, due now, attempts reset (``seqs``: only
        those events; None: every dead one). Returns them."""
        store = self.store()
        dead = [d for d in self.rows("dead") if seqs is None or d.seq in seqs]
        if seqs is not None:
            missing = sorted(set(seqs) - {d.seq for d in dead})
            if missing:
                raise NotFoundError(
                    f"no dead delivery of event {missing[0]}; 'lockgate events ls --dead' "
                    "lists them"
                )
        now = _at(self.clock())
        revived = [
            attrs.evolve(d, state="pending", attempts=0, next_at=now, updated_at=now) for d in dead
        ]
        for name in {d.notifier for d in revived}:
            store.record_deliveries(name, [d for d in revived if d.notifier == name])
        return revived


class _Pass:
    """One notifier's part of a pass: its pending rows first (they are older than every
    event after its cursor), then the events after the cursor, a batch at a time. What
    changed is written ``BATCH`` rows at a time, a batch's new rows with the cursor that
    passes them: a process killed before a write sends those events again (at least
    once), and never skips one."""

    def __init__(
        self,
        outbox: Outbox,
        section: NotifierSection,
        store: EventDeliveries,
        deadline: float | None,
    ) -> None:
        self.outbox, self.section, self.store, self.deadline = outbox, section, store, deadline
        self.waiting: set[str | None] = set()  # components whose earlier event is pending
        self.counts = {"delivered": 0, "failed": 0, "dead": 0, "pending": 0}

    def run(self, report: DeliveryReport) -> None:
        name, store = self.section.label, self.store
        cursor = store.delivery_cursor(name) or 0
        rows = store.deliveries(name, "pending")
        for start in range(0, len(rows), BATCH):
            changed = [r for r in self.send(rows[start : start + BATCH]) if r]
            if changed:
                store.record_deliveries(name, changed)
        for new, seq in self.outbox._batches(self.section, cursor, self.deadline):
            sent = zip(self.send(new), new, strict=True)
            store.record_deliveries(name, [done or row for done, row in sent], cursor=seq)
            if self.deadline is not None and self.outbox.clock() >= self.deadline:
                break  # out of time, or the receiver failed: the next pass goes on
        for key, value in self.counts.items():
            if value:
                getattr(report, key)[name] = value

    def send(self, rows: list[Delivery]) -> list[Delivery | None]:
        """Send what is due of ``rows`` (in sequence order): one at a time, or all at
        once to a notifier that offers ``deliver_batch``. Each row after its attempt, or
        None when it was not attempted."""
        if batch_delivery(self.outbox.notifier(self.section)) is None:
            return [self.consider(row) for row in rows]
        now = self.outbox.clock()
        left = None if self.deadline is None else self.deadline - now
        due = [i for i, row in enumerate(rows) if not self.held(row, now, left)]
        sent: list[Delivery | None] = [None] * len(rows)
        if due:
            done = self.outbox._attempt_batch(self.section, [rows[i] for i in due], left)
            for i, row in zip(due, done, strict=True):
                sent[i] = self.settle(row, now)
        return sent

    def consider(self, row: Delivery) -> Delivery | None:
        """Send ``row``'s message if it is due and its component is not waiting; the row
        after the attempt, or None when it was not attempted."""
        now = self.outbox.clock()
        left = None if self.deadline is None else self.deadline - now
        if self.held(row, now, left):
            return None
        return self.settle(self.outbox._attempt(self.section, row, left), now)

    def held(self, row: Delivery, now: float, left: float | None) -> bool:
        """Whether ``row`` waits: for an earlier event of its component, for its next
        attempt, or for the next pass (out of time). Counted as pending."""
        if (
            row.component in self.waiting
            or _seconds(row.next_at) > now + 0.001
            or (left is not None and left <= 0.01)
        ):
            self.waiting.add(row.component)  # later events of this component wait for it
            self.counts["pending"] += 1
            return True
        return False

    def settle(self, done: Delivery, now: float) -> Delivery:
        """Count an attempt's outcome; after a failure, the component's later events
        wait, and so does the notifier (down or slow) for the rest of the pass."""
        kind = done.state if done.state != "pending" else "failed"
        self.counts[kind] += 1
        if done.state == "pending":
            self.waiting.add(done.component)
            if "(permanent)" not in (done.last_error or ""):
                self.deadline = now  # the receiver is down or slow: leave it for this pass
        return done


def deliver_after_command(session: Session) -> DeliveryReport | None:
    """What a command does after its commit when notifiers are configured: deliver
    what it can within ``events.budget`` seconds, never failing the command (a problem
    is a warning line); waiting for another dispatcher's pass counts against the budget."""
    if not session.config.events.notifiers or session.root is None:
        return None
    outbox = Outbox(session)
    budget = session.config.events.budget
    try:  # a dispatcher's pass is short: wait for it (within the budget), then deliver
        return outbox.deliver(budget, wait=budget)
    except Exception as exc:
        if not isinstance(exc, LockgateError) and environment_fault(exc) is None:
            raise
        message = exc.message if isinstance(exc, LockgateError) else str(environment_fault(exc))
        session.project.warn(f"events not delivered now: {message}")
        return None
    finally:
        outbox.close()
