"""Pipeline runs over HTTP: ``POST /api/v1/pipelines/{name}/promote`` and ``/rollback``,
by the runner ``lockgate pipeline promote`` and ``rollback`` use, as jobs.

A run's report is the answer (the object ``--json`` prints). A run that completes (or a
dry run's plan) is 200; one the gates refused before anything moved is 422
``not_ready``, one that failed midway and was switched back is 409 ``refused``: both
carry the report in ``error.report``, as the command exits 1 after printing it.
"""

from __future__ import annotations

from typing import Any

from lockgate.contracts.refs import check_name
from lockgate.server.app import Call, field_flag, field_text
from lockgate.server.errors import ApiError

__all__ = [
    "PIPELINE_FIELDS",
    "check_pipeline",
    "check_promote_run",
    "pipeline_promote",
    "pipeline_rollback",
    "pipeline_stage",
]

PIPELINE_FIELDS: dict[str, tuple[str, ...]] = {
    "to": ("to", "dry_run", "reason"),
    "stage": ("stage", "dry_run", "reason"),
}
"""The body of a promote run (``to``, the stage to enter) and of a rollback run
(``stage``: the stage of the run to undo, default the last run's)."""


def pipeline_stage(call: Call, key: str) -> str | None:
    """The stage the run enters (``to``) or undoes (``stage``); a stage-limited token's
    stage when a rollback names none."""
    data = call.json(list(PIPELINE_FIELDS[key]))
    field_flag(data, "dry_run")
    field_text(data, "reason")
    named = field_text(data, key)
    if named is not None:
        return call.session.project.check_stage(named)
    return call.token.stage


def _entered(call: Call) -> str:
    stage = pipeline_stage(call, "to")
    if stage is None:
        raise ApiError("bad_request", "field 'to' is required: the stage the pipeline enters")
    return stage


def check_pipeline(call: Call) -> None:
    """The pipeline is defined (404 at once, no job, when it is not)."""
    from lockgate.operations.pipeline_spec import load_pipeline

    check_name("pipeline name", call.params["name"])
    load_pipeline(call.session.project.root, call.params["name"])


def check_promote_run(call: Call) -> None:
    """A promote run names the stage it enters, and the pipeline is defined."""
    _entered(call)
    check_pipeline(call)


def _answer(report: dict[str, Any]) -> tuple[int, Any]:
    status = report["status"]
    if status in ("completed", "planned"):
        return 200, report
    cause = report.get("cause") or f"pipeline {report['pipeline_id']} run {status}"
    code = "not_ready" if status == "failed" else "refused"
    raise ApiError(code, cause, extra={"report": report})


def pipeline_promote(call: Call) -> tuple[int, Any]:
    from lockgate.operations.pipeline import PipelineRunner

    data = call.json(list(PIPELINE_FIELDS["to"]))
    report = PipelineRunner(call.session).promote(
        call.params["name"],
        to=_entered(call),
        dry_run=field_flag(data, "dry_run"),
        reason=field_text(data, "reason"),
    )
    return _answer(report)


def pipeline_rollback(call: Call) -> tuple[int, Any]:
    from lockgate.operations.pipeline import PipelineRunner

    data = call.json(list(PIPELINE_FIELDS["stage"]))
    report = PipelineRunner(call.session).rollback(
        call.params["name"],
        stage=pipeline_stage(call, "stage"),
        dry_run=field_flag(data, "dry_run"),
        reason=field_text(data, "reason"),
    )
    return _answer(report)
