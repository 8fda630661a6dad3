"""A pipeline run's report, and runs read back from the audit log.

A run is recorded as one audit event (action ``pipeline``, no component) whose details
carry the pipeline's name, the run id and the whole report; every member's switch is an
ordinary ``promote`` or ``rollback`` event whose details name the same run. So runs need
nothing of the state store beyond its audit log, and the hash chain covers them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lockgate.contracts.clock import now_iso
from lockgate.contracts.identity import Identity
from lockgate.contracts.state import AuditEvent, EventFilter, StateStore
from lockgate.errors import NotFoundError

__all__ = [
    "ACTION",
    "PIPELINES_DIR",
    "UNDO_ACTION",
    "RunReport",
    "defined_pipelines",
    "find_run",
    "list_pipelines",
    "record_run",
    "run_events",
]

PIPELINES_DIR = "pipelines"
"""Where a project defines its pipelines, one ``<name>.yaml`` each."""

ACTION = "pipeline"
UNDO_ACTION = "pipeline_undo"
"""The event a failing run writes before it switches its members back: recovery then
undoes the run even when every member's pointer still holds the run's revision."""


def defined_pipelines(root: Path | None) -> list[str]:
    """The names of the pipelines defined under ``pipelines/`` (none without a root)."""
    where = root / PIPELINES_DIR if root is not None else None
    if where is None or not where.is_dir():
        return []
    return sorted(p.stem for p in where.glob("*.yaml") if p.is_file())


class RunReport:
    """The report of one run, filled in as it goes (``to_dict`` is what is stored)."""

    def __init__(
        self, pipeline: str, run_id: str, stage: str, kind: str, *, dry_run: bool = False
    ) -> None:
        self.pipeline, self.run_id, self.stage, self.kind = pipeline, run_id, stage, kind
        self.dry_run = dry_run
        self.started = time.perf_counter()
        self.started_at = now_iso()
        self.status = "running"
        self.cause: str | None = None
        self.steps: list[dict[str, Any]] = []
        self.issues: list[str] = []
        self.elapsed: float | None = None
        self.definition: str | None = None
        self.levels: list[list[str]] = []

    def add_step(
        self, component: str, action: str, old: str | None, new: str | None, status: str
    ) -> dict[str, Any]:
        step: dict[str, Any] = {
            "component": component,
            "action": action,
            "revision_from": old,
            "revision_to": new,
            "status": status,
            "attempts": 0,
            "duration": 0.0,
            "issues": [],
        }
        self.steps.append(step)
        return step

    def step(self, component: str) -> dict[str, Any]:
        return next(s for s in self.steps if s["component"] == component)

    def finish(self, status: str, cause: str | None = None) -> None:
        self.status, self.cause = status, cause
        self.elapsed = time.perf_counter() - self.started

    def to_dict(self) -> dict[str, Any]:
        total = len(self.steps)
        done = sum(1 for s in self.steps if s["status"] in ("completed", "current"))
        failed = sum(1 for s in self.steps if s["status"] in ("failed", "refused"))
        rate = round(done / total, 4) if total else 1.0
        retries = sum(max(0, s["attempts"] - 1) for s in self.steps)
        errors = [f"{s['component']}: {i}" for s in self.steps for i in s["issues"]]
        elapsed = self.elapsed if self.elapsed is not None else time.perf_counter() - self.started
        return {
            "status": self.status,
            "pipeline_id": self.pipeline,
            "run_id": self.run_id,
            "kind": self.kind,
            "stage": self.stage,
            "dry_run": self.dry_run,
            "started_at": self.started_at,
            "definition": self.definition,
            "levels": [list(level) for level in self.levels],
            "total_steps": total,
            "completed_steps": done,
            "failed_steps": failed,
            "execution_time": round(elapsed, 4),
            "success_rate": rate,
            "cause": self.cause,
            "issues": list(self.issues),
            "step_results": [dict(s) for s in self.steps],
            "execution_summary": {
                "components_promoted": [
                    s["component"] for s in self.steps if s["status"] == "completed"
                ],
                "retries": retries,
                "errors_encountered": errors,
                "success_rate": rate,
            },
        }


def record_run(
    state: StateStore,
    actor: str,
    report: dict[str, Any],
    *,
    reason: str | None = None,
    identity: Identity | None = None,
) -> AuditEvent | None:
    """Append the run's event and return it (once: a recovery that finds it recorded
    adds none, and returns None)."""
    if find_run(state, report["pipeline_id"], run_id=report["run_id"], missing_ok=True):
        return None
    event = AuditEvent(
        at=now_iso(),
        actor=actor,
        action=ACTION,
        stage=report["stage"],
        reason=reason,
        details={
            "pipeline": report["pipeline_id"],
            "run": report["run_id"],
            "report": report,
            **(identity.details() if identity else {}),
        },
        outcome="ok" if report["status"] == "completed" else "failed",
    )
    state.append_event(event)
    return event


def list_pipelines(state: StateStore, root: Path | None) -> list[dict[str, Any]]:
    """Every pipeline (defined under ``pipelines/``, or with a recorded run): its id, its
    number of runs, and its last run's status and stage."""
    events = run_events(state)
    recorded = {str(e.details.get("pipeline")) for e in events}
    rows = []
    for name in sorted({*defined_pipelines(root), *recorded}):
        mine = [e for e in events if e.details.get("pipeline") == name]
        last: dict[str, Any] = dict(mine[-1].details.get("report") or {}) if mine else {}  # type: ignore[call-overload]
        rows.append(
            {
                "pipeline_id": name,
                "runs": len(mine),
                "last_status": last.get("status"),
                "last_stage": last.get("stage"),
            }
        )
    return rows


def run_events(state: StateStore, pipeline: str | None = None) -> list[AuditEvent]:
    """The recorded runs (of ``pipeline``, or of every pipeline), oldest first."""
    return [
        e
        for e in state.events(EventFilter(action=ACTION))
        if pipeline is None or e.details.get("pipeline") == pipeline
    ]


def find_run(
    state: StateStore,
    pipeline: str,
    *,
    number: int | None = None,
    run_id: str | None = None,
    missing_ok: bool = False,
) -> dict[str, Any] | None:
    """The report of run ``number`` (1 is the first; None: the last) or ``run_id``."""
    events = run_events(state, pipeline)
    chosen: AuditEvent | None = None
    if run_id is not None:
        chosen = next((e for e in events if e.details.get("run") == run_id), None)
    elif number is not None:
        chosen = events[number - 1] if 1 <= number <= len(events) else None
    elif events:
        chosen = events[-1]
    if chosen is None:
        if missing_ok:
            return None
        which = f"run {number}" if number is not None else "a run"
        raise NotFoundError(f"pipeline {pipeline} has no {which} recorded ({len(events)} run(s))")
    report: dict[str, Any] = dict(chosen.details.get("report") or {})  # type: ignore[call-overload]
    report["run"] = events.index(chosen) + 1
    return report
