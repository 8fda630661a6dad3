"""What each endpoint does: a work function over the operations, and the action its token
must allow. The table :data:`ROUTES` is what the application mounts and what the OpenAPI
document describes (:mod:`lockgate.server.openapi`), so the two cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

import attrs

from lockgate.contracts.clock import parse_time
from lockgate.contracts.refs import ComponentRef, check_name
from lockgate.contracts.state import EventFilter
from lockgate.errors import InputError, NotFoundError
from lockgate.server.app import Call
from lockgate.server.app import field_flag as _flag
from lockgate.server.app import field_text as _text
from lockgate.server.errors import ApiError
from lockgate.server.pipelines import (
    PIPELINE_FIELDS,
    check_pipeline,
    check_promote_run,
    pipeline_promote,
    pipeline_rollback,
    pipeline_stage,
)

__all__ = ["ROUTES", "Route"]


@attrs.frozen
class Route:
    """One endpoint: ``action`` is what its token must allow (see ``ACTIONS``)."""

    method: str
    path: str
    summary: str
    action: str
    work: Callable[[Call], tuple[int, Any]]
    stage_of: Callable[[Call], str | None] | None = None
    query: tuple[str, ...] = ()
    body: tuple[str, ...] = ()
    upload: bool = False
    run_async: bool = False
    """Always answered 202 with a job (others: when asked, ``Prefer: respond-async``)."""
    check: Callable[[Call], None] | None = None
    """Input checked before a job is queued (bad input: 400 at once, nothing queued)."""


def _ref(call: Call) -> ComponentRef:
    return ComponentRef.parse(call.params["ref"])


def _int(call: Call, name: str, default: int, top: int) -> int:
    raw = call.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 0 < int(raw) <= top:
        raise ApiError("bad_request", f"query {name}={raw!r}: give a whole number 1 to {top}")
    return int(raw)


_FIELDS: dict[type, tuple[str, ...]] = {}
_FLAT = (str, int, float, bool, type(None))


def _record(obj: Any) -> dict[str, Any]:
    """``attrs.asdict`` with enums as their values; a record of plain fields (a pointer,
    a revision: most of an answer) by its field names, twice as fast."""
    names = _FIELDS.get(type(obj))
    if names is None:
        names = _FIELDS[type(obj)] = tuple(a.name for a in attrs.fields(type(obj)))
    out = {}
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, _FLAT):
            return attrs.asdict(obj, value_serializer=lambda _i, _a, v: getattr(v, "value", v))
        out[name] = value.value if isinstance(value, Enum) else value
    return out


# ---------------------------------------------------------------------- reads


def components(call: Call) -> tuple[int, Any]:
    from lockgate.operations.listing import list_components

    workspace = call.query.get("workspace")
    if workspace is not None:
        check_name("workspace", workspace)
    return 200, [row.to_dict() for row in list_components(call.session, workspace)]


def component(call: Call) -> tuple[int, Any]:
    ref = str(_ref(call))
    state = call.session.state()
    record = state.component(ref)
    if record is None:
        raise NotFoundError(f"{ref} has never been staged")
    live = [
        _record(p)
        for stage in call.session.stage_names
        if (p := state.pointer(stage, record.component_id)) is not None and p.component == ref
    ]
    return 200, {
        **_record(record),
        "revisions": [_record(r) for r in state.revisions(ref)],
        "approvals": [_record(a) for a in state.approvals(ref)],
        "live": live,
    }


def revision(call: Call) -> tuple[int, Any]:
    from lockgate.operations.resolve import resolve_revision

    ref = _ref(call)
    chosen = resolve_revision(call.session, ref, call.params["revision"])
    found = [r for r in call.session.state().revisions(str(ref)) if r.revision == chosen]
    manifest = call.session.content().get_manifest(chosen)
    files = [
        {"path": e.path, "kind": e.kind, "size": e.size, "digest": e.digest, "target": e.target}
        for e in manifest.entries
    ]
    return 200, {**_record(found[0]), "manifest": files}


def stages(call: Call) -> tuple[int, Any]:
    state = call.session.state()
    return 200, [
        {
            "stage": name,
            "description": section.description,
            "protected": section.protected,
            "live": [_record(p) for p in state.pointers(name) if p.revision is not None],
        }
        for name, section in call.session.config.stages.items()
    ]


def live_at(call: Call) -> tuple[int, Any]:
    from lockgate.operations.reports import live_at as rows

    at = parse_time(call.query.get("at", "now"), option="at")
    component_id = call.query.get("component")
    return 200, rows(call.session, call.params["stage"], at, component_id)


def _events(call: Call, *, component: str | None = None) -> list[dict[str, Any]]:
    from lockgate.operations.reports import event_dict, history

    q = call.query
    where = EventFilter(
        component=component or q.get("component"),
        stage=q.get("stage"),
        actor=q.get("actor"),
        action=q.get("action"),
        since=parse_time(q["since"], option="since") if "since" in q else None,
        until=parse_time(q["until"], option="until") if "until" in q else None,
        limit=_int(call, "limit", 100, 10_000),
        newest_first=q.get("order", "newest") == "newest",
    )
    return [event_dict(e) for e in history(call.session, where)]


def component_history(call: Call) -> tuple[int, Any]:
    return 200, _events(call, component=str(_ref(call)))


def audit(call: Call) -> tuple[int, Any]:
    return 200, _events(call)


def summary(call: Call) -> tuple[int, Any]:
    from lockgate.operations.reports import summary as report

    return 200, report(call.session, recent=_int(call, "recent", 10, 1000))


def stats(call: Call) -> tuple[int, Any]:
    from lockgate.operations.reports import statistics

    return 200, statistics(call.session)


# ---------------------------------------------------------------------- operations


def check_upload(call: Call) -> None:
    """An upload's stage, media type and every archive entry, before anything is queued."""
    from lockgate.server.archive import check_archive

    _ref(call)
    to = call.query.get("to")
    if to is not None:
        call.session.project.check_stage(to)
    if not call.content_type.startswith(("application/x-tar", "application/gzip")):
        raise ApiError(
            "unsupported_media_type",
            "send the component as a tar archive (Content-Type: application/x-tar "
            "or application/gzip)",
        )
    check_archive(call.body)
    _component_dir(call, _ref(call))


