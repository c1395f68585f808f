"""The service as a dashboard kernel sees it: HTTP with the viewer's token, and the live feed.

A dashboard kernel is started by Voilà for one page view. It learns the service's address from
``CFX_DASHBOARD_API`` (set by ``cfx dashboards``) and the viewer's token from the page's query
string (Voilà passes it to the kernel as ``QUERY_STRING``), never from notebook parameters.

A kernel may be **preheated** (``cfx dashboards`` keeps a small pool per dashboard): Voilà
starts it and runs the notebook before anyone asks for the page, so the imports are paid ahead.
Such a kernel has no viewer yet; :func:`wait_for_viewer` blocks until Voilà hands it one, and
only then is the token read.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode

import httpx

API_ENV = "CFX_DASHBOARD_API"
_viewer_received = False
"""Set once this kernel's viewer arrived: a kernel serves one page view, so it waits once."""


def wait_for_viewer() -> None:
    """In a preheated Voilà kernel, block until a viewer's request is assigned to it, then put
    that request's variables (``QUERY_STRING`` among them) into ``os.environ``. Elsewhere, return
    at once.

    The same protocol as ``voila.utils.wait_for_request`` (a WebSocket to ``/voila/query/<kernel
    id>`` on Voilà's port that sends the request's variables as one JSON object), without its
    import, which loads the Jupyter server and costs 1.8 s per kernel. It waits as long as it
    takes: a waiting kernel is busy, and the idle culler leaves busy kernels alone.
    """
    global _viewer_received
    if _viewer_received or os.environ.get("VOILA_PREHEAT", "False") == "False":
        return
    from websockets.sync.client import connect

    host = os.environ.get("VOILA_APP_IP", "127.0.0.1")
    port = os.environ.get("VOILA_APP_PORT", "8866")
    base = os.environ.get("VOILA_WS_BASE_URL", os.environ.get("VOILA_SERVER_URL", "/"))
    url = f"ws://{host}:{port}{base}voila/query/{os.environ.get('VOILA_KERNEL_ID', '')}"
    with connect(url, open_timeout=5, max_size=2**20) as ws:
        info = json.loads(ws.recv())
    os.environ.update({str(k): str(v) for k, v in info.items()})
    _viewer_received = True


class AccessDenied(Exception):
    """The viewer's token may not read this (HTTP 401 or 403)."""


@dataclass
class ServiceClient:
    """GET JSON from ``cfx serve`` at ``base`` with ``token`` (the viewer's)."""

    base: str
    token: str
    timeout: float = 10.0
    http: httpx.Client = field(init=False, repr=False, compare=False)
    """One connection pool (and TLS context) for all requests: a new one per request cost
    20 ms of certificate loading each, more than the request."""

    def __post_init__(self) -> None:
        self.http = httpx.Client(headers={"Authorization": f"Bearer {self.token}"}, timeout=self.timeout)

    @classmethod
    def from_environment(cls) -> ServiceClient:
        """The service from ``CFX_DASHBOARD_API`` and the token from the page's query string (in a
        preheated kernel, once a viewer's request arrives: :func:`wait_for_viewer`)."""
        wait_for_viewer()
        base = os.environ.get(API_ENV, "http://127.0.0.1:8001").rstrip("/")
        token = (parse_qs(os.environ.get("QUERY_STRING", "")).get("token") or [""])[0]
        return cls(base, token)

    def get(self, path: str, **params) -> dict:
        query = {k: v for k, v in params.items() if v is not None}
        url = f"{self.base}{path}" + (f"?{urlencode(query)}" if query else "")
        r = self.http.get(url)
        if r.status_code in (401, 403):
            raise AccessDenied(f"{path}: {r.json().get('detail', r.status_code)}")
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: dict) -> httpx.Response:
        return self.http.post(f"{self.base}{path}", json=body)

    def patch(self, path: str, body: dict) -> httpx.Response:
        return self.http.patch(f"{self.base}{path}", json=body)

    def all_health(self) -> list[dict]:
        """Every account's current health (all pages)."""
        rows, page = [], 1
        while True:
            got = self.get("/api/customers/health", page=page, page_size=1000)
            rows += got["accounts"]
            if len(rows) >= got["total"] or not got["accounts"]:
                return rows
            page += 1

    @property
    def feed_url(self) -> str:
        return self.base.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/ws/customer-health"


BATCH_WAIT_S = 0.005
"""How long the listener waits for a further message before handing over what it has: messages
already received (a POST of many events arrives as one update per account, back to back) are
taken together, so the page is redrawn once for them, not once per account."""
BATCH_LIMIT = 5_000
"""At most this many messages in one batch: a continuous stream still redraws the page."""


class FeedListener:
    """Follows ``/ws/customer-health`` from the kernel's event loop and calls ``on_messages`` with
    the snapshots, updates and interventions received, in order, as a list: every message that
    had already arrived when the first was taken (see :data:`BATCH_WAIT_S`); ``on_status`` with
    ``"connecting"``, ``"live"`` or ``"offline"``.

    Reconnects with exponential backoff (0.5 s doubling to 30 s, with jitter) after any drop; a
    new publication arrives as a fresh snapshot on the same connection."""

    def __init__(
        self,
        client: ServiceClient,
        on_messages: Callable[[list[dict]], None],
        on_status: Callable[[str], None],
        max_backoff: float = 30.0,
    ):
        self.client, self.on_messages, self.on_status = client, on_messages, on_status
        self.max_backoff = max_backoff
        self.task: asyncio.Task | None = None
        self.connects = 0

    def start(self) -> asyncio.Task:
        """Run in the background of the running loop (the kernel's): widgets update in place."""
        self.task = asyncio.get_running_loop().create_task(self.run())
        return self.task

    async def run(self, stop: Callable[[], bool] = lambda: False) -> None:
        import websockets

        backoff = 0.5
        while not stop():
            self.on_status("connecting")
            try:
                url = f"{self.client.feed_url}?{urlencode({'token': self.client.token})}"
                async with websockets.connect(url, max_size=2**26, open_timeout=10) as ws:
                    self.connects += 1
                    backoff = 0.5
                    self.on_status("live")
                    while True:
                        batch = [await ws.recv()]
                        while len(batch) < BATCH_LIMIT:
                            try:  # recv() may be cancelled safely: nothing is lost
                                batch.append(await asyncio.wait_for(ws.recv(), BATCH_WAIT_S))
                            except TimeoutError:
                                break
                        messages = [json.loads(text) for text in batch]
                        kept = [m for m in messages if m.get("type") in ("snapshot", "update", "intervention")]
                        if kept:
                            self.on_messages(kept)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - any drop: say so, wait, reconnect
                pass
            self.on_status("offline")
            await asyncio.sleep(backoff * (1 + random.random() / 4))
            backoff = min(backoff * 2, self.max_backoff)
