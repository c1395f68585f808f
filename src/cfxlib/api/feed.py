"""Fan-out of health changes to ``/ws/customer-health`` clients.

Every message is a JSON object (``type`` = ``snapshot``, ``update``, ``heartbeat`` or ``error``);
an update carries the account's full health row (``account_id``, ``health_score`` 0-100, band,
components, contributions) and ``cause``, the table and key of the event that changed it.

Cost model, because one event can mean a message to hundreds of clients: an update is encoded
once (JSON text and one WebSocket frame) and the updates published in one turn of the event
loop are written to each client with one socket write, shared by every client with the same
filters. So 500 events per second to 200 clients cost about 200 socket writes per POST rather
than 100,000 framed sends.

Slow clients never hold up others, and fall behind by states, not by time (conflation, as market
data feeds do): once a client's socket holds more than :data:`LAG_BYTES` unsent, its updates wait
in a backlog keyed by account, where the newest state of an account replaces an older unsent one.
The client is told once (a ``lagging`` message), and when its socket drains it gets each changed
account's newest state, marked ``conflated: N`` (the earlier states it replaced). Its backlog is
bounded by the number of accounts it watches. A client is disconnected only when it reads nothing
at all for ``stall_s`` seconds while data waits (an ``error`` naming the reason), or when its
unsent bytes pass ``max_buffer_bytes``, the hard memory bound.

Under uvicorn's ``websockets-sansio`` protocol without compression, with the app inside
:class:`ExposeServerSend` (how ``cfx serve`` runs), frames go straight to the connection's
transport, whose write-buffer size is the backlog. Under any other ASGI server the feed falls
back to one ``send_text`` per message from the client's conflated backlog; both paths are tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.websockets import WebSocket
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol

MAX_BUFFER_BYTES = 16_000_000
"""The hard memory bound per client: unsent bytes (socket buffer plus conflated backlog) past which
it is disconnected. Conflation keeps a reading client far below it."""
LAG_BYTES = 64_000
"""Unsent bytes in a client's socket buffer past which its updates are conflated (each account's
newest state replaces an older unsent one) instead of queued."""
SEND_BUFFER_BYTES = 64 * 1024
"""The kernel send buffer of a feed connection (the kernel doubles it): small, so a slow reader's
lag builds where the feed can see it and conflate it, not in megabytes of auto-tuned buffers."""
FALLBACK_MESSAGE_BYTES = 500
"""Typical size of an update, to turn byte limits into message counts on the fallback path."""
CLOSE_GRACE_S = 10.0
"""Seconds a dropped client gets to read the error and close before its connection is cut."""
HEARTBEAT_S = 15.0
STALL_S = 120.0
"""Seconds a client may read nothing at all (while data waits for it) before it is disconnected."""
TICK_S = 0.05
"""How often lagging clients are checked: drained ones get their conflated backlog."""


def _frame(text: str) -> bytes:
    """One unmasked, uncompressed WebSocket text frame (server to client, RFC 6455)."""
    return Frame(Opcode.TEXT, text.encode("utf-8")).serialize(mask=False)


SERVER_SEND = "cfx.server_send"
"""Scope extension under which :class:`ExposeServerSend` passes the server's own ``send``."""


