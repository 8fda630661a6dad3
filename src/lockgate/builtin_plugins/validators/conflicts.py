"""Validator ``conflicts``: one component id staged from two workspaces at once.

When another workspace has a staged (or approved) revision of the same component id that
differs from the subject's, promoting either would silently replace the other's work in
the stage: that is an integration issue naming both.

Settings (``plugins.conflicts:``)::

    severity: error    # or warning
"""

from __future__ import annotations

from typing import Literal

from lockgate.plugin import Issue, Severity, ValidationSubject, ValidatorInfo, hookimpl, record

PENDING = ("staged", "approved")


@record
class ConflictsSettings:
    """``plugins.conflicts:`` in lockgate.yaml."""

    severity: Literal["error", "warning"] = "error"


@hookimpl
def register_settings() -> type:
    return ConflictsSettings


@hookimpl
def describe_validator() -> ValidatorInfo:
    return ValidatorInfo(cache=False)  # depends on what other workspaces staged


@hookimpl
def on_validate(subject: ValidationSubject, settings: ConflictsSettings) -> list[Issue]:
    own = next((p for p in subject.context.batch if p.component == subject.component), None)
    if own is not None and own.status not in PENDING:
        return []  # already promoted: a rival is reported when the rival is validated
    rivals = sorted(
        peer.component
        for peer in subject.context.peers(subject.component_id)
        if peer.component != subject.component
        and peer.status in PENDING
        and peer.revision != subject.revision
    )
    if not rivals:
        return []
    return [
        Issue(
            Severity(settings.severity),
            "conflict-same-component",
            f"'{subject.component_id}' is staged from {len(rivals) + 1} workspaces "
            f"({', '.join(sorted([subject.component, *rivals]))}) with different contents",
            components=[subject.component, *rivals],
            hint=f"agree on one: reject the other (lockgate reject {rivals[0]} --reason ...) "
            "or make the workspaces identical",
        )
    ]
