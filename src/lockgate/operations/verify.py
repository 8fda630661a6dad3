"""``verify``: is everything deployed and stored what was recorded?

Every stage's deployed entries are checked against their pointers, every release byte
and every stored object against its digest, and the audit chain against its hashes.
Objects that gc collected on purpose (``details.collected`` of its audit events, see
``operations/gc.py``) are not reported as damage.
"""

from __future__ import annotations

from typing import Any

from lockgate.contracts.audit import verify_chain, verify_state
from lockgate.contracts.content import lost_object, store_lost, store_release_cache
from lockgate.contracts.records import record
from lockgate.core.project import Project
from lockgate.core.session import Session, as_session
from lockgate.errors import LockgateError
from lockgate.operations.gc import collected_revisions, retained_revisions
from lockgate.operations.recover import note_pending

__all__ = ["VerifyReport", "verify"]


@record
class VerifyReport:
    """Every problem found; ``ok`` when there is none."""

    problems: tuple[str, ...]
    checked: dict[str, int]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": list(self.problems), "checked": self.checked}


def verify(session: Session | Project, stage: str | None = None) -> VerifyReport:
    """Check deployed entries, release bytes, stored objects and the audit chain."""
    session = as_session(session)
    note_pending(session)  # reads only: never recovers
    state, content = session.state(), session.content()
    stages = [session.check_stage(stage)] if stage else session.stage_names
    problems: list[str] = []
    releases: set[str] = set()
    entries = 0
    for name in stages:
        pointers = {p.component_id: p for p in state.pointers(name)}
        for target in session.targets(name):
            deployed = target.deployed()
            for component_id, pointer in sorted(pointers.items()):
                assert pointer.revision is not None
                entries += 1
                problems.extend(
                    f"{name}: {p}" for p in target.check(component_id, pointer.revision)
                )
                releases.add(pointer.revision)
            for component_id in sorted(set(deployed) - set(pointers)):
                problems.append(
                    f"{name}: {target.location(component_id)} is deployed but {component_id} is "
                    f"not current in {name}"
                )
    # Every check below reports what it finds and goes on: a damaged or missing manifest
    # or object is one more problem in the list, never the end of the report.
    cache = store_release_cache(content)
    for revision in sorted(releases):
        if cache is not None and cache.has_release(revision):
            try:
                problems.extend(cache.verify_release(revision, full=True))
            except LockgateError as exc:
                problems.append(f"release {revision[:12]}: {exc.message}")
    # What must stay deployable whatever gc's --keep was: current, previous, last-good and
    # latest, less what an earlier gc collected (after a rollback, "previous" or
    # "last-good" can name such a revision; rollback skips or refuses it, so its missing
    # objects are not damage). What is current or latest is never collected.
    must = {p.revision for p in state.pointers() if p.revision}
    must |= {r.latest_revision for r in state.components() if r.latest_revision}
    needed = retained_revisions(session, keep=1) - (collected_revisions(session) - must)
    digests: dict[str, str] = {}
    for revision in sorted(needed):
        try:
            manifest = content.get_manifest(revision)
        except LockgateError as exc:
            problems.append(f"revision {revision[:12]}: {exc.message}")
            continue
        for entry in manifest.entries:
            if entry.digest and entry.kind != "symlink":  # a link's text is in the manifest
                digests.setdefault(entry.digest, f"{revision[:12]}:{entry.path}")
    lost = store_lost(content)
    for digest, where in sorted(digests.items()):
        try:
            if digest in lost:
                problems.append(lost_object(digest, where))
            elif not content.has(digest):
                problems.append(f"object {digest[:12]} ({where}) is missing")
            elif not content.verify(digest):
                problems.append(f"object {digest[:12]} ({where}) does not match its digest")
        except LockgateError as exc:  # a digest the store refuses (a damaged manifest)
            problems.append(f"object {digest[:12]} ({where}): {exc.message}")
    chain = verify_chain(state.chain())
    if not chain.ok:
        problems.append(f"audit log: broken at event {chain.first_bad_seq}: {chain.problem}")
    problems.extend(unexplained(session, stages, chain_ok=chain.ok))
    return VerifyReport(
        tuple(problems),
        {
            "stages": len(stages),
            "entries": entries,
            "releases": len(releases),
            "objects": len(digests),
            "events": chain.events,
        },
    )


def unexplained(session: Session, stages: list[str], *, chain_ok: bool) -> list[str]:
    """What the audit log does not explain: records changed outside lockgate (checked
    against an intact chain only) and entries in a stage's targets no pointer explains
    (for targets that can list them: the optional ``strays()`` method)."""
    problems = [f"state: {p}" for p in verify_state(session.state())] if chain_ok else []
    for name in stages:
        for target in session.targets(name):
            strays = getattr(target, "strays", None)
            if callable(strays):
                problems.extend(f"{name}: {p}" for p in strays())
    return problems
