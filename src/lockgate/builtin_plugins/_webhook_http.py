"""The webhook notifier's HTTP/1.1 client: one POST at a time on a kept-alive
connection, every read bounded, and the Standard Webhooks signature.

Why not ``http.client``: it imports ``ssl`` and the ``email`` package (about 11 ms of a
command's start, to send an event or two). This reads an answer itself, and for an
``http://`` URL talks to the C ``_socket`` module directly: ``socket`` itself would add
some 2-3 ms of building its enums, for nothing a POST needs (``socket`` and ``ssl`` are
imported for an ``https://`` URL only):

* the status line and headers together at most :data:`MAX_HEAD` bytes and
  :data:`MAX_HEADERS` lines; interim ``1xx`` answers are skipped (at most
  :data:`MAX_INTERIM`);
* the body by ``Content-Length``, ``chunked`` or the connection's close, read and
  discarded up to :data:`MAX_BODY` bytes; a longer body is not read: the connection is
  closed instead (the status already said what there is to know);
* everything within one deadline per request (a receiver trickling bytes cannot stretch
  it); a malformed answer is :class:`ProtocolError`, the receiver closing the connection
  before any byte of an answer :class:`Closed`, a deadline passed ``TimeoutError``.

The connection is kept when the receiver keeps it (HTTP/1.1 without ``Connection:
close``, or HTTP/1.0 with ``keep-alive``), the answer was read whole and nothing came
after it.
"""

from __future__ import annotations

import _socket
import binascii
import hashlib
import hmac
import time
from typing import Any

__all__ = ["Closed", "Connection", "ProtocolError", "Response", "Signer"]

MAX_HEAD = 65536
"""Bytes of an answer's status line and headers (each interim answer's too)."""
MAX_HEADERS = 100
"""Header lines of an answer."""
MAX_BODY = 65536
"""Body bytes read and discarded; a longer body closes the connection."""
MAX_INTERIM = 8
"""Interim (1xx) answers skipped before the final one."""
_LINE = 1024  # a chunk-size line
_READ = 16384


class ProtocolError(Exception):
    """The receiver's answer is not HTTP/1.x as this client reads it."""


class Closed(ConnectionError):
    """The receiver closed the connection before any byte of an answer (a kept-alive
    connection it closed meanwhile: the request may be sent again on a new one)."""


class Response:
    """A final answer: its status, headers (names in lower case) and whether the
    connection stays open for the next request."""

    def __init__(self, status: int, headers: dict[str, str], keep: bool) -> None:
        self.status, self.headers, self.keep = status, headers, keep

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class Signer:
    """Standard Webhooks signatures (``v1,`` + base64 of the HMAC-SHA256 of
    ``{id}.{timestamp}.{body}``) with the secret ``whsec_`` + base64. Its repr never
    shows the key."""

    __slots__ = ("_key",)

    def __init__(self, secret: str) -> None:
        encoded = secret[len("whsec_") :] if secret.startswith("whsec_") else secret
        # as the reference library reads it: padding added, characters outside base64 skipped
        key = binascii.a2b_base64((encoded + "==").encode("ascii"))
        if not key:
            raise ValueError("empty secret")
        self._key = key

    def __repr__(self) -> str:
        return "Signer(...)"

    def sign(self, msg_id: str, timestamp: int, body: bytes) -> str:
        signed = f"{msg_id}.{timestamp}.".encode() + body
        digest = hmac.digest(self._key, signed, hashlib.sha256)
        return "v1," + binascii.b2a_base64(digest, newline=False).decode("ascii")


