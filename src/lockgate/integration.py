"""The integration manager API: the Python interface existing users script against.

A thin layer over the operations — staging (``Stager``), validation (``Validation``),
promotion (``Promoter``) and reports — that returns the plain dicts the integration
manager documented. Expected failures (an unknown component, not ready, nothing to roll
back) come back as ``success: False`` with readable ``issues``; programming errors raise:
a project that does not exist (:class:`~lockgate.ProjectNotFoundError`), a malformed
reference or name (:class:`~lockgate.InputError`), an invalid ``lockgate.yaml``
(:class:`~lockgate.ConfigError`).

    from lockgate import WorkspaceManager, WorkspaceIntegrationManager

    manager = WorkspaceIntegrationManager(WorkspaceManager("/path/to/project"))
    manager.stage_for_integration("data_preprocessing", "alice")
    manager.validate_integration_readiness(["alice:data_preprocessing"])
    manager.promote_to_production("data_preprocessing")

Each method imports the operation it runs, as the CLI's commands do: ``import lockgate``
and ``WorkspaceManager`` load no operation module (there is no import circle to avoid).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockgate.contracts.models import ComponentStatus, IntegrationStage
from lockgate.errors import (
    ConfigError,
    InputError,
    LockgateError,
    ProjectNotFoundError,
)

if TYPE_CHECKING:
    from lockgate.core.project import Project

__all__ = [
    "IntegrationPipeline",
    "StagedComponent",
    "WorkspaceIntegrationManager",
    "WorkspaceManager",
]

# Programming errors raise; everything else a user can cause comes back as issues.
_RAISE = (ProjectNotFoundError, ConfigError)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


class WorkspaceManager:
    """A lockgate project opened from Python: ``WorkspaceManager("/path/to/project")``.

    ``path`` is the project root (the directory holding ``lockgate.yaml``) or any
    directory inside it. ``actor`` names who acts (default: ``LOCKGATE_ACTOR``, else the
    OS user); a name other than the OS user's needs a project that allows it
    (``identity.allow_override``, see docs/validation.md). With ``create=True`` a project
    is initialised there when there is none.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        actor: str | None = None,
        create: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        from lockgate.core.project import Project

        root = Path(path)
        if create and not (root / "lockgate.yaml").is_file():
            from lockgate.operations.init import init_project

            init_project(root)
        self.project: Project = Project.open(root, environ=environ)
        self.project.actor_override = actor
        self.project.override_via = "python-api"
        # The builtin ``workspace`` source's root (``plugins.workspace.root``).
        settings = self.project.settings.get("workspace")
        self.workspace_root = self.project.require_root() / str(
            getattr(settings, "root", "workspaces")
        )

    @property
    def root(self) -> Path:
        """The project root."""
        return self.project.require_root()

    def list_workspaces(self) -> list[str]:
        """The workspaces that exist (directories under the workspaces root)."""
        if not self.workspace_root.is_dir():
            return []
        return sorted(p.name for p in self.workspace_root.iterdir() if p.is_dir())

    def discover_components(self, workspace: str | None = None) -> list[dict[str, Any]]:
        """Components found in the workspaces, as dicts (``ref``, ``type``, ``path``...)."""
        discovery = self.project.source().discover([workspace] if workspace else None)
        return [
            {
                "ref": str(c.ref),
                "component_id": c.ref.component_id,
                "workspace": c.ref.workspace,
                "component_type": c.component_type,
                "path": str(c.path),
            }
            for c in discovery.components
        ]

    def close(self) -> None:
        """Release the state store's connections."""
        self.project.close()