def stage(call: Call) -> tuple[int, Any]:
    from lockgate.operations.stage import Stager
    from lockgate.server.archive import check_archive, replace_directory

    check_upload(call)
    ref, to = _ref(call), call.query.get("to")
    members = check_archive(call.body)
    replace_directory(call.body, members, _component_dir(call, ref))
    result = Stager(call.session).stage(ref, to=to, reason=call.query.get("reason"))
    return (201 if result.created else 200), result.to_dict()


def _component_dir(call: Call, ref: ComponentRef) -> Any:
    """Where ``ref``'s files are in its workspace: where the source finds it, else where
    the layout puts a new component of query ``type``."""
    found = call.session.source().discover([ref.workspace])
    for comp in found.components:
        if comp.ref == ref:
            return comp.path
    kind = call.query.get("type")
    if kind is None:
        raise ApiError("bad_request", f"{ref} is new: say its type with query type=TYPE")
    check_name("component type", kind)
    settings = call.session.project.settings.get("workspace")
    root = call.session.require_root() / str(getattr(settings, "root", "workspaces"))
    layout = str(getattr(settings, "layout", "{workspace}/{type}/{component}"))
    relative = layout.format(workspace=ref.workspace, type=kind, component=ref.component_id)
    return root / relative


def validate(call: Call) -> tuple[int, Any]:
    from lockgate.operations.recover import settle
    from lockgate.operations.validate import Validation

    data = call.json(["stage"])
    settle(call.session)
    report = Validation(call.session).run([str(_ref(call))], _text(data, "stage"))
    return 200, report.to_dict()


def _decide(call: Call, decision: str) -> tuple[int, Any]:
    from lockgate.operations.approve import decide

    data = call.json(["revision", "comment", "reason", "signature", "stage"])
    result = decide(
        call.session,
        _ref(call),
        "approve" if decision == "approve" else "reject",
        revision=_text(data, "revision"),
        comment=_text(data, "comment"),
        reason=_text(data, "reason"),
        signature=_text(data, "signature"),
        signed_stage=_text(data, "stage"),
    )
    return 200, result.to_dict()


def next_stage(call: Call) -> str | None:
    """The stage a stage-limited approver must hold: the first rung where the
    component's latest revision is not live yet (None: the token is not limited)."""
    from lockgate.operations.signatures import next_stage as first_rung_without

    if call.token.stage is None:
        return None
    ref = str(_ref(call))
    record = call.session.state().component(ref)
    if record is None or record.latest_revision is None:
        raise NotFoundError(f"{ref} has never been staged")
    return first_rung_without(call.session, ref, record.latest_revision)


def _switch_stage(call: Call, key: str) -> str | None:
    """The stage a promotion (``to``) or rollback (``stage``) names; a stage-limited
    token's stage when it names none."""
    data = call.json(_SWITCH_FIELDS[key])
    named = _text(data, key)
    if named is not None:
        return call.session.project.check_stage(named)
    return call.token.stage


_SWITCH_FIELDS = {
    "to": ["to", "rev", "reason", "dry_run", "force", "expect_current"],
    "stage": ["stage", "to", "at", "reason", "dry_run"],
}


