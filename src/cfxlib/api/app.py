"""The HTTP and WebSocket service (FastAPI), started by ``cfx serve``.

It serves the latest publication read-only (see :mod:`cfxlib.api.publication`), accepts live
events durably (:mod:`cfxlib.api.events`), keeps customer health current with the incremental
:class:`~cfxlib.health.HealthScorer`, and pushes changes to ``/ws/customer-health`` clients.
Every route except ``/healthz`` needs a bearer token; roles are in :mod:`cfxlib.api.auth`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import threading
import time
from enum import StrEnum
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from cfxlib import __version__, health, warehouse
from cfxlib.api.auth import PERMISSIONS, TokenStore
from cfxlib.api.events import EventStore, example_events, validate_batch
from cfxlib.api.feed import MAX_BUFFER_BYTES, ExposeServerSend, Feed
from cfxlib.api.publication import Publication, PublicationWatcher
from cfxlib.home import Home
from cfxlib.schemas import TABLES

log = logging.getLogger("cfx.api")
MAX_BODY_BYTES = 1_000_000
MAX_EVENTS = 5_000


class Tier(StrEnum):
    Starter = "Starter"
    Professional = "Professional"
    Enterprise = "Enterprise"


class Band(StrEnum):
    red = "red"
    yellow = "yellow"
    green = "green"


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Healthz(BaseModel):
    status: str
    version: str
    run_id: str | None = None
    as_of: str | None = None


class FinanceSummary(_Open):
    as_of: str = Field(description="Month of the figures, YYYY-MM.")
    mrr: float = Field(description="Monthly recurring revenue, USD.")
    arr: float = Field(description="Annual recurring revenue, USD.")
    run_id: str


class Rows(BaseModel):
    as_of: str
    run_id: str
    rows: list[dict[str, Any]]


class ForecastOut(_Open):
    as_of: str
    run_id: str
    points: list[dict[str, Any]]


class HealthPage(BaseModel):
    as_of: str
    run_id: str
    page: int
    page_size: int
    total: int
    accounts: list[dict[str, Any]]


class EventsIn(BaseModel):
    events: list[Any] = Field(
        description="Rows of usage_daily, tickets, nps_responses or downtime_monthly, each with a 'table' field.",
        examples=[example_events()],
    )


class EventsAccepted(BaseModel):
    accepted: int
    health_updates: int


class Service:
    """State shared by the routes: home, tokens, publication, events, scorer and feed clients."""

    def __init__(self, home: Home, feed_buffer_bytes: int = MAX_BUFFER_BYTES):
        self.home = home
        self.tokens = TokenStore(home.tokens)
        self.watcher = PublicationWatcher(home.published)
        self.events = EventStore(home.events)
        self.scorer: health.HealthScorer | None = None
        self.scorer_target: str | None = None
        self.live: dict[str, dict] = {}
        self.feed = Feed(feed_buffer_bytes)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._scoring = threading.RLock()

    def publication(self) -> Publication:
        pub = self.watcher.current()
        if pub is None:
            raise HTTPException(503, "nothing published yet: run `cfx run`")
        return pub

    def ensure_scorer(self, pub: Publication) -> health.HealthScorer:
        """The incremental scorer for ``pub`` (built from its warehouse plus the stored live events)."""
        with self._scoring:
            return self._ensure_scorer(pub)

    def _ensure_scorer(self, pub: Publication) -> health.HealthScorer:
        if self.scorer is None or self.scorer_target != pub.target:
            con = warehouse.connect(self.home.warehouse)
            try:
                scorer = health.HealthScorer.from_warehouse(con, pub.as_of_date)
            finally:
                con.close()
            for event in self.events.read():
                with contextlib.suppress(Exception):
                    scorer._apply(event["table"], event)
            self.scorer, self.scorer_target, self.live = scorer, pub.target, {}
            # The publication and scorer state live as long as the publication: keep them out of
            # the cyclic collector's full passes, which otherwise stall requests for 100+ ms.
            gc.collect()
            gc.freeze()
        return self.scorer

    def ingest(self, pub: Publication, events: list) -> tuple[list[dict], list[dict], int]:
        """Validate a posted batch and, when every event passed, :meth:`accept` it (one worker
        thread for both). Returns (clean events, errors, health changes)."""
        clean, errors = validate_batch(events, pub.accounts)
        if errors:
            return [], errors, 0
        return clean, [], self.accept(pub, clean)

    def accept(self, pub: Publication, events: list[dict]) -> int:
        """Store validated events durably, score them, and publish changed scores to the feed.

        Runs in a worker thread; one lock keeps storing, scoring and publishing in one order, so
        concurrent batches reach every client in the order they were scored. Returns the number
        of health changes."""
        with self._scoring:
            self.events.append(events)
            scorer = self.ensure_scorer(pub)
            messages = []
            for event in events:
                before = self.health_row(pub, str(event["account_id"]))
                as_of = max(pub.as_of_date, scorer.as_of or pub.as_of_date)
                row = scorer.update(event["table"], event, as_of=as_of)
                self.live[row["account_id"]] = row
                if before is None or before.get("health_score") != row.get("health_score"):
                    cause = {"table": event["table"], **{k: event[k] for k in TABLES[event["table"]].key}}
                    messages.append({"type": "update", "sent_at": time.time(), "cause": cause, **row})
            if messages and self.loop is not None:
                self.loop.call_soon_threadsafe(self.feed.publish, messages)
            return len(messages)

    def health_row(self, pub: Publication, account_id: str) -> dict | None:
        return self.live.get(account_id) or pub.health_by_id.get(account_id)

    def all_health(self, pub: Publication) -> list[dict]:
        return [self.live.get(r["account_id"], r) for r in pub.health]


def _token_from(request_headers, query_token: str | None) -> str | None:
    auth = request_headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return query_token


def create_app(home: Home, feed_buffer_bytes: int = MAX_BUFFER_BYTES) -> FastAPI:
    service = Service(home, feed_buffer_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        service.loop = asyncio.get_running_loop()
        beat = asyncio.create_task(service.feed.heartbeats())
        await run_in_threadpool(validate_batch, example_events(), None)  # first use costs ~0.2 s; not on a request
        pub = service.watcher.current()
        if pub is not None:  # warm the incremental scorer so the first event is fast
            with contextlib.suppress(Exception):
                await run_in_threadpool(service.ensure_scorer, pub)
        yield
        beat.cancel()

    app = FastAPI(
        title="cfx service",
        version=__version__,
        description="ChatterFix finance, customer health and live events. Bearer tokens: `cfx token create --role ROLE`.",
        lifespan=lifespan,
    )
    app.state.service = service

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return JSONResponse({"detail": f"request body larger than {MAX_BODY_BYTES:,} bytes"}, status_code=413)
        return await call_next(request)

    def require(scope: str):
        def check(request: Request):
            record = service.tokens.lookup(_token_from(request.headers, None))
            if record is None:
                raise HTTPException(
                    401, "missing, unknown, expired or revoked token", headers={"WWW-Authenticate": "Bearer"}
                )
            if scope not in PERMISSIONS[record.role]:
                raise HTTPException(403, f"role {record.role!r} may not use this endpoint")
            return record

        return Depends(check)

    @app.get("/healthz", response_model=Healthz)
    def healthz():
        pub = service.watcher.current()
        if pub is None:
            return JSONResponse(Healthz(status="nothing published", version=__version__).model_dump(), status_code=503)
        return Healthz(status="ok", version=__version__, run_id=pub.run_id, as_of=pub.snapshot["as_of"])

    def _months(rows: list[dict], start: str | None, end: str | None) -> list[dict]:
        return [r for r in rows if (start is None or r["month"] >= start) and (end is None or r["month"] <= end)]

    month_pattern = r"^\d{4}-(0[1-9]|1[0-2])$"

    @app.get("/api/finance/summary", response_model=FinanceSummary, dependencies=[require("finance.public")])
    def finance_summary():
        pub = service.publication()
        return {**pub.finance["summary"], "run_id": pub.run_id, "snapshot": pub.snapshot}

    @app.get("/api/finance/mrr", response_model=Rows, dependencies=[require("finance")])
    def finance_mrr(
        by: str | None = Query(None, pattern="^tier$"),
        from_: str | None = Query(None, alias="from", pattern=month_pattern, description="first month, YYYY-MM"),
        to: str | None = Query(None, pattern=month_pattern, description="last month, YYYY-MM"),
    ):
        pub = service.publication()
        rows = pub.finance["mrr_by_tier" if by else "mrr"]
        return Rows(as_of=pub.snapshot["as_of"], run_id=pub.run_id, rows=_months(rows, from_, to))

    @app.get("/api/finance/movements", response_model=Rows, dependencies=[require("finance")])
    def finance_movements(
        by: str | None = Query(None, pattern="^tier$"),
        from_: str | None = Query(None, alias="from", pattern=month_pattern, description="first month, YYYY-MM"),
        to: str | None = Query(None, pattern=month_pattern, description="last month, YYYY-MM"),
    ):
        pub = service.publication()
        rows = pub.finance["movements_by_tier" if by else "movements"]
        return Rows(as_of=pub.snapshot["as_of"], run_id=pub.run_id, rows=_months(rows, from_, to))

    @app.get("/api/finance/forecast", response_model=ForecastOut, dependencies=[require("finance.public")])
    def finance_forecast():
        pub = service.publication()
        fc = pub.finance["forecast"]
        return {**fc, "run_id": pub.run_id}

    @app.get("/api/finance/unit-economics", response_model=Rows, dependencies=[require("finance.public")])
    def finance_unit_economics():
        pub = service.publication()
        return Rows(as_of=pub.snapshot["as_of"], run_id=pub.run_id, rows=pub.finance["unit_economics"])

    @app.get("/api/finance/retention", dependencies=[require("finance.public")])
    def finance_retention() -> dict[str, Any]:
        pub = service.publication()
        return {"as_of": pub.snapshot["as_of"], "run_id": pub.run_id, **pub.finance["retention"]}

    @app.get("/api/customers/health", response_model=HealthPage, dependencies=[require("customers")])
    def customers_health(
        tier: Tier | None = None,
        band: Band | None = None,
        page: int = Query(1, ge=1, le=100_000),
        page_size: int = Query(100, ge=1, le=1000),
    ):
        pub = service.publication()
        rows = [
            r
            for r in service.all_health(pub)
            if (tier is None or r["tier"] == tier.value) and (band is None or r["band"] == band.value)
        ]
        start = (page - 1) * page_size
        return HealthPage(
            as_of=pub.snapshot["as_of"],
            run_id=pub.run_id,
            page=page,
            page_size=page_size,
            total=len(rows),
            accounts=rows[start : start + page_size],
        )

    @app.get("/api/customers/at-risk", response_model=Rows, dependencies=[require("customers")])
    def customers_at_risk(limit: int = Query(100, ge=1, le=10_000)):
        pub = service.publication()
        return Rows(as_of=pub.snapshot["as_of"], run_id=pub.run_id, rows=pub.at_risk[:limit])

    @app.get("/api/customers/{account_id}", dependencies=[require("customers")])
    def customer(account_id: str = PathParam(max_length=200)) -> dict[str, Any]:
        pub = service.publication()
        row = service.health_row(pub, account_id)
        if row is None:
            raise HTTPException(404, f"no active account {account_id!r} in run {pub.run_id}")
        risk = pub.risk_by_id.get(account_id, {})
        return {
            "account_id": account_id,
            "run_id": pub.run_id,
            "health": row,
            "churn_probability_3m": risk.get("p_churn_3m"),
            "arr": risk.get("arr"),
            "drivers": risk.get("reasons", []),
            "recommendation": {k: risk.get(k) for k in ("playbook", "action", "owner", "due_days")},
        }

    @app.post("/api/events", status_code=202, response_model=EventsAccepted, dependencies=[require("events")])
    async def post_events(body: EventsIn):
        if len(body.events) > MAX_EVENTS:
            raise HTTPException(413, f"at most {MAX_EVENTS:,} events per request")
        pub = service.publication()
        clean, errors, updates = await run_in_threadpool(service.ingest, pub, body.events)
        if errors:
            return JSONResponse(
                {
                    "detail": "invalid events; nothing of this batch was stored",
                    "errors": errors[:200],
                    "error_count": len(errors),
                },
                status_code=422,
            )
        return EventsAccepted(accepted=len(clean), health_updates=updates)

    @app.websocket("/ws/customer-health")
    async def customer_health_feed(
        websocket: WebSocket, token: str | None = None, tier: str | None = None, band: str | None = None
    ):
        record = service.tokens.lookup(_token_from(websocket.headers, token))
        if record is None or "feed" not in PERMISSIONS[record.role]:
            status = 401 if record is None else 403
            with contextlib.suppress(Exception):
                await websocket.send_denial_response(
                    JSONResponse({"detail": "unauthorized" if status == 401 else "forbidden"}, status_code=status)
                )
                return
            await websocket.close(code=4401 if status == 401 else 4403)
            return
        pub = service.watcher.current()
        await websocket.accept()
        if pub is None:
            await websocket.send_json({"type": "error", "message": "nothing published yet"})
            await websocket.close(code=1013)
            return
        tiers = set(tier.split(",")) if tier else None
        bands = set(band.split(",")) if band else None
        client = service.feed.client(websocket, tiers, bands)  # holds updates until the snapshot is out
        pump = None
        try:
            rows = [r for r in service.all_health(pub) if client.wants(r)]
            await websocket.send_text(
                json.dumps(
                    {"type": "snapshot", "run_id": pub.run_id, "as_of": pub.snapshot["as_of"], "accounts": rows},
                    default=str,
                )
            )
            client.start()
            pump = asyncio.create_task(client.pump())
            while not pump.done():
                receive = asyncio.create_task(websocket.receive_text())
                done, _ = await asyncio.wait({receive, pump}, return_when=asyncio.FIRST_COMPLETED)
                if receive not in done:
                    receive.cancel()
                    break
                receive.result()  # clients may send pings; ignored
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            service.feed.remove(client)
            if pump is not None:
                pump.cancel()

    return app


def server_config(app: FastAPI, host: str, port: int):
    """How ``cfx serve`` runs the app under uvicorn.

    The sans-I/O websockets protocol lets the feed write frames straight to each connection
    (:mod:`cfxlib.api.feed`). No permessage-deflate: compressing every small JSON message for
    every client costs far more CPU than it saves on the wire, and uncompressed frames can be
    encoded once for all clients."""
    import uvicorn

    return uvicorn.Config(
        ExposeServerSend(app),
        host=host,
        port=port,
        log_level="warning",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
    )


def serve(home: Home, host: str, port: int, feed_buffer_bytes: int = MAX_BUFFER_BYTES) -> None:
    import uvicorn

    logging.getLogger("uvicorn.access").disabled = True  # request lines can carry ?token=
    uvicorn.Server(server_config(create_app(home, feed_buffer_bytes), host, port)).run()
