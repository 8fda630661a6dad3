"""Announce a change to the plugins (``on_stage``, ``on_promote``, ``on_rollback``), and
record in the audit log every plugin that raised while hearing it.

An announcement comes after the change is committed: a plugin that raises never undoes
it. The command reports the failure as a warning, and the audit log keeps it: one
``announce`` event (outcome ``failed``) per failing plugin, right after the change's own
event, with the hook, the action announced, the plugin and its error (which names the
distribution and version) in its details.
"""

from __future__ import annotations

from collections.abc import Callable

from lockgate.contracts.clock import now_iso
from lockgate.contracts.models import ChangeEvent
from lockgate.contracts.state import AuditEvent
from lockgate.core.session import Session
from lockgate.errors import LockgateError, PluginHookError, environment_fault

__all__ = ["announce", "change_of", "failed", "shutdown"]


def announce(
    session: Session,
    hook: Callable[[ChangeEvent], list[PluginHookError]],
    event: ChangeEvent,
) -> list[PluginHookError]:
    """Call announcing ``hook`` (a :class:`HookRunner` method) with ``event``; each
    failure is recorded in the audit log and returned."""
    failures = hook(event)
    for failure in failures:
        record = AuditEvent(
            at=now_iso(),
            actor=event.actor,
            action="announce",
            component=event.component,
            stage=event.stage,
            revision=event.revision,
            details={
                "hook": failure.hook,
                "announced": event.action,
                "plugin": failure.plugin,
                "error": failure.message,
            },
            outcome="failed",
        )
        try:
            session.state().append_event(record)
            failed(session, record, recorded=True)
        except Exception as exc:  # the change stands: a state store failing now is told
            if not isinstance(exc, LockgateError) and environment_fault(exc) is None:
                raise
            session.project.warn(f"the audit log could not record that {failure}: {exc}")
    return failures


def change_of(event: AuditEvent) -> ChangeEvent:
    """An audit event as the :class:`ChangeEvent` hooks receive (``details`` gains
    ``outcome``)."""
    import datetime as dt

    return ChangeEvent(
        action=event.action,
        component=event.component or "",
        stage=event.stage,
        revision=event.revision,
        previous_revision=event.previous_revision,
        actor=event.actor,
        at=dt.datetime.fromisoformat(event.at),
        reason=event.reason,
        details={**event.details, "outcome": event.outcome},
    )


def failed(session: Session, event: AuditEvent, *, recorded: bool = False) -> None:
    """Record a failed or refused attempt in the audit log (unless ``recorded``: it is
    already, written with others), then announce it through ``on_failure``. A plugin
    failing to hear it is a warning."""
    if not recorded:
        session.state().append_event(event)
    for failure in session.hooks.on_failure(change_of(event)):
        session.project.warn(str(failure))


def shutdown(session: Session) -> None:
    """Call ``on_shutdown``; a plugin that raises is a warning."""
    for failure in session.hooks.on_shutdown():
        session.project.warn(str(failure))
