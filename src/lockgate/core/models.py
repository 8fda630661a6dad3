"""Deprecated location of the objects that cross the hook boundary, kept so that old
imports still work: they live in :mod:`lockgate.contracts.models`, and plugins import
them from :mod:`lockgate.plugin`. A name read from here warns (:class:`DeprecationWarning`).
"""

from lockgate._startup import moved_names

__getattr__, __dir__ = moved_names(globals(), ("lockgate.contracts.models",), "lockgate.plugin")
