"""Run a conformance suite in a real ``pytest`` subprocess and report each test's outcome.

Used to show that a suite fails on deliberately broken implementations: the generated
test module subclasses the suite once for each broken implementation and once for a
sound one (the control), so a failure can only come from the breakage. One module holds
every broken implementation of a kind (a module-scoped fixture runs it once): each run
costs a Python start-up and a pass of the suite on the control.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

from conftest import subprocess_env


def run_suite(tmp_path: Path, code: str) -> dict[str, dict[str, str]]:
    """Run the test module ``code``; return class name -> test name -> outcome
    (``passed``, ``failed``, ``error`` or ``skipped``)."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n")
    (tmp_path / "test_generated.py").write_text(textwrap.dedent(code))
    report = tmp_path / "report.xml"
    done = subprocess.run(
        [
            sys.executable, "-m", "pytest", "test_generated.py", "-q", "-c", "pytest.ini",
            "-p", "no:cacheprovider", f"--junitxml={report}", f"--basetemp={tmp_path / 'bt'}",
        ],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert report.exists(), done.stdout + done.stderr
    outcomes: dict[str, dict[str, str]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        cls = case.get("classname", "").rsplit(".", 1)[-1]
        name = case.get("name", "").split("[", 1)[0]
        kinds = {child.tag for child in case}
        outcome = next((k for k in ("failure", "error", "skipped") if k in kinds), "passed")
        outcome = {"failure": "failed"}.get(outcome, outcome)
        # A parametrized test counts as failed when any of its cases failed.
        if outcomes.setdefault(cls, {}).get(name) != "failed":
            outcomes[cls][name] = outcome
    return outcomes


def failed(outcomes: dict[str, str]) -> set[str]:
    """The tests of one class that failed or errored."""
    return {name for name, outcome in outcomes.items() if outcome in ("failed", "error")}
