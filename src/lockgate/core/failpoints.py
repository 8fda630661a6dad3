"""Named failpoints for the crash harness: ``LOCKGATE_FAILPOINTS=promote.after_switch``.

At a named point, a process whose ``LOCKGATE_FAILPOINTS`` lists that name (comma-separated)
kills itself with SIGKILL, exactly as a crash or ``kill -9`` would. A name listed as
``NAME:pause`` pauses there instead, for race tests: the process creates
``$LOCKGATE_PAUSE_DIR/NAME.paused`` and waits until ``NAME.resume`` appears beside it, so
another process can act at exactly that point. Unset, a failpoint costs one dictionary
lookup. Names are listed in docs/reliability.md.
"""

from __future__ import annotations

import os
import signal
import time

__all__ = ["failpoint"]

_ACTIVE: frozenset[str] | None = None


def failpoint(name: str) -> None:
    """Die here, at once, if ``name`` is an active failpoint (pause if ``name:pause`` is)."""
    global _ACTIVE
    if _ACTIVE is None:
        raw = os.environ.get("LOCKGATE_FAILPOINTS", "")
        _ACTIVE = frozenset(p.strip() for p in raw.split(",") if p.strip())
    if name in _ACTIVE:
        os.kill(os.getpid(), signal.SIGKILL)
    if f"{name}:pause" in _ACTIVE:
        _pause(name)


def _pause(name: str) -> None:
    from pathlib import Path

    where = Path(os.environ.get("LOCKGATE_PAUSE_DIR", "."))
    (where / f"{name}.paused").write_text(str(os.getpid()), encoding="utf-8")
    resume = where / f"{name}.resume"
    while not resume.exists():
        time.sleep(0.01)
