"""``lockgate state migrate --to STORE``: copy a project's state into another state store
(and, with ``--content STORE``, every stored object into another content store).

The project's own store is read through the contract (a :class:`StateSnapshot`: every
component, revision, pointer, pointer move, approval, intent (closed ones too, when the
store offers its :class:`IntentLog`) and the audit chain as stored, hashes included)
while the project is locked (the ``operation`` lock and the ``staging`` lock,
exclusively: nothing changes meanwhile), and written into the new store in one
transaction through its :class:`StateImport` capability, which refuses a store that
already holds anything. Objects are copied before the state, by digest, each checked as
it is stored (a store keyed by digest takes one again harmlessly, so a failure there
leaves the new state store empty). Then the copy is checked: its audit chain verifies,
and every question the kernel asks a state store (components, revisions, approvals,
pointers, the pointer history, intents, events, counts) has the same answer from both.
Last, the copy records the move: one ``migrate`` audit event on the new store after the
copied chain (from where, by whom, how much). The source is left as it was; switching
``state.store`` (and ``content.store``) in ``lockgate.yaml`` is the user's step.
"""

from __future__ import annotations

from typing import Any

import attrs

from lockgate.contracts.audit import verify_chain
from lockgate.contracts.clock import now_iso
from lockgate.contracts.content import ContentStore
from lockgate.contracts.records import record
from lockgate.contracts.state import (
    AuditEvent,
    Intent,
    StateSnapshot,
    StateStore,
    store_importer,
    store_intent_log,
)
from lockgate.core.project import Project
from lockgate.core.session import Session, as_session
from lockgate.errors import CorruptStateError, InputError, MissingCapabilityError

__all__ = ["MigrateResult", "differences", "migrate_state", "snapshot"]


@record
class MigrateResult:
    """What a migration copied, and where."""

    source: str
    target: str
    components: int
    events: int
    pointer_moves: int
    intents: int = 0
    event_seq: int | None = None
    content_target: str | None = None
    objects_copied: int = 0
    objects_present: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "components": self.components,
            "events": self.events,
            "pointer_moves": self.pointer_moves,
            "intents": self.intents,
            "event_seq": self.event_seq,
            "content_target": self.content_target,
            "objects_copied": self.objects_copied,
            "objects_present": self.objects_present,
        }

    def summary(self) -> str:
        text = (
            f"copied the state from '{self.source}' to '{self.target}': {self.components} "
            f"components, {self.pointer_moves} pointer moves, {self.intents} intents, "
            f"{self.events} audit events (chain verified, every answer identical)"
        )
        if self.content_target is not None:
            text += (
                f"; objects to '{self.content_target}': {self.objects_copied} copied, "
                f"{self.objects_present} already there"
            )
        return text


def snapshot(state: StateStore) -> StateSnapshot:
    """Everything ``state`` holds, read through the contract."""
    components = tuple(state.components())
    history = tuple(state.pointer_history())
    keys = sorted({(h.stage, h.component_id) for h in history})
    return StateSnapshot(
        components=components,
        revisions={c.component: tuple(state.revisions(c.component)) for c in components},
        pointers=tuple(p for p in (state.pointer(s, c) for s, c in keys) if p is not None),
        history=history,
        approvals={c.component: tuple(state.approvals(c.component)) for c in components},
        intents=tuple(_intents(state)),
        chain=tuple(state.chain()),
    )


def _intents(state: StateStore) -> list[Intent]:
    log = store_intent_log(state)
    return log.intents() if log is not None else state.open_intents()


