"""The content store suite passes for the builtin ``local`` store and the memory twin."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockgate.builtin_plugins.local_store import LocalContentStore
from lockgate.contracts.content import ContentStore
from lockgate.testing import ContentStoreConformance, MemoryContentStore
from suite_runner import failed, run_suite


class TestLocalContentStore(ContentStoreConformance):
    @pytest.fixture
    def content_store(self, tmp_path: Path) -> ContentStore:
        return LocalContentStore(tmp_path / "objects", stamps=tmp_path / "stamps")


class TestLocalContentStoreWithoutStamps(ContentStoreConformance):
    @pytest.fixture
    def content_store(self, tmp_path: Path) -> ContentStore:
        return LocalContentStore(tmp_path / "objects", fsync=False)


class TestMemoryContentStore(ContentStoreConformance):
    @pytest.fixture
    def content_store(self) -> ContentStore:
        return MemoryContentStore()


def test_the_suite_fails_a_store_whose_has_lies(tmp_path: Path) -> None:
    outcomes = run_suite(
        tmp_path,
        """
        import pytest
        from lockgate.testing import ContentStoreConformance, MemoryContentStore

        class LyingStore(MemoryContentStore):
            def has(self, digest):
                return True  # claims every object, stored or not

        class TestLying(ContentStoreConformance):
            @pytest.fixture
            def content_store(self):
                return LyingStore()

        class TestControl(ContentStoreConformance):
            @pytest.fixture
            def content_store(self):
                return MemoryContentStore()
        """,
    )
    assert failed(outcomes["TestControl"]) == set()
    assert {
        "test_has_is_false_for_an_object_never_stored",
        "test_an_empty_store_holds_nothing",
        "test_delete_removes_one_object",
    } <= failed(outcomes["TestLying"])
    assert outcomes["TestLying"]["test_stored_bytes_read_back_exactly"] == "passed"
