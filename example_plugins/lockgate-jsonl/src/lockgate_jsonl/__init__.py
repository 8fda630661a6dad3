"""A notifier that appends one JSON line per promotion and rollback to a file.

Configured in ``lockgate.yaml``::

    plugins:
      jsonl:
        path: logs/changes.jsonl   # relative paths are resolved against the project root

Each line is one object: ``action`` (``promote`` or ``rollback``), ``component``,
``stage``, ``revision``, ``previous_revision``, ``actor``, ``at`` (ISO 8601) and
``reason``. A line is written with a single ``write(2)`` on a file opened for appending,
so concurrent lockgate processes never interleave their lines. Without ``path`` the
plugin does nothing.

It shows the plugin context: the project root comes from ``context.project_root`` (no
module global), the settings from ``context.settings``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import attrs

from lockgate.plugin import ChangeEvent, PluginContext, hookimpl

__all__ = ["Settings", "line_for"]


@attrs.frozen
class Settings:
    """``plugins.jsonl:`` in lockgate.yaml."""

    path: str | None = None
    """The file to append to (relative: to the project root); unset: write nothing."""


@hookimpl
def register_settings() -> type:
    return Settings


@hookimpl
def on_promote(event: ChangeEvent, context: PluginContext) -> None:
    _append(event, context)


@hookimpl
def on_rollback(event: ChangeEvent, context: PluginContext) -> None:
    _append(event, context)


def line_for(event: ChangeEvent) -> bytes:
    """The JSON line written for ``event``, newline included."""
    data = {
        "action": event.action,
        "component": event.component,
        "stage": event.stage,
        "revision": event.revision,
        "previous_revision": event.previous_revision,
        "actor": event.actor,
        "at": event.at.isoformat(),
        "reason": event.reason,
    }
    return (json.dumps(data, sort_keys=True) + "\n").encode()


def _append(event: ChangeEvent, context: PluginContext) -> None:
    settings = context.settings if isinstance(context.settings, Settings) else Settings()
    if not settings.path:
        return
    path = Path(settings.path).expanduser()
    if not path.is_absolute():
        if context.project_root is None:
            context.warn(f"no project to resolve {settings.path} against; nothing written")
            return
        path = context.project_root / path
    path.parent.mkdir(parents=True, exist_ok=True)
    # One write on an O_APPEND descriptor: lines from concurrent processes never mix.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line_for(event))
        os.fsync(fd)
    finally:
        os.close(fd)
