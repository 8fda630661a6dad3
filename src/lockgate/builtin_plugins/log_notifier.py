"""Builtin plugin ``log``: a notifier that writes one JSON line per event.

Configured as ``events.notifiers: [{kind: log, options: {path: events.jsonl}}]``: each
event is appended as its CloudEvent, one compact JSON object per line, to ``path``
(relative to the project root), or to standard error when ``path`` is ``-`` (the
default). A line is written with one ``write`` to a file opened for appending, so lines
of concurrent writers never interleave; delivery is at least once, so a reader
de-duplicates by ``id``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from lockgate.plugin import (
    ConfigError,
    DeliveryError,
    Message,
    RoleContext,
    hookimpl,
    notifier_options,
)

__all__ = ["LogNotifier"]


@hookimpl
def register_notifiers(register: Any) -> None:
    register("log", LogNotifier.from_context)


class LogNotifier:
    """Append each message's JSON to a file, or write it to standard error."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    @classmethod
    def from_context(cls, ctx: RoleContext) -> LogNotifier:
        where, options = notifier_options(ctx.options, "log", ("path",))
        path = options.get("path", "-")
        if not isinstance(path, str) or not path.strip():
            raise ConfigError(f"{where}.path: give a file name, or '-' for stderr")
        return cls(None if path == "-" else ctx.project_root / path)

    def deliver(self, message: Message, timeout: float) -> None:
        line = message.body + b"\n"
        if self.path is None:
            sys.stderr.buffer.write(line) if hasattr(sys.stderr, "buffer") else sys.stderr.write(
                line.decode()
            )
            sys.stderr.flush()
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            raise DeliveryError(f"cannot append to {self.path}: {exc.strerror}") from exc

    def close(self) -> None:
        pass
