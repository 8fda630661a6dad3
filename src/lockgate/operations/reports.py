"""What the state store can tell: summary, statistics, history, "what was live when".

The dictionaries returned here use the keys of the integration manager API
(``staged_components``, ``component_status_distribution``, ``recent_activities``,
``integration_operations``, ``component_statistics``…), so the CLI's ``--json`` and the
Python API describe the same facts the same way.
"""

from __future__ import annotations

from typing import Any

from lockgate.contracts.audit import ChainReport, verify_chain
from lockgate.contracts.state import AuditEvent, EventFilter, PointerChange
from lockgate.core.project import Project
from lockgate.core.session import Session, as_session
from lockgate.operations.pipeline_report import list_pipelines
from lockgate.operations.recover import note_pending

__all__ = [
    "OPERATIONS",
    "audit_verify",
    "event_dict",
    "history",
    "live_at",
    "statistics",
    "summary",
]

OPERATIONS = {
    "staging": "stage",
    "validation": "validate",
    "promotion": "promote",
    "rollback": "rollback",
    "pipeline_runs": "pipeline",
}


def event_dict(event: AuditEvent) -> dict[str, Any]:
    """An audit event as plain data."""
    return {
        "seq": event.seq,
        "at": event.at,
        "actor": event.actor,
        "action": event.action,
        "outcome": event.outcome,
        "component": event.component,
        "stage": event.stage,
        "revision": event.revision,
        "previous_revision": event.previous_revision,
        "reason": event.reason,
        "details": dict(event.details),
    }


def pipeline_names(session: Session) -> list[str]:
    """Every pipeline: defined under ``pipelines/``, or with a run in the audit log."""
    return [row["pipeline_id"] for row in list_pipelines(session.state(), session.project.root)]


def summary(session: Session | Project, *, recent: int = 10) -> dict[str, Any]:
    """Staged components, pipelines, status distribution and recent activities."""
    session = as_session(session)
    note_pending(session)  # reads only: never recovers
    state = session.state()
    counts = state.counts()
    events = state.events(EventFilter(limit=recent, newest_first=True))
    return {
        "staged_components": sum(counts.by_status.values()),
        "integration_pipelines": len(pipeline_names(session)),
        "component_status_distribution": dict(sorted(counts.by_status.items())),
        "recent_activities": [
            {
                "component_id": e.component,
                "activity": {
                    "action": e.action,
                    "outcome": e.outcome,
                    "timestamp": e.at,
                    "actor": e.actor,
                    "stage": e.stage,
                    "revision": e.revision,
                },
            }
            for e in events
        ],
    }


def statistics(session: Session | Project) -> dict[str, Any]:
    """Operation counts and success rates, and component statistics."""
    session = as_session(session)
    note_pending(session)  # reads only: never recovers
    counts = session.state().counts()
    operations: dict[str, Any] = {
        "total_staged_components": sum(counts.by_status.values()),
        "total_events": counts.events,
    }
    for name, action in OPERATIONS.items():
        outcomes = counts.operations.get(action, {})
        total = sum(outcomes.values())
        ok = outcomes.get("ok", 0)
        operations[name] = {
            "total": total,
            "succeeded": ok,
            "failed": total - ok,
            "success_rate": round(ok / total, 4) if total else None,
        }
    operations["promotion_success_rate"] = operations["promotion"]["success_rate"]
    return {
        "integration_operations": operations,
        "component_statistics": {
            "by_type": dict(sorted(counts.by_type.items())),
            "by_status": dict(sorted(counts.by_status.items())),
            "by_workspace": dict(sorted(counts.by_workspace.items())),
        },
    }


def history(session: Session | Project, where: EventFilter) -> list[AuditEvent]:
    """The audit events ``where`` selects (``lockgate history WS:ID``, ``lockgate log``)."""
    session = as_session(session)
    note_pending(session)  # reads only: never recovers
    return session.state().events(where)


def live_at(
    session: Session | Project, stage: str, at: str, component_id: str | None = None
) -> list[dict[str, Any]]:
    """What was current in ``stage`` at ``at``, and who put it there, when."""
    session = as_session(session)
    note_pending(session)  # reads only: never recovers
    stage = session.check_stage(stage)
    rows: list[PointerChange] = session.state().live_at(stage, at, component_id)
    return [
        {
            "stage": c.stage,
            "component_id": c.component_id,
            "component": c.component,
            "revision": c.revision,
            "since": c.at,
            "until": c.valid_until,
            "by": c.actor,
            "action": c.action,
            "reason": c.reason,
        }
        for c in rows
    ]


def audit_verify(session: Session | Project) -> ChainReport:
    """Check the whole audit chain."""
    session = as_session(session)
    note_pending(session)  # reads only: never recovers
    return verify_chain(session.state().chain())
