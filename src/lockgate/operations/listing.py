"""``ls`` and ``diff``: what is in the workspaces, what is recorded, and how they differ."""

from __future__ import annotations

from typing import Any

from lockgate.contracts.manifest import Manifest, ManifestDiff
from lockgate.contracts.models import ComponentStatus
from lockgate.contracts.records import record
from lockgate.contracts.refs import ComponentRef, short
from lockgate.core.content import read_object
from lockgate.core.project import Project
from lockgate.core.session import Session, as_session
from lockgate.errors import LockgateError
from lockgate.operations.recover import note_pending
from lockgate.operations.resolve import resolve_revision
from lockgate.operations.stage import Stager

__all__ = ["ComponentRow", "DiffResult", "diff_component", "list_components"]


@record
class ComponentRow:
    """One line of ``lockgate ls``."""

    workspace: str
    component_type: str
    component_id: str
    revision: str | None
    status: str
    change: str

    @property
    def short_revision(self) -> str:
        return short(self.revision)

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": f"{self.workspace}:{self.component_id}",
            "workspace": self.workspace,
            "type": self.component_type,
            "id": self.component_id,
            "revision": self.revision,
            "status": self.status,
            "change": self.change,
        }


def list_components(session: Session | Project, workspace: str | None = None) -> list[ComponentRow]:
    """Every component in the workspaces and the state store, with its local change."""
    session = as_session(session)
    note_pending(session)  # reads only: never recovers
    discovery = session.source().discover([workspace] if workspace else None)
    state = session.state()
    stager = Stager(session)
    content = session.content()
    records = {r.component: r for r in state.components(workspace)}  # one read
    rows: list[ComponentRow] = []
    seen: set[str] = set()
    for comp in discovery.components:
        ref = str(comp.ref)
        seen.add(ref)
        record = records.get(ref)
        revision = record.latest_revision if record else None
        status = record.status.value if record else "new"
        try:
            scan = stager.workspace_scan(comp)
            if revision is not None and scan.revision == revision:
                change = "unchanged"  # the source vouches for it (its stat cache)
            else:
                _, manifest = stager.workspace_manifest(comp, scan, latest=revision)
                if revision is None:
                    n = len(manifest.entries)
                    change = f"not staged ({n} file{'' if n == 1 else 's'})"
                else:
                    diff = ManifestDiff.between(content.get_manifest(revision), manifest)
                    change = "unchanged" if diff.empty else _describe(diff)
        except LockgateError as exc:
            change = f"cannot scan: {exc.message}"
        rows.append(
            ComponentRow(
                comp.ref.workspace,
                comp.component_type,
                comp.ref.component_id,
                revision,
                status,
                change,
            )
        )
    for problem in discovery.problems:
        rows.append(ComponentRow("?", "?", problem.path or "?", None, "invalid", problem.message))
    for record in records.values():
        if record.component not in seen:
            retired = record.status is ComponentStatus.RETIRED
            rows.append(
                ComponentRow(
                    record.workspace,
                    record.component_type,
                    record.component_id,
                    record.latest_revision,
                    record.status.value,
                    "retired" if retired else "missing from workspace",
                )
            )
    rows.sort(key=lambda r: (r.workspace, r.component_id))
    return rows


def _describe(diff: ManifestDiff) -> str:
    c = diff.counts()
    return f"changed: +{c['added']} ~{c['modified']} -{c['removed']}"


@record
class DiffResult:
    """Files added, modified and removed between two trees, with optional text patches."""

    component: str
    old: str
    new: str
    diff: ManifestDiff
    patches: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "from": self.old,
            "to": self.new,
            **self.diff.to_dict(),
            "patch": "".join(self.patches) if self.patches else None,
        }


def diff_component(
    session: Session | Project,
    ref: ComponentRef,
    rev_a: str | None,
    rev_b: str | None,
    *,
    patch: bool,
) -> DiffResult:
    """Workspace vs latest (no revisions), workspace vs REV_A, or REV_A vs REV_B."""
    session = as_session(session)
    note_pending(session)  # reads only: never recovers
    content = session.content()
    comp = None
    if rev_a is None:
        old_id = resolve_revision(session, ref, "latest")
    else:
        old_id = resolve_revision(session, ref, rev_a)
    old = content.get_manifest(old_id)
    if rev_b is not None:
        new_id = resolve_revision(session, ref, rev_b)
        new = content.get_manifest(new_id)
        new_label = short(new_id)
    else:
        comp = session.source().find(ref)
        latest = old_id if rev_a is None else None  # what the stat cache may learn
        _, new = Stager(session).workspace_manifest(comp, latest=latest)
        new_label = "workspace"
    diff = ManifestDiff.between(old, new)
    patches: list[str] = []
    if patch:
        root = comp.path if comp is not None else None

        def read(manifest: Manifest, path: str, from_workspace: bool) -> bytes:
            entry = manifest.by_path().get(path)
            if entry is None:
                return b""
            if entry.kind == "symlink":
                return f"-> {entry.target}\n".encode()
            if from_workspace and root is not None:
                return (root / path).read_bytes()
            return read_object(content, entry.digest)

        for path in (*diff.added, *diff.modified, *diff.removed):
            before = read(old, path, False)
            after = read(new, path, rev_b is None)
            patches.append(_patch(path, before, after, short(old_id), new_label))
    return DiffResult(str(ref), short(old_id), new_label, diff, tuple(patches))


def _patch(path: str, before: bytes, after: bytes, old_label: str, new_label: str) -> str:
    try:
        a = before.decode("utf-8").splitlines(keepends=True)
        b = after.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return f"Binary file {path} differs\n"
    import difflib  # only on this path: ~2 ms of every command's start-up otherwise

    lines = difflib.unified_diff(a, b, f"a/{path} ({old_label})", f"b/{path} ({new_label})")
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )
