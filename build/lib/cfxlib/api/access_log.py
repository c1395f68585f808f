"""The service's access log: one line per HTTP request and WebSocket connection, token-free.

uvicorn's own access log is off because request lines can carry ``?token=`` (the WebSocket feed
accepts its token there). This ASGI middleware writes the same facts with every ``token``
query value replaced by ``***``::

    2026-11-30T08:20:01Z 127.0.0.1 GET /api/finance/summary 200 1.4ms
    2026-11-30T08:20:02Z 127.0.0.1 WS /ws/customer-health?token=***&tier=Starter 101 open
"""

from __future__ import annotations

import logging
import re
import sys
import time
from datetime import UTC, datetime

_TOKEN = re.compile(r"(^|&)(token=)[^&]*", re.IGNORECASE)
log = logging.getLogger("cfx.access")


def redact(query: str) -> str:
    """A query string with the value of every ``token`` parameter hidden."""
    return _TOKEN.sub(r"\1\2***", query)


def configure(stream=None) -> None:
    """Send the access log to ``stream`` (standard output by default), one line per record."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


class AccessLog:
    """ASGI middleware: log method, path (token redacted), status and duration of each request."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": None}

        async def sending(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            elif message["type"] == "websocket.accept":
                status["code"] = 101
                _write(scope, "WS", 101, "open")
            elif message["type"] == "websocket.http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            ms = 1000 * (time.perf_counter() - start)
            if kind == "http":
                _write(scope, scope["method"], status["code"] or 500, f"{ms:.1f}ms")
            elif status["code"] != 101:
                _write(scope, "WS", status["code"] or 403, "refused")
            else:
                _write(scope, "WS", 101, f"closed after {ms / 1000:.1f}s")


def _write(scope, method: str, status: int, tail: str) -> None:
    client = (scope.get("client") or ("-",))[0]
    query = scope.get("query_string", b"").decode("latin-1")
    path = scope.get("path", "") + (f"?{redact(query)}" if query else "")
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    log.info("%s %s %s %s %s %s", stamp, client, method, path, status, tail)
