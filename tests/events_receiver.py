"""A real local webhook receiver for the events tests and the crash script.

A stdlib ``ThreadingHTTPServer`` on 127.0.0.1 that verifies every request with the
``standardwebhooks`` library's own verifier and records what it received. What it
answers is scripted: ``plan`` maps a request to ``(status, headers, delay)``; the
default is 204.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook

SECRET = "whsec_" + base64.b64encode(b"lockgate-test-signing-key-0123456789").decode()

Answer = tuple[int, dict[str, str], float]


class _QuietServer(ThreadingHTTPServer):
    """A client killed with a connection kept alive resets it: not the receiver's error."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Receiver:
    """The server, what it received (``received``: verified CloudEvents with their
    ``webhook-id``), how many requests it refused (``bad_signatures``)."""

    def __init__(self, secret: str = SECRET) -> None:
        self.verifier = Webhook(secret)
        self.received: list[dict[str, Any]] = []
        self.requests = 0
        self.bad_signatures = 0
        self.plan: Callable[[dict[str, Any], int], Answer] = lambda event, n: (204, {}, 0.0)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keeps connections alive, as most receivers do

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if len(body) < length:  # the sender was killed mid-request: nothing came
                    self.close_connection = True
                    return
                headers = dict(self.headers.items())
                try:
                    event = receiver.verifier.verify(body, headers)
                except Exception:
                    with receiver.lock:
                        receiver.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.requests += 1
                    n = receiver.requests
                status, extra, delay = receiver.plan(event, n)
                if delay:
                    time.sleep(delay)
                if 200 <= status < 300:
                    with receiver.lock:
                        receiver.received.append({**event, "webhook-id": headers.get("webhook-id")})
                self.send_response(status)
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # shutdown() waits for the loop's next poll: 0.5 s by default, on every test's exit.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def types(self) -> list[str]:
        with self.lock:
            return [e["type"] for e in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":  # a receiver on its own: prints each event's id and type
    import sys

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    r = Receiver()
    print(json.dumps({"url": r.url}), flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        r.close()
