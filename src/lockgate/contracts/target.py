"""The target role: what a stage deploys to, and the revision handle it reads from.

The contract every target keeps, then its optional capabilities: collecting what it keeps
per revision (:class:`Collectable`, found by attribute with :func:`target_collect`),
switching several entries at once (:class:`GroupSwitch`, :func:`target_group_switch`),
and taking switches of different components at the same time
(:func:`target_concurrent_switches`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from lockgate.contracts.content import ContentStore
from lockgate.contracts.manifest import Manifest, check_paths, new_hasher
from lockgate.contracts.records import record
from lockgate.errors import (
    ConflictError,
    MissingCapabilityError,
    NotFoundError,
)

__all__ = [
    "Collectable",
    "GroupSwitch",
    "Prepared",
    "PreparedGroup",
    "RevisionHandle",
    "Target",
    "TransientError",
    "target_collect",
    "target_concurrent_switches",
    "target_group_switch",
]


class TransientError(Exception):
    """Raised by a target for a failure worth retrying (a busy remote, a timeout): a
    pipeline run retries the member's switch ``retry_count`` times, with exponential
    backoff and jitter. Any exception with a true ``transient`` attribute counts too;
    every other failure is final at once."""

    transient = True


class RevisionHandle:
    """The revision a target deploys: its files and their digests, readable.

    Targets receive one in :meth:`Target.prepare`. ``manifest`` lists every file
    (path, kind, size, digest, symlink target); :meth:`open` streams one file's bytes
    from the content store, checked against its digest as they are read; a target that
    needs the revision as a directory of this machine (the builtin ``directory``
    target) calls :meth:`materialize`, which asks the content store's release cache.
    """

    __slots__ = ("_materialize", "manifest", "revision", "store")

    def __init__(
        self,
        revision: str,
        manifest: Manifest,
        store: ContentStore,
        materialize: Callable[[], Path] | None = None,
    ) -> None:
        # Whatever store held it, a crafted manifest must not name a path (or a link)
        # that leaves the revision: targets write these names into archives and trees.
        check_paths(manifest, where=f"revision {revision[:12]}")
        self.revision = revision
        self.manifest = manifest
        self.store = store
        self._materialize = materialize

    def __repr__(self) -> str:
        return f"RevisionHandle({self.revision[:12]}, {len(self.manifest.entries)} entries)"

    def open(self, path: str) -> BinaryIO:
        """The bytes of the regular file ``path`` of the revision, as a stream the caller
        closes. Reading it to its end raises :class:`~lockgate.errors.ConflictError` when
        the bytes do not match the recorded digest (so a target never ships damaged bytes
        unnoticed); :class:`~lockgate.errors.NotFoundError` for a path not in the revision
        or a symlink (its target is ``FileEntry.target``)."""
        entry = next((e for e in self.manifest.entries if e.path == path), None)
        if entry is None or entry.kind == "symlink":
            what = "a symlink" if entry is not None else "not a file"
            raise NotFoundError(f"{path} is {what} of revision {self.revision[:12]}")
        return _Verified(self.store.open(entry.digest), entry.digest, path)  # type: ignore[return-value]

    def materialize(self) -> Path:
        """The revision as a read-only directory of this machine, laid out and verified by
        the content store (:class:`ReleaseCache`); the same directory every time.

        :class:`~lockgate.errors.MissingCapabilityError` when the content store keeps no
        release directories: such a target needs the ``local`` store (or one like it)."""
        if self._materialize is None:
            raise MissingCapabilityError(
                f"revision {self.revision[:12]} cannot be laid out as a directory: the "
                "content store keeps no releases (ReleaseCache); use a target that reads "
                "files through its revision handle, or the 'local' content store"
            )
        return self._materialize()


class _Verified:
    """A stream that hashes what it hands out and checks the digest at its end."""

    def __init__(self, inner: BinaryIO, digest: str, path: str) -> None:
        self._inner, self._digest, self._path = inner, digest, path
        self._hasher = new_hasher()
        self._checked = False

    def read(self, size: int = -1, /) -> bytes:
        data = self._inner.read(size)
        self._hasher.update(data)
        if (not data or size < 0) and not self._checked:
            self._checked = True
            if self._hasher.hexdigest() != self._digest:
                raise ConflictError(
                    f"{self._path}: its bytes in the content store do not match digest "
                    f"{self._digest[:12]} (damaged); run 'lockgate verify'"
                )
        return data

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> _Verified:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@record
class Prepared:
    """What a target prepared for one switch: ``revision`` None removes the entry.

    ``token`` is the target's own (a temporary symlink's path, an upload id); the kernel
    only hands it back to :meth:`Target.commit` or :meth:`Target.abort`.
    """

    component_id: str
    revision: str | None
    token: object = None


class Target(Protocol):
    """Where a stage's current revisions are deployed (builtin: ``directory``).

    The contract is two-step: :meth:`prepare` does everything slow and invisible (the
    kernel has checked the revision's objects, and verified its release when the content
    store keeps one); :meth:`commit` makes the switch visible atomically — a reader sees
    the old revision or the new one, never a mix and never nothing. Both may be repeated
    after a crash: they must be idempotent.
    """

    def prepare(self, component_id: str, revision: RevisionHandle | None) -> Prepared:
        """Stage the switch of ``component_id`` to ``revision`` (None: remove it)."""

    def commit(self, prepared: Prepared) -> None:
        """Make the prepared switch visible, atomically and durably."""

    def abort(self, prepared: Prepared) -> None:
        """Drop a prepared switch that will not be committed."""

    def deployed(self) -> dict[str, str]:
        """Component id -> revision deployed now, for every entry."""

    def location(self, component_id: str) -> str:
        """Where ``component_id`` is deployed (a path, a URL)."""

    def check(self, component_id: str, revision: str) -> list[str]:
        """Problems with the deployed entry of ``component_id`` (empty: it is ``revision``)."""


# Optional capability. A target offers it by having the attribute; ``gc`` looks it up by
# plain attribute access (as the content store's capabilities are) and does without it.


@runtime_checkable
class Collectable(Protocol):
    """A target that keeps something of its own for each revision it deployed (the
    builtin ``directory`` target: the releases it lays out itself when the content store
    keeps none) and lets ``gc`` remove what no kept revision needs.

    Without it ``gc`` leaves the target alone: whatever it keeps per revision stays.
    """

    def collect(self, keep: frozenset[str], dry_run: bool) -> list[str]:
        """Remove what this target keeps for revisions not in ``keep`` (every revision
        ``gc`` keeps: those deployed, previous, last-good, in the retention window, named
        by an open intent, or latest), never what it deploys now; return those
        revisions, sorted. With ``dry_run`` remove nothing and return what would be
        removed. Called by ``gc`` under its locks (no switch runs meanwhile), on every
        target of every stage; targets that share what they keep may be asked more than
        once. A collected revision deploys again when next promoted."""


def target_collect(target: object) -> Collectable | None:
    """``target`` when it offers the :class:`Collectable` capability, else None."""
    found = getattr(target, "collect", None)
    return target if callable(found) else None  # type: ignore[return-value]


@record
class PreparedGroup:
    """What a target prepared for switching several entries at once: ``revisions`` pairs
    each component id with the revision it will hold (None: the entry is removed), every
    other entry staying as it is. ``token`` is the target's own; the kernel only hands it
    back to :meth:`GroupSwitch.commit_group` or :meth:`GroupSwitch.abort_group`."""

    revisions: tuple[tuple[str, str | None], ...]
    token: object = None


@runtime_checkable
class GroupSwitch(Protocol):
    """A target that can switch several entries in one atomic step (the builtin
    ``directory`` target: a new generation of the stage directory, swapped in by one
    rename), so that a reader never sees some members of a pipeline run switched and
    others not.

    A pipeline run uses it when every target of the stage offers it: each member's
    revision is checked, the group is prepared, committed once per target, and only then
    are the pointers recorded (recovery of an interrupted run brings the members back
    with one group switch too). Without it a run prepares and commits member by member,
    and switches the ones already switched back when a later one fails.
    """

    def prepare_group(self, changes: Mapping[str, RevisionHandle | None]) -> PreparedGroup:
        """Stage, invisibly, the switch of every component id in ``changes`` to its
        revision (None: remove the entry); entries not named stay as they are."""

    def commit_group(self, prepared: PreparedGroup) -> None:
        """Make the prepared group visible in one atomic, durable step: a reader sees
        every entry as before or every entry as prepared. May be repeated after a crash
        (a group already committed is no error)."""

    def abort_group(self, prepared: PreparedGroup) -> None:
        """Drop a prepared group that will not be committed."""


def target_group_switch(target: object) -> GroupSwitch | None:
    """``target`` when it offers the :class:`GroupSwitch` capability (and has not turned
    it off: a false ``group_switch`` attribute), else None."""
    if getattr(target, "group_switch", True) is False:
        return None
    methods = ("prepare_group", "commit_group", "abort_group")
    found = all(callable(getattr(target, m, None)) for m in methods)
    return target if found else None  # type: ignore[return-value]


def target_concurrent_switches(target: object) -> bool:
    """Whether ``target`` takes switches of *different* components at the same time
    (a true ``concurrent_switches`` attribute; the builtin ``directory`` target: one
    entry per component, each swapped by its own rename).

    When every target of a stage says so, a promote or rollback holds only its
    component's lock (and the project's operation lock shared), so runners switching
    different components run side by side; a target that does not say so (one archive
    or manifest for the whole stage, say) gets every switch of the project one at a
    time, under the operation lock held exclusively, as before. Switches of one
    component are always one at a time, and a group switch (:class:`GroupSwitch`) always
    runs alone."""
    return getattr(target, "concurrent_switches", False) is True