class ExposeServerSend:
    """ASGI wrapper: gives WebSocket routes the server's ``send`` callable, before any framework
    middleware wraps it, as ``scope["extensions"]["cfx.server_send"]``. ``cfx serve`` runs the app
    inside it; without it the feed uses the portable (slower) path."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            scope = {**scope, "extensions": {**(scope.get("extensions") or {}), SERVER_SEND: send}}
        await self.app(scope, receive, send)


def _raw_transport(websocket: WebSocket) -> asyncio.WriteTransport | None:
    """The connection's transport when frames may be written to it directly, else None.

    True for uvicorn's sans-I/O websockets protocol (its ASGI ``send`` is a method of the
    connection object, which holds the ``websockets`` state machine and the transport) when no
    extension such as permessage-deflate was negotiated, as frames are then plain bytes."""
    send = (websocket.scope.get("extensions") or {}).get(SERVER_SEND)
    owner = getattr(send, "__self__", None)
    conn, transport = getattr(owner, "conn", None), getattr(owner, "transport", None)
    if (
        isinstance(conn, Protocol)
        and not conn.extensions
        and all(hasattr(transport, m) for m in ("write", "get_write_buffer_size", "is_closing", "abort"))
    ):  # uvloop's transports quack like asyncio.WriteTransport without subclassing it
        return transport
    return None


class FeedClient:
    """One connected client: its filters, its way to the socket and its conflated backlog
    (key -> [message, its shared JSON text, earlier states it replaced])."""

    def __init__(
        self,
        websocket: WebSocket,
        tiers: set[str] | None,
        bands: set[str] | None,
        max_buffer_bytes: int = MAX_BUFFER_BYTES,
        stall_s: float = STALL_S,
    ):
        self.ws = websocket
        self.tiers, self.bands = tiers, bands
        self.filter_key = (frozenset(tiers) if tiers else None, frozenset(bands) if bands else None)
        self.max_buffer_bytes = max_buffer_bytes
        self.lag_bytes = min(LAG_BYTES, max(1, max_buffer_bytes // 2))
        self.stall_s = stall_s
        self.transport = _raw_transport(websocket)
        if self.transport is not None:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        self.ready = False  # until the snapshot went out, updates wait in ``held``
        self.held: list[tuple[bytes, list[str], list[dict]]] = []
        self.backlog: dict[tuple, list] = {}  # key -> [message, earlier states it replaced]
        self.backlog_bytes = 0
        self.told_lagging = False
        self.dropped = False
        self.conflated = 0  # states replaced over the connection's life (for the bench)
        self.written = 0  # bytes handed to the transport
        self._seen_size, self._seen_written, self._progress_at = 0, 0, time.monotonic()
        self._sending_since: float | None = None  # fallback path: inside send_text since
        self._wake = asyncio.Event()
        self.closed = asyncio.get_running_loop().create_future()

    @property
    def direct(self) -> bool:
        """Whether frames are written straight to the transport (the fast path)."""
        return self.transport is not None

    @property
    def lagging(self) -> bool:
        return bool(self.backlog)

    def wants(self, row: dict) -> bool:
        """Heartbeats and errors (no account) go to everyone; updates by tier and band filters."""
        if "account_id" not in row:
            return True
        return (self.tiers is None or row.get("tier") in self.tiers) and (
            self.bands is None or row.get("band") in self.bands
        )

    def send(self, frames: bytes, texts: list[str], messages: list[dict]) -> None:
        """Deliver messages (``frames`` = the same ``texts`` as WebSocket frames) without waiting:
        written at once while the client keeps up, conflated into its backlog while it does not."""
        if self.dropped or self.closed.done():
            return
        if not self.ready:
            self.held.append((frames, texts, messages))
            return
        if self.transport is not None:
            if self.transport.is_closing():
                return
            if not self.backlog and self.transport.get_write_buffer_size() <= self.lag_bytes:
                self.transport.write(frames)
                self.written += len(frames)
                return
        self._conflate(messages, texts)
        self._wake.set()

    @staticmethod
    def _key(message: dict, position: int) -> tuple:
        kind = message.get("type")
        if kind == "update":
            return ("account", message["account_id"])
        if kind == "intervention":
            return ("intervention", message.get("id"))
        if kind in ("heartbeat", "lagging"):
            return (kind,)
        return (kind, position, time.monotonic_ns())

    def _conflate(self, messages: list[dict], texts: list[str]) -> None:
        if messages and messages[0].get("type") == "snapshot":
            self.backlog.clear()  # a new snapshot supersedes every older state
            self.backlog_bytes = 0
        if not self.told_lagging and self.transport is not None:
            self.told_lagging = True
            note = {
                "type": "lagging",
                "message": "you are reading slower than updates arrive: each account's newest state is kept "
                "for you and sent as you catch up (marked conflated: N)",
            }
            self.backlog[("lagging",)] = [note, json.dumps(note), 0]
        for position, (message, text) in enumerate(zip(messages, texts, strict=True)):
            key = self._key(message, position)
            earlier = self.backlog.get(key)
            if earlier is None:
                self.backlog[key] = [message, text, 0]
                self.backlog_bytes += len(text) + 14
            else:
                replaced = earlier[2] + 1
                self.conflated += 1
                del self.backlog[key]  # the newest state goes last: order follows the latest changes
                self.backlog[key] = [message, text, replaced]
        waiting = self.transport.get_write_buffer_size() if self.transport else 0
        if self.backlog_bytes + waiting > self.max_buffer_bytes:
            self._drop(
                f"more than {self.max_buffer_bytes:,} bytes waiting for you ({len(self.backlog):,} conflated "
                f"states, {self.backlog_bytes:,} bytes; {waiting:,} bytes in the socket buffer)"
            )

    @staticmethod
    def _text(text: str, replaced: int) -> str:
        """The message's JSON (encoded once, shared by every client) with ``conflated`` added
        when it replaced earlier states: no second encoding per client."""
        return text if not replaced else f'{text[:-1]}, "conflated": {replaced}}}'

    def _backlog_frames(self) -> tuple[bytes, int]:
        out = [_frame(self._text(text, replaced)) for _, text, replaced in self.backlog.values()]
        self.backlog.clear()
        self.backlog_bytes = 0
        return b"".join(out), len(out)

    def tick(self, now: float) -> None:
        """Direct path, every :data:`TICK_S`: send the backlog once the socket drained; disconnect
        a client that read nothing for ``stall_s`` while data waited for it."""
        if self.transport is None or self.dropped or self.closed.done() or self.transport.is_closing():
            return
        size = self.transport.get_write_buffer_size()
        consumed = self._seen_size + (self.written - self._seen_written) - size
        if consumed > 0 or (size == 0 and not self.backlog):
            self._progress_at = now
        self._seen_size, self._seen_written = size, self.written
        if (size or self.backlog) and now - self._progress_at > self.stall_s:
            self._drop(f"read nothing for {self.stall_s:g} s")
            return
        if self.backlog and size <= self.lag_bytes // 2:
            data, _ = self._backlog_frames()
            self.transport.write(data)
            self.written += len(data)
            self.told_lagging = False  # a later lag is told again

    def fallback_tick(self, now: float) -> None:
        """Fallback path: a client whose one send has blocked for ``stall_s`` reads nothing."""
        if self._sending_since is not None and now - self._sending_since > self.stall_s and not self.dropped:
            self._drop(f"read nothing for {self.stall_s:g} s")

    def start(self) -> None:
        """The snapshot was sent: deliver what was held meanwhile, then go live."""
        self.ready = True
        held, self.held = self.held, []
        for frames, texts, messages in held:
            self.send(frames, texts, messages)

    def _drop(self, why: str) -> None:
        self.dropped = True
        self.backlog.clear()
        self.backlog_bytes = 0
        self._wake.set()  # the fallback pump stops
        self._closer = asyncio.get_running_loop().create_task(self._tell_and_close(why))  # keep a reference

    async def _tell_and_close(self, why: str) -> None:
        message = json.dumps({"type": "error", "message": f"disconnecting: {why}; reconnect to resync"})
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.send_text(message), CLOSE_GRACE_S)
            await asyncio.wait_for(self.ws.close(code=1013), CLOSE_GRACE_S)
        if self.transport is not None:
            await asyncio.sleep(CLOSE_GRACE_S)
            if not self.transport.is_closing() or self.transport.get_write_buffer_size():
                self.transport.abort()
        if not self.closed.done():
            self.closed.set_result(None)

    async def pump(self) -> None:
        """Fallback path: send the backlog message by message (returns when the client is dropped)."""
        if self.transport is not None:
            await self.closed
            return
        while not self.dropped:
            await self._wake.wait()
            self._wake.clear()
            while self.backlog and not self.dropped:
                key = next(iter(self.backlog))
                _, text, replaced = self.backlog.pop(key)
                text = self._text(text, replaced)
                self.backlog_bytes = max(0, self.backlog_bytes - len(text) - 14)
                self._sending_since = time.monotonic()
                await self.ws.send_text(text)
                self._sending_since = None
        await self.closed


class Feed:
    """The connected clients and the messages waiting for the next flush."""

    def __init__(self, max_buffer_bytes: int = MAX_BUFFER_BYTES, stall_s: float = STALL_S):
        self.max_buffer_bytes = max_buffer_bytes
        self.stall_s = stall_s
        self.clients: set[FeedClient] = set()
        self._pending: list[tuple[dict, bytes, str]] = []
        self._scheduled = False

    def client(self, websocket: WebSocket, tiers: set[str] | None, bands: set[str] | None) -> FeedClient:
        client = FeedClient(websocket, tiers, bands, self.max_buffer_bytes, self.stall_s)
        self.clients.add(client)
        return client

    def remove(self, client: FeedClient) -> None:
        self.clients.discard(client)
        if not client.closed.done():
            client.closed.set_result(None)

    def publish(self, messages: list[dict[str, Any]]) -> None:
        """Encode ``messages`` once and send them at the end of this event-loop turn.

        Must run on the event loop (use ``loop.call_soon_threadsafe`` from other threads)."""
        for message in messages:
            text = json.dumps(message, default=str)
            self._pending.append((message, _frame(text), text))
        if self._pending and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def resync(self, build: Callable[[FeedClient], dict]) -> None:
        """Send every client a fresh message from ``build`` (a new snapshot after a publication
        switch), once per filter; queued updates go first so the order stays true."""
        if self._pending:
            self._flush()

        def encode(client: FeedClient) -> tuple[bytes, list[str], list[dict]]:
            message = build(client)
            text = json.dumps(message, default=str)
            return _frame(text), [text], [message]

        self._deliver(encode)

    def heartbeat(self) -> None:
        self.publish([{"type": "heartbeat", "ts": datetime.now(UTC).isoformat(timespec="seconds")}])

    def _flush(self) -> None:
        pending, self._pending, self._scheduled = self._pending, [], False

        def encode(client: FeedClient) -> tuple[bytes, list[str], list[dict]]:
            chosen = [(frame, text, message) for message, frame, text in pending if client.wants(message)]
            return b"".join(f for f, _, _ in chosen), [t for _, t, _ in chosen], [m for _, _, m in chosen]

        self._deliver(encode)

    def _deliver(self, encode: Callable[[FeedClient], tuple[bytes, list[str], list[dict]]]) -> None:
        """``encode`` once per distinct filter, then send the result to every client with it."""
        shared: dict[tuple, tuple[bytes, list[str], list[dict]]] = {}
        for client in list(self.clients):
            out = shared.get(client.filter_key)
            if out is None:
                out = shared[client.filter_key] = encode(client)
            if out[1]:
                client.send(*out)

    async def heartbeats(self, every_s: float = HEARTBEAT_S) -> None:
        while True:
            await asyncio.sleep(every_s)
            self.heartbeat()

    async def ticks(self, every_s: float = TICK_S) -> None:
        """Drain lagging clients' backlogs and find stalled ones (see :meth:`FeedClient.tick`)."""
        while True:
            await asyncio.sleep(every_s)
            now = time.monotonic()
            for client in list(self.clients):
                if client.direct:
                    client.tick(now)
                else:
                    client.fallback_tick(now)
