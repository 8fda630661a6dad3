"""Events survive SIGKILL: a short crash run of tests/events_crash.py (the long run, 300
kills and more, is the script itself; figures in docs/events.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from events_crash import run


@pytest.mark.slow
def test_events_survive_kills_of_promotions_and_of_the_dispatcher(tmp_path: Path) -> None:
    figures = run(12, 7, tmp_path / "p")
    assert figures["killed"]["operator"] == 12
    assert figures["killed"].get("dispatcher", 0) >= 1
    assert figures["pointer_moves"] >= 1  # operations did happen between the kills
    assert figures["receipts"] >= figures["events"]
    assert figures["bad_signatures"] == 0
