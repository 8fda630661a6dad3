"""lockgate notifier ``nats``: each event published to NATS JetStream.

``events.notifiers: [{kind: nats, options: {url: nats://127.0.0.1:4222, subject:
lockgate.events, stream: LOCKGATE}}]``. Each event is published (a JetStream publish,
acknowledged by the server) to ``subject`` with the header ``Nats-Msg-Id`` set to the
event's id, so JetStream drops a delivery repeated within its duplicate window: a
retry after a crash does not add the event twice. ``stream``, when given, is created
if it does not exist (capturing ``subject``); otherwise a stream capturing the subject
must exist. ``timeout``: seconds for connecting and for each publish (default 5). A
``token_env`` option names an environment variable holding an auth token.

A batch of events (``deliver_batch``: the dispatcher hands over the due events of a
batch at once) is published with ``publish_async`` on the one connection, in sequence
order, and its acknowledgements awaited together: one round trip for the batch instead
of one per event. Each event counts as delivered only once its own acknowledgement
came; one not acknowledged within the timeout is a failure (sent again later, and
dropped by JetStream as a duplicate if it had been stored after all).
"""

from __future__ import annotations

import asyncio
import contextlib
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

__all__ = ["NatsNotifier"]

_OPTIONS = {"url", "subject", "stream", "timeout", "token_env"}


@hookimpl
def register_notifiers(register: Any) -> None:
    register("nats", NatsNotifier.from_context)


class NatsNotifier:
    """Publish each message to one JetStream subject, with ``Nats-Msg-Id``."""

    def __init__(
        self,
        url: str,
        subject: str,
        *,
        stream: str | None = None,
        timeout: float = 5.0,
        token: str | None = None,
    ) -> None:
        self.url, self.subject, self.stream, self.timeout = url, subject, stream, timeout
        self._token = token
        self._loop = asyncio.new_event_loop()
        self._nc: Any = None
        self._js: Any = None

    def __repr__(self) -> str:
        return f"NatsNotifier({self.subject!r})"

    @classmethod
    def from_context(cls, ctx: RoleContext) -> NatsNotifier:
        where, options = notifier_options(ctx.options, "nats", _OPTIONS)
        try:
            import nats  # noqa: F401
        except ImportError:
            raise ConfigError(
                f"{where}: the nats notifier needs the nats-py package; "
                "pip install lockgate-nats (or nats-py)"
            ) from None
        url = str(options.get("url", "nats://127.0.0.1:4222"))
        if not url.startswith(("nats://", "tls://")):
            raise ConfigError(f"{where}.url: give a nats:// or tls:// URL (got {url!r})")
        token = None
        if options.get("token_env"):
            token = ctx.environ.get(str(options["token_env"])) or None
            if token is None:
                raise ConfigError(
                    f"{where}.token_env: the environment variable {options['token_env']} is not set"
                )
        stream = options.get("stream")
        return cls(
            url,
            str(options.get("subject", "lockgate.events")),
            stream=str(stream) if stream else None,
            timeout=float(options.get("timeout", 5.0)),
            token=token,
        )

    async def _connect(self, timeout: float) -> Any:
        import nats

        if self._js is None:
            extra = {"token": self._token} if self._token else {}
            self._nc = await nats.connect(
                self.url,
                connect_timeout=timeout,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                **extra,
            )
            self._js = self._nc.jetstream(timeout=timeout)
            if self.stream is not None:
                await self._ensure_stream()
        return self._js

    async def _ensure_stream(self) -> None:
        from nats.js.errors import NotFoundError

        try:
            await self._js.stream_info(self.stream)
        except NotFoundError:
            await self._js.add_stream(name=self.stream, subjects=[self.subject])

    async def _publish(self, message: Message, timeout: float) -> None:
        js = await self._connect(timeout)
        await js.publish(
            self.subject, message.body, timeout=timeout, headers={"Nats-Msg-Id": message.id}
        )

    async def _publish_all(
        self, messages: Sequence[Message], timeout: float
    ) -> list[DeliveryError | None]:
        js = await self._connect(timeout)
        # No wait_stall: with it every publish waits through a task, which lets the
        # client flush each message alone; without it the batch goes out in one write
        # (a batch is far below the client's 4,000 pending acknowledgements, and those
        # not acknowledged in time are cancelled below, which frees their places).
        futures = [
            await js.publish_async(self.subject, m.body, headers={"Nats-Msg-Id": m.id})
            for m in messages
        ]
        done, late = await asyncio.wait(futures, timeout=timeout) if futures else ((), ())
        for future in late:  # no acknowledgement in time: a failure (and no longer awaited)
            future.cancel()
        outcomes: list[DeliveryError | None] = []
        for future in futures:
            error = None if future in done else asyncio.TimeoutError("no acknowledgement")
            if error is None and future.exception() is not None:
                error = future.exception()
            outcomes.append(
                None
                if error is None
                else DeliveryError(
                    f"NATS publish to {self.subject}: {type(error).__name__}: {error}"
                )
            )
        return outcomes

    def deliver_batch(
        self, messages: Sequence[Message], timeout: float
    ) -> list[DeliveryError | None]:
        """Publish ``messages`` in order, their acknowledgements awaited together."""
        timeout = min(self.timeout, timeout)
        try:
            outcomes = self._loop.run_until_complete(
                asyncio.wait_for(self._publish_all(messages, timeout), timeout + 1)
            )
        except Exception as exc:
            self._drop()
            raise DeliveryError(
                f"NATS publish to {self.subject}: {type(exc).__name__}: {exc}"
            ) from exc
        if any(outcomes):
            self._drop()  # a fresh connection for the next attempt
        return outcomes

    def deliver(self, message: Message, timeout: float) -> None:
        timeout = min(self.timeout, timeout)
        try:
            self._loop.run_until_complete(
                asyncio.wait_for(self._publish(message, timeout), timeout + 1)
            )
        except Exception as exc:
            self._drop()
            raise DeliveryError(
                f"NATS publish to {self.subject}: {type(exc).__name__}: {exc}"
            ) from exc

    def _drop(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(Exception):  # the connection is gone already
                self._loop.run_until_complete(nc.close())

    def close(self) -> None:
        self._drop()
        # The client's own tasks (reading, flushing) end before the loop does.
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        if pending:
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()
