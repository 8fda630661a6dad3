"""Named failpoints for the crash harness: ``LOCKGATE_FAILPOINTS=promote.after_switch``.

At a named point, a process whose ``LOCKGATE_FAILPOINTS`` lists that name (comma-separated)
kills itself with SIGKILL, exactly as a crash or ``kill -9`` would. Unset, a failpoint
costs one dictionary lookup. Names are listed in docs/reliability.md.
"""

from __future__ import annotations

import os
import signal

__all__ = ["failpoint"]

_ACTIVE: frozenset[str] | None = None


def failpoint(name: str) -> None:
    """Die here, at once, if ``name`` is an active failpoint."""
    global _ACTIVE
    if _ACTIVE is None:
        raw = os.environ.get("LOCKGATE_FAILPOINTS", "")
        _ACTIVE = frozenset(p.strip() for p in raw.split(",") if p.strip())
    if name in _ACTIVE:
        os.kill(os.getpid(), signal.SIGKILL)
