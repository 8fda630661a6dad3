"""Builtin plugin ``webhook``: a notifier that POSTs each event, signed.

Each event is sent as its CloudEvent (``Content-Type: application/cloudevents+json``)
with the Standard Webhooks headers (``webhook-id``: the event's id, the same on every
retry; ``webhook-timestamp``; ``webhook-signature``: ``v1,`` and the base64 HMAC-SHA256
of ``{id}.{timestamp}.{body}``, as the specification defines it; the tests verify it with
the reference library, ``standardwebhooks``), so a receiver verifies it with any Standard
Webhooks library and de-duplicates by ``webhook-id``. Options (``events.notifiers[].options``):

* ``url`` (required): ``http://`` or ``https://``;
* ``secret_env`` (required): the name of the environment variable holding the signing
  secret (``whsec_`` + base64, as Standard Webhooks defines it). The secret itself is
  never in ``lockgate.yaml``, and never printed, logged, audited or put in an error;
* ``timeout`` (seconds, default 5): the most one request may take (the dispatcher's
  budget may cut it shorter);
* ``allow_hosts``: when given, the only hosts ``url`` may name;
* ``headers``: extra static headers.

One connection is kept alive between the events of a pass (HTTP/1.1), and a receiver
that closed it meanwhile is answered by one more attempt on a new one, within the same
timeout. The client is :mod:`lockgate.builtin_plugins._webhook_http` (every read of an
answer bounded in size and time). Redirects are
never followed (a 3xx is a failed delivery, retried). A 2xx is delivered;
408, 425, 429 and 5xx are retried (honouring ``Retry-After``, in seconds or as a date);
any other status means the receiver refused this message: it goes to the dead letters
at once.
"""

from __future__ import annotations

import datetime as dt
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from lockgate.builtin_plugins._webhook_http import Closed, Connection, ProtocolError, Signer
from lockgate.plugin import (
    ConfigError,
    DeliveryError,
    Message,
    RoleContext,
    hookimpl,
    notifier_options,
)

# The HTTP client is lockgate's own (_webhook_http: socket, and ssl only for https://),
# not http.client, which imports ssl and the email package: some 11 ms of a command that
# sends an event or two. email.utils is imported only to read a Retry-After date.

__all__ = ["WebhookNotifier", "retry_after"]

_RETRIED = {408, 425, 429}
_OPTIONS = {"url", "secret_env", "timeout", "allow_hosts", "headers"}
_OWN_HEADERS = {"content-length", "transfer-encoding", "connection", "accept-encoding"}
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


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
        signer: Signer,
        *,
        timeout: float = 5.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = urllib.parse.urlsplit(url)
        self._signer = signer
        self.timeout = timeout
        self.headers = dict(headers or {})
        # kept alive between events
        self._connection = Connection(self.url.scheme, self.url.hostname or "", self.url.port)

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
        assert isinstance(url, str)
        if any(c in url for c in "\r\n\t ") or not url.isascii():
            raise ConfigError(
                f"{where}.url: give the URL without spaces or control characters, in ASCII "
                "(percent-encode the path; an international host name in its xn-- form)"
            )
        try:
            parts.port  # noqa: B018 -- raises on a port that is not a number
        except ValueError:
            raise ConfigError(
                f"{where}.url: give a port between 0 and 65535 (got {url!r})"
            ) from None
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
            headers=_headers(where, options.get("headers")),
        )

    def deliver(self, message: Message, timeout: float) -> None:
        now = int(time.time())
        headers = {
            **self.headers,
            "Content-Type": "application/cloudevents+json",
            "User-Agent": "lockgate-webhook",
            "webhook-id": message.id,
            "webhook-timestamp": str(now),
            "webhook-signature": self._signer.sign(message.id, now, message.body),
        }
        fields = list(headers.items())
        deadline = time.monotonic() + min(self.timeout, timeout)
        connection = self._connection
        reused = connection.open
        try:
            response = connection.post(self._path(), fields, message.body, self._left(deadline))
        except (Closed, BrokenPipeError, ConnectionResetError) as exc:
            connection.close()
            if not reused:  # a kept-alive connection the receiver closed: once more, afresh
                raise DeliveryError(f"POST {self._where()}: {type(exc).__name__}: {exc}") from exc
            try:
                response = connection.post(self._path(), fields, message.body, self._left(deadline))
            except (OSError, ProtocolError) as again:
                connection.close()
                raise DeliveryError(
                    f"POST {self._where()}: {type(again).__name__}: {again}"
                ) from again
        except (OSError, ProtocolError) as exc:
            connection.close()
            raise DeliveryError(f"POST {self._where()}: {type(exc).__name__}: {exc}") from exc
        self._check(response.status, response.header("Retry-After"))

    @staticmethod
    def _left(deadline: float) -> float:
        return max(0.01, deadline - time.monotonic())

    def _check(self, status: int, wait_header: str | None) -> None:
        if 200 <= status < 300:
            return
        said = f"POST {self._where()}: HTTP {status}"
        if 300 <= status < 400:
            raise DeliveryError(f"{said} (a redirect; redirects are not followed: fix the url)")
        wait = retry_after(wait_header, time.time())
        if status in _RETRIED or status >= 500:
            raise DeliveryError(said, retry_after=wait)
        raise DeliveryError(f"{said}: the receiver refused this event", permanent=True)

    def _path(self) -> str:
        path = self.url.path or "/"
        return f"{path}?{self.url.query}" if self.url.query else path

    def _where(self) -> str:
        port = f":{self.url.port}" if self.url.port else ""  # never the URL's userinfo
        return f"{self.url.scheme}://{self.url.hostname}{port}{self.url.path}"

    def close(self) -> None:
        self._connection.close()


def _headers(where: str, given: object) -> dict[str, str]:
    """The ``headers`` option: names that are HTTP tokens, values without line breaks;
    the ones the client writes itself are refused."""
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise ConfigError(f"{where}.headers: give a mapping of header names to values")
    headers = {}
    for name, value in given.items():
        name, value = str(name), str(value)
        if not name or not set(name) <= _TOKEN:
            raise ConfigError(f"{where}.headers: {name!r} is not a valid header name")
        if any(c in value for c in "\r\n\0"):
            raise ConfigError(f"{where}.headers.{name}: a value may not contain line breaks")
        if not value.isascii():
            raise ConfigError(f"{where}.headers.{name}: give an ASCII value")
        if name.lower() in _OWN_HEADERS:
            raise ConfigError(
                f"{where}.headers.{name}: the notifier sets this header itself; remove it"
            )
        headers[name] = value
    return headers


def _signer(where: str, variable: object, environ: Mapping[str, str]) -> Signer:
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
        return Signer(value)
    except ValueError:
        raise ConfigError(  # from None: the cause could show the secret
            f"{where}.secret_env: {variable} does not hold a valid secret (whsec_ followed "
            "by base64)"
        ) from None
