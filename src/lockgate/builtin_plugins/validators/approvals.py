"""Validator ``approvals``: enough approvals, from the right people, and no rejection.

Approvals are bound to the revision's digest (restaging voids them). The approval of
any of the revision's authors (its declared owners and everyone whose staging it carries,
``context.authors``) never counts. Any rejection of the revision blocks it.

Settings (``plugins.approvals:``)::

    required: 0                 # approvals needed to enter any stage
    stages:                     # per-stage overrides
      production:
        required: 2
        approvers: [carol, dan] # optional allowlist for this stage
        signed: true            # count only approvals signed for this stage with a key
                                # allowed_signers (beside lockgate.yaml) lists for the approver
"""

from __future__ import annotations

import attrs

from lockgate.plugin import Issue, Severity, ValidationSubject, ValidatorInfo, hookimpl, record


@record
class StageApprovals:
    """``plugins.approvals.stages.<stage>:``."""

    required: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(0))
    )
    approvers: list[str] | None = None
    signed: bool = False


@record
class ApprovalsSettings:
    """``plugins.approvals:`` in lockgate.yaml."""

    required: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    stages: dict[str, StageApprovals] = attrs.field(factory=dict)

    def for_stage(self, stage: str) -> tuple[int, list[str] | None]:
        """(approvals required, allowlist or None) for ``stage``."""
        own = self.stages.get(stage, StageApprovals())
        return (own.required if own.required is not None else self.required), own.approvers

    def signed_for(self, stage: str) -> bool:
        """Whether only signed approvals count in ``stage``."""
        return self.stages.get(stage, StageApprovals()).signed


@hookimpl
def register_settings() -> type:
    return ApprovalsSettings


@hookimpl
def describe_validator() -> ValidatorInfo:
    return ValidatorInfo(cache=False)  # approvals change without the revision changing


@hookimpl
def on_validate(subject: ValidationSubject, settings: ApprovalsSettings) -> list[Issue]:
    if subject.revision is None:
        return []  # a workspace is not a revision: nothing can be approved yet
    required, approvers = settings.for_stage(subject.stage)
    signed = settings.signed_for(subject.stage)
    context = subject.context
    issues = []
    for decision in context.decisions:
        if decision.decision == "reject":
            issues.append(
                Issue(
                    Severity.ERROR,
                    "approval-rejected",
                    f"rejected by {decision.actor}"
                    + (f": {decision.comment}" if decision.comment else ""),
                    hint=f"address the rejection and restage {subject.component}",
                )
            )
    counted = sorted(
        {
            d.actor
            for d in context.decisions
            if d.decision == "approve"
            and d.actor != context.author
            and d.actor not in context.authors
            and (approvers is None or d.actor in approvers)
            and (d.signed_key is not None or not signed)
        }
    )
    if signed:
        issues += _unsigned(subject, counted)
    if len(counted) < required:
        who = f" from {', '.join(approvers)}" if approvers else ""
        have = f"has {len(counted)}" + (f" ({', '.join(counted)})" if counted else "")
        issues.append(
            Issue(
                Severity.ERROR,
                "approval-missing",
                f"needs {required} approval{'s' if required != 1 else ''}{who} to enter "
                f"{subject.stage}, {have}",
                hint="ask a reviewer other than "
                f"{', '.join(context.authors) or context.author or 'the author'} to run "
                f"'lockgate approve {subject.component}'",
            )
        )
    elif counted:
        issues.append(Issue(Severity.INFO, "approval-ok", f"approved by {', '.join(counted)}"))
    return issues


def _unsigned(subject: ValidationSubject, counted: list[str]) -> list[Issue]:
    """A warning for each approval not counted because its signature is missing or does
    not verify for this stage."""
    return [
        Issue(
            Severity.WARNING,
            "approval-unsigned",
            f"the approval of {d.actor} does not count in {subject.stage}: "
            + (d.signature_problem or "it is not signed"),
            hint=f"'lockgate approve {subject.component} --sign --stage {subject.stage}'",
        )
        for d in subject.context.decisions
        if d.decision == "approve" and d.actor not in counted and d.signed_key is None
    ]
