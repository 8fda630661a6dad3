"""The webhook notifier's own HTTP/1.1 client against a raw-socket server on 127.0.0.1.

Each test scripts what the server writes back, byte for byte: well-formed answers
(``Content-Length``, ``chunked``, read to the close, interim ``1xx``, keep-alive and
not), and hostile or broken ones (garbage, endless headers, a body cut short, no answer
at all, an answer trickled a byte at a time). Every one ends as a delivery or as one
clear :class:`DeliveryError`, never a hang: the requests here have short timeouts, and a
test that hung would fail on pytest's own limits. Signatures are checked with the
reference library's ``Webhook.verify``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from standardwebhooks import Webhook

from lockgate.builtin_plugins._webhook_http import MAX_BODY, MAX_HEAD, Signer
from lockgate.builtin_plugins.webhook_notifier import WebhookNotifier, retry_after
from lockgate.plugin import DeliveryError, Message

SECRET = "whsec_" + base64.b64encode(b"client-test-signing-key-0123456789").decode()

Script = Callable[[socket.socket, bytes, int], bool]
"""Answers one request (its raw bytes; the connection's request count); False closes
the connection."""


class RawServer:
    """A TCP server that reads each request whole (headers and ``Content-Length`` body)
    and lets ``script`` write whatever it likes back; it records the requests and counts
    connections."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook?team=data"

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        buffer, n = b"", 0
        with conn:
            try:
                while not self.stopping.is_set():
                    while b"\r\n\r\n" not in buffer:
                        data = conn.recv(65536)
                        if not data:
                            return
                        buffer += data
                    head, _, rest = buffer.partition(b"\r\n\r\n")
                    length = next(
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    )
                    while len(rest) < length:
                        data = conn.recv(65536)
                        if not data:
                            return
                        rest += data
                    request, buffer = head + b"\r\n\r\n" + rest[:length], rest[length:]
                    self.requests.append(request)
                    n += 1
                    if not self.script(conn, request, n):
                        return
            except OSError:
                return

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)  # accept() gives up within 0.2 s
        self.listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Script], RawServer]]:
    servers: list[RawServer] = []

    def start(script: Script) -> RawServer:
        servers.append(RawServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def answer(data: bytes, keep: bool = True) -> Script:
    def script(conn: socket.socket, request: bytes, n: int) -> bool:
        conn.sendall(data)
        return keep

    return script


def message(seq: int = 7) -> Message:
    cloud = {"specversion": "1.0", "id": f"{seq}-abc", "type": "dev.lockgate.component.promoted"}
    body = json.dumps(cloud, separators=(",", ":")).encode()
    return Message(f"{seq}-abc", str(cloud["type"]), seq, "alice:etl", "prod", cloud, body)


OPENED: list[WebhookNotifier] = []


@pytest.fixture(autouse=True)
def _close_notifiers() -> Iterator[None]:
    yield
    while OPENED:
        OPENED.pop().close()


def webhook(url: str, timeout: float = 5.0) -> WebhookNotifier:
    OPENED.append(WebhookNotifier(url, Signer(SECRET), timeout=timeout, headers={"X-Team": "data"}))
    return OPENED[-1]


def notifier(server: RawServer, timeout: float = 5.0) -> WebhookNotifier:
    return webhook(server.url, timeout)


def failure(hook: WebhookNotifier, timeout: float = 5.0) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        hook.deliver(message(), timeout)
    return caught.value


NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


def test_a_request_is_signed_as_the_reference_library_verifies(
    serve: Callable[[Script], RawServer],
) -> None:
    server = serve(answer(NO_CONTENT))
    notifier(server).deliver(message(), 5)
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "POST /hook?team=data HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers["Host"] == server.url.split("/")[2]
    assert headers["Content-Type"] == "application/cloudevents+json"
    assert headers["X-Team"] == "data"
    assert headers["webhook-id"] == "7-abc"
    assert int(headers["Content-Length"]) == len(body) == len(message().body)
    assert Webhook(SECRET).verify(body, headers) == message().cloud
    assert SECRET not in server.requests[0].decode("latin-1")


@pytest.mark.parametrize(
    "secret",
    [SECRET, SECRET.removeprefix("whsec_"), SECRET.rstrip("="), "whsec_" + "A" * 43],
)
def test_signatures_are_the_reference_librarys(secret: str) -> None:
    ours, theirs = Signer(secret), Webhook(secret)
    for msg_id, body in (("1-a", b"{}"), ("99-f00", "caf\u00e9 \u2713".encode()), ("x", b"")):
        when = 1_764_000_000 + len(body)
        stamp = dt.datetime.fromtimestamp(when, dt.timezone.utc)
        assert ours.sign(msg_id, when, body) == theirs.sign(msg_id, stamp, body)
    assert "whsec" not in repr(ours) and secret not in repr(ours)


def test_a_kept_alive_connection_carries_the_next_event(
    serve: Callable[[Script], RawServer],
) -> None:
    server = serve(answer(NO_CONTENT))
    hook = notifier(server)
    for _ in range(3):
        hook.deliver(message(), 5)
    assert (server.connections, len(server.requests)) == (1, 3)


@pytest.mark.parametrize(
    ("data", "kept"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\n\r\n", True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX: 1\r\n\r\n",
         True),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n", True),
        (b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", True),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (MAX_BODY + 1, b"x" * (MAX_BODY + 1)),
         False),
        (NO_CONTENT + b"HTTP/1.1 200 OK\r\n", False),
    ],
    ids=["length", "chunked", "trailers", "interim", "bare-lf", "close", "http1.0",
         "http1.0-keep-alive", "long-body", "bytes-after"],
)  # fmt: skip
def test_well_formed_answers_are_read_and_the_connection_kept_when_it_may_be(
    serve: Callable[[Script], RawServer], data: bytes, kept: bool
) -> None:
    server = serve(answer(data))
    hook = notifier(server)
    hook.deliver(message(), 5)
    hook.deliver(message(8), 5)
    assert server.connections == (1 if kept else 2)


