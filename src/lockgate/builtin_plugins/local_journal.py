"""When the ``local`` store's objects reach the disk, and what a crash may have taken.

With ``plugins.local.flush: promote`` (the default) staging writes objects and leaves them
to the kernel's write-back, as ``cp`` and ``git add`` do; the file system is flushed
before a revision is deployed (promote, rollback) instead of before it is recorded. What
keeps that safe is a marker, ``objects/unflushed``:

* before a process publishes its first object since the last flush, it makes sure the
  marker exists, and creates it durably if not (file and directory fsynced); the marker
  holds the kernel's boot id and the time;
* a flush renames the marker to ``unflushed.flushing``, flushes the file system, then
  removes it. Any object written before the rename is flushed; a writer publishing after
  the rename finds no marker and creates a new one;
* a writer checks, before its revision is recorded, that the marker it relied on is still
  there; if a flush took it meanwhile, the writer flushes too (its objects may have
  been written after that flush's ``syncfs`` began);
* the page cache survives any process's death, so only a restart of the machine can lose
  unflushed bytes. A marker from another boot therefore means "objects written since
  this time may be empty or torn": the next process to open the store checks every object
  modified since then (minus a margin for the clock) against its digest, removes those
  that do not match, and records their digests in ``objects/lost`` — before anything can
  read them. Staging writes a lost object again (its stat cache is not trusted for it),
  so ``lockgate sync`` after a crash repairs every component whose workspace still holds
  the files.

Where there is no boot id (not Linux) the store flushes before every revision is
recorded, whatever the setting.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator

from lockgate.core.records import record

__all__ = ["Journal", "Recovery", "boot_id"]

MARKER = "unflushed"
FLUSHING = "unflushed.flushing"
LOST = "lost"
REPAIR_LOCK = "repair.lock"
CLOCK_MARGIN_NS = 10 * 1_000_000_000
"""Objects modified up to this long before a marker's time are checked too."""


@functools.cache
def boot_id() -> str | None:
    """This boot of the machine (Linux), or None where the kernel does not say."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


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
        self._covered: str | None = None  # token of the marker this process's writes rely on
        self._lock = threading.Lock()
        self._lost: frozenset[str] | None = None

    # ------------------------------------------------------------------ writers

    def cover(self) -> None:
        """Make sure a durable marker covers the object about to be published."""
        if self._covered is not None:
            return
        with self._lock:
            if self._covered is None:
                self._covered = self._ensure_marker()

    def settle(self) -> bool:
        """Before a revision is recorded: True when the writes must be flushed now.

        That is when a flush took the marker these writes relied on while they were being
        made (a new marker has another token: inode numbers are reused). The next write
        finds or creates a marker again.
        """
        with self._lock:
            covered, self._covered = self._covered, None
        return covered is not None and self._token() != covered

    def flush(self, syncfs: Callable[[], None]) -> bool:
        """Flush if any marker says something may be unflushed; True when it did."""
        try:
            os.rename(self.marker, self.flushing)
        except FileNotFoundError:
            if not os.path.exists(self.flushing):
                return False
        syncfs()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.flushing)
        with self._lock:
            self._covered = None
        return True

    def _token(self) -> str | None:
        """The token of the marker there now (None: none, or unreadable)."""
        try:
            with open(self.marker, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return None
        token = data.get("token") if isinstance(data, dict) else None
        return token if isinstance(token, str) else None

    def _ensure_marker(self) -> str:
        token = self._token()
        if token is not None:
            return token
        token = uuid.uuid4().hex
        body = {"boot_id": boot_id(), "since_ns": time.time_ns(), "token": token}
        # In the store's tmp/ (which exists once objects are written): gc sweeps it.
        tmp = f"{self.root}/tmp/{MARKER}.{os.getpid()}.{threading.get_ident()}"
        _write_durably(tmp, json.dumps(body).encode())
        try:
            os.link(tmp, self.marker)  # never replaces another writer's marker
        except FileExistsError:
            token = self._token() or token  # theirs (unreadable: settle() will flush)
        finally:
            os.unlink(tmp)
        _fsync_dir(self.root)
        return token

    # ------------------------------------------------------------------ after a restart

    def recover(
        self,
        objects: Callable[[], Iterable[tuple[str, int]]],
        verify: Callable[[str], bool],
        remove: Callable[[str], None],
        syncfs: Callable[[], None],
    ) -> Recovery | None:
        """Check the objects a restart may have torn; None when no marker is from another boot.

        ``objects()`` yields (digest, mtime_ns) of every stored object.
        """
        if self._stale_since() is None:
            return None
        with self._repair_lock():
            since = self._stale_since()  # another process may have repaired meanwhile
            if since is None:
                return None
            cutoff = since - CLOCK_MARGIN_NS
            checked, lost = 0, []
            for digest, mtime_ns in objects():
                if mtime_ns < cutoff:
                    continue
                checked += 1
                if not verify(digest):
                    remove(digest)
                    lost.append(digest)
            if lost:
                self.record_lost(self.lost() | set(lost))
            syncfs()  # the removals and the list of what was lost, before the markers go
            for name in (self.marker, self.flushing):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name)
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

    @contextlib.contextmanager
    def _repair_lock(self) -> Iterator[None]:
        fd = os.open(f"{self.root}/{REPAIR_LOCK}", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

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

    def record_lost(self, digests: set[str] | frozenset[str]) -> None:
        path = f"{self.root}/{LOST}"
        if digests:
            tmp = f"{path}.{os.getpid()}.tmp"
            _write_durably(tmp, json.dumps(sorted(digests)).encode())
            os.replace(tmp, path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        _fsync_dir(self.root)
        self._lost = frozenset(digests)


def _write_durably(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
