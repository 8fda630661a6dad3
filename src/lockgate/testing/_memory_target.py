"""The in-memory target: which revision each component has deployed, in a dict.

The twin of the builtin ``directory`` target: the same two-step switch (``prepare`` does
everything invisible, ``commit`` switches one entry at once), and the same switch of a
group of entries at once (``GroupSwitch``), held in process memory. It
reads every file of the revision through its handle when preparing (so a damaged
object fails the prepare, as it would an upload) and never asks for a directory, so a
kernel without local disk can deploy to it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

from lockgate.contracts.content import CHUNK
from lockgate.contracts.refs import name_problem
from lockgate.contracts.target import Prepared, PreparedGroup, RevisionHandle, Target
from lockgate.errors import InputError

__all__ = ["MemoryTarget"]


class MemoryTarget:
    """Component id -> deployed revision, switched one entry at a time."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._deployed: dict[str, str] = {}
        self._pending: dict[str, tuple[str, str | None]] = {}
        """Prepared switches not yet committed or aborted, by token."""
        self._issued: set[str] = set()

    def prepare(self, component_id: str, revision: RevisionHandle | None) -> Prepared:
        problem = name_problem(component_id)
        if problem is not None:
            raise InputError(f"component id {component_id!r} {problem}: refusing to deploy it")
        if revision is not None:
            for entry in revision.manifest.entries:
                if entry.kind != "symlink":
                    with revision.open(entry.path) as stream:
                        while stream.read(CHUNK):
                            pass  # read to the end: the handle checks the digest there
        rev = revision.revision if revision is not None else None
        token = uuid.uuid4().hex
        with self._lock:
            # Switches of one entry are serialized by the kernel: what an earlier one
            # left prepared was abandoned by a crash, as the directory target sweeps it.
            for stale in [t for t, (c, _) in self._pending.items() if c == component_id]:
                del self._pending[stale]
            self._pending[token] = (component_id, rev)
            self._issued.add(token)
        return Prepared(component_id, rev, token)

    def commit(self, prepared: Prepared) -> None:
        with self._lock:
            if prepared.token not in self._issued:
                raise InputError(f"{prepared.token!r} is not a switch this target prepared")
            self._pending.pop(str(prepared.token), None)
            if prepared.revision is None:
                self._deployed.pop(prepared.component_id, None)
            else:
                self._deployed[prepared.component_id] = prepared.revision

    def abort(self, prepared: Prepared) -> None:
        with self._lock:
            self._pending.pop(str(prepared.token), None)

    def prepare_group(self, changes: Mapping[str, RevisionHandle | None]) -> PreparedGroup:
        """Every change prepared as one (the ``GroupSwitch`` capability)."""
        prepared = [self.prepare(cid, handle) for cid, handle in changes.items()]
        return PreparedGroup(
            tuple(sorted((p.component_id, p.revision) for p in prepared)),
            tuple(str(p.token) for p in prepared),
        )

    def commit_group(self, prepared: PreparedGroup) -> None:
        """Every change of the group visible at once: one update under the lock."""
        tokens = _tokens(prepared)
        with self._lock:
            if not all(t in self._issued for t in tokens):
                raise InputError(f"{prepared.token!r} is not a group this target prepared")
            for token in tokens:
                self._pending.pop(token, None)
            for cid, revision in prepared.revisions:
                if revision is None:
                    self._deployed.pop(cid, None)
                else:
                    self._deployed[cid] = revision

    def abort_group(self, prepared: PreparedGroup) -> None:
        with self._lock:
            for token in _tokens(prepared):
                self._pending.pop(token, None)

    def deployed(self) -> dict[str, str]:
        with self._lock:
            return dict(self._deployed)

    def location(self, component_id: str) -> str:
        return f"memory://{self.name}/{component_id}"

    def check(self, component_id: str, revision: str) -> list[str]:
        where = self.location(component_id)
        with self._lock:
            now = self._deployed.get(component_id)
        if now is None:
            return [f"{where} is missing (expected revision {revision[:12]})"]
        if now != revision:
            return [f"{where} is at {now[:12]}, not the current revision {revision[:12]}"]
        return []


def _tokens(prepared: PreparedGroup) -> tuple[str, ...]:
    token = prepared.token
    if not isinstance(token, tuple):
        raise InputError(f"{token!r} is not a group this target prepared")
    return tuple(str(t) for t in token)


if TYPE_CHECKING:  # mypy checks the twin against the role's protocol
    _target: Target = MemoryTarget()
