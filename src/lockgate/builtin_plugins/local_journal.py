"""When the ``local`` store's objects reach the disk, and what a crash may have taken.

With ``plugins.local.flush: promote`` (the default) staging writes objects and leaves them
to the kernel's write-back, as ``cp`` and ``git add`` do; the file system is flushed
before a revision is deployed (promote, rollback) instead of before it is recorded. What
keeps that safe is a marker, ``objects/unflushed``:

* every object is published (renamed into place) while a marker exists: the writer
  creates it durably (file and directory fsynced) when there is none. The marker holds
  the kernel's boot id and the time;
* a writer holds a shared ``flock`` (``publish.lock``) from its first object of a batch
  until the batch's manifest is stored; a flush moves the marker to
  ``unflushed.flushing`` only when it can take that lock exclusively at once, flushes the
  file system, then removes it. So every object is published either before the move
  (and the ``syncfs``, which starts after it, covers it) or in a batch that finds no
  marker and creates one. When a batch is in progress the flush still flushes, and
  leaves the marker. Flushes take ``flush.lock`` one at a time;
* the page cache survives any process's death, so only a restart of the machine can lose
  unflushed bytes. A marker from another boot therefore means "objects written since
  this time may be empty or torn": the next process to open the store checks every object
  written or renamed into place since then (mtime or ctime, less a margin for the clock)
  against its digest, records those that do not match in ``objects/lost`` (durably),
  then removes them — before anything can read them. Staging writes a lost object again
  (its stat cache is not trusted for it), so ``lockgate sync`` after a crash repairs
  every component whose workspace still holds the files.

Where there is no boot id (not Linux) the store flushes before every revision is
recorded, whatever the setting.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator

from lockgate.plugin import boot_id, failpoint, fsync_dir, record, write_durably

__all__ = ["Journal", "Recovery", "boot_id"]

MARKER = "unflushed"
FLUSHING = "unflushed.flushing"
LOST = "lost"
PUBLISH_LOCK = "publish.lock"
FLUSH_LOCK = "flush.lock"
CLOCK_MARGIN_NS = 10 * 1_000_000_000
"""Objects modified up to this long before a marker's time are checked too."""


@record
class Recovery:
    """What checking after a restart found: objects checked, digests found damaged."""

    since_ns: int
    checked: int
    lost: tuple[str, ...]

    def message(self, root: str) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since_ns / 1e9))
        n = len(self.lost)
        found = (
            f"{n} {'was' if n == 1 else 'were'} damaged and removed; 'lockgate sync' stores "
            f"{'it' if n == 1 else 'them'} again from the workspaces"
            if n
            else "all were intact"
        )
        return (
            f"the machine restarted before objects written since {since} were flushed; "
            f"checked {self.checked} object(s) in {root}: {found}"
        )


