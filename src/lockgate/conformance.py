"""The conformance suites, under the name they were first published with.

They live in :mod:`lockgate.testing` (one per role: state store, content store, source,
target); this module re-exports them so that ``from lockgate.conformance import
StateStoreConformance`` keeps working.
"""

from __future__ import annotations

from lockgate.testing import (
    ContentStoreConformance,
    SourceConformance,
    StateStoreConformance,
    TargetConformance,
    at,
)

__all__ = [
    "ContentStoreConformance",
    "SourceConformance",
    "StateStoreConformance",
    "TargetConformance",
    "at",
]