class Connection:
    """One HTTP/1.1 connection to ``scheme://host:port``, opened when a request needs
    it and kept while the receiver keeps it."""

    def __init__(self, scheme: str, host: str, port: int | None) -> None:
        self.scheme, self.host = scheme, host
        self.port = port or (443 if scheme == "https" else 80)
        name = f"[{host}]" if ":" in host else host
        self.authority = name if port is None else f"{name}:{port}"
        self.sock: Any = None
        self._buffer = bytearray()
        self._tls: Any = None  # the ssl context, made once

    @property
    def open(self) -> bool:
        return self.sock is not None

    def close(self) -> None:
        sock, self.sock = self.sock, None
        self._buffer.clear()
        if sock is not None:
            sock.close()

    def post(
        self, target: str, headers: list[tuple[str, str]], body: bytes, timeout: float
    ) -> Response:
        """POST ``body`` to ``target`` and read the answer, all within ``timeout``
        seconds; the connection is closed unless the receiver keeps it."""
        deadline = time.monotonic() + timeout
        if self.sock is None:
            self._connect(timeout)
        lines = [f"POST {target} HTTP/1.1"]
        if not any(name.lower() == "host" for name, _ in headers):
            lines.append(f"Host: {self.authority}")
        lines += [f"{name}: {value}" for name, value in headers]
        lines += [f"Content-Length: {len(body)}", "Accept-Encoding: identity", "", ""]
        self._remaining(deadline)
        # one write: headers and body in the same segment when they fit
        self.sock.sendall("\r\n".join(lines).encode("latin-1") + body)
        try:
            response = self._answer(deadline)
        except BaseException:
            self.close()
            raise
        if not response.keep:
            self.close()
        return response

    # ------------------------------------------------------------------ internals

    def _connect(self, timeout: float) -> None:
        # the host as bytes: getaddrinfo encodes a str with the idna codec (1.4 ms to import)
        host = self.host.encode("ascii") if self.host.isascii() else self.host.encode("idna")
        if self.scheme != "https":
            self.sock = _open(host, self.port, timeout)
            return
        import socket
        import ssl

        sock = socket.create_connection((host, self.port), timeout)  # type: ignore[arg-type]
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is None:
                self._tls = ssl.create_default_context()
            self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise

    def _remaining(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        self.sock.settimeout(left)

    def _fill(self, deadline: float) -> bool:
        """Read more of the answer into the buffer; False at the end of the stream."""
        self._remaining(deadline)
        data = self.sock.recv(_READ)
        self._buffer += data
        return bool(data)

    def _answer(self, deadline: float) -> Response:
        for _ in range(MAX_INTERIM + 1):
            version, status, headers = self._head(deadline)
            if status >= 200:
                keep = self._body(version, status, headers, deadline)
                # bytes after the answer were not asked for: never read them as the next one
                return Response(status, headers, keep and not self._buffer)
            if status == 101:
                raise ProtocolError("the receiver switched protocols (101)")
        raise ProtocolError(f"more than {MAX_INTERIM} interim (1xx) answers")

    def _head(self, deadline: float) -> tuple[str, int, dict[str, str]]:
        first = not self._buffer
        while True:
            end, skip = _blank_line(self._buffer)
            if end >= 0:
                break
            if len(self._buffer) > MAX_HEAD:
                raise ProtocolError(f"the answer's headers exceed {MAX_HEAD} bytes")
            if not self._fill(deadline):
                if first and not self._buffer:
                    raise Closed("the receiver closed the connection without answering")
                raise ProtocolError("the connection closed within the answer's headers")
        if end > MAX_HEAD:
            raise ProtocolError(f"the answer's headers exceed {MAX_HEAD} bytes")
        head = bytes(self._buffer[:end]).decode("latin-1")
        del self._buffer[: end + skip]
        lines = [line.rstrip("\r") for line in head.split("\n")]
        parts = lines[0].split(" ", 2)
        if (
            len(parts) < 2
            or parts[0] not in ("HTTP/1.1", "HTTP/1.0")
            or not (len(parts[1]) == 3 and parts[1].isdigit() and parts[1][0] in "12345")
        ):
            raise ProtocolError(f"not an HTTP/1.x answer: {lines[0][:60]!r}")
        if len(lines) - 1 > MAX_HEADERS:
            raise ProtocolError(f"the answer has more than {MAX_HEADERS} headers")
        headers: dict[str, str] = {}
        name = ""
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and name:  # obsolete folding: part of the last one
                headers[name] += " " + line.strip()
                continue
            name, colon, value = line.partition(":")
            name = name.strip().lower()
            if not colon or not name or " " in name:
                raise ProtocolError(f"a malformed header line in the answer: {line[:60]!r}")
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return parts[0], int(parts[1]), headers

    def _body(self, version: str, status: int, headers: dict[str, str], deadline: float) -> bool:
        """Read and discard the body; whether the connection may be used again."""
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        keep = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
        if status in (204, 304):
            return keep
        coding = headers.get("transfer-encoding")
        if coding is not None:
            if coding.split(",")[-1].strip().lower() != "chunked":
                self._until_close(deadline)
                return False
            return self._chunked(deadline) and keep
        length = headers.get("content-length")
        if length is None:
            self._until_close(deadline)
            return False
        values = {v.strip() for v in length.split(",")}
        if len(values) != 1 or not next(iter(values)).isdigit():
            raise ProtocolError(f"an invalid Content-Length in the answer: {length[:40]!r}")
        size = int(next(iter(values)))
        if size > MAX_BODY:
            return False  # not read: the connection closes
        self._take(size, deadline)
        return keep

    def _take(self, size: int, deadline: float) -> None:
        while len(self._buffer) < size:
            if not self._fill(deadline):
                raise ProtocolError("the connection closed within the answer's body")
        del self._buffer[:size]

    def _until_close(self, deadline: float) -> None:
        while len(self._buffer) <= MAX_BODY and self._fill(deadline):
            pass

    def _line(self, deadline: float) -> bytes:
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > _LINE:
                raise ProtocolError("a chunk line of the answer is too long")
            if not self._fill(deadline):
                raise ProtocolError("the connection closed within the answer's body")
        if end > _LINE:
            raise ProtocolError("a chunk line of the answer is too long")
        line = bytes(self._buffer[:end]).rstrip(b"\r")
        del self._buffer[: end + 1]
        return line

    def _chunked(self, deadline: float) -> bool:
        """Read a chunked body; False when it was longer than ``MAX_BODY`` (left unread)."""
        total = 0
        while True:
            size_text = self._line(deadline).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError(
                    f"an invalid chunk size in the answer: {size_text[:20]!r}"
                ) from None
            if size < 0:
                raise ProtocolError("an invalid chunk size in the answer")
            if size == 0:
                break
            total += size
            if total > MAX_BODY:
                return False
            self._take(size, deadline)
            if self._line(deadline):
                raise ProtocolError("a chunk of the answer is longer than its size")
        for _ in range(MAX_HEADERS + 1):  # trailers, up to the blank line
            if not self._line(deadline):
                return True
        raise ProtocolError(f"the answer has more than {MAX_HEADERS} trailers")


def _open(host: bytes, port: int, timeout: float) -> _socket.socket:
    """A TCP connection to the first address of ``host`` that answers (as
    ``socket.create_connection``), with ``TCP_NODELAY``: a request is written in one
    piece, and nothing should wait for an acknowledgement."""
    failed: OSError | None = None
    for family, kind, proto, _, address in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            failed = exc
    raise failed or OSError(f"no address for {host.decode()!r}")


def _blank_line(buffer: bytearray) -> tuple[int, int]:
    """Where the header block in ``buffer`` ends (the newline before its blank line) and
    the length of that newline and the blank line; (-1, 0) when it has not ended yet."""
    ends = [
        (at, n) for at, n in ((buffer.find(b"\n\r\n"), 3), (buffer.find(b"\n\n"), 2)) if at >= 0
    ]
    return min(ends) if ends else (-1, 0)
