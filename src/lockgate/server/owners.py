"""Which server process owns a job or a key being answered, and whether it still runs.

Several server processes may share one project (``lockgate serve --workers N``, or two
servers started by hand): each names itself with a random id when it starts, and holds
an exclusive ``flock`` on ``.lockgate/serve/<id>.lock`` for as long as it runs. The
operating system drops that lock when the process ends, however it ends (``SIGKILL``
too), so "is its owner still running?" is a lock that can be taken: no process id that
another program may have been given since, no heartbeat to miss.
"""

from __future__ import annotations

import fcntl
import os
import threading
import uuid
from pathlib import Path

__all__ = ["Owner"]


class Owner:
    """This process, as the owner of what it runs; and a look at other owners."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.id = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._path = directory / f"{self.id}.lock"
        self._fd: int | None = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._gone: set[str] = set()
        self._lock = threading.Lock()
        self.sweep()

    def sweep(self) -> None:
        """Remove the lock files that processes which ended left (one killed, or a worker
        stopped while it started, before it could remove its own)."""
        for stale in self.directory.glob("*.lock"):
            if stale != self._path:
                self.alive(stale.stem)

    def alive(self, owner: str | None) -> bool:
        """Whether the process ``owner`` names still runs (None, a server from before
        owners were recorded: no)."""
        if owner is None:
            return False
        if owner == self.id:
            return self._fd is not None
        with self._lock:
            if owner in self._gone:
                return False
        path = self.directory / f"{owner}.lock"
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            gone = True
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                gone = False
            else:
                gone = True
                path.unlink(missing_ok=True)
            finally:
                os.close(fd)
        if gone:
            with self._lock:
                self._gone.add(owner)
        return not gone

    def close(self) -> None:
        """This process no longer owns anything (its lock file is removed)."""
        if self._fd is not None:
            self._path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None
