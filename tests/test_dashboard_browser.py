"""The dashboard in a real headless browser: Debian's Chromium, driven by Playwright,
against a real ``lockgate serve`` on 127.0.0.1. A promotion made through the API shows
on the overview; the Approve button is absent for a viewer and works for an approver
(the approval is recorded under the approver's token). Screenshots of each page are
saved under the test's temporary directory (the path is printed).

Skips (one line) when ``/usr/bin/chromium`` or the ``playwright`` package is missing;
fails instead when ``LOCKGATE_REQUIRE_SERVICES=1``. Playwright's own browsers are never
used or downloaded.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lockgate.testing import service_missing
from test_server import Api, make_project, start, stop

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        service_missing("Chromium", f"{CHROMIUM} is not installed (apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        service_missing("Playwright", "the playwright package is not installed (dev extra)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("browser") / "p"
    tokens = make_project(root)
    proc, port = start(root, "--auth-failures", "100000")
    try:
        yield Api(root, port, tokens)
    finally:
        stop(proc)


def sign_in(browser: Any, api: Api, role: str) -> Any:
    page = browser.new_context().new_page()
    page.goto(f"http://127.0.0.1:{api.port}/")
    assert page.url.endswith("/ui/login")
    page.fill("#token", api.tokens[role])
    page.click("#sign-in")
    page.wait_for_url(f"http://127.0.0.1:{api.port}/ui/")
    return page


def shot(page: Any, directory: Path, name: str) -> None:
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def test_the_dashboard_shows_a_promotion_and_an_approval_button_to_approvers_only(
    browser: Any, served: Api, tmp_path: Path
) -> None:
    for stage in ("staging", "integration"):
        status, body = served.call(
            "POST", "/api/v1/components/alice:etl/promote", role="releaser", body={"to": stage}
        )
        assert status == 200, body

    viewer = sign_in(browser, served, "viewer")
    staging = viewer.locator("#stage-staging")
    assert "alice:etl" in staging.inner_text()
    assert "nothing live" in viewer.locator("#stage-production").inner_text()
    row = viewer.locator('tr.pending[data-component="alice:etl"]')
    assert "production" in row.inner_text()
    assert row.locator("button.approve").count() == 0
    shot(viewer, tmp_path, "viewer-overview")

    viewer.click("#stage-staging a:text('alice:etl')")
    assert viewer.locator("#component").inner_text() == "alice:etl"
    assert "integration" in viewer.locator("#live").inner_text()
    shot(viewer, tmp_path, "viewer-component")

    approver = sign_in(browser, served, "approver")
    row = approver.locator('tr.pending[data-component="alice:etl"]')
    assert row.locator("button.approve").count() == 1
    shot(approver, tmp_path, "approver-before")
    row.locator("button.approve").click()
    approver.wait_for_selector("#notice")
    assert "alice:etl" in approver.locator("#notice").inner_text()
    assert approver.locator('tr.pending[data-component="alice:etl"]').count() == 0
    shot(approver, tmp_path, "approver-after")

    approved = served.events("approve")
    assert [e["actor"] for e in approved] == ["carol"]
    assert approved[0]["details"]["actor_via"].startswith("token:")
    status, body = served.call(
        "POST", "/api/v1/components/alice:etl/promote", role="releaser", body={"to": "production"}
    )
    assert status == 200, body
    approver.reload()
    assert "alice:etl" in approver.locator("#stage-production").inner_text()
