"""Fan-out of health changes to ``/ws/customer-health`` clients.

Every message is a JSON object (``type`` = ``snapshot``, ``update``, ``heartbeat`` or ``error``);
an update carries the account's full health row (``account_id``, ``health_score`` 0-100, band,
components, contributions) and ``cause``, the table and key of the event that changed it.

Cost model, because one event can mean a message to hundreds of clients: an update is encoded
once (JSON text and one WebSocket frame) and the updates published in one turn of the event
loop are written to each client with one socket write, shared by every client with the same
filters. So 500 events per second to 200 clients cost about 200 socket writes per POST rather
than 100,000 framed sends.

Slow clients never hold up others: each client's unsent bytes are bounded. A client whose
backlog still exceeds ``max_buffer_bytes`` when new messages arrive is sent an ``error``
message, closed, and cut off after :data:`CLOSE_GRACE_S` if it still does not read.

Under uvicorn's ``websockets-sansio`` protocol without compression, with the app inside
:class:`ExposeServerSend` (how ``cfx serve`` runs), frames go straight to the connection's
transport, whose write-buffer size is the backlog. Under any other ASGI server the feed falls
back to one ``send_text`` per message from a bounded per-client queue (the backlog is then
counted in messages of about :data:`FALLBACK_MESSAGE_BYTES`); both paths are tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.websockets import WebSocket
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol

MAX_BUFFER_BYTES = 4_000_000
"""Unsent bytes a client may fall behind before it is disconnected (about 8,000 updates)."""
FALLBACK_MESSAGE_BYTES = 500
"""Typical size of an update, to turn the byte limit into a message limit on the fallback path."""
CLOSE_GRACE_S = 10.0
"""Seconds a lagging client gets to read the error and close before its connection is cut."""
HEARTBEAT_S = 15.0


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
    """One connected client: its filters and its way to the socket."""

    def __init__(
        self,
        websocket: WebSocket,
        tiers: set[str] | None,
        bands: set[str] | None,
        max_buffer_bytes: int = MAX_BUFFER_BYTES,
    ):
        self.ws = websocket
        self.tiers, self.bands = tiers, bands
        self.filter_key = (frozenset(tiers) if tiers else None, frozenset(bands) if bands else None)
        self.max_buffer_bytes = max_buffer_bytes
        self.transport = _raw_transport(websocket)
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(
            maxsize=max(1, max_buffer_bytes // FALLBACK_MESSAGE_BYTES)
        )
        self.ready = False  # until the snapshot went out, updates wait in ``held``
        self.held: list[tuple[bytes, list[str]]] = []
        self.lagging = False
        self.closed = asyncio.get_running_loop().create_future()

    @property
    def direct(self) -> bool:
        """Whether frames are written straight to the transport (the fast path)."""
        return self.transport is not None

    def wants(self, row: dict) -> bool:
        """Heartbeats and errors (no account) go to everyone; updates by tier and band filters."""
        if "account_id" not in row:
            return True
        return (self.tiers is None or row.get("tier") in self.tiers) and (
            self.bands is None or row.get("band") in self.bands
        )

    def send(self, frames: bytes, texts: list[str]) -> None:
        """Queue messages (``frames`` = the same ``texts`` as WebSocket frames) without waiting."""
        if self.lagging or self.closed.done():
            return
        if not self.ready:
            self.held.append((frames, texts))
            return
        if self.transport is not None:
            if self.transport.is_closing():
                return
            if self.transport.get_write_buffer_size() > self.max_buffer_bytes:
                self._drop()  # had not taken what was sent before; one burst alone never drops a client
                return
            self.transport.write(frames)
            return
        for text in texts:
            try:
                self.queue.put_nowait(text)
            except asyncio.QueueFull:
                self._drop()
                return

    def start(self) -> None:
        """The snapshot was sent: deliver what was held meanwhile, then go live."""
        self.ready = True
        held, self.held = self.held, []
        for frames, texts in held:
            self.send(frames, texts)

    def _drop(self) -> None:
        self.lagging = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)  # wakes the fallback pump so it stops
        self._closer = asyncio.get_running_loop().create_task(self._tell_and_close())  # keep a reference

    async def _tell_and_close(self) -> None:
        message = json.dumps({"type": "error", "message": "client too far behind; disconnecting, reconnect to resync"})
        with contextlib.suppress(Exception):
            await self.ws.send_text(message)
            await self.ws.close(code=1013)
        if self.transport is not None:
            await asyncio.sleep(CLOSE_GRACE_S)
            if not self.transport.is_closing() or self.transport.get_write_buffer_size():
                self.transport.abort()
        if not self.closed.done():
            self.closed.set_result(None)

    async def pump(self) -> None:
        """Fallback path: send queued messages one by one (returns when the client is dropped)."""
        if self.transport is not None:
            await self.closed
            return
        while not self.lagging:
            text = await self.queue.get()
            if text is None or self.lagging:
                break
            await self.ws.send_text(text)
        await self.closed


class Feed:
    """The connected clients and the messages waiting for the next flush."""

    def __init__(self, max_buffer_bytes: int = MAX_BUFFER_BYTES):
        self.max_buffer_bytes = max_buffer_bytes
        self.clients: set[FeedClient] = set()
        self._pending: list[tuple[dict, bytes, str]] = []
        self._scheduled = False

    def client(self, websocket: WebSocket, tiers: set[str] | None, bands: set[str] | None) -> FeedClient:
        client = FeedClient(websocket, tiers, bands, self.max_buffer_bytes)
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

        def encode(client: FeedClient) -> tuple[bytes, list[str]]:
            text = json.dumps(build(client), default=str)
            return _frame(text), [text]

        self._deliver(encode)

    def heartbeat(self) -> None:
        self.publish([{"type": "heartbeat", "ts": datetime.now(UTC).isoformat(timespec="seconds")}])

    def _flush(self) -> None:
        pending, self._pending, self._scheduled = self._pending, [], False

        def encode(client: FeedClient) -> tuple[bytes, list[str]]:
            chosen = [(frame, text) for message, frame, text in pending if client.wants(message)]
            return b"".join(f for f, _ in chosen), [t for _, t in chosen]

        self._deliver(encode)

    def _deliver(self, encode: Callable[[FeedClient], tuple[bytes, list[str]]]) -> None:
        """``encode`` once per distinct filter, then send the result to every client with it."""
        shared: dict[tuple, tuple[bytes, list[str]]] = {}
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
