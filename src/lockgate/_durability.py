"""Getting bytes onto the disk: the few system calls every durable write here uses."""

from __future__ import annotations

import errno
import functools
import os
from pathlib import Path

__all__ = ["boot_id", "fsync_dir", "syncfs", "write_durably"]


@functools.cache
def boot_id() -> str | None:
    """This boot of the machine (Linux), or None where the kernel does not say.

    What is in the page cache but not yet on the disk survives any process's death, and
    only a restart can lose it: a record made in another boot cannot vouch for bytes
    that were not flushed before it.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def syncfs(path: str | Path) -> None:
    """Flush the whole file system holding ``path`` (one call instead of an fsync per file).

    Linux's ``syncfs(2)``; where there is none, ``sync(2)``, which flushes every file
    system. Raises :class:`OSError` when the kernel reports a write-back error.
    """
    import ctypes

    fd = os.open(path, os.O_RDONLY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        call = getattr(libc, "syncfs", None)
        if call is not None and call(fd) == 0:
            return
        if call is not None and ctypes.get_errno() not in (errno.ENOSYS, 0):
            raise OSError(ctypes.get_errno(), "syncfs failed", str(path))
        os.sync()
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Make the entries of directory ``path`` (creations, renames, removals) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: str, data: bytes) -> None:
    """Write ``data`` to a new or truncated file ``path`` and fsync it (not its directory)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
