"""lockgate notifier ``redis``: each event appended to a Redis Stream.

``events.notifiers: [{kind: redis, options: {url: redis://127.0.0.1:6379/0, stream:
lockgate.events}}]``. Each event is one stream entry (``XADD``) with the fields ``id``
(the CloudEvents id), ``type``, ``subject`` and ``event`` (the CloudEvent as JSON).
Delivery is at least once: a delivery repeated after a crash appends the same ``id``
again, so consumers de-duplicate by it. (The stream id is Redis's own: an id made from
the event's sequence number would make a retried event, overtaken by another
component's, be refused as "smaller" and lost.) Options: ``url`` (``redis://`` or
``rediss://``; a password in it comes from the environment variable ``password_env``
names instead, never from the file), ``stream`` (default ``lockgate.events``),
``maxlen`` (approximate cap of the stream; default none), ``timeout`` (seconds,
default 5).

A batch of events (``deliver_batch``: the dispatcher hands over the due events of a
batch at once) is one ``MULTI``/``EXEC`` transaction of ``XADD``s sent in one round
trip: Redis appends them in order, all or none (a connection lost before ``EXEC``
appends nothing); an ``XADD`` that Redis refuses fails that event alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lockgate.plugin import (
    ConfigError,
    DeliveryError,
    Message,
    RoleContext,
    hookimpl,
    notifier_options,
)

__all__ = ["RedisNotifier"]

_OPTIONS = {"url", "stream", "maxlen", "timeout", "password_env"}


@hookimpl
def register_notifiers(register: Any) -> None:
    register("redis", RedisNotifier.from_context)


class RedisNotifier:
    """Append each message to one Redis Stream."""

    def __init__(self, client: Any, stream: str, maxlen: int | None = None) -> None:
        self.client = client
        self.stream = stream
        self.maxlen = maxlen

    def __repr__(self) -> str:
        return f"RedisNotifier({self.stream!r})"

    @classmethod
    def from_context(cls, ctx: RoleContext) -> RedisNotifier:
        where, options = notifier_options(ctx.options, "redis", _OPTIONS)
        try:
            import redis
        except ImportError:
            raise ConfigError(  # from None: one line, no traceback of the import
                f"{where}: the redis notifier needs the redis package; "
                "pip install lockgate-redis (or redis)"
            ) from None
        url = str(options.get("url", "redis://127.0.0.1:6379/0"))
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"{where}.url: give a redis:// or rediss:// URL (got {url!r})")
        password = None
        if options.get("password_env"):
            password = ctx.environ.get(str(options["password_env"])) or None
            if password is None:
                raise ConfigError(
                    f"{where}.password_env: the environment variable "
                    f"{options['password_env']} is not set"
                )
        timeout = float(options.get("timeout", 5.0))
        client = redis.Redis.from_url(
            url, password=password, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        maxlen = options.get("maxlen")
        return cls(client, str(options.get("stream", "lockgate.events")), maxlen and int(maxlen))

    def _fields(self, message: Message) -> dict[str, Any]:
        return {
            "id": message.id,
            "type": message.type,
            "subject": message.component or "",
            "event": message.body,
        }

    def _error(self, exc: BaseException) -> DeliveryError:
        return DeliveryError(f"redis XADD to {self.stream}: {type(exc).__name__}: {exc}")

    def deliver(self, message: Message, timeout: float) -> None:
        import redis

        try:
            self.client.xadd(
                self.stream, self._fields(message), maxlen=self.maxlen, approximate=True
            )
        except redis.RedisError as exc:
            raise self._error(exc) from exc

    def deliver_batch(
        self, messages: Sequence[Message], timeout: float
    ) -> list[DeliveryError | None]:
        """``XADD`` each of ``messages`` in one ``MULTI``/``EXEC`` round trip."""
        import redis

        try:
            with self.client.pipeline(transaction=True) as pipe:
                for message in messages:
                    pipe.xadd(
                        self.stream, self._fields(message), maxlen=self.maxlen, approximate=True
                    )
                replies = pipe.execute(raise_on_error=False)
        except redis.RedisError as exc:
            raise self._error(exc) from exc
        return [self._error(r) if isinstance(r, Exception) else None for r in replies]

    def close(self) -> None:
        self.client.close()
