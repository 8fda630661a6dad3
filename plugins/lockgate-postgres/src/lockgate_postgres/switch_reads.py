"""``SwitchReads`` on PostgreSQL: what a switch reads again under its locks (the open
intents, the pointer, the component, the revision's approvals) in one statement, each
part as the store's own read of it would answer (the rows as JSON, one column each)."""

from __future__ import annotations

import json

from lockgate.plugin import (
    Approval,
    ComponentRecord,
    ComponentStatus,
    Intent,
    Pointer,
    SwitchView,
)
from lockgate_postgres.db import Database

__all__ = ["switch_reads"]

_READS = (
    "SELECT (SELECT coalesce(json_agg(i ORDER BY i.created_at), '[]') FROM (SELECT id, "
    "operation, owner, created_at, payload, state FROM intents WHERE state = 'open') AS i) "
    "AS intents, (SELECT row_to_json(p) FROM (SELECT stage, component_id, component, "
    "revision, generation, updated_at, actor FROM pointers WHERE stage = %s AND "
    "component_id = %s) AS p) AS pointer, (SELECT row_to_json(c) FROM (SELECT component, "
    "workspace, component_id, component_type, status, latest_revision, updated_at FROM "
    "components WHERE component = %s) AS c) AS component, (SELECT coalesce(json_agg(a "
    "ORDER BY a.id), '[]') FROM (SELECT id, component, revision, actor, decision, at, "
    "stage, comment FROM approvals WHERE component = %s AND revision = %s) AS a) AS approvals"
)


def switch_reads(
    db: Database, stage: str, component_id: str, component: str, revision: str | None
) -> SwitchView:
    """See ``SwitchReads.switch_reads``."""
    with db.conn() as conn:
        row = conn.execute(_READS, (stage, component_id, component, component, revision))
        found = row.fetchone()
    assert found is not None  # a SELECT without FROM returns its one row
    record, approvals = found["component"], found["approvals"]
    return SwitchView(
        open_intents=[
            Intent(**{**i, "payload": json.loads(i["payload"])}) for i in found["intents"]
        ],
        pointer=Pointer(**found["pointer"]) if found["pointer"] else None,
        component=(
            ComponentRecord(**{**record, "status": ComponentStatus(record["status"])})
            if record
            else None
        ),
        approvals=[Approval(**{k: v for k, v in a.items() if k != "id"}) for a in approvals],
    )
