"""Deprecated location of the role contracts, kept so that old imports still work.

They live in :mod:`lockgate.contracts` (one module per role); plugins import them from
:mod:`lockgate.plugin`. A name read from here warns (:class:`DeprecationWarning`).
"""

from lockgate._startup import moved_names

__getattr__, __dir__ = moved_names(
    globals(),
    tuple(f"lockgate.contracts.{m}" for m in ("source", "content", "target", "state")),
    "lockgate.plugin",
)
