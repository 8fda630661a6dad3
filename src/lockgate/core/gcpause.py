"""Pausing the cyclic garbage collector around bulk allocations.

A scan or a stat-cache load creates tens of thousands of tuples and no reference cycles.
Each 700 allocations would start a collection that walks the young objects, and every
tenth of those a larger one, so the collector can cost as much as the work itself. While
paused, reference counting still frees everything; the collector runs again afterwards.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["gc_paused"]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block. Nesting is fine: only the block that
    found it enabled turns it back on (so with threads, a pause ends when the block that
    began it ends)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
