"""lockgate notifier ``amqp``: each event published to RabbitMQ, with publisher confirms.

``events.notifiers: [{kind: amqp, options: {url: "amqp://guest@127.0.0.1:5672/%2F",
password_env: AMQP_PASSWORD, exchange: lockgate.events}}]``. Each event is published
to ``exchange`` (a durable ``topic`` exchange, declared if missing) with the routing
key ``routing_key`` (default: the event's CloudEvents type, so a queue binds
``dev.lockgate.component.#``), persistent, with ``message_id`` the event's id and
``type`` its type; a delivery counts only once the broker confirmed it (publisher
confirms), so a broker that crashes before it has the message gets it again. Options:
``url`` (``amqp://`` or ``amqps://``, without a password: ``password_env`` names the
environment variable holding it; a URL without a user connects as ``guest``),
``exchange``, ``routing_key``, ``timeout`` (seconds, default 5). The broker drops a
message no queue is bound to (publishing is not ``mandatory``): bind a queue before
relying on it.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from typing import Any

from lockgate.plugin import (
    ConfigError,
    DeliveryError,
    Message,
    RoleContext,
    hookimpl,
    notifier_options,
)

__all__ = ["AmqpNotifier"]

_OPTIONS = {"url", "password_env", "exchange", "routing_key", "timeout"}


@hookimpl
def register_notifiers(register: Any) -> None:
    register("amqp", AmqpNotifier.from_context)


class AmqpNotifier:
    """Publish each message to one exchange, confirmed by the broker."""

    def __init__(
        self, parameters: Any, exchange: str, routing_key: str | None, timeout: float
    ) -> None:
        self._parameters = parameters
        self.exchange, self.routing_key, self.timeout = exchange, routing_key, timeout
        self._connection: Any = None
        self._channel: Any = None

    def __repr__(self) -> str:
        return f"AmqpNotifier({self.exchange!r})"

    @classmethod
    def from_context(cls, ctx: RoleContext) -> AmqpNotifier:
        where, options = notifier_options(ctx.options, "amqp", _OPTIONS)
        try:
            import pika
        except ImportError:
            raise ConfigError(
                f"{where}: the amqp notifier needs the pika package; "
                "pip install lockgate-amqp (or pika)"
            ) from None
        url = urllib.parse.urlsplit(str(options.get("url", "amqp://127.0.0.1:5672/%2F")))
        if url.scheme not in ("amqp", "amqps") or not url.hostname:
            raise ConfigError(f"{where}.url: give an amqp:// or amqps:// URL")
        if url.password:
            raise ConfigError(
                f"{where}.url: holds a password; put it in an environment variable and name "
                "that variable in password_env"
            )
        password = "guest"
        if options.get("password_env"):
            password = ctx.environ.get(str(options["password_env"]), "")
            if not password:
                raise ConfigError(
                    f"{where}.password_env: the environment variable "
                    f"{options['password_env']} is not set"
                )
        timeout = float(options.get("timeout", 5.0))
        vhost = urllib.parse.unquote(url.path[1:]) if len(url.path) > 1 else "/"
        parameters = pika.ConnectionParameters(
            host=url.hostname,
            port=url.port or (5671 if url.scheme == "amqps" else 5672),
            virtual_host=vhost,
            credentials=pika.PlainCredentials(url.username or "guest", password),
            socket_timeout=timeout,
            blocked_connection_timeout=timeout,
            connection_attempts=1,
            ssl_options=pika.SSLOptions(__import__("ssl").create_default_context())
            if url.scheme == "amqps"
            else None,
        )
        routing_key = options.get("routing_key")
        return cls(
            parameters,
            str(options.get("exchange", "lockgate.events")),
            str(routing_key) if routing_key else None,
            timeout,
        )

    def _ready(self) -> Any:
        import pika

        if self._channel is None or not self._channel.is_open:
            self._connection = pika.BlockingConnection(self._parameters)
            channel = self._connection.channel()
            channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
            channel.confirm_delivery()
            self._channel = channel
        return self._channel

    def deliver(self, message: Message, timeout: float) -> None:
        import pika

        try:
            self._ready().basic_publish(
                self.exchange,
                self.routing_key or message.type,
                message.body,
                pika.BasicProperties(
                    content_type="application/cloudevents+json",
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=message.id,
                    type=message.type,
                ),
            )
        except Exception as exc:  # not confirmed (nacked, returned, connection lost)
            self._drop()
            raise DeliveryError(
                f"AMQP publish to {self.exchange}: {type(exc).__name__}: {exc}"
            ) from exc

    def _drop(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(Exception):  # a broken connection: nothing to release
                connection.close()

    def close(self) -> None:
        self._drop()
