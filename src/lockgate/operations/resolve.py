"""Resolve what a user names: a component (``WS:ID`` or a bare id) and a revision
(``latest`` or a unique prefix of at least 4 characters)."""

from __future__ import annotations

from lockgate.contracts.history import store_lineage
from lockgate.contracts.peers import components_by_id
from lockgate.contracts.refs import ComponentRef, check_name, short
from lockgate.core.session import Session
from lockgate.errors import InputError, NotFoundError

__all__ = ["resolve_component", "resolve_revision"]


def resolve_component(session: Session, target: str) -> ComponentRef:
    """``WS:ID`` as given; a bare ID when exactly one workspace has that component."""
    if ":" in target:
        return ComponentRef.parse(target)
    check_name("component id", target)
    owners = [r.component for r in components_by_id(session.state(), (target,))]
    if len(owners) == 1:
        return ComponentRef.parse(owners[0])
    if not owners:
        raise NotFoundError(f"no staged component has id '{target}'; stage it first")
    raise InputError(
        f"'{target}' is staged from several workspaces ({', '.join(sorted(owners))}); "
        "name one as WS:ID"
    )


def resolve_revision(session: Session, ref: ComponentRef, text: str) -> str:
    """A full revision id from a unique prefix (at least 4 characters) or ``latest``."""
    if text == "latest":
        record = session.state().component(str(ref))
        if record is None or record.latest_revision is None:
            raise NotFoundError(f"{ref} has no revision yet; stage it first")
        return record.latest_revision
    if len(text) < 4:
        raise InputError(f"revision {text!r} is too short; give at least 4 characters")
    state, prefix = session.state(), text.lower()
    lookup = store_lineage(state)
    if lookup is not None:  # found without reading every revision of the component
        found = lookup.revisions_starting(str(ref), prefix, 2)
        if len(found) == 1:
            return found[0].revision
    revisions = [r.revision for r in state.revisions(str(ref))]
    matches = sorted({r for r in revisions if r.startswith(prefix)})
    if not matches:
        known = ", ".join(short(r) for r in revisions[-5:]) or "none"
        raise NotFoundError(f"{ref} has no revision {text!r} (latest: {known})")
    if len(matches) > 1:
        raise InputError(f"revision {text!r} of {ref} is ambiguous; give more characters")
    return matches[0]
