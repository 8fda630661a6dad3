"""Signed approvals as operations see them: the signature an approval event carries, and
the key it verifies with for the stage a gate is entering (see
:mod:`lockgate.contracts.signing`)."""

from __future__ import annotations

from pathlib import Path

import attrs

from lockgate.contracts.models import Decision
from lockgate.contracts.refs import ComponentRef
from lockgate.contracts.signing import approval_message, sign_approval, verify_approval
from lockgate.contracts.state import EventFilter, StateStore
from lockgate.core.session import Session
from lockgate.errors import InputError, LockgateError

__all__ = ["ALLOWED_SIGNERS", "next_stage", "signed_approval", "signed_decisions"]

ALLOWED_SIGNERS = "allowed_signers"
"""The file beside lockgate.yaml listing each approver's public keys (OpenSSH format)."""


def signed_decisions(
    session: Session,
    state: StateStore,
    component: str,
    revision: str,
    stage: str,
    decisions: tuple[Decision, ...],
) -> tuple[Decision, ...]:
    """``decisions``, each approval whose event carries a signature given the key that
    signed it for ``stage`` (``signed_key``), or why it does not verify."""
    signatures: dict[str, str] = {}
    for event in state.events(EventFilter(component=component, action="approve")):
        signature = event.details.get("signature")
        if event.revision == revision and isinstance(signature, str):
            signatures[event.actor] = signature
    if not signatures:
        return decisions
    signers = session.require_root() / ALLOWED_SIGNERS
    message = approval_message(component, revision, stage, "approve")
    out = []
    for decision in decisions:
        signature = signatures.get(decision.actor)
        if decision.decision != "approve" or signature is None:
            out.append(decision)
            continue
        try:
            key = verify_approval(signers, decision.actor, message, signature)
            out.append(attrs.evolve(decision, signed_key=key))
        except LockgateError as exc:
            out.append(attrs.evolve(decision, signature_problem=exc.message))
    return tuple(out)


def next_stage(session: Session, component: str, revision: str) -> str:
    """The first stage where ``revision`` is not live yet (the top one when it is live
    everywhere): the stage an approval is signed for unless the approver names one."""
    component_id = ComponentRef.parse(component).component_id
    state = session.state()
    for name in session.stage_names:
        pointer = state.pointer(name, component_id)
        if pointer is None or pointer.revision != revision:
            return name
    return session.stage_names[-1]


def signed_approval(
    session: Session,
    component: str,
    revision: str,
    *,
    key: Path | None = None,
    signature: str | None = None,
    stage: str | None = None,
) -> dict[str, object]:
    """What the approval event records of a signed approval: the signature (made here
    with ``key``, or given), the stage it is for and the key's fingerprint, verified
    against ``allowed_signers`` for the actor first (a signature that does not verify
    is refused, nothing recorded)."""
    stage = (
        session.project.check_stage(stage) if stage else next_stage(session, component, revision)
    )
    message = approval_message(component, revision, stage, "approve")
    if signature is None:
        if key is None:
            raise InputError("a signed approval needs --key PATH (or a signature)")
        signature = sign_approval(key, message)
    signers = session.require_root() / ALLOWED_SIGNERS
    fingerprint = verify_approval(signers, session.actor, message, signature)
    return {"signature": signature, "signed_stage": stage, "key": fingerprint}
