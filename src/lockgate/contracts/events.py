"""Events out: the audit log as CloudEvents, what a notifier is, and the outbox.

Every change lockgate records appends its audit event in the same state-store
transaction as the change (``move_pointer``, ``add_approval``, ``record_revision`` take
the event), and every refusal or failure worth knowing is audited too. So the audit log
*is* the transactional outbox: an event exists exactly when its change committed. What
this module adds is what crosses the boundary to the outside world:

* :func:`cloud_event` — an audit event as a CloudEvents 1.0 JSON object: ``id`` from its
  sequence number and chain hash (stable across retries, so receivers de-duplicate),
  ``type`` such as ``dev.lockgate.component.promoted`` (:func:`event_type`), ``source``,
  ``time``, ``subject`` (the component) and ``data``;
* :class:`Notifier` — the role a notifier plugin plays (``register_notifiers``): deliver
  one :class:`Message`, or raise :class:`DeliveryError` (with ``retry_after`` when the
  receiver said when to come back, ``permanent`` when retrying cannot help);
  :class:`BatchNotifier` — one that can also send many at once, their acknowledgements
  pipelined (``deliver_batch``);
* :class:`EventDeliveries` — the optional state-store capability that keeps the
  delivery state per notifier and event (attempts, next attempt, delivered or dead, last
  error) and each notifier's cursor; :func:`store_deliveries` finds it;
* :class:`EventsSection` and :class:`NotifierSection` — the ``events:`` section of
  ``lockgate.yaml``.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol

import attrs

from lockgate.contracts.records import record
from lockgate.contracts.state import AuditEvent
from lockgate.errors import ConfigError, PluginError

__all__ = [
    "BatchNotifier",
    "Delivery",
    "DeliveryError",
    "DeliveryState",
    "EventDeliveries",
    "EventsSection",
    "Message",
    "Notifier",
    "NotifierSection",
    "batch_delivery",
    "cloud_event",
    "event_type",
    "notifier_options",
    "store_deliveries",
]

DeliveryState = Literal["pending", "delivered", "dead"]

# --------------------------------------------------------------------------- configuration


def _positive(low: float, high: float) -> Any:
    return [attrs.validators.ge(low), attrs.validators.le(high)]


@record
class NotifierSection:
    """``events.notifiers[]:`` — one notifier: its kind (``log``, ``webhook``, or a
    plugin's), its name (default: the kind; names the notifier's outbox), which events it
    receives (``types``: CloudEvents types, ``*`` globs allowed; ``stages``) and its own
    ``options``."""

    kind: str
    name: str | None = None
    types: list[str] = attrs.field(factory=list)
    stages: list[str] = attrs.field(factory=list)
    backlog: Literal["new", "all"] = "new"
    options: dict[str, Any] = attrs.field(factory=dict)

    @property
    def label(self) -> str:
        """The notifier's name: ``name``, else its kind."""
        return self.name or self.kind

    def wants(self, message: Message) -> bool:
        """Whether this notifier receives ``message`` (its types and stages)."""
        if self.types and not any(fnmatch.fnmatchcase(message.type, t) for t in self.types):
            return False
        return not self.stages or message.stage in self.stages


@record
class EventsSection:
    """``events:`` — delivering the audit log's events to notifiers (docs/events.md)."""

    notifiers: list[NotifierSection] = attrs.field(factory=list)
    source: str | None = None
    budget: float = attrs.field(default=1.0, validator=_positive(0, 60))
    max_attempts: int = attrs.field(default=12, validator=_positive(1, 1000))
    max_age_hours: float = attrs.field(default=72.0, validator=_positive(0, 24 * 365))
    backoff: float = attrs.field(default=1.0, validator=_positive(0, 3600))
    backoff_max: float = attrs.field(default=600.0, validator=_positive(0, 86400))
    retention_hours: float = attrs.field(default=168.0, validator=_positive(0, 24 * 3650))


# --------------------------------------------------------------------------- CloudEvents