def promote(call: Call) -> tuple[int, Any]:
    from lockgate.operations.promote import Promoter

    data = call.json(_SWITCH_FIELDS["to"])
    result = Promoter(call.session).promote(
        call.params["ref"],
        to=_switch_stage(call, "to"),
        rev=_text(data, "rev"),
        expect_current=_text(data, "expect_current"),
        dry_run=_flag(data, "dry_run"),
        force=_flag(data, "force"),
        reason=_text(data, "reason"),
    )
    return 200, result.to_dict()


def rollback(call: Call) -> tuple[int, Any]:
    from lockgate.operations.promote import Promoter

    data = call.json(_SWITCH_FIELDS["stage"])
    if data.get("to") is not None and data.get("at") is not None:
        raise InputError("give to or at, not both")
    at = _text(data, "at")
    result = Promoter(call.session).rollback(
        call.params["ref"],
        stage=_switch_stage(call, "stage"),
        to=_text(data, "to"),
        at=parse_time(at, option="at") if at else None,
        reason=_text(data, "reason"),
        dry_run=_flag(data, "dry_run"),
    )
    return 200, result.to_dict()


def remove(call: Call) -> tuple[int, Any]:
    from lockgate.operations.remove import Removal

    data = call.json(["reason", "dry_run"])
    result = Removal(call.session).remove(
        call.params["ref"], reason=_text(data, "reason"), dry_run=_flag(data, "dry_run")
    )
    return 200, result.to_dict()


def job(call: Call) -> tuple[int, Any]:
    """A job, to the actor that asked for it (and to an admin)."""
    found = call.jobs.get(
        call.params["id"], None if call.token.role == "admin" else call.token.actor
    )
    if found is None:
        raise NotFoundError(
            f"no job {call.params['id']!r} of {call.token.actor}: it never existed, belongs "
            "to another actor, or expired"
        )
    return 200, found


C = "/api/v1/components/{ref}"
P = "/api/v1/pipelines/{name}"
AUDIT_QUERY = ("component", "stage", "actor", "action", "since", "until", "limit", "order")
ROUTES: tuple[Route, ...] = (
    Route("GET", "/api/v1/components", "Components and their status", "read", components,
          query=("workspace",)),
    Route("GET", C, "One component: revisions, approvals, where it is live", "read", component),
    Route("GET", C + "/revisions/{revision}", "A revision and its manifest", "read", revision),
    Route("GET", C + "/history", "A component's audit events", "read", component_history,
          query=AUDIT_QUERY[1:]),
    Route("GET", "/api/v1/stages", "Stages and what is live in each", "read", stages),
    Route("GET", "/api/v1/stages/{stage}/live-at", "What was live in a stage at a time",
          "read", live_at, query=("at", "component")),
    Route("GET", "/api/v1/summary", "The integration summary", "read", summary,
          query=("recent",)),
    Route("GET", "/api/v1/stats", "Statistics", "read", stats),
    Route("GET", "/api/v1/audit", "The audit log, filtered", "read", audit, query=AUDIT_QUERY),
    Route("POST", C + "/stage", "Stage a component from an uploaded tar archive (a job)",
          "stage", stage, query=("type", "to", "reason"), upload=True, run_async=True,
          check=check_upload),
    Route("POST", C + "/validate", "Validate a component's latest revision", "validate",
          validate, body=("stage",)),
    Route("POST", C + "/approve", "Approve a revision", "approve",
          lambda c: _decide(c, "approve"), next_stage,
          body=("revision", "comment", "signature", "stage")),
    Route("POST", C + "/reject", "Reject a revision", "reject",
          lambda c: _decide(c, "reject"), next_stage, body=("revision", "reason")),
    Route("POST", C + "/promote", "Promote into the next (or a named) stage", "promote",
          promote, lambda c: _switch_stage(c, "to"), body=tuple(_SWITCH_FIELDS["to"])),
    Route("POST", C + "/rollback", "Roll a stage back", "rollback", rollback,
          lambda c: _switch_stage(c, "stage"), body=tuple(_SWITCH_FIELDS["stage"])),
    Route("POST", C + "/remove", "Retire a component: out of every stage", "remove", remove,
          body=("reason", "dry_run")),
    Route("POST", P + "/promote", "Promote every member of a pipeline, all or nothing (a job)",
          "promote", pipeline_promote, lambda c: pipeline_stage(c, "to"),
          body=PIPELINE_FIELDS["to"], run_async=True, check=check_promote_run),
    Route("POST", P + "/rollback", "Undo a pipeline's last completed run (a job)", "rollback",
          pipeline_rollback, lambda c: pipeline_stage(c, "stage"),
          body=PIPELINE_FIELDS["stage"], run_async=True, check=check_pipeline),
    Route("GET", "/jobs/{id}", "A job: its status, then its result or error", "read", job),
)  # fmt: skip
"""Every endpoint behind a token, in the order the OpenAPI document lists them."""
