"""``plugins.watch:`` — the watcher's settings, shared by its hooks and its engine."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from lockgate.plugin import record

__all__ = ["WatchSettings"]


def _ms(low: int) -> list[Callable[..., None]]:
    """Milliseconds from ``low`` up to an hour: anything longer only looks like a hang."""
    return [attrs.validators.ge(low), attrs.validators.le(3_600_000)]


@record
class WatchSettings:
    """``plugins.watch:`` — how events are turned into syncs."""

    debounce_ms: int = attrs.field(default=200, validator=_ms(0))
    """Quiet time after a component's last event before it is rescanned."""
    max_wait_ms: int = attrs.field(default=5000, validator=_ms(0))
    """A component that never goes quiet (a file appended to non-stop) syncs this often."""
    poll_interval_ms: int = attrs.field(default=1000, validator=_ms(10))
    """Interval between two snapshots of the tree when polling."""
    force_polling: bool = False
    """Poll instead of using the platform's file events (network file systems)."""
    warm: bool = True
    """Answer ``stage``, ``sync`` and ``ls`` started meanwhile (the warm path)."""
    trust_events: bool = True
    """Let the warm path answer an unchanged directory from the file events, without
    rereading it (false: it reads every file's metadata, as a cold command does)."""