_NOUNS = {
    "stage": ("component", "staged"),
    "validate": ("component", "validated"),
    "approve": ("component", "approved"),
    "reject": ("component", "rejected"),
    "promote": ("component", "promoted"),
    "rollback": ("component", "rolled_back"),
    "current": ("component", "made_current"),
    "pipeline": ("pipeline", "completed"),
    "recover": ("operation", "recovered"),
    "gc": ("project", "collected"),
    "unlock": ("lock", "broken"),
    "announce": ("plugin", "announced"),
}


def event_type(event: AuditEvent) -> str:
    """The CloudEvents ``type`` of an audit event: ``dev.lockgate.<noun>.<past tense>``
    for a change (``dev.lockgate.component.promoted``), ``dev.lockgate.<noun>.<action>_
    <outcome>`` for an attempt that did not happen (``dev.lockgate.component.promote_refused``,
    ``dev.lockgate.plugin.announce_failed``; a pipeline run: ``dev.lockgate.pipeline.
    completed`` or ``.failed``); an action lockgate does not know keeps its own name
    (``dev.lockgate.<action>``)."""
    noun, past = _NOUNS.get(event.action, (None, event.action))
    prefix = f"dev.lockgate.{noun}." if noun else "dev.lockgate."
    if event.outcome != "ok":  # a pipeline run that failed: dev.lockgate.pipeline.failed
        return prefix + (
            event.outcome if noun == event.action else f"{event.action}_{event.outcome}"
        )
    return prefix + past


def cloud_event(event: AuditEvent, digest: str, source: str) -> dict[str, Any]:
    """``event`` (stored: ``seq`` set; ``digest`` its chain hash) as a CloudEvents 1.0
    JSON object from ``source``."""
    data: dict[str, Any] = {
        "seq": event.seq,
        "action": event.action,
        "outcome": event.outcome,
        "component": event.component,
        "stage": event.stage,
        "revision": event.revision,
        "previous_revision": event.previous_revision,
        "actor": event.actor,
        "reason": event.reason,
        "details": event.details,
    }
    cloud: dict[str, Any] = {
        "specversion": "1.0",
        "id": f"{event.seq}-{digest[:24]}",
        "source": source,
        "type": event_type(event),
        "time": event.at,
        "datacontenttype": "application/json",
        "data": data,
    }
    if event.component:
        cloud["subject"] = event.component
    return cloud


@record
class Message:
    """One event as a notifier receives it: the CloudEvent (``cloud``), its bytes as
    sent (``body``, compact JSON), and what routing needs (``id``, ``type``, ``stage``,
    ``component``)."""

    id: str
    type: str
    seq: int
    component: str | None
    stage: str | None
    cloud: Mapping[str, Any]
    body: bytes

    @classmethod
    def of(cls, event: AuditEvent, digest: str, source: str) -> Message:
        cloud = cloud_event(event, digest, source)
        body = json.dumps(cloud, sort_keys=True, separators=(",", ":"), default=str).encode()
        return cls(
            cloud["id"], cloud["type"], event.seq or 0, event.component, event.stage, cloud, body
        )


# --------------------------------------------------------------------------- notifiers


