"""The server against its own OpenAPI document, fuzzed with schemathesis (a bounded run):
no answer is a 5xx, every answer's status is documented and its body matches the schema.

The server is a real ``lockgate serve`` on 127.0.0.1, called with an admin token, so the
operations run too (on a throwaway project) and their refusals are checked as answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from test_server import make_project, start, stop


@schemathesis.serializer("application/x-tar", "application/gzip")
def _archive(ctx: Any, value: Any) -> bytes:
    """Uploads are sent as the bytes generated (never a valid archive: refused as such)."""
    return value if isinstance(value, bytes) else str(value).encode()


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    root: Path = tmp_path_factory.mktemp("fuzz") / "p"
    tokens = make_project(root)
    proc, port = start(root, "--auth-failures", "100000", "--max-body", "100000")
    try:
        yield f"http://127.0.0.1:{port}", tokens["admin"]
    finally:
        stop(proc)


def test_no_5xx_and_every_answer_matches_the_document(server: tuple[str, str]) -> None:
    url, token = server
    api = schemathesis.openapi.from_url(f"{url}/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    operations = [result.ok() for result in api.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=8,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Any) -> None:
            case.call_and_validate(base_url=url, headers=headers, checks=CHECKS)

        fuzz()
