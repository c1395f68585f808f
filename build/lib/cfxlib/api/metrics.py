"""Prometheus metrics for the service (``GET /metrics``, text exposition format).

``cfx_http_requests_total`` and ``cfx_http_request_duration_seconds`` by method, route template
and status; ``cfx_feed_clients`` (WebSocket clients connected); ``cfx_events_accepted_total``
(live events stored); ``cfx_outbox_pending`` and ``cfx_outbox_failed`` (notifications waiting
or set aside); ``cfx_last_run_age_seconds`` (since the last published run finished).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from cfxlib.core.home import Home
from cfxlib.notify.outbox import Outbox

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServiceMetrics:
    def __init__(self, home: Home, feed_clients):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cfx_http_requests", "HTTP requests.", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "cfx_http_request_duration_seconds",
            "HTTP request latency (to the end of the response).",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.events = Counter("cfx_events_accepted", "Live events stored durably.", registry=self.registry)
        Gauge("cfx_feed_clients", "WebSocket feed clients connected.", registry=self.registry).set_function(
            feed_clients
        )
        outbox = Outbox(home.outbox)
        Gauge("cfx_outbox_pending", "Notifications waiting in the outbox.", registry=self.registry).set_function(
            lambda: outbox.backlog()["pending"]
        )
        Gauge("cfx_outbox_failed", "Notifications set aside as failed.", registry=self.registry).set_function(
            lambda: outbox.backlog()["failed"]
        )

        def last_run_age() -> float:
            try:
                run = json.loads((home.published / "run.json").read_text(encoding="utf-8"))
                when = datetime.fromisoformat(run.get("finished_at") or run["started_at"])
            except (OSError, ValueError, KeyError):
                return float("nan")
            return (datetime.now(UTC) - when).total_seconds()

        Gauge(
            "cfx_last_run_age_seconds", "Seconds since the published run finished.", registry=self.registry
        ).set_function(last_run_age)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """ASGI middleware counting HTTP requests by route template (not raw path: no cardinality blow-up)."""

    def __init__(self, app, metrics: ServiceMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or ("unauthorised" if status["code"] in (401, 403) else "other")
            self.metrics.requests.labels(scope["method"], template, str(status["code"])).inc()
            self.metrics.latency.labels(scope["method"], template).observe(time.perf_counter() - start)