class DeliveryError(PluginError):
    """What a notifier raises when a message was not delivered (a ``PluginError``: the
    guard around a plugin's objects passes it through as raised).

    ``retry_after``: seconds the receiver asked to wait (HTTP ``Retry-After``);
    ``permanent``: retrying cannot help (the receiver refused the message itself), so it
    goes to the dead letters at once. The message must never hold a secret.
    """

    def __init__(
        self, message: str, *, retry_after: float | None = None, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


class Notifier(Protocol):
    """The notifier role (``register_notifiers``): deliver events out of lockgate.

    ``deliver`` sends one message within ``timeout`` seconds and returns when the
    receiver has it, or raises :class:`DeliveryError`. It may be called again for a
    message already delivered (delivery is at least once): receivers de-duplicate by
    ``message.id``. ``close`` releases connections.
    """

    def deliver(self, message: Message, timeout: float) -> None:
        """Send ``message``; DeliveryError when it was not received."""

    def close(self) -> None:
        """Release connections."""


class BatchNotifier(Notifier, Protocol):
    """A notifier that can send many messages at once (an optional capability; the
    dispatcher finds it with :func:`batch_delivery`): ``deliver_batch`` sends
    ``messages`` in the order given, all within ``timeout`` seconds, waiting for the
    receiver's acknowledgements together rather than one after the other (JetStream
    ``publish_async``, a Redis pipeline), and returns one outcome per message, in the
    same order: None when the receiver acknowledged it, else the :class:`DeliveryError`
    (a timeout is an error for every message not acknowledged by then). A message is
    counted delivered only when its own outcome is None. It may raise DeliveryError
    instead, for the whole batch.

    The dispatcher hands it the due events of one batch in sequence order, several of
    one component among them: send them over one connection, in order, so a receiver
    that stores what it receives in order (a stream) keeps each component's order. After
    a failure the dispatcher sends nothing more to the notifier in that pass.
    """

    def deliver_batch(
        self, messages: Sequence[Message], timeout: float
    ) -> list[DeliveryError | None]:
        """Send ``messages``; one outcome each (None: acknowledged)."""


def batch_delivery(notifier: object) -> BatchNotifier | None:
    """``notifier`` when it offers :class:`BatchNotifier`, else None."""
    offers = callable(getattr(notifier, "deliver_batch", None))
    return notifier if offers else None  # type: ignore[return-value]


def notifier_options(
    options: Mapping[str, Any], kind: str, known: Iterable[str], hint: str = ""
) -> tuple[str, dict[str, Any]]:
    """A notifier factory's options, checked: ``(where, options)`` with ``where`` the
    place to name in errors (``events.notifiers[NAME].options``) and ``options`` without
    the notifier's ``name``; an option ``known`` does not list is a ConfigError naming
    the place, the option, the notifier ``kind`` and what it takes (then ``hint``)."""
    rest = dict(options)
    name = rest.pop("name", kind)
    where = f"events.notifiers[{name}].options"
    allowed = sorted(known)
    unknown = sorted(set(rest) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{where}: unknown option {unknown[0]!r} of the {kind} notifier; it takes "
            f"{', '.join(allowed)}{f' ({hint})' if hint else ''}"
        )
    return where, rest


# --------------------------------------------------------------------------- the outbox


@record
class Delivery:
    """The delivery state of one event (``seq``) to one notifier: ``pending`` (with
    ``attempts`` so far and the time of the next, ``next_at``), ``delivered`` or ``dead``
    (given up; ``lockgate events retry`` makes it pending again); ``last_error``,
    ``updated_at``. ``component`` orders deliveries: one component's events go out in
    sequence order."""

    notifier: str
    seq: int
    component: str | None
    state: DeliveryState = "pending"
    attempts: int = 0
    next_at: str = ""
    last_error: str | None = None
    updated_at: str = ""


class EventDeliveries(Protocol):
    """Optional capability of a state store: keep the outbox's delivery state.

    The events are the audit log; a store with this capability keeps, per notifier, a
    cursor (every event up to it has a delivery row, or was not for this notifier) and
    one :class:`Delivery` row per event and notifier. ``record_deliveries`` writes rows
    (replacing a row with the same notifier and seq) and, when ``cursor`` is given,
    moves that notifier's cursor forward (never back), in one transaction.
    ``deliveries`` returns rows oldest first (by seq), narrowed by notifier, state and
    ``after`` (seq greater than), at most ``limit``. ``forget_deliveries`` deletes
    delivered rows updated before ``before`` and returns how many.
    """

    def delivery_cursor(self, notifier: str) -> int | None:
        """The notifier's cursor (None: never set)."""

    def record_deliveries(
        self, notifier: str, deliveries: Sequence[Delivery], cursor: int | None = None
    ) -> None:
        """Write ``deliveries`` and move the cursor, all or nothing."""

    def deliveries(
        self,
        notifier: str | None = None,
        state: DeliveryState | None = None,
        *,
        after: int = 0,
        limit: int | None = None,
    ) -> list[Delivery]:
        """Delivery rows, by seq."""

    def forget_deliveries(self, before: str) -> int:
        """Delete delivered rows updated before ``before``; how many."""


def store_deliveries(store: object) -> EventDeliveries | None:
    """``store`` when it offers :class:`EventDeliveries`, else None."""
    offers = callable(getattr(store, "record_deliveries", None))
    return store if offers else None  # type: ignore[return-value]