class Journal:
    """The ``unflushed`` marker of one store, as one process sees it."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.marker = f"{root}/{MARKER}"
        self.flushing = f"{root}/{FLUSHING}"
        self._mutex = threading.Lock()
        self._held = False  # this process holds publish.lock shared (a batch is open)
        self._floor = 0  # objects published from this time (ns) on are what a repair checks
        self._publish_fd: int | None = None
        self._lost: frozenset[str] | None = None

    # ------------------------------------------------------------------ writers

    def cover(self) -> None:
        """Before an object is published: a durable marker exists, and stays until release().

        The process holds a shared ``flock`` (``publish.lock``) from its first object of a
        batch until :meth:`release`; a flush moves the marker aside only when it can take
        that lock exclusively, so no marker is moved while its objects are still being
        published. Checked once per batch: a flag test and a clock read per object after
        that. If the clock was set back past the marker's time (less the margin), the
        marker is rewritten with the earlier time, so a repair still looks at what is
        published from now on.
        """
        if self._held and time.time_ns() >= self._floor:
            return
        with self._mutex:
            if not self._held:
                fcntl.flock(self._publish_lock(), fcntl.LOCK_SH)
                since = self._marker_since()
                if since is None:
                    since = self._create_marker()
                self._floor = since - CLOCK_MARGIN_NS
                self._held = True
            now = time.time_ns()
            if now < self._floor:
                self._write_marker(now, replace=True)  # the clock went back
                self._floor = now - CLOCK_MARGIN_NS

    def release(self) -> None:
        """At the end of a batch: every object of a revision is published."""
        with self._mutex:
            if self._held and self._publish_fd is not None:
                fcntl.flock(self._publish_fd, fcntl.LOCK_UN)
                self._held = False

    def flush(
        self, syncfs: Callable[[], None], present: Callable[[str], bool] | None = None
    ) -> bool:
        """Flush if any marker says something may be unflushed; True when it did.

        Flushes take turns (``flush.lock``), so one never removes a marker another moved
        aside and is still flushing. When a batch is being published (its writer holds
        ``publish.lock``), the marker stays where it is: everything stored so far is
        flushed all the same, and the marker goes with a later flush. ``present`` tells
        which lost objects were stored again, to drop them from the list.
        """
        with _flock(f"{self.root}/{FLUSH_LOCK}"):
            flushed = self._flush_locked(syncfs)
            lost = self.lost()
            if present is not None and lost:
                # Lost objects stored again since (and now flushed) leave the list.
                self.record_lost({d for d in lost if not present(d)})
            return flushed

    def _flush_locked(self, syncfs: Callable[[], None]) -> bool:
        moved = False
        fd = os.open(f"{self.root}/{PUBLISH_LOCK}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # a batch in progress: flush, but leave its marker
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.rename(self.marker, self.flushing)
                    moved = True
        finally:
            os.close(fd)
        if not (moved or os.path.exists(self.marker) or os.path.exists(self.flushing)):
            return False
        syncfs()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.flushing)  # ours, or one a killed flush left: flushed now
        return True

    def _publish_lock(self) -> int:
        if self._publish_fd is None:
            fd = os.open(
                f"{self.root}/{PUBLISH_LOCK}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644
            )
            weakref.finalize(self, os.close, fd)
            self._publish_fd = fd
        return self._publish_fd

    def _create_marker(self) -> int:
        """Create the marker unless another writer just did; return its time."""
        now = time.time_ns()
        self._write_marker(now, replace=False)
        since = self._marker_since()
        return now if since is None else since

    def _marker_since(self) -> int | None:
        """The time in the marker, or None when there is no marker."""
        try:
            with open(self.marker, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            data = {}
        since = data.get("since_ns") if isinstance(data, dict) else None
        return since if isinstance(since, int) else os.stat(self.marker).st_mtime_ns

    def _write_marker(self, since_ns: int, *, replace: bool) -> None:
        body = {"boot_id": boot_id(), "since_ns": since_ns, "pid": os.getpid()}
        # In the store's tmp/ (which exists once objects are written): gc sweeps it.
        os.makedirs(f"{self.root}/tmp", exist_ok=True)
        tmp = f"{self.root}/tmp/{MARKER}.{os.getpid()}.{threading.get_ident()}"
        write_durably(tmp, json.dumps(body).encode())
        try:
            if replace:
                os.replace(tmp, self.marker)
            else:
                os.link(tmp, self.marker)  # never replaces another writer's marker
        except FileExistsError:
            pass  # another writer's: it was made durable before it was linked
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        fsync_dir(self.root)

    # ------------------------------------------------------------------ after a restart

    def recover(
        self,
        objects: Callable[[], Iterable[tuple[str, int]]],
        verify: Callable[[str], bool],
        remove: Callable[[str], None],
        syncfs: Callable[[], None],
    ) -> Recovery | None:
        """Check the objects a restart may have torn; None when no marker is from another boot.

        ``objects()`` yields every stored object's digest and the later of its mtime and
        ctime (its rename into place sets the ctime, after the marker existed, however long
        its bytes took to write).
        """
        if self._stale_since() is None:
            return None
        with _flock(f"{self.root}/{FLUSH_LOCK}"):
            since = self._stale_since()  # another process may have repaired meanwhile
            if since is None:
                return None
            cutoff = since - CLOCK_MARGIN_NS
            checked, lost = 0, []
            for digest, changed_ns in objects():
                if changed_ns < cutoff:
                    continue
                checked += 1
                if not verify(digest):
                    lost.append(digest)
            if lost:
                # Recorded (durably) before anything is removed: an interrupted repair
                # must not forget an object it already took away.
                self.record_lost(self.lost() | set(lost))
                for digest in lost:
                    failpoint("store.repair.removing")
                    remove(digest)
            # Then a flush like any other: it makes the removals durable, and covers what
            # this boot's writers published meanwhile under the old marker. If a batch in
            # progress keeps the marker, it now speaks for this boot.
            self._flush_locked(syncfs)
            if os.path.exists(self.marker):
                self._write_marker(since, replace=True)
            return Recovery(since, checked, tuple(sorted(lost)))

    def _stale_since(self) -> int | None:
        """The oldest time of a marker left by another boot, or None."""
        oldest = None
        for name in (self.marker, self.flushing):
            try:
                with open(name, encoding="utf-8") as fh:
                    data = json.load(fh)
            except FileNotFoundError:
                continue
            except (OSError, ValueError):
                data = {}  # unreadable: torn by the crash itself, so the crash came first
            if not isinstance(data, dict):
                data = {}
            if data.get("boot_id") == boot_id():
                continue
            since = data.get("since_ns")
            if not isinstance(since, int):
                since = int(os.stat(name).st_mtime_ns)
            oldest = since if oldest is None else min(oldest, since)
        return oldest

    # ------------------------------------------------------------------ lost objects

    def lost(self) -> frozenset[str]:
        """Digests recorded as taken by a restart (once empty, no more reads)."""
        if self._lost is not None and not self._lost:
            return self._lost
        try:
            with open(f"{self.root}/{LOST}", encoding="utf-8") as fh:
                recorded = json.load(fh)
        except FileNotFoundError:
            recorded = []
        except (OSError, ValueError):
            recorded = []  # torn: the objects it named are still missing or bad; verify finds them
        listed = (
            {d for d in recorded if isinstance(d, str)} if isinstance(recorded, list) else set()
        )
        self._lost = frozenset(listed)
        return self._lost

    def forget_lost(self, needed: Collection[str]) -> int:
        """Drop recorded digests that ``needed`` does not name; return how many went.

        For garbage collection: an object no kept revision needs would be removed if it
        were there, so that it was lost no longer matters. Under ``flush.lock``, like
        every change of the list.
        """
        if not os.path.isdir(self.root):
            return 0  # nothing was ever stored (a project whose stagings were refused)
        with _flock(f"{self.root}/{FLUSH_LOCK}"):
            self._lost = None  # read it again: another process may have changed it
            recorded = self.lost()
            kept = frozenset(d for d in recorded if d in needed)
            if kept != recorded:
                self.record_lost(kept)
            return len(recorded) - len(kept)

    def record_lost(self, digests: set[str] | frozenset[str]) -> None:
        path = f"{self.root}/{LOST}"
        if digests:
            tmp = f"{path}.{os.getpid()}.tmp"
            write_durably(tmp, json.dumps(sorted(digests)).encode())
            os.replace(tmp, path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        fsync_dir(self.root)
        self._lost = frozenset(digests)


@contextlib.contextmanager
def _flock(path: str) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
