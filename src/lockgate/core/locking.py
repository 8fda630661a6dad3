"""The project's operation lock: one switch of a stage at a time, never blocked by the dead.

Operations that touch a stage target (promote, rollback, recover, gc) hold an exclusive
``flock`` on ``.lockgate/operation.lock`` for their whole duration. The kernel releases a
``flock`` when its holder dies, however it dies, so a crashed process never blocks anyone.
The holder writes its owner — pid, host, start time and a lease — into the file, so a
waiter can say who holds the lock and since when. A live holder past its lease (hung) is
reported, not broken: ``lockgate unlock --force`` removes the lock file (the hung holder
keeps a lock on a file no one else opens), and is audited. A holder that is alive and
within its lease is presumed working: ``unlock`` refuses to break its lock unless
``--force`` is given twice.

A second lock, ``.lockgate/staging.lock``, keeps staging and garbage collection apart
(:class:`StagingLock`): each staging holds it shared from the moment it decides which
stored objects it reuses until its revision is recorded, and ``gc`` holds it exclusive
while it decides what to remove and removes it. So gc never sees an object as unneeded
that a staging is about to record a revision with, and stagings still run side by side.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from lockgate.core.clock import now_iso
from lockgate.errors import LockedError

__all__ = [
    "LOCK_FILENAME",
    "STAGING_LOCK_FILENAME",
    "OperationLock",
    "StagingLock",
    "holder_within_lease",
    "is_held",
    "read_owner",
]

LOCK_FILENAME = "operation.lock"
STAGING_LOCK_FILENAME = "staging.lock"
LEASE_SECONDS = 300.0


def read_owner(state_dir: Path) -> dict[str, Any] | None:
    """The owner recorded in the lock file (None when there is none or it is unreadable)."""
    try:
        data = json.loads((state_dir / LOCK_FILENAME).read_text(encoding="utf-8") or "null")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def holder_within_lease(owner: dict[str, Any] | None) -> bool:
    """Whether the recorded holder should be presumed working: its lease has not ended
    and, on this host, its process exists. No owner (a holder that has not written it
    yet) or an unreadable lease counts as within the lease."""
    if not owner:
        return True
    lease = owner.get("lease_until")
    if isinstance(lease, int | float) and lease < time.time():
        return False
    pid = owner.get("pid")
    if owner.get("host") == socket.gethostname() and isinstance(pid, int):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True


def is_held(state_dir: Path) -> bool:
    """True when a live process holds the operation lock now."""
    try:
        fd = os.open(state_dir / LOCK_FILENAME, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing also releases the probe's own lock
    return False


class OperationLock:
    """``with OperationLock(state_dir, operation, timeout):`` — exclusive, owner-stamped."""

    def __init__(self, state_dir: Path, operation: str, timeout: float) -> None:
        self.path = state_dir / LOCK_FILENAME
        self.operation = operation
        self.timeout = timeout
        self._fd: int | None = None

    def __enter__(self) -> OperationLock:
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() >= deadline:
                    raise LockedError(self._held_message()) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
                continue
            # The file may have been removed (unlock --force) between open and flock.
            try:
                same = os.fstat(fd).st_ino == self.path.stat().st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            self._fd = fd
            self._write_owner()
            return self

    def _write_owner(self) -> None:
        assert self._fd is not None
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "operation": self.operation,
            "since": now_iso(),
            "lease_until": time.time() + LEASE_SECONDS,
        }
        data = json.dumps(owner).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            finally:
                os.close(self._fd)  # closing releases the flock
                self._fd = None

    def _held_message(self) -> str:
        owner = read_owner(self.path.parent)
        if not owner:
            return (
                f"another lockgate operation holds {self.path} (waited {self.timeout:g} s); "
                "retry when it finishes"
            )
        who = f"pid {owner.get('pid')} on {owner.get('host')}"
        what = f"{owner.get('operation')} since {owner.get('since')}"
        lease = owner.get("lease_until")
        if isinstance(lease, int | float) and lease < time.time():
            return (
                f"the project is locked by {who} ({what}), past its lease: if that process is "
                "hung, run 'lockgate unlock --force --reason TEXT'"
            )
        return f"the project is locked by {who} ({what}); retry when it finishes"


class StagingLock:
    """``with StagingLock(state_dir, exclusive=False, timeout=10):`` — staging (shared)
    against garbage collection (exclusive); see the module docstring.

    A plain ``flock``: the kernel drops it when its holder dies, and the file is never
    removed (``unlock --force`` leaves it alone), so every process locks the same inode.
    """

    def __init__(self, state_dir: Path, *, exclusive: bool, timeout: float) -> None:
        self.path = state_dir / STAGING_LOCK_FILENAME
        self.exclusive = exclusive
        self.timeout = timeout
        self._fd: int | None = None

    def __enter__(self) -> StagingLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        mode = fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockedError(self._held_message()) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    def _held_message(self) -> str:
        if self.exclusive:
            return (
                f"a staging in progress holds {self.path} (waited {self.timeout:g} s); "
                "run gc again when it finishes"
            )
        return (
            f"garbage collection holds {self.path} (waited {self.timeout:g} s); "
            "stage again when it finishes"
        )
