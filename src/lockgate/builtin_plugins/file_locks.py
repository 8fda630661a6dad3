"""The locks of the ``sqlite`` state store: one ``flock``-ed file per lock in ``.lockgate/``.

Lock ``operation`` is ``.lockgate/operation.lock``, lock ``staging`` is
``.lockgate/staging.lock``, and the component lock ``operation/<id>`` is
``.lockgate/operation/<id>.lock`` (see ``lockgate.contracts.locks`` for what each is
for). The kernel
releases a ``flock`` when its holder dies, however it dies, so a crashed process never
blocks anyone. An exclusive holder writes its owner (pid, host, operation, since, lease)
into the file as JSON, so a waiter can say who holds the lock and since when; a shared
holder cannot (several hold the file at once), so it clears what a dead exclusive holder
left there. :meth:`FileLocks.break_lock` removes the file: a holder that is still running
keeps a lock on a file no one else opens, and the next holder creates a new one;
breaking ``operation`` removes every component lock's file too.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from lockgate.plugin import LockOwner, locked_error, parent_lock

__all__ = ["FileLocks"]


class FileLocks:
    """Named locks as ``flock``-ed files ``<directory>/<name>.lock``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, name: str) -> Path:
        """The file of lock ``name``."""
        return self.directory / f"{name}.lock"

    @contextlib.contextmanager
    def lock(
        self, name: str, *, owner: LockOwner, lease: float, timeout: float, shared: bool = False
    ) -> Iterator[LockOwner]:
        """See ``StateStore.lock``."""
        fd = self._acquire(name, shared=shared, timeout=timeout)
        try:
            granted = owner.stamped(lease)
            # Shared: nobody holds it exclusively now, so whatever the file holds is the
            # owner a dead exclusive holder left (a waiter must not name it).
            data = b"" if shared else json.dumps(granted.to_dict()).encode()
            if data or os.fstat(fd).st_size:
                os.ftruncate(fd, 0)
                os.pwrite(fd, data, 0)
            yield granted
        finally:
            try:
                if not shared:
                    os.ftruncate(fd, 0)
            finally:
                os.close(fd)  # closing releases the flock

    def _acquire(self, name: str, *, shared: bool, timeout: float) -> int:
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() >= deadline:
                    holder = self.holder(name)
                    raise locked_error(
                        name, holder, shared=shared, waited=timeout, where=str(path)
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
                continue
            # The file may have been removed (break_lock) between open and flock.
            try:
                same = os.fstat(fd).st_ino == path.stat().st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            return fd

    def holder(self, name: str) -> LockOwner | None:
        """See ``StateStore.holder``: probed with a non-blocking ``flock``."""
        try:
            fd = os.open(self.path(name), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return LockOwner.from_dict(_read_owner(fd))
            return None
        finally:
            os.close(fd)  # closing also releases the probe's own lock

    def break_lock(self, name: str) -> None:
        """See ``StateStore.break_lock`` (``operation``: its component locks too)."""
        self.path(name).unlink(missing_ok=True)
        if parent_lock(name) == name:
            with contextlib.suppress(FileNotFoundError):
                for path in (self.directory / name).glob("*.lock"):
                    path.unlink(missing_ok=True)


def _read_owner(fd: int) -> object:
    """The JSON the holder wrote (None when there is none yet or it is unreadable)."""
    try:
        return json.loads(os.pread(fd, 1 << 16, 0) or b"null")
    except (OSError, ValueError):
        return None
