"""The conformance suite every state-store plugin must pass.

A state store (the ``StateStore`` protocol of :mod:`lockgate.contracts`) records
components, revisions, stage pointers and their history, approvals, intents and the
hash-chained audit log, and provides the kernel's locks (``operation``, ``staging``).
The suite holds one test per promised behaviour, in a base class that a plugin's own
test suite inherits; the builtin ``sqlite`` and ``memory`` stores run it too. The class
is composed of one part per part of the contract, each in a module of its own:

* :mod:`lockgate.testing._state_records_suite` — components and revisions;
* :mod:`lockgate.testing._state_pointer_suite` — stage pointers, their history, ``live_at``;
* :mod:`lockgate.testing._state_approval_suite` — approvals and intents;
* :mod:`lockgate.testing._state_audit_suite` — the audit log, its chain, the counts, and
  the records agreeing with the log;
* :mod:`lockgate.testing._state_outbox_suite` — the outbox's delivery state (the
  optional ``EventDeliveries`` capability);
* :mod:`lockgate.testing._state_batch_suite` — several reads in one call (the optional
  ``ReadBatch`` capability);
* :mod:`lockgate.testing._state_lineage_suite` — a revision found by a prefix of its id,
  and its ancestors (the optional ``RevisionLineage`` capability);
* :mod:`lockgate.testing._lock_suite` — the locks;

with the records and writes they share in :mod:`lockgate.testing._state_builders`.

Use it from a plugin's tests::

    import pytest
    from lockgate.testing import StateStoreConformance

    class TestMyStore(StateStoreConformance):
        @pytest.fixture
        def store(self, tmp_path):
            s = MyStore(tmp_path / "state")
            yield s
            s.close()

That is: subclass it as ``class TestMyStore(StateStoreConformance)`` and define a
``store`` fixture returning a fresh, empty store (closing it afterwards if it holds
resources). The base class is not named ``Test*``, so pytest does not collect it by itself;
each subclass runs every test against its own store. To mark a known failure of one store,
override the method in the subclass (``super().test_...(store)``) under
``@pytest.mark.xfail``.

Every timestamp used is a fixed ISO 8601 UTC string in lockgate's format
(``2026-11-20T10:00:00.000000+00:00``), so ordering by time is deterministic.
"""

from __future__ import annotations

from lockgate.testing._lock_suite import StateStoreLockConformance
from lockgate.testing._state_approval_suite import StateStoreApprovalConformance
from lockgate.testing._state_audit_suite import StateStoreAuditConformance
from lockgate.testing._state_batch_suite import StateStoreBatchConformance
from lockgate.testing._state_builders import at
from lockgate.testing._state_lineage_suite import StateStoreLineageConformance
from lockgate.testing._state_outbox_suite import StateStoreOutboxConformance
from lockgate.testing._state_pointer_suite import StateStorePointerConformance
from lockgate.testing._state_records_suite import StateStoreRecordConformance

__all__ = ["StateStoreConformance", "at"]


class StateStoreConformance(
    StateStoreRecordConformance,
    StateStorePointerConformance,
    StateStoreApprovalConformance,
    StateStoreAuditConformance,
    StateStoreOutboxConformance,
    StateStoreBatchConformance,
    StateStoreLineageConformance,
    StateStoreLockConformance,
):
    """The behaviours every :class:`~lockgate.contracts.state.StateStore` must show, one
    part of the contract per base class (its locks:
    :class:`~lockgate.testing._lock_suite.StateStoreLockConformance`).

    Subclass it as ``class TestMyStore(StateStoreConformance)`` and define a ``store``
    fixture returning a fresh, empty store.
    """
