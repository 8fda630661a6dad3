"""Every error lockgate raises on purpose.

Each message says what went wrong, where, and how to fix it, in one line; the CLI prints
that line on stderr and exits with the class's ``exit_code``. Anything else that escapes
is a bug, reported as an internal error (exit 5).

Hierarchy::

    LockgateError                      exit 1  (refused)
    ├── RefusedError                   exit 1  an allowed request the project's state refuses
    │   └── NotReadyError              exit 1  a gate (validator) blocks the operation
    ├── InputError (ValueError)        exit 2  bad input: usage, references, paths
    │   ├── ConfigError                exit 2  lockgate.yaml, environment overrides, settings
    │   ├── NotFoundError (LookupError) exit 2 an unknown component, revision, stage, plugin
    │   ├── CorruptStateError          exit 2  a record in the state store breaks lockgate's rules
    │   └── ProjectNotFoundError       exit 2  no lockgate.yaml here or in any parent
    ├── PluginError                    exit 3  a plugin failed
    │   ├── PluginLoadError            exit 3  import or hook validation failed (strict mode)
    │   ├── PluginHookError            exit 3  a hook implementation raised
    │   └── MissingCapabilityError     exit 3  no enabled plugin plays a role the command needs
    └── ConflictError                  exit 4  a concurrent change won; re-read and retry
        └── LockedError                exit 4  another live process holds the project lock
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ConfigError",
    "ConflictError",
    "CorruptStateError",
    "InputError",
    "LockedError",
    "LockgateError",
    "MissingCapabilityError",
    "NotFoundError",
    "NotReadyError",
    "PluginError",
    "PluginHookError",
    "PluginLoadError",
    "ProjectNotFoundError",
    "RefusedError",
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


class InputError(LockgateError, ValueError):
    """Bad input: a usage mistake, a malformed reference, an unsafe path."""

    exit_code = 2


class ConfigError(InputError):
    """The configuration (file, environment override or plugin settings) is invalid."""


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


class MissingCapabilityError(PluginError):
    """No enabled plugin provides a role (state store, content store, target) a command needs."""


class ConflictError(LockgateError):
    """A concurrent change won the race (compare-and-swap failed); re-read and retry."""

    exit_code = 4


class LockedError(ConflictError):
    """Another live process holds the lock and did not release it within the timeout."""