def test_a_body_read_to_the_close_is_delivered(serve: Callable[[Script], RawServer]) -> None:
    server = serve(answer(b"HTTP/1.1 200 OK\r\n\r\nthe whole body", keep=False))
    notifier(server).deliver(message(), 5)


def test_a_kept_alive_connection_the_receiver_closed_is_sent_again_afresh(
    serve: Callable[[Script], RawServer],
) -> None:
    def once_per_connection(conn: socket.socket, request: bytes, n: int) -> bool:
        if n == 1:
            conn.sendall(NO_CONTENT)  # says it keeps the connection...
            return True
        return False  # ...but closes it at the next request, without an answer

    server = serve(once_per_connection)
    hook = notifier(server)
    hook.deliver(message(), 5)
    hook.deliver(message(8), 5)
    assert server.connections == 2
    assert [r.count(b"webhook-id: 8-abc") for r in server.requests] == [0, 1, 1]


def test_a_fresh_connection_closed_without_an_answer_is_a_failure(
    serve: Callable[[Script], RawServer],
) -> None:
    server = serve(lambda conn, request, n: False)
    error = failure(notifier(server))
    assert "Closed" in error.message and "without answering" in error.message
    assert len(server.requests) == 1  # not sent again on a connection that was new


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not an HTTP/1.x answer"),
        (b"\x00\xff\x13garbage\r\n\r\n", "not an HTTP/1.x answer"),
        (b"HTTP/1.1 20 OK\r\n\r\n", "not an HTTP/1.x answer"),
        (b"HTTP/2 200\r\n\r\n", "not an HTTP/1.x answer"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", "more than 100 headers"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
         "longer than its size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 2000, "too long"),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "switched protocols"),
        (b"HTTP/1.1 100 Continue\r\n\r\n" * 9, "interim"),
    ],
    ids=["ssh", "binary", "short-status", "http2", "no-colon", "many-headers", "length-text",
         "length-twice", "chunk-size", "chunk-overrun", "chunk-line", "101", "endless-1xx"],
)  # fmt: skip
def test_a_malformed_answer_is_one_clear_failure(
    serve: Callable[[Script], RawServer], data: bytes, said: str
) -> None:
    server = serve(answer(data))
    hook = notifier(server)
    error = failure(hook)
    assert said in error.message and "ProtocolError" in error.message, error.message
    assert error.message.startswith(f"POST http://{server.url.split('/')[2]}/hook: ")
    assert not error.permanent
    assert not hook._connection.open  # a broken connection is never reused


