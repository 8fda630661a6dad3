"""``@record``: ``attrs.frozen`` with shared ``__repr__``, ``__eq__`` and ``__hash__``.

A start-up trick, so it lives with the others in :mod:`lockgate._startup` (which says
what it buys); this is its name for the kernel, and ``lockgate.plugin.record`` for
plugins.
"""

from __future__ import annotations

from lockgate._startup import record

__all__ = ["record"]