def differences(one: StateStore, other: StateStore) -> list[str]:
    """The questions ``one`` and ``other`` answer differently (empty: none)."""
    refs = [c.component for c in one.components()]
    keys = sorted({(h.stage, h.component_id) for h in one.pointer_history()})
    questions: dict[str, Any] = {
        "components": lambda s: s.components(),
        "revisions": lambda s: [s.revisions(r) for r in refs],
        "approvals": lambda s: [s.approvals(r) for r in refs],
        "pointers": lambda s: s.pointers(),
        "every pointer": lambda s: [s.pointer(stage, cid) for stage, cid in keys],
        "pointer history": lambda s: s.pointer_history(),
        "open intents": lambda s: s.open_intents(),
        "intents": _intents,
        "events": lambda s: s.events(),
        "audit chain": lambda s: list(s.chain()),
        "counts": lambda s: s.counts(),
    }
    return [name for name, ask in questions.items() if ask(one) != ask(other)]


def migrate_state(
    where: Session | Project, to: str, *, content: str | None = None
) -> MigrateResult:
    """Copy the project's state into state store ``to`` (and its objects into content
    store ``content``), checked; see the module docstring."""
    session = as_session(where)
    project = session.project
    source_name = project.config.state.store
    if to == source_name:
        raise InputError(
            f"the project's state is already in '{to}' (state.store); name another store"
        )
    with session.lock("state migrate"), session.lock("state migrate", name="staging"):
        copied_objects = (0, 0)
        if content is not None:
            # Objects first: a store keyed by digest takes them again harmlessly, so a
            # failure here leaves the new state store empty and the migration repeatable.
            store: ContentStore = project.roles.build("content", content)
            try:
                copied_objects = copy_objects(session.content(), store, content)
            finally:
                store.close()
        target: StateStore = project.roles.build("state", to)
        try:
            copied = _copy_state(session.state(), target, to)
            result = MigrateResult(
                source=source_name,
                target=to,
                components=len(copied.components),
                events=len(copied.chain),
                pointer_moves=len(copied.history),
                intents=len(copied.intents),
                content_target=content,
                objects_copied=copied_objects[0],
                objects_present=copied_objects[1],
            )
            seq = target.append_event(_migrated(session, result))
        finally:
            target.close()
    return attrs.evolve(result, event_seq=seq)


def _migrated(session: Session, result: MigrateResult) -> AuditEvent:
    """The event that closes the copied chain on the new store: the move itself."""
    details: dict[str, object] = {
        key: value
        for key, value in result.to_dict().items()
        if key not in ("target", "event_seq") and value is not None
    }
    return AuditEvent(
        at=now_iso(),
        actor=session.actor,
        action="migrate",
        reason=f"state copied from '{result.source}'",
        details=details,
    )


def _copy_state(source: StateStore, target: StateStore, name: str) -> StateSnapshot:
    importer = store_importer(target)
    if importer is None:
        raise MissingCapabilityError(
            f"state store '{name}' cannot take a whole history (it offers no "
            "import_snapshot); migrate to a store that does, such as 'postgres'"
        )
    copied = snapshot(source)
    importer.import_snapshot(copied)
    report = verify_chain(target.chain())
    if not report.ok:
        raise CorruptStateError(
            f"the copy in '{name}' does not verify ({report.problem}); nothing in the "
            "project's own store changed: empty the new store and migrate again"
        )
    differ = differences(source, target)
    if differ:
        raise CorruptStateError(
            f"the copy in '{name}' answers differently for: {', '.join(differ)}; nothing in "
            "the project's own store changed: empty the new store and migrate again"
        )
    return copied


def copy_objects(source: ContentStore, target: ContentStore, name: str) -> tuple[int, int]:
    """Copy every object ``target`` lacks, streamed and checked by digest; return how
    many were copied and how many were there already."""
    copied = present = 0
    for digest, _ in source.objects():
        if target.has(digest):
            present += 1
            continue
        with source.open(digest) as stream:
            stored = target.put(stream)
        if stored != digest:
            target.delete(stored)
            raise CorruptStateError(
                f"object {digest[:12]} read back from the project's content store hashes "
                f"to {stored[:12]}: its bytes are damaged; run 'lockgate verify' before "
                f"copying to '{name}'"
            )
        copied += 1
    return copied, present
