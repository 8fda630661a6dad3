"""Builtin plugin ``webhook``: a notifier that POSTs each event, signed.

Each event is sent as its CloudEvent (``Content-Type: application/cloudevents+json``)
with the Standard Webhooks headers (``webhook-id``: the event's id, the same on every
retry; ``webhook-timestamp``; ``webhook-signature``, made by the ``standardwebhooks``
library), so a receiver verifies it with any Standard Webhooks library and
de-duplicates by ``webhook-id``. Options (``events.notifiers[].options``):

* ``url`` (required): ``http://`` or ``https://``;
* ``secret_env`` (required): the name of the environment variable holding the signing
  secret (``whsec_`` + base64, as Standard Webhooks defines it). The secret itself is
  never in ``lockgate.yaml``, and never printed, logged, audited or put in an error;
* ``timeout`` (seconds, default 5): the most one request may take (the dispatcher's
  budget may cut it shorter);
* ``allow_hosts``: when given, the only hosts ``url`` may name;
* ``headers``: extra static headers.

One connection is kept alive between the events of a pass (HTTP/1.1), and a receiver
that closed it meanwhile is answered by one more attempt on a new one. Redirects are
never followed (a 3xx is a failed delivery, retried). A 2xx is delivered;
408, 425, 429 and 5xx are retried (honouring ``Retry-After``, in seconds or as a date);
any other status means the receiver refused this message: it goes to the dead letters
at once.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lockgate.plugin import (
    ConfigError,
    DeliveryError,
    Message,
    RoleContext,
    hookimpl,
    notifier_options,
)

if TYPE_CHECKING:
    import http.client

# http.client (with ssl) and email.utils are imported when an event is sent, not when the
# plugin loads: together some 12 ms of every command, which mostly sends nothing.

__all__ = ["WebhookNotifier", "retry_after"]

_RETRIED = {408, 425, 429}
_OPTIONS = {"url", "secret_env", "timeout", "allow_hosts", "headers"}


@hookimpl
def register_notifiers(register: Any) -> None:
    register("webhook", WebhookNotifier.from_context)


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        import email.utils

        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, when.timestamp() - now)


class WebhookNotifier:
    """POST each message to one URL, signed with Standard Webhooks."""

    def __init__(
        self,
        url: str,
        signer: Any,
        *,
        timeout: float = 5.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = urllib.parse.urlsplit(url)
        self._signer = signer
        self.timeout = timeout
        self.headers = dict(headers or {})
        self._open: http.client.HTTPConnection | None = None  # kept alive between events

    def __repr__(self) -> str:  # never the signer (it holds the secret)
        return f"WebhookNotifier({self._where()!r})"

    @classmethod
    def from_context(cls, ctx: RoleContext) -> WebhookNotifier:
        where, options = notifier_options(
            ctx.options,
            "webhook",
            _OPTIONS,
            "the secret itself goes in the environment variable secret_env names",
        )
        url = options.get("url")
        parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{where}.url: give an http:// or https:// URL (got {url!r})")
        allow = options.get("allow_hosts")
        if allow is not None and parts.hostname not in list(allow):
            raise ConfigError(
                f"{where}.url: host {parts.hostname!r} is not in allow_hosts; add it there or "
                "send to an allowed host"
            )
        timeout = options.get("timeout", 5.0)
        if not isinstance(timeout, int | float) or not 0 < timeout <= 300:
            raise ConfigError(f"{where}.timeout: give seconds between 0 and 300 (got {timeout!r})")
        return cls(
            parts.geturl(),
            _signer(where, options.get("secret_env"), ctx.environ),
            timeout=float(timeout),
            headers={str(k): str(v) for k, v in dict(options.get("headers") or {}).items()},
        )

    def deliver(self, message: Message, timeout: float) -> None:
        import http.client

        now = time.time()
        headers = {
            **self.headers,
            "Content-Type": "application/cloudevents+json",
            "User-Agent": "lockgate-webhook",
            "webhook-id": message.id,
            "webhook-timestamp": str(int(now)),
            "webhook-signature": self._signer.sign(
                message.id, dt.datetime.fromtimestamp(int(now), dt.timezone.utc), message.body
            ),
        }
        timeout = min(self.timeout, timeout)
        reused = self._open is not None
        try:
            response = self._post(message.body, headers, timeout)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
            self._close()
            if not reused:  # a kept-alive connection the receiver closed: once more, afresh
                raise DeliveryError(f"POST {self._where()}: {type(exc).__name__}: {exc}") from exc
            try:
                response = self._post(message.body, headers, timeout)
            except (OSError, http.client.HTTPException) as again:
                self._close()
                raise DeliveryError(
                    f"POST {self._where()}: {type(again).__name__}: {again}"
                ) from again
        except (OSError, http.client.HTTPException) as exc:
            self._close()
            raise DeliveryError(f"POST {self._where()}: {type(exc).__name__}: {exc}") from exc
        self._check(response)

    def _post(
        self, body: bytes, headers: dict[str, str], timeout: float
    ) -> http.client.HTTPResponse:
        """POST on the kept-alive connection (opened when there is none); it stays open
        only when the receiver keeps it and the answer was read whole."""
        connection = self._open or self._connection(timeout)
        self._open = connection
        connection.timeout = timeout
        sock = connection.sock
        if sock is None:
            connection.connect()
            sock = connection.sock
            # http.client writes the headers and the body apart: without this, Nagle's
            # algorithm may hold the body back until the headers are acknowledged (a
            # delayed acknowledgement then costs up to 40 ms on a real network).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(timeout)
        connection.request("POST", self._path(), body=body, headers=headers)
        response = connection.getresponse()
        response.read(65536)
        if response.will_close or not response.isclosed():
            self._close()
        return response

    def _close(self) -> None:
        connection, self._open = self._open, None
        if connection is not None:
            connection.close()

    def _check(self, response: http.client.HTTPResponse) -> None:
        status = response.status
        if 200 <= status < 300:
            return
        said = f"POST {self._where()}: HTTP {status}"
        if 300 <= status < 400:
            raise DeliveryError(f"{said} (a redirect; redirects are not followed: fix the url)")
        wait = retry_after(response.getheader("Retry-After"), time.time())
        if status in _RETRIED or status >= 500:
            raise DeliveryError(said, retry_after=wait)
        raise DeliveryError(f"{said}: the receiver refused this event", permanent=True)

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        import http.client

        host, port = self.url.hostname or "", self.url.port
        if self.url.scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=timeout)
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def _path(self) -> str:
        path = self.url.path or "/"
        return f"{path}?{self.url.query}" if self.url.query else path

    def _where(self) -> str:
        port = f":{self.url.port}" if self.url.port else ""  # never the URL's userinfo
        return f"{self.url.scheme}://{self.url.hostname}{port}{self.url.path}"

    def close(self) -> None:
        self._close()


def _signer(where: str, variable: object, environ: Mapping[str, str]) -> Any:
    """The Standard Webhooks signer of the secret in ``environ[variable]``; errors name
    the variable, never its value."""
    if not isinstance(variable, str) or not variable:
        raise ConfigError(
            f"{where}.secret_env: name the environment variable that holds the signing "
            "secret (whsec_...)"
        )
    value = environ.get(variable, "")
    if not value:
        raise ConfigError(
            f"{where}.secret_env: the environment variable {variable} is not set; set it to "
            "the signing secret (whsec_ followed by base64)"
        )
    try:
        from standardwebhooks import Webhook
    except ImportError as exc:  # a dependency of lockgate: only a broken install lacks it
        raise ConfigError(
            f"{where}: the webhook notifier needs the standardwebhooks package; "
            "pip install standardwebhooks"
        ) from exc
    try:
        return Webhook(value)
    except Exception:
        raise ConfigError(  # from None: the cause could show the secret
            f"{where}.secret_env: {variable} does not hold a valid secret (whsec_ followed "
            "by base64)"
        ) from None
