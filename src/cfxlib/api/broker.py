"""The feed's broker: Redis pub/sub between the service's worker processes (docs/scaling.md).

Every worker applies the **event log** in its order (:class:`~cfxlib.store.eventlog.EventLog`
in shared mode), so every worker holds the same live health and computes the same updates for
its own clients. The broker only tells the others, at once, that the log moved: a notice is
``{"origin": worker, "end": [segment, offset], "messages": [...]}``, where ``messages`` are the
calls to action the batch opened or changed (those are decided once, by the worker that stored
the events). A worker that hears a notice catches up from the log to ``end``.

Why pub/sub rather than streams: the log is already the durable, replayable record, with marks
that say exactly what a worker has applied. A notice lost while Redis is away costs nothing but
latency: each worker also looks at the log's end every :data:`POLL_S` (and every
:data:`POLL_DEGRADED_S` while the broker is away), and a reconnecting client's snapshot is
taken after its worker caught up. Streams would duplicate the log in Redis memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable

from cfxlib.core.urls import without_password

log = logging.getLogger("cfx.api.broker")
POLL_S = 1.0
"""Seconds between looks at the log's end when the broker is up (a safety net: notices are faster)."""
POLL_DEGRADED_S = 0.25
"""The same while the broker is away: the feed stays live across workers, a little slower."""
RETRY_S = 1.0
"""Seconds between reconnection attempts."""


class Broker:
    """A Redis pub/sub connection for one worker: :meth:`publish` notices, :meth:`run` hears the
    other workers' ones and hands them to ``on_notice``. ``status`` is ``ok`` or ``degraded``
    (with ``reason``), for ``/healthz``."""

    def __init__(self, url: str, channel: str, on_notice: Callable[[dict], Awaitable[None]]):
        import redis.asyncio as redis

        self.url, self.channel, self.on_notice = url, channel, on_notice
        self.worker = f"{os.uname().nodename}:{os.getpid()}"
        self._client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self.status, self.reason = "degraded", "not connected yet"
        self.since = time.time()
        self.published = self.heard = self.failed = 0

    def _set(self, status: str, reason: str | None = None) -> None:
        if status != self.status:
            (log.info if status == "ok" else log.warning)("broker %s: %s", status, reason or self.url)
            self.status, self.since = status, time.time()
        self.reason = reason

    async def publish(self, notice: dict) -> bool:
        """Send ``notice`` to the other workers; False (and ``degraded``) when Redis is away."""
        try:
            await self._client.publish(self.channel, json.dumps({"origin": self.worker, **notice}, default=str))
        except Exception as exc:  # noqa: BLE001 - the feed degrades, the POST already succeeded
            self.failed += 1
            self._set("degraded", f"publish failed: {type(exc).__name__}: {exc}")
            return False
        self.published += 1
        return True

    async def run(self) -> None:
        """Listen until cancelled, reconnecting every :data:`RETRY_S` while Redis is away."""
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._set("ok")
                while True:
                    message = await pubsub.get_message(timeout=RETRY_S)
                    if message is None:
                        await self._client.ping()  # finds a server that went away while quiet
                        self._set("ok")
                        continue
                    notice = json.loads(message["data"])
                    if notice.get("origin") == self.worker:
                        continue
                    self.heard += 1
                    await self.on_notice(notice)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect; the log poll keeps the feed live
                self._set("degraded", f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(RETRY_S)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._client.aclose()

    def as_dict(self) -> dict:
        return {
            "url": without_password(self.url),
            "status": self.status,
            "reason": self.reason,
            "since": self.since,
            "worker": self.worker,
            "published": self.published,
            "heard": self.heard,
        }