class StagedComponent:
    """A staged component with metadata, status tracking and approval history."""

    def __init__(
        self,
        component_id: str,
        source_workspace: str,
        component_type: str,
        stage: str = "staging",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.component_id = component_id
        self.source_workspace = source_workspace
        self.component_type = component_type
        self.stage = stage
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.status = ComponentStatus.STAGED
        self.staged_at = _now()
        self.revision: str | None = None
        self.approval_history: list[dict[str, Any]] = []

    @property
    def ref(self) -> str:
        """``workspace:component_id``."""
        return f"{self.source_workspace}:{self.component_id}"

    def to_dict(self) -> dict[str, Any]:
        """Every field, with enums as their values."""
        return {
            "component_id": self.component_id,
            "source_workspace": self.source_workspace,
            "component_type": self.component_type,
            "stage": self.stage,
            "status": self.status.value,
            "staged_at": self.staged_at,
            "revision": self.revision,
            "metadata": dict(self.metadata),
            "approval_history": list(self.approval_history),
        }


class IntegrationPipeline:
    """A named group of staged components that climb the ladder together.

    ``depends_on`` maps a member (``WS:ID``) to the members it comes after; ``options``
    are the pipeline file's (``fail_fast``, ``parallel_execution``, ``timeout``,
    ``retry_count``). ``status`` is ``pending`` until a run: then the last run's
    (``completed``, ``failed``, ``rolled_back``), with its report in ``last_run``.
    :meth:`WorkspaceIntegrationManager.create_integration_pipeline` saves it as
    ``pipelines/<pipeline_id>.yaml`` (docs/pipelines.md).
    """

    def __init__(
        self,
        pipeline_id: str,
        components: Sequence[StagedComponent],
        *,
        depends_on: Mapping[str, Sequence[str]] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.pipeline_id = pipeline_id
        self.components = list(components)
        self.depends_on = {k: list(v) for k, v in (depends_on or {}).items()}
        self.options = dict(options or {})
        self.created_at = _now()
        self.status = "pending"
        self.last_run: dict[str, Any] | None = None

    @property
    def refs(self) -> list[str]:
        """The members as ``WS:ID``."""
        return [c.ref for c in self.components]

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline_id": self.pipeline_id,
            "status": self.status,
            "created_at": self.created_at,
            "components": [c.to_dict() for c in self.components],
            "depends_on": dict(self.depends_on),
            "options": dict(self.options),
            "last_run": self.last_run,
        }


def _issue_text(exc: LockgateError) -> str:
    return exc.message


class WorkspaceIntegrationManager:
    """Staging, readiness, promotion to production and rollback, as plain dicts."""

    def __init__(self, workspace_manager: WorkspaceManager) -> None:
        from lockgate.core.session import Session

        self.workspace_manager = workspace_manager
        self.project = workspace_manager.project
        self.session = Session(self.project)  # the unit of work every method runs in

    # ------------------------------------------------------------------ staging

    def stage_for_integration(
        self, component_id: str, source_workspace: str, target_stage: str = "integration"
    ) -> dict[str, Any]:
        """Snapshot a workspace component as a revision meant for ``target_stage``.

        Returns ``success``, ``component_id``, ``source_workspace``, ``target_stage``,
        ``revision``, ``created`` (False when nothing changed), ``staged_at``,
        ``staging_path`` (the revision's files, read-only), ``files``, ``size`` and
        ``issues``.
        """
        from lockgate.operations.revisions import release_dir
        from lockgate.operations.stage import Stager

        result: dict[str, Any] = {
            "success": False,
            "component_id": component_id,
            "source_workspace": source_workspace,
            "target_stage": target_stage,
            "issues": [],
        }
        try:
            ref = f"{source_workspace}:{component_id}"
            staged = Stager(self.session).stage(ref, to=target_stage)
            path = release_dir(self.session, staged.revision)
        except _RAISE:
            raise
        except LockgateError as exc:
            result["issues"].append(_issue_text(exc))
            return result
        record = self.session.state().component(ref)
        result.update(
            success=True,
            revision=staged.revision,
            created=staged.created,
            staged_at=record.updated_at if record else _now(),
            staging_path=str(path) if path is not None else None,
            files=staged.files,
            size=staged.size,
            status=record.status.value if record else None,
        )
        if not staged.created:
            result["note"] = "unchanged since its latest revision; nothing new was staged"
        return result

    # ------------------------------------------------------------------ validation

    def validate_integration_readiness(self, staged_components: Sequence[str]) -> dict[str, Any]:
        """Validate ``["alice:prep", ...]`` together, each for its next stage.

        Returns ``overall_ready``, ``component_results`` (per ref: ``ready``, ``issues``...),
        ``integration_issues``, ``recommendations`` and ``summary``.
        """
        from lockgate.operations.validate import Validation

        refs = list(staged_components)
        if not refs:
            return {
                "overall_ready": False,
                "summary": "nothing to validate",
                "component_results": {},
                "integration_issues": [],
                "recommendations": ["stage components, then validate them"],
            }
        for ref in refs:
            if ":" not in ref:
                raise InputError(f"{ref!r}: name components as 'workspace:component_id'")
        return Validation(self.session).run(refs).to_dict()

    # ------------------------------------------------------------------ promotion

    def promote_to_production(self, component_id: str) -> dict[str, Any]:
        """Promote the component's latest revision up every rung to the last stage.

        Each rung is gated. Returns ``success``, ``component_id``, ``revision``,
        ``promoted_at``, ``production_path``, ``stages`` (what each rung did),
        ``issues`` and, when production already held it, ``note``.
        """
        from lockgate.operations.promote import Promoter
        from lockgate.operations.recover import settle

        ladder = self.session.stage_names
        production = ladder[-1]
        result: dict[str, Any] = {"success": False, "component_id": component_id, "issues": []}
        promoter = Promoter(self.session)
        steps: list[dict[str, Any]] = []
        try:
            settle(self.session)
            ref = promoter.resolve(component_id)
            latest = self.session.state().component(str(ref))
            revision = latest.latest_revision if latest else None
            result["revision"] = revision
            for stage in ladder:
                step = promoter.promote(str(ref), to=stage, rev=revision)
                steps.append({"stage": stage, "changed": step.changed})
                if stage == production:
                    result.update(
                        success=True,
                        promoted_at=step.at,
                        production_path=step.locations[0] if step.locations else None,
                        previous_revision=step.previous_revision,
                    )
                    if not step.changed:
                        result["note"] = f"{revision} is already current in {production}"
                    result["issues"].extend(step.warnings)
        except _RAISE:
            raise
        except LockgateError as exc:
            result["issues"].append(_issue_text(exc))
        result["stages"] = steps
        return result

    def rollback_integration(self, component_id: str) -> dict[str, Any]:
        """Roll the last stage back to its last-good revision, or remove the component.

        With no earlier revision in production the component is removed from it (the
        "production cleanup"), audited like any rollback. Returns ``success``,
        ``component_id``, ``rolled_back_at``, ``revision`` (now current, None when
        removed), ``previous_revision``, ``removed`` and ``issues``.
        """
        from lockgate.operations.promote import Promoter

        production = self.session.stage_names[-1]
        result: dict[str, Any] = {"success": False, "component_id": component_id, "issues": []}
        try:
            done = Promoter(self.session).rollback(
                component_id, stage=production, remove_if_none=True
            )
        except _RAISE:
            raise
        except LockgateError as exc:
            result["issues"].append(_issue_text(exc))
            return result
        result.update(
            success=True,
            rolled_back_at=done.at,
            stage=production,
            revision=done.revision,
            previous_revision=done.previous_revision,
            removed=done.revision is None,
        )
        result["issues"].extend(done.warnings)
        return result

    def retire_component(self, component_id: str, reason: str) -> dict[str, Any]:
        """Take a component out of every stage and mark it retired (``lockgate remove``).

        Returns ``success``, ``component_id``, ``removed_from`` (each stage and the
        revision it held), ``retired_at`` and ``issues``."""
        from lockgate.operations.remove import Removal

        result: dict[str, Any] = {"success": False, "component_id": component_id, "issues": []}
        try:
            done = Removal(self.session).remove(component_id, reason=reason)
        except _RAISE:
            raise
        except LockgateError as exc:
            result["issues"].append(_issue_text(exc))
            return result
        data = done.to_dict()
        result.update(success=True, removed_from=data["removed_from"], retired_at=done.at)
        result["issues"].extend(data["warnings"])
        return result

    # ------------------------------------------------------------------ pipelines

    def create_integration_pipeline(
        self,
        pipeline: IntegrationPipeline | str,
        components: Sequence[str | StagedComponent] = (),
        *,
        depends_on: Mapping[str, Sequence[str]] | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Save a pipeline as ``pipelines/<pipeline_id>.yaml`` (replacing one of that name).

        Give an :class:`IntegrationPipeline`, or its id with its ``components``
        (``WS:ID`` or :class:`StagedComponent`), ``depends_on`` and options. Returns
        ``success``, ``pipeline_id``, ``path``, ``components`` and ``issues`` (a refused
        definition: an unknown member in ``depends_on``, a member listed twice).
        """
        from lockgate.operations.pipeline_spec import write_pipeline

        if isinstance(pipeline, IntegrationPipeline):
            name, members = pipeline.pipeline_id, pipeline.refs
            depends_on, options = depends_on or pipeline.depends_on, options or pipeline.options
        else:
            name = pipeline
            members = [c.ref if isinstance(c, StagedComponent) else str(c) for c in components]
        result: dict[str, Any] = {"success": False, "pipeline_id": name, "issues": []}
        try:
            path = write_pipeline(
                self._root(),
                name,
                members,
                {k: list(v) for k, v in (depends_on or {}).items()},
                options,
            )
        except LockgateError as exc:
            result["issues"].append(_issue_text(exc))
            return result
        result.update(success=True, path=str(path), components=members)
        return result

    def validate_integration_pipeline(
        self, pipeline_id: str, stage: str | None = None
    ) -> dict[str, Any]:
        """Plan and gate a run of the pipeline into ``stage`` (default: the first stage
        not every member holds), changing nothing: the run's report as a dry run, with
        ``success`` and ``overall_ready`` (every gate passed) and ``issues``."""
        from lockgate.operations.pipeline import PipelineRunner

        result: dict[str, Any] = {"success": False, "pipeline_id": pipeline_id, "issues": []}
        try:
            runner = PipelineRunner(self.session)
            report = runner.promote(
                pipeline_id, to=stage or self._next_stage(pipeline_id), dry_run=True
            )
        except _RAISE:
            raise
        except LockgateError as exc:
            result.update(overall_ready=False)
            result["issues"].append(_issue_text(exc))
            return result
        return self._from_report(report, result) | {"overall_ready": report["status"] == "planned"}

    def promote_integration_pipeline(
        self, pipeline_id: str, stage: str | None = None, *, reason: str | None = None
    ) -> dict[str, Any]:
        """Promote every member into ``stage``, all or nothing; without a stage, up every
        rung to the last, one run per rung, stopping at the first that does not complete.
        Returns the last run's report with ``success``, ``issues`` and ``runs`` (each
        rung's report)."""
        from lockgate.operations.pipeline import PipelineRunner

        result: dict[str, Any] = {"success": False, "pipeline_id": pipeline_id, "issues": []}
        ladder = [self.session.check_stage(stage)] if stage else self.session.stage_names
        runs: list[dict[str, Any]] = []
        try:
            runner = PipelineRunner(self.session)
            for rung in ladder:
                runs.append(runner.promote(pipeline_id, to=rung, reason=reason))
                if runs[-1]["status"] != "completed":
                    break
        except _RAISE:
            raise
        except LockgateError as exc:
            result["issues"].append(_issue_text(exc))
        result["runs"] = runs
        return self._from_report(runs[-1], result) if runs and not result["issues"] else result

    def rollback_integration_pipeline(
        self, pipeline_id: str, stage: str | None = None, *, reason: str | None = None
    ) -> dict[str, Any]:
        """Return every member to what it was before the pipeline's last completed run
        (into ``stage``); the rollback run's report with ``success`` and ``issues``."""
        from lockgate.operations.pipeline import PipelineRunner

        result: dict[str, Any] = {"success": False, "pipeline_id": pipeline_id, "issues": []}
        try:
            report = PipelineRunner(self.session).rollback(pipeline_id, stage=stage, reason=reason)
        except _RAISE:
            raise
        except LockgateError as exc:
            result["issues"].append(_issue_text(exc))
            return result
        return self._from_report(report, result)

    def integration_pipeline(self, pipeline_id: str) -> IntegrationPipeline:
        """The pipeline ``pipeline_id`` as defined, with its last run's status."""
        from lockgate.operations.pipeline_report import find_run
        from lockgate.operations.pipeline_spec import load_pipeline

        spec, _ = load_pipeline(self._root(), pipeline_id)
        members = [self.staged_component(m) if ":" in m else self._bare(m) for m in spec.components]
        pipeline = IntegrationPipeline(
            pipeline_id,
            members,
            depends_on=spec.depends_on,
            options={
                "fail_fast": spec.options.fail_fast,
                "parallel_execution": spec.options.parallel_execution,
                "timeout": spec.options.timeout,
                "retry_count": spec.options.retry_count,
            },
        )
        pipeline.last_run = find_run(self.session.state(), pipeline_id, missing_ok=True)
        if pipeline.last_run is not None:
            pipeline.status = str(pipeline.last_run["status"])
        return pipeline

    def _bare(self, component_id: str) -> StagedComponent:
        from lockgate.operations.resolve import resolve_component

        return self.staged_component(str(resolve_component(self.session, component_id)))

    def _root(self) -> Path:
        root = self.project.root
        if root is None:
            raise ConfigError("this project has no directory: pipelines are files in one")
        return root

    def _next_stage(self, pipeline_id: str) -> str:
        """The first stage where some member does not hold its candidate yet."""
        from lockgate.operations.pipeline import PipelineRunner

        runner = PipelineRunner(self.session)
        for stage in self.session.stage_names:
            if runner.plan(pipeline_id, stage).changing:
                return stage
        return self.session.stage_names[-1]

    @staticmethod
    def _from_report(report: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
        ok = report["status"] in ("completed", "planned")
        issues = list(result["issues"]) + list(report.get("issues", ()))
        issues += [f"{s['component']}: {i}" for s in report["step_results"] for i in s["issues"]]
        if report.get("cause") and not ok:
            issues.insert(0, str(report["cause"]))
        return {**report, **result, "success": ok, "issues": issues}

    # ------------------------------------------------------------------ reports

    def get_integration_summary(self) -> dict[str, Any]:
        """``staged_components``, ``integration_pipelines``, ``component_status_distribution``
        and ``recent_activities``."""
        from lockgate.operations.reports import summary

        return summary(self.session)

    def get_statistics(self) -> dict[str, Any]:
        """``integration_operations`` and ``component_statistics``."""
        from lockgate.operations.reports import statistics

        return statistics(self.session)

    # ------------------------------------------------------------------ objects

    def staged_component(self, ref: str) -> StagedComponent:
        """The component ``workspace:id`` as a :class:`StagedComponent` (with approvals)."""
        from lockgate.contracts.refs import ComponentRef
        from lockgate.errors import NotFoundError
        from lockgate.operations.recover import settle

        parsed = ComponentRef.parse(ref)
        settle(self.session)
        state = self.session.state()
        record = state.component(str(parsed))
        if record is None:
            raise NotFoundError(f"{ref} has never been staged")
        revisions = state.revisions(str(parsed))
        staged = StagedComponent(
            parsed.component_id,
            parsed.workspace,
            record.component_type,
            stage=revisions[-1].stage if revisions else IntegrationStage.STAGING.value,
        )
        staged.status = record.status
        staged.revision = record.latest_revision
        staged.staged_at = revisions[-1].created_at if revisions else record.updated_at
        staged.approval_history = [
            {"actor": a.actor, "decision": a.decision, "at": a.at, "comment": a.comment}
            for a in state.approvals(str(parsed), record.latest_revision)
        ]
        return staged