def test_endless_headers_stop_at_the_limit(serve: Callable[[Script], RawServer]) -> None:
    def endless(conn: socket.socket, request: bytes, n: int) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        try:
            for _ in range(4 * MAX_HEAD // 1024):  # far more than the client reads
                conn.sendall(b"X-Pad: " + b"a" * 1015 + b"\r\n")
        except OSError:
            pass  # the client closed: it stopped reading
        return False

    error = failure(notifier(serve(endless)))
    assert f"exceed {MAX_HEAD} bytes" in error.message


def test_a_body_cut_short_is_a_failure(serve: Callable[[Script], RawServer]) -> None:
    server = serve(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", keep=False))
    assert "closed within the answer's body" in failure(notifier(server)).message


def test_headers_cut_short_are_a_failure(serve: Callable[[Script], RawServer]) -> None:
    server = serve(answer(b"HTTP/1.1 200 OK\r\nContent-Le", keep=False))
    assert "closed within the answer's headers" in failure(notifier(server)).message


def test_a_receiver_that_never_answers_costs_the_timeout(
    serve: Callable[[Script], RawServer],
) -> None:
    release = threading.Event()

    def silent(conn: socket.socket, request: bytes, n: int) -> bool:
        release.wait(10)
        return False

    server = serve(silent)
    error = failure(notifier(server, timeout=5.0), timeout=0.3)  # the pass's budget cuts it
    release.set()
    assert "TimeoutError" in error.message and not error.permanent


def test_an_answer_trickled_a_byte_at_a_time_is_cut_at_the_deadline(
    serve: Callable[[Script], RawServer],
) -> None:
    """Each byte comes well within the timeout; the whole answer never does."""
    release = threading.Event()

    def trickle(conn: socket.socket, request: bytes, n: int) -> bool:
        try:
            for byte in b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"z" * 10_000:
                conn.sendall(bytes([byte]))
                if release.wait(0.02):
                    break
        except OSError:
            pass
        return False

    server = serve(trickle)
    error = failure(notifier(server, timeout=0.3))
    release.set()
    assert "TimeoutError" in error.message


def test_statuses_redirects_and_retry_after(serve: Callable[[Script], RawServer]) -> None:
    answers = iter(
        [
            b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere/\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 429 Slow\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n",
        ]
    )

    def in_turn(conn: socket.socket, request: bytes, n: int) -> bool:
        conn.sendall(next(answers))
        return True

    server = serve(in_turn)
    hook = notifier(server)
    moved = failure(hook)
    assert "redirects are not followed" in moved.message and not moved.permanent
    assert failure(hook).retry_after == 7
    assert failure(hook).retry_after is None
    assert failure(hook).permanent
    assert len(server.requests) == 4  # the redirect was not followed
    when = time.time() + 30
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(when))
    assert 28 <= (retry_after(date, time.time()) or 0) <= 31
    assert retry_after("soon", time.time()) is None


def test_https_speaks_tls_and_never_sends_in_the_clear() -> None:
    """An https:// URL speaks TLS: a server answering plain HTTP is a failure (the
    handshake's), never a delivery, and the request is not sent."""
    listener = socket.create_server(("127.0.0.1", 0))
    got: list[bytes] = []

    def plain() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(5)
            got.append(conn.recv(65536))
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=plain, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{listener.getsockname()[1]}/hook"
    try:
        error = failure(webhook(url))
    finally:
        thread.join(5)
        listener.close()
    assert "SSL" in error.message, error.message
    assert got and b"webhook" not in got[0] and got[0][:1] == b"\x16"  # a TLS handshake record


def test_a_receiver_that_is_down_is_a_failure() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    hook = webhook(f"http://127.0.0.1:{port}/", timeout=2)
    assert "ConnectionRefusedError" in failure(hook).message
