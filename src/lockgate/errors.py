"""Every error lockgate raises on purpose.

Each message says what went wrong, where, and how to fix it, in one line; the CLI prints
that line on stderr and exits with the class's ``exit_code``. Anything else that escapes
is a bug, reported as an internal error (exit 5).

Hierarchy::

    LockgateError                      exit 1  (refused)
    ├── RefusedError                   exit 1  an allowed request the project's state refuses
    │   ├── NotReadyError              exit 1  a gate (validator) blocks the operation
    │   ├── AuthenticationError        exit 1  no, an unknown, expired or revoked token (401)
    │   └── PermissionDeniedError      exit 1  the token's role or stage does not allow it (403)
    ├── InputError (ValueError)        exit 2  bad input: usage, references, paths
    │   ├── ConfigError                exit 2  lockgate.yaml, environment overrides, settings
    │   │   └── MissingKeyError        exit 2  a required setting is not set
    │   ├── NotFoundError (LookupError) exit 2 an unknown component, revision, stage, plugin
    │   ├── CorruptStateError          exit 2  a record in the state store breaks lockgate's rules
    │   └── ProjectNotFoundError       exit 2  no lockgate.yaml here or in any parent
    ├── PluginError                    exit 3  a plugin failed
    │   ├── PluginLoadError            exit 3  import or hook validation failed (strict mode)
    │   ├── PluginHookError            exit 3  a hook implementation raised
    │   ├── PluginCallError            exit 3  an object a plugin supplies (store, source,
    │   │                                      target) or its factory raised
    │   └── MissingCapabilityError     exit 3  no enabled plugin plays a role the command needs
    ├── ConflictError                  exit 4  a concurrent change won; re-read and retry
    │   └── LockedError                exit 4  another live process holds the project lock
    └── EnvironmentFault               exit 4  the machine refused: disk full, no permission,
                                               read-only or failing storage; fix, then retry

:func:`environment_fault` recognizes such a failure (an ``OSError`` with ENOSPC, EDQUOT,
EACCES, EPERM, EROFS or EIO, or SQLite's "readonly", "disk I/O error", "disk is full"
and "unable to open") so that the CLI reports it in one line instead of as a bug.
"""

from __future__ import annotations

import errno
from typing import ClassVar

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "ConflictError",
    "CorruptStateError",
    "EnvironmentFault",
    "InputError",
    "LockedError",
    "LockgateError",
    "MissingCapabilityError",
    "MissingKeyError",
    "NotFoundError",
    "NotReadyError",
    "PermissionDeniedError",
    "PluginCallError",
    "PluginError",
    "PluginHookError",
    "PluginLoadError",
    "ProjectNotFoundError",
    "RefusedError",
    "environment_fault",
]


class LockgateError(Exception):
    """Base of every deliberate lockgate error; ``exit_code`` is what the CLI returns."""

    exit_code: ClassVar[int] = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class RefusedError(LockgateError):
    """The request is well-formed but the project's current state does not allow it."""

    exit_code = 1


class NotReadyError(RefusedError):
    """A gate blocks the operation: a validator reported errors."""


class AuthenticationError(RefusedError):
    """No credential, or one lockgate does not accept: unknown, expired or revoked."""


class PermissionDeniedError(RefusedError):
    """An authenticated identity asked for what its role or stage does not allow."""


class InputError(LockgateError, ValueError):
    """Bad input: a usage mistake, a malformed reference, an unsafe path."""

    exit_code = 2


class ConfigError(InputError):
    """The configuration (file, environment override or plugin settings) is invalid."""


class MissingKeyError(ConfigError):
    """A required setting (a field of a settings class without a default) is not set; for
    a plugin's settings, only that plugin fails (``lockgate plugins`` names the key)."""


class NotFoundError(InputError, LookupError):
    """A named thing (component, revision, stage, plugin) does not exist."""


class CorruptStateError(InputError):
    """A record read back from the state store (a pointer, an intent, a revision) holds
    a value lockgate never writes, such as a component id with ``/`` or ``..``: the store
    was edited or damaged, and the record is refused before it touches any file."""


class ProjectNotFoundError(InputError):
    """No ``lockgate.yaml`` in the given directory or any of its parents."""


class PluginError(LockgateError):
    """A plugin failed; the message names the plugin, its distribution and version."""

    exit_code = 3


class PluginLoadError(PluginError):
    """One or more plugins failed to load and strict mode turns that into a failure."""


class PluginHookError(PluginError):
    """A hook implementation raised; the original exception is the ``__cause__``."""

    def __init__(self, message: str, *, plugin: str, hook: str) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.hook = hook


class PluginCallError(PluginError):
    """A method of an object a plugin supplies for a role (a state or content store, a
    source, a target), or the factory that builds it, raised something other than a
    lockgate error; the original exception is the ``__cause__``."""

    def __init__(self, message: str, *, plugin: str, method: str) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.method = method


class MissingCapabilityError(PluginError):
    """No enabled plugin provides a role (state store, content store, target) a command needs."""


class ConflictError(LockgateError):
    """A concurrent change won the race (compare-and-swap failed); re-read and retry."""

    exit_code = 4


class LockedError(ConflictError):
    """Another live process holds the lock and did not release it within the timeout."""


class EnvironmentFault(LockgateError):
    """The machine refused an operation: disk full, permission denied, read-only storage.

    Not a bug and not a conflict: nothing is wrong with the request, and it succeeds once
    the fault is fixed. A switch it interrupts is undone (or settled by the next command).
    """

    exit_code = 4


_FAULT_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "an input/output error",
    errno.EFBIG: "a file grew past its size limit",
}
_SQLITE_FAULTS = (
    ("readonly", "the state database is read-only"),
    ("disk i/o error", "the state database's storage failed"),
    ("disk is full", "the disk holding the state database is full"),
    ("unable to open", "the state database cannot be opened"),
)


def environment_fault(exc: BaseException) -> EnvironmentFault | None:
    """``exc`` as an :class:`EnvironmentFault` when the environment caused it, else None."""
    if isinstance(exc, EnvironmentFault):
        return exc
    if isinstance(exc, LockgateError):
        return None
    fix = "fix that (free space, permissions, mount) and retry"
    if isinstance(exc, OSError) and exc.errno in _FAULT_ERRNOS:
        where = f"{exc.filename}: " if exc.filename else ""
        return EnvironmentFault(f"{where}{_FAULT_ERRNOS[exc.errno]} ({exc.strerror}); {fix}")
    # sqlite3 is not imported here: most commands never need it to report an error.
    if type(exc).__module__ == "sqlite3" and type(exc).__name__ == "OperationalError":
        text = str(exc).lower()
        for needle, what in _SQLITE_FAULTS:
            if needle in text:
                return EnvironmentFault(f"{what}: {exc}; {fix}")
    return None
