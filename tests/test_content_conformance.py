"""The content store suite passes for the builtin ``local`` store and the memory twin."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockgate.builtin_plugins.local_store import LocalContentStore
from lockgate.core.contracts import ContentStore
from lockgate.testing import ContentStoreConformance, MemoryContentStore


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
