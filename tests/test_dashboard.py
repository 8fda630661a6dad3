"""The dashboard (``/ui/``) of a real ``lockgate serve`` over real sockets, without a
browser: sign-in and its cookie, the checks every form passes (origin, CSRF, the sign-in
nonce), what each role is shown, and that a refused form changes nothing. The same pages
in a real headless browser: ``tests/test_dashboard_browser.py``."""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlencode

import pytest

from conftest import run_lockgate
from test_server import ENV, Api, make_project, start, stop

EXTRA_TOKENS = {"staging_approver": ("stella", "approver", "staging")}


class Browserless:
    """A client that keeps cookies the way a browser would for one origin."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(
        self,
        method: str,
        path: str,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], str, list[str]]:
        sent = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
            sent.setdefault("Origin", f"http://127.0.0.1:{self.port}")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            text = response.read().decode()
            set_cookies = response.headers.get_all("set-cookie") or []
        finally:
            conn.close()
        for line in set_cookies:
            name, _, rest = line.partition("=")
            value = rest.split(";", 1)[0].strip('"')
            if "max-age=0" in line.lower() or not value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return response.status, dict(response.headers), text, set_cookies

    def sign_in(self, token: str) -> int:
        _, _, page, _ = self.request("GET", "/ui/login")
        nonce = re.search(r'name="nonce" value="([^"]+)"', page)
        assert nonce is not None, page
        status, _, _, _ = self.request(
            "POST", "/ui/login", {"nonce": nonce.group(1), "token": token}
        )
        return status

    def csrf(self) -> str:
        _, _, page, _ = self.request("GET", "/ui/")
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found is not None, page
        return found.group(1)


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("dashboard") / "p"
    tokens = dict(make_project(root))
    for key, (actor, role, stage) in EXTRA_TOKENS.items():
        args = ["token", "create", "--actor", actor, "--role", role, "--stage", stage]
        made = run_lockgate(*args, cwd=root, env=ENV)
        assert made.returncode == 0, made.stderr
        tokens[key] = made.stdout.strip()
    proc, port = start(root, "--auth-failures", "100000")
    api = Api(root, port, tokens)
    for stage in ("staging", "integration"):
        status, body = api.call(
            "POST", "/api/v1/components/alice:etl/promote", role="releaser", body={"to": stage}
        )
        assert status == 200, body
    try:
        yield api
    finally:
        stop(proc)


def approvals(api: Api) -> list[dict[str, object]]:
    return api.events("approve")


def test_every_page_leads_to_sign_in_without_a_session(board: Api) -> None:
    client = Browserless(board.port)
    for path in ("/", "/ui/", "/ui/components/alice:etl"):
        status, headers, _, _ = client.request("GET", path)
        assert status == 303, path
        assert headers["location"].endswith(("/ui/", "/ui/login")), path
    status, _, _, _ = client.request("POST", "/ui/components/alice:etl/approve", {"csrf": "x"})
    assert status == 303


def test_sign_in_sets_an_http_only_strict_cookie_that_is_not_the_token(board: Api) -> None:
    client = Browserless(board.port)
    _, _, page, _ = client.request("GET", "/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', page)
    assert nonce is not None
    status, headers, _, cookies = client.request(
        "POST", "/ui/login", {"nonce": nonce.group(1), "token": board.tokens["viewer"]}
    )
    assert status == 303 and headers["location"] == "/ui/"
    session = next(c for c in cookies if c.startswith("lockgate_session="))
    assert "httponly" in session.lower() and "samesite=strict" in session.lower()
    assert board.tokens["viewer"] not in session
    status, headers, page, _ = client.request("GET", "/ui/")
    assert status == 200
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"
    assert "vic · viewer" in page and "<script" not in page


def test_a_wrong_token_is_refused_on_the_form_and_counted(board: Api) -> None:
    client = Browserless(board.port)
    status = client.sign_in("lg_0123456789ab_" + "x" * 43)
    assert status == 401
    assert "lockgate_session" not in client.cookies


def test_sign_in_without_the_forms_nonce_is_refused(board: Api) -> None:
    client = Browserless(board.port)
    status, _, page, _ = client.request(
        "POST", "/ui/login", {"nonce": "forged", "token": board.tokens["viewer"]}
    )
    assert status == 403 and "stale" in page
    assert "lockgate_session" not in client.cookies


def test_the_viewer_sees_no_approve_button_and_cannot_post_one(board: Api) -> None:
    client = Browserless(board.port)
    assert client.sign_in(board.tokens["viewer"]) == 303
    _, _, page, _ = client.request("GET", "/ui/")
    assert 'data-component="alice:etl"' in page  # pending for production
    assert 'class="approve"' not in page
    before = approvals(board)
    status, _, page, _ = client.request(
        "POST", "/ui/components/alice:etl/approve", {"csrf": client.csrf()}
    )
    assert status == 403 and "approve needs role approver" in page
    assert approvals(board) == before
    assert board.events("server.denied")[-1]["actor"] == "vic"


def test_an_approver_of_another_stage_sees_no_button(board: Api) -> None:
    client = Browserless(board.port)
    assert client.sign_in(board.tokens["staging_approver"]) == 303
    _, _, page, _ = client.request("GET", "/ui/")
    assert 'data-component="alice:etl"' in page and 'class="approve"' not in page


def test_a_form_without_the_sessions_csrf_token_or_from_elsewhere_changes_nothing(
    board: Api,
) -> None:
    client = Browserless(board.port)
    assert client.sign_in(board.tokens["approver"]) == 303
    before = approvals(board)
    status, _, page, _ = client.request("POST", "/ui/components/alice:etl/approve", {})
    assert status == 403 and "CSRF" in page
    status, _, page, _ = client.request(
        "POST",
        "/ui/components/alice:etl/approve",
        {"csrf": client.csrf()},
        headers={"Origin": "http://evil.example"},
    )
    assert status == 403 and "evil.example" in page
    assert approvals(board) == before


def test_the_component_page_shows_where_it_is_live_and_its_history(board: Api) -> None:
    client = Browserless(board.port)
    assert client.sign_in(board.tokens["viewer"]) == 303
    status, _, page, _ = client.request("GET", "/ui/components/alice:etl")
    assert status == 200
    live = page.split('id="live"')[1].split("</table>")[0]
    assert "staging" in live and "integration" in live and "production" not in live
    assert page.count(">promote<") == 2
    status, _, page, _ = client.request("GET", "/ui/components/alice:nothing")
    assert status == 404 and "never been staged" in page


def test_a_revoked_token_ends_its_session_at_the_next_page(board: Api, tmp_path: Path) -> None:
    made = run_lockgate(
        "token", "create", "--actor", "tess", "--role", "viewer", "--json",
        cwd=board.root, env=ENV,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    token = made.stdout.split('"token": "')[1].split('"')[0]
    client = Browserless(board.port)
    assert client.sign_in(token) == 303
    assert client.request("GET", "/ui/")[0] == 200
    token_id = token.split("_")[1]
    assert run_lockgate("token", "revoke", token_id, cwd=board.root, env=ENV).returncode == 0
    status, headers, _, _ = client.request("GET", "/ui/")
    assert status == 303 and headers["location"] == "/ui/login"


def test_sign_out_ends_the_session(board: Api) -> None:
    client = Browserless(board.port)
    assert client.sign_in(board.tokens["viewer"]) == 303
    kept = dict(client.cookies)
    status, _, _, _ = client.request("POST", "/ui/logout", {"csrf": client.csrf()})
    assert status == 303
    client.cookies = kept  # a copy of the old cookie opens nothing any more
    assert client.request("GET", "/ui/")[0] == 303


def test_text_from_the_project_is_escaped(board: Api) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    status, body = board.call(
        "POST", "/api/v1/components/alice:report/promote", role="releaser",
        body={"to": "staging", "reason": hostile},
    )  # fmt: skip
    assert status == 200, body
    client = Browserless(board.port)
    assert client.sign_in(board.tokens["viewer"]) == 303
    for path in ("/ui/", "/ui/components/alice:report"):
        _, _, page, _ = client.request("GET", path)
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img" in page, path
        assert "<script" not in page and "<img" not in page, path


def test_a_form_with_too_many_fields_or_for_an_unknown_component_changes_nothing(
    board: Api,
) -> None:
    client = Browserless(board.port)
    assert client.sign_in(board.tokens["approver"]) == 303
    csrf = client.csrf()
    many = {f"f{n}": "1" for n in range(20)} | {"csrf": csrf}
    status, _, page, _ = client.request("POST", "/ui/components/alice:etl/approve", many)
    assert status == 400 and "more than 16 fields" in page
    before = approvals(board)
    status, _, page, _ = client.request("POST", "/ui/components/alice:nope/approve", {"csrf": csrf})
    assert status == 404 and "never been staged" in page
    assert approvals(board) == before
