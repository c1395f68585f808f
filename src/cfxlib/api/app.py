"""The HTTP and WebSocket service (FastAPI), started by ``cfx serve``.

It serves the latest publication read-only (see :mod:`cfxlib.api.publication`), accepts live
events durably (:mod:`cfxlib.api.events`), keeps customer health current with the incremental
:class:`~cfxlib.customers.health.HealthScorer`, and pushes changes to ``/ws/customer-health`` clients
(:mod:`cfxlib.api.feed`). Every route except ``/healthz`` needs a bearer token; roles are in
:mod:`cfxlib.api.auth`; models in :mod:`cfxlib.api.models`.

Requests never compute what a publication fixed: finance answers are encoded once per
publication and served as bytes; routes are ``async`` and do no I/O beyond one ``stat`` of the
token file, and a background thread loads new publications.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from cfxlib import __version__
from cfxlib.api.access_log import AccessLog
from cfxlib.api.access_log import configure as configure_access_log
from cfxlib.api.auth import PERMISSIONS, PUBLIC, Scope, TokenGate, TokenStore, bearer_token, roles_for
from cfxlib.api.broker import POLL_DEGRADED_S, POLL_S, Broker
from cfxlib.api.events import events_json_schema, example_events, validate_batch
from cfxlib.api.feed import MAX_BUFFER_BYTES, STALL_S, ExposeServerSend, Feed
from cfxlib.api.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from cfxlib.api.metrics import MetricsMiddleware, ServiceMetrics
from cfxlib.api.models import (
    AtRisk,
    Band,
    BookHistory,
    ChurnDistribution,
    Cta,
    CtaList,
    CtaStatus,
    CtaUpdate,
    CustomerDetail,
    Engagement,
    EventsAccepted,
    EventsIn,
    EventsRejected,
    FinanceSummary,
    Forecast,
    HealthCheck,
    HealthHistory,
    HealthPage,
    Healthz,
    Movements,
    MrrSeries,
    Ops,
    Pilot,
    PilotIn,
    Pilots,
    Retention,
    RiskTrend,
    Tier,
    UnitEconomics,
    responses,
)
from cfxlib.api.publication import Publication, PublicationWatcher
from cfxlib.contract.schemas import TABLES
from cfxlib.core.errors import UserError
from cfxlib.core.home import Home
from cfxlib.core.settings import load_settings
from cfxlib.core.urls import without_password
from cfxlib.customers import health
from cfxlib.interventions import engine, notices
from cfxlib.ops import probes
from cfxlib.store import lake
from cfxlib.store.eventlog import EventLog
from cfxlib.store.pilots import PilotStore

log = logging.getLogger("cfx.api")
MAX_BODY_BYTES = 1_000_000
MAX_EVENTS = 5_000
PUBLISH_EVERY = 500
"""Events scored together and handed to the feed at once (well under 0.1 s of scoring). Each
account changed by a part gets one update, its state after the part, whose ``cause`` is the
part's last event for that account."""
SECURED = {"security": [{"bearer": []}]}
"""OpenAPI: the route needs ``Authorization: Bearer TOKEN``."""


def needs(scope: str) -> dict:
    """Route keywords declaring who may call it: the :class:`~cfxlib.api.auth.Scope` dependency
    (enforced by :class:`~cfxlib.api.auth.TokenGate` before routing and by the dependency itself),
    and the OpenAPI security with the roles it admits (``x-cfx-roles``). A route without it is
    refused to every role."""
    extra = {} if scope == PUBLIC else {**SECURED, "x-cfx-roles": roles_for(scope)}
    return {"dependencies": [Depends(Scope(scope))], "openapi_extra": extra}


CHECKS_TTL_S = 5.0
"""How long /healthz reuses its local checks (they open the warehouse and read state files)."""
MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
ByTier = Annotated[str | None, Query(pattern="^tier$", description="'tier' for one row per tier and month")]
FromMonth = Annotated[str | None, Query(alias="from", pattern=MONTH_PATTERN, description="first month, YYYY-MM")]
ToMonth = Annotated[str | None, Query(pattern=MONTH_PATTERN, description="last month, YYYY-MM")]


def _json(model: BaseModel, status_code: int = 200) -> Response:
    return Response(model.model_dump_json().encode(), media_type="application/json", status_code=status_code)


class Service:
    """State shared by the routes: home, tokens, publication, events, scorer and feed clients."""

    def __init__(self, home: Home, feed_buffer_bytes: int = MAX_BUFFER_BYTES, feed_stall_s: float | None = None):
        self.home = home
        settings = load_settings()
        self.tokens = TokenStore(home.tokens)
        self.watcher = PublicationWatcher(home.published)
        self.watcher.listeners.append(self.on_publication)
        # with a broker, several processes write the log and each applies all of it in order
        self.shared = settings.broker.url is not None
        self.events = EventLog(home.events, shared=self.shared)
        self.applied: tuple[int, int] | None = None  # the log's mark up to which the scorer has it
        self.broker: Broker | None = None
        self.pilots = PilotStore(home.pilots)
        self.scorer: health.HealthScorer | None = None
        self.scorer_target: str | None = None
        self.live: dict[str, dict] = {}  # account -> health after live events, for ``scorer_target``
        self.feed = Feed(feed_buffer_bytes, feed_stall_s or settings.service.feed_stall_s)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._scoring = threading.RLock()
        self.settings = settings
        self.ctas = notices.store_for(home)
        self.cta_rules = notices.load_rules(home)
        self.cta_config = notices.config(self.settings)
        self.owner_emails: dict[str, str] = {}
        self._flushing = threading.Lock()
        self._checks: tuple[float, list[HealthCheck]] | None = None

    async def local_checks(self) -> list[HealthCheck]:
        now = time.monotonic()
        if self._checks is None or now - self._checks[0] > CHECKS_TTL_S:
            found = await run_in_threadpool(probes.local_checks, self.home, load_settings())
            self._checks = (now, [HealthCheck(**c.as_dict()) for c in found])
        return self._checks[1]

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
            con = lake.connect_embedded(self.home)
            try:
                scorer = health.HealthScorer.from_warehouse(con, pub.as_of_date)
                self.owner_emails = notices.owner_emails(con)
            finally:
                con.close()
            touched: set[str] = set()
            stored, end = self.events.read_checkpointed()
            for position, event in enumerate(stored, 1):
                try:
                    touched.add(scorer.apply(event["table"], event))
                except Exception as exc:  # noqa: BLE001 - logged with its place in the log, never dropped silently
                    log.error(
                        "stored event %d (%s) could not be replayed into live health: %s: %s",
                        position,
                        event.get("table"),
                        type(exc).__name__,
                        exc,
                    )
            # What clients see must not depend on a restart: accounts with stored events get
            # their live scores now, not at their next event.
            replayed = sorted(a for a in touched if a in pub.health_by_id)
            live = {r["account_id"]: r for r in scorer.score_many(replayed, pub.as_of_date)} if replayed else {}
            self.scorer, self.scorer_target, self.live = scorer, pub.target, live
            self.applied = (end["segment"], end["offset"])
            # The publication and scorer state live as long as the publication: keep them out of
            # the cyclic collector's full passes, which otherwise stall requests for 100+ ms.
            # (Unfreeze first, so cycles left by the previous publication can still be freed.)
            gc.unfreeze()
            gc.collect()
            gc.freeze()
        return self.scorer

    def on_publication(self, pub: Publication) -> None:
        """A new publication was loaded (watcher thread): rebuild the scorer, resync feed clients."""
        with contextlib.suppress(Exception):  # a broken warehouse must not stop serving; events retry
            self.ensure_scorer(pub)
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.feed.resync, lambda client: self.snapshot(pub, client.wants))

    def snapshot(self, pub: Publication, wants: Callable[[dict], bool]) -> dict:
        """The feed's first message: current health of the accounts a client asked for."""
        rows = [r for r in self.all_health(pub) if wants(r)]
        return {
            "type": "snapshot",
            "run_id": pub.run_id,
            "as_of": pub.snapshot["as_of"],
            "worker": os.getpid(),  # which process serves this client (several with --workers)
            "accounts": rows,
        }

    def cached(self, pub: Publication, key: str, build: Callable[[], BaseModel]) -> Response:
        """A response fixed by the publication, validated and encoded on first use."""
        body = pub.responses.get(key)
        if body is None:
            body = pub.responses[key] = build().model_dump_json().encode()
        return Response(body, media_type="application/json")

    def ingest(self, pub: Publication, events: list, timing: dict[str, float] | None = None):
        """Validate a posted batch and, when every event passed, :meth:`accept` it (one worker
        thread for both). Returns (clean events, errors, health changes).

        ``timing``, when given, receives each stage's duration in milliseconds: ``validate``,
        ``lock`` (waiting for other batches), ``store`` (writing to the log), ``score`` and
        ``sync`` (waiting for the disk)."""
        timing = {} if timing is None else timing
        start = time.perf_counter()
        clean, errors = validate_batch(events, pub.accounts)
        timing["validate"] = 1000 * (time.perf_counter() - start)
        if errors:
            return [], errors, 0
        return clean, [], self.accept(pub, clean, timing)

    def accept(self, pub: Publication, events: list[dict], timing: dict[str, float] | None = None) -> int:
        """Store validated events durably, score them, and publish changed scores to the feed.

        Runs in a worker thread. One lock keeps writing, scoring and publishing in one order, so
        concurrent batches reach the log and every client in the order they were scored. The
        events are written to the log (the kernel has them: a crash of this process loses
        nothing) before they are scored and published; the flush to disk is awaited after the
        lock, so this returns, and the POST answers 202, only once they are on disk, while a
        slow flush does not hold up updates. Returns the number of health changes; ``timing``
        as in :meth:`ingest` plus ``sync`` (waiting for the disk)."""
        timing = {} if timing is None else timing
        start = time.perf_counter()
        with self._scoring:
            scorer = self._ensure_scorer(pub)  # before the write: a rebuild replays the log without this batch
            locked = time.perf_counter()
            position, first_mark, end_mark = self.events.write_marked(events)
            stored = time.perf_counter()
            timing["lock"], timing["store"] = 1000 * (locked - start), 1000 * (stored - locked)
            if self.shared and self.applied is not None and self.applied < first_mark:
                self._catch_up(pub, scorer, first_mark)  # other workers' events come first, as in the log
            changes, ctas = 0, []
            for first in range(0, len(events), PUBLISH_EVERY):  # big batches go out in parts: first updates within 1 s
                part = events[first : first + PUBLISH_EVERY]
                scored_rows, messages = self._score(pub, scorer, part)
                # calls to action first: a CTA a batch opens leaves before (and with) its updates
                changes += len(messages)
                opened = self.evaluate_interventions(pub, scored_rows, part)
                ctas += opened
                if (opened or messages) and self.loop is not None:
                    self.loop.call_soon_threadsafe(self.feed.publish, opened + messages)
            self.applied = end_mark
            if self.broker is not None and self.loop is not None:  # the other workers catch up from the log
                asyncio.run_coroutine_threadsafe(self.broker.publish({"end": end_mark, "messages": ctas}), self.loop)
            scored = time.perf_counter()
            timing["score"] = 1000 * (scored - stored)
        self.events.sync(position)
        timing["sync"] = 1000 * (time.perf_counter() - scored)
        return changes

    def _score(
        self, pub: Publication, scorer: health.HealthScorer, part: list[dict], replay: bool = False
    ) -> tuple[list[dict], list[dict]]:
        """Apply ``part`` to the scorer (lock held): (the touched accounts' new rows, the update
        messages of those whose score changed). ``replay``: events another worker stored, whose
        failure to apply is logged, not raised (they were accepted already)."""
        last: dict[str, dict] = {}  # account -> its latest event in this part
        for event in part:
            try:
                last[scorer.apply(event["table"], event)] = event
            except Exception as exc:  # noqa: BLE001 - see replay
                if not replay:
                    raise
                log.error("stored event (%s) could not be applied: %s: %s", event.get("table"), type(exc).__name__, exc)
        messages = []
        # each account's windows reach its newest data (see HealthScorer)
        scored_rows = scorer.score_many(list(last), pub.as_of_date) if last else []
        for row in scored_rows:
            account_id = row["account_id"]
            before = self.health_row(pub, account_id)
            self.live[account_id] = row
            if before is None or before.get("health_score") != row.get("health_score"):
                event = last[account_id]
                cause = {"table": event["table"], **{k: event[k] for k in TABLES[event["table"]].key}}
                messages.append({"type": "update", "sent_at": time.time(), "cause": cause, **row})
        return scored_rows, messages

    def _catch_up(self, pub: Publication, scorer: health.HealthScorer, until: tuple[int, int]) -> int:
        """Apply what other workers stored between :attr:`applied` and ``until`` (lock held) and
        send the updates to this worker's clients. Returns the number of health changes."""
        events = self.events.read_between(self.applied, until)
        self.applied = until
        changes = 0
        for first in range(0, len(events), PUBLISH_EVERY):
            _, messages = self._score(pub, scorer, events[first : first + PUBLISH_EVERY], replay=True)
            changes += len(messages)
            if messages and self.loop is not None:
                self.loop.call_soon_threadsafe(self.feed.publish, messages)
        return changes

    def catch_up(self, until: tuple[int, int] | None = None) -> int:
        """Shared log (a broker is configured): apply what other workers stored since this one
        last looked, up to ``until`` or the log's end (a worker thread). Returns the changes."""
        pub = self.watcher.current()
        if not self.shared or pub is None:
            return 0
        with self._scoring:
            scorer = self._ensure_scorer(pub)
            end = until or self.events.end_mark(self.applied)
            if end is None or self.applied is None or end <= self.applied:
                return 0
            return self._catch_up(pub, scorer, end)

    async def fresh(self) -> None:
        """Before answering from live health in a shared deployment: take in the other workers'
        events first, so any worker answers the same (a look at the log's end; no-op alone)."""
        if self.shared:
            await run_in_threadpool(self.catch_up)

    async def on_notice(self, notice: dict) -> None:
        """Another worker stored events: its calls to action go to this worker's clients first,
        then the updates of catching up to the notice's mark."""
        if notice.get("messages"):
            self.feed.publish(notice["messages"])
        await run_in_threadpool(self.catch_up, tuple(notice["end"]))

    async def follow_log(self) -> None:
        """Catch up at intervals too: a notice lost while the broker was away costs latency only."""
        while True:
            await asyncio.sleep(POLL_S if self.broker is not None and self.broker.status == "ok" else POLL_DEGRADED_S)
            try:
                await run_in_threadpool(self.catch_up)
            except Exception as exc:  # noqa: BLE001 - retried at the next interval
                log.warning("catching up with the event log failed: %s: %s", type(exc).__name__, exc)

    def evaluate_interventions(self, pub: Publication, rows: list[dict], events: list[dict]) -> list[dict]:
        """Evaluate the intervention rules for the accounts a part of a batch touched (scoring
        lock held): CTAs are stored durably, notifications queued, and the feed messages returned."""
        if not self.cta_rules or not rows:
            return []
        nps: dict[str, list[int]] = {}
        for event in events:
            if event["table"] == "nps_responses":
                nps.setdefault(event["account_id"], []).append(int(event["score"]))
        risk = pub.risk_by_id
        window = max((r.days or 0 for r in self.cta_rules if r.kind == "health_drop"), default=0)
        since = (pub.as_of_date - timedelta(days=window)).isoformat()
        signals = []
        for row in rows:
            account_id = row["account_id"]
            published = pub.health_by_id.get(account_id) or {}
            r = risk.get(account_id) or {}
            recent = [p["health_score"] for p in pub.history.get(account_id, []) if p["as_of"] >= since]
            reference = max([s for s in [published.get("health_score"), *recent] if s is not None], default=None)
            signals.append(
                engine.Signal(
                    account_id=account_id,
                    account_name=r.get("account_name") or row.get("account_name"),
                    tier=row.get("tier"),
                    health_score=row.get("health_score"),
                    band=row.get("band"),
                    reference_score=reference,
                    nps_scores=nps.get(account_id, []),
                    p_churn_3m=r.get("p_churn_3m"),
                    playbook=r.get("playbook"),
                    action=r.get("action"),
                    owner_email=self.owner_emails.get(account_id),
                )
            )
        changes = engine.evaluate(self.ctas, signals, self.cta_rules, self.cta_config)
        if not changes:
            return []
        if notices.notify_changes(self.home, self.settings, changes, demo=pub.source == "demo"):
            self.flush_soon()
        last: dict[str, dict] = {}  # the event behind each account's change: the message's cause
        for event in events:
            last[event["account_id"]] = event
        out = []
        for c in changes:
            if c.get("holdout"):
                continue
            event = last.get(c["account_id"])
            cause = {"table": event["table"], **{k: event[k] for k in TABLES[event["table"]].key}} if event else None
            out.append({"type": "intervention", "sent_at": time.time(), "cause": cause, **feed_view(c)})
        return out

    def flush_soon(self) -> None:
        """Deliver queued notifications in the background (the outbox keeps them if it fails)."""
        if not self._flushing.acquire(blocking=False):
            return

        def run() -> None:
            try:
                from cfxlib.notify.deliver import flush

                flush(self.home, self.settings)
            except Exception as exc:  # noqa: BLE001 - the scheduler's flush retries
                log.warning("notifications wait in the outbox: %s", exc)
            finally:
                self._flushing.release()

        threading.Thread(target=run, name="cfx-notify-flush", daemon=True).start()

    def _live(self, pub: Publication) -> dict[str, dict]:
        return self.live if self.scorer_target == pub.target else {}

    def health_row(self, pub: Publication, account_id: str) -> dict | None:
        return self._live(pub).get(account_id) or pub.health_by_id.get(account_id)

    def all_health(self, pub: Publication) -> list[dict]:
        live = self._live(pub)
        return [live.get(r["account_id"], r) for r in pub.health] if live else pub.health


def feed_view(cta: dict) -> dict:
    """A call to action as the feed sends it: without its history (which grows with every firing;
    ``GET /api/interventions/{id}`` has it), so a slow client's conflated backlog stays small."""
    return {k: v for k, v in cta.items() if k != "history"}


def churn_bins(rows, width: float = 0.1) -> list[dict]:
    """Accounts and ARR per tier and churn-probability bin of ``width``."""
    edges = [round(i * width, 10) for i in range(int(round(1 / width)))]
    out = {(t, e): {"accounts": 0, "arr": 0.0} for t in ("Starter", "Professional", "Enterprise") for e in edges}
    for r in rows:
        p, tier = r.get("p_churn_3m"), r.get("tier")
        if p is None or (tier, 0.0) not in out:
            continue
        edge = edges[min(int(p / width), len(edges) - 1)]
        out[(tier, edge)]["accounts"] += 1
        out[(tier, edge)]["arr"] += r.get("arr") or 0.0
    return [
        {"tier": t, "low": e, "high": round(e + width, 10), "accounts": v["accounts"], "arr": round(v["arr"], 2)}
        for (t, e), v in out.items()
    ]


def server_timing(timing: dict[str, float]) -> str:
    """A ``Server-Timing`` header value (W3C) from stage durations in milliseconds."""
    return ", ".join(f"{name};dur={ms:.2f}" for name, ms in timing.items())


def _complete_allow_headers(app: FastAPI) -> None:
    """A 405 names every method the path supports (RFC 9110), not only those of the first route
    Starlette matched: ``GET`` and ``POST /api/pilots`` are two routes of one resource."""
    from fastapi.exception_handlers import http_exception_handler
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.routing import Match

    async def handler(request, exc: StarletteHTTPException):
        response = await http_exception_handler(request, exc)
        if exc.status_code == 405:
            methods: set[str] = set()
            for route in app.router.routes:
                if route.matches(request.scope)[0] != Match.NONE and getattr(route, "methods", None):
                    methods |= set(route.methods)
            response.headers["Allow"] = ", ".join(sorted(methods))
        return response

    app.add_exception_handler(StarletteHTTPException, handler)


DOCS_ASSETS = "/docs/assets"


def _local_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI 5 (it reads OpenAPI 3.1) from the files the ``fastapi-offline``
    package ships, served by the service itself instead of a CDN."""
    from importlib.resources import files

    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount(DOCS_ASSETS, StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-assets")

    @app.get("/docs", include_in_schema=False, **needs(PUBLIC))
    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} — API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        )


def create_app(home: Home, feed_buffer_bytes: int = MAX_BUFFER_BYTES) -> FastAPI:
    service = Service(home, feed_buffer_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        service.loop = asyncio.get_running_loop()
        beat = asyncio.create_task(service.feed.heartbeats())
        ticks = asyncio.create_task(service.feed.ticks())
        await run_in_threadpool(service.events.open)  # recovers a torn tail, takes the writer lock
        await run_in_threadpool(validate_batch, example_events(), None)  # first use costs ~0.2 s; not on a request
        await run_in_threadpool(service.watcher.refresh)  # loads the publication and warms the scorer
        service.watcher.start()
        tasks = [beat, ticks]
        if service.shared:
            broker = service.settings.broker
            service.broker = Broker(broker.url, broker.channel, service.on_notice)
            tasks += [asyncio.create_task(service.broker.run()), asyncio.create_task(service.follow_log())]
        yield
        service.watcher.stop()
        for task in tasks:
            task.cancel()
        if service.broker is not None:
            await service.broker.close()
        service.events.close()

    app = FastAPI(
        title="cfx service",
        version=__version__,
        description="ChatterFix finance, customer health and live events. Bearer tokens: `cfx token create --role ROLE`.",
        lifespan=lifespan,
        max_body_size=MAX_BODY_BYTES,
        docs_url=None,  # served below from local files: no CDN, works offline
        redoc_url=None,
    )
    _local_docs(app)
    for route in app.router.routes:  # made by FastAPI or mounted: declared public here
        if getattr(route, "path", None) in (app.openapi_url, DOCS_ASSETS):
            route.cfx_scope = PUBLIC
    _complete_allow_headers(app)
    app.state.service = service
    app.state.feed_stall_s = service.feed.stall_s
    metrics = ServiceMetrics(home, lambda: len(service.feed.clients))
    app.state.tokens = service.tokens
    app.add_middleware(TokenGate, tokens=service.tokens, routes=lambda: app.router.routes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    base_openapi = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = base_openapi()
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["bearer"] = {"type": "http", "scheme": "bearer", "description": "`cfx token create --role ROLE`"}
            events = schema["components"]["schemas"]["EventsIn"]["properties"]["events"]
            events["items"] = events_json_schema()  # typed from the contract; parsed by cfx's own validation
        # The documented example batch must be one the service accepts: its account and date
        # come from the current publication (an example account that does not exist is refused).
        events = app.openapi_schema["components"]["schemas"]["EventsIn"]["properties"]["events"]
        pub = service.watcher.current()
        if pub is not None and pub.health:
            events["examples"] = [example_events(pub.health[0]["account_id"], pub.as_of_date.isoformat())]
        return app.openapi_schema

    app.openapi = openapi

    @app.get(
        "/healthz",
        response_model=Healthz,
        responses={503: {"model": Healthz, "description": "Nothing published yet."}},
        **needs(PUBLIC),
    )
    async def healthz():
        """Public and cheap: 200 when the service can serve; ``checks`` carry the local health
        checks of ``cfx health`` (computed at most every 5 seconds)."""
        pub = service.watcher.current()
        checks = await service.local_checks()
        broker = service.broker.as_dict() if service.broker is not None else None
        healthy = all(c.ok for c in checks) and (broker is None or broker["status"] == "ok")
        if pub is None:
            body = Healthz(
                status="nothing published", version=__version__, pid=os.getpid(), healthy=False, checks=checks
            )
            return JSONResponse(body.model_dump(), status_code=503)
        return Healthz(
            status="ok" if healthy else "degraded",
            version=__version__,
            pid=os.getpid(),
            run_id=pub.run_id,
            as_of=pub.as_of,
            healthy=healthy,
            checks=checks,
            broker=broker,
        )

    @app.get("/metrics", include_in_schema=False, **needs("any"))
    async def prometheus_metrics():
        """Prometheus metrics (any role's token; `bearer_token` in the scrape config)."""
        return Response(await run_in_threadpool(metrics.exposition), media_type=METRICS_CONTENT_TYPE)

    def _months(rows: list[dict], start: str | None, end: str | None) -> list[dict]:
        return [r for r in rows if (start is None or r["month"] >= start) and (end is None or r["month"] <= end)]

    def _series(pub: Publication, name: str, model: type[BaseModel], start: str | None, end: str | None):
        build = lambda: model(as_of=pub.as_of, run_id=pub.run_id, rows=_months(pub.finance[name], start, end))  # noqa: E731
        return service.cached(pub, name, build) if start is None and end is None else _json(build())

    @app.get(
        "/api/finance/summary",
        response_model=FinanceSummary,
        **needs("finance.public"),
        responses=responses(401, 403, 503),
    )
    async def finance_summary():
        pub = service.publication()
        return service.cached(
            pub,
            "summary",
            lambda: FinanceSummary(**pub.finance["summary"], run_id=pub.run_id, source=pub.source),
        )

    @app.get(
        "/api/finance/mrr", response_model=MrrSeries, **needs("finance.public"), responses=responses(401, 403, 422, 503)
    )
    async def finance_mrr(
        by: ByTier = None,
        from_: FromMonth = None,
        to: ToMonth = None,
    ):
        return _series(service.publication(), "mrr_by_tier" if by else "mrr", MrrSeries, from_, to)

    @app.get(
        "/api/finance/movements",
        response_model=Movements,
        **needs("finance.public"),
        responses=responses(401, 403, 422, 503),
    )
    async def finance_movements(
        by: ByTier = None,
        from_: FromMonth = None,
        to: ToMonth = None,
    ):
        return _series(service.publication(), "movements_by_tier" if by else "movements", Movements, from_, to)

    @app.get(
        "/api/finance/forecast", response_model=Forecast, **needs("finance.public"), responses=responses(401, 403, 503)
    )
    async def finance_forecast():
        pub = service.publication()
        return service.cached(pub, "forecast", lambda: Forecast(**{**pub.finance["forecast"], "run_id": pub.run_id}))

    @app.get(
        "/api/finance/unit-economics",
        response_model=UnitEconomics,
        **needs("finance.public"),
        responses=responses(401, 403, 503),
    )
    async def finance_unit_economics():
        return _series(service.publication(), "unit_economics", UnitEconomics, None, None)

    @app.get(
        "/api/finance/retention",
        response_model=Retention,
        **needs("finance.public"),
        responses=responses(401, 403, 503),
    )
    async def finance_retention():
        pub = service.publication()
        return service.cached(
            pub, "retention", lambda: Retention(as_of=pub.as_of, run_id=pub.run_id, **pub.finance["retention"])
        )

    @app.get("/api/ops", response_model=Ops, **needs("finance.public"), responses=responses(401, 403, 503))
    async def ops():
        """Service operations by month and, per service, in every month: uptime, latency, errors, AI calls."""
        pub = service.publication()
        return service.cached(
            pub,
            "ops",
            lambda: Ops(
                as_of=pub.as_of,
                run_id=pub.run_id,
                monthly=pub.ops.get("monthly", []),
                by_service=pub.ops.get("by_service", []),
            ),
        )

    @app.post(
        "/api/pilots",
        status_code=201,
        response_model=Pilot,
        **needs("customers"),
        responses=responses(400, 401, 403, 422),
    )
    async def create_pilot(body: PilotIn):
        """Record a pilot for a prospect (on disk before the answer); invalid fields get 422 naming them."""
        record = await run_in_threadpool(service.pilots.add, body.model_dump(mode="json"))
        return _json(Pilot(**record), status_code=201)

    @app.get("/api/pilots", response_model=Pilots, **needs("customers"), responses=responses(401, 403))
    async def list_pilots():
        """Every recorded pilot, oldest first."""
        return _json(Pilots(pilots=await run_in_threadpool(service.pilots.list)))

    @app.get(
        "/api/customers/health",
        response_model=HealthPage,
        **needs("customers"),
        responses=responses(401, 403, 422, 503),
    )
    async def customers_health(
        tier: Tier | None = None,
        band: Band | None = None,
        page: int = Query(1, ge=1, le=100_000),
        page_size: int = Query(100, ge=1, le=1000),
    ):
        pub = service.publication()
        await service.fresh()
        rows = [
            r
            for r in service.all_health(pub)
            if (tier is None or r["tier"] == tier.value) and (band is None or r["band"] == band.value)
        ]
        start = (page - 1) * page_size
        return _json(
            HealthPage(
                as_of=pub.as_of,
                run_id=pub.run_id,
                page=page,
                page_size=page_size,
                total=len(rows),
                accounts=rows[start : start + page_size],
            )
        )

    @app.get(
        "/api/customers/at-risk", response_model=AtRisk, **needs("customers"), responses=responses(401, 403, 422, 503)
    )
    async def customers_at_risk(limit: int = Query(100, ge=1, le=10_000)):
        pub = service.publication()
        return _json(AtRisk(as_of=pub.as_of, run_id=pub.run_id, source=pub.source, rows=pub.at_risk[:limit]))

    @app.get(
        "/api/customers/at-risk-trend",
        response_model=RiskTrend,
        **needs("customers"),
        responses=responses(401, 403, 503),
    )
    async def at_risk_trend():
        """How the churn model's ARR at risk moved over the last six months, with what churned since."""
        pub = service.publication()
        trend = (pub.customers or {}).get("at_risk_trend") or {"trained_through": None, "points": [], "note": "none"}
        return service.cached(
            pub,
            "at_risk_trend",
            lambda: RiskTrend(
                as_of=pub.as_of,
                run_id=pub.run_id,
                current_arr_at_risk=pub.snapshot.get("arr_at_risk"),
                **{k: v for k, v in trend.items() if k != "current_arr_at_risk"},
            ),
        )

    @app.get(
        "/api/customers/churn-distribution",
        response_model=ChurnDistribution,
        **needs("customers"),
        responses=responses(401, 403, 503),
    )
    async def churn_distribution():
        """Accounts and ARR per tier and 10-point band of 3-month churn probability."""
        pub = service.publication()
        return service.cached(
            pub,
            "churn_distribution",
            lambda: ChurnDistribution(as_of=pub.as_of, run_id=pub.run_id, bins=churn_bins(pub.risk_by_id.values())),
        )

    def active_account(account_id: str) -> tuple[Publication, dict]:
        """The publication and the account's current health row, or 404."""
        pub = service.publication()
        row = service.health_row(pub, account_id)
        if row is None:
            raise HTTPException(404, f"no active account {account_id!r} in run {pub.run_id}")
        return pub, row

    @app.get(
        "/api/customers/health-trend",
        response_model=BookHistory,
        **needs("customers"),
        responses=responses(401, 403, 503),
    )
    async def health_trend():
        """Weekly mean health and accounts per band over the 90 days to the publication."""
        pub = service.publication()
        return service.cached(
            pub,
            "health_trend",
            lambda: BookHistory(
                as_of=pub.as_of,
                run_id=pub.run_id,
                points=pub.book_history,
                bands=health.load_config().bands.model_dump(),  # the limits the live scorer bands by
            ),
        )

    @app.get(
        "/api/customers/engagement",
        response_model=Engagement,
        **needs("customers"),
        responses=responses(401, 403, 422, 503),
    )
    async def customers_engagement(from_: FromMonth = None, to: ToMonth = None):
        """NPS and active users by month for the total and each tier (an older publication: none)."""
        pub = service.publication()
        rows = ((pub.customers or {}).get("kpis") or {}).get("engagement") or []
        return _json(Engagement(as_of=pub.as_of, run_id=pub.run_id, source=pub.source, rows=_months(rows, from_, to)))

    @app.get(
        "/api/customers/{account_id}/history",
        response_model=HealthHistory,
        **needs("customers"),
        responses=responses(401, 403, 404, 422, 503),
    )
    async def customer_history(account_id: str = PathParam(max_length=200)):
        """The account's weekly health over 90 days, then its current (live) score."""
        pub, row = active_account(account_id)
        points = list(pub.history.get(account_id, []))
        if (
            not points
            or points[-1]["as_of"] != row.get("as_of")
            or points[-1]["health_score"] != row.get("health_score")
        ):
            points.append({"as_of": row.get("as_of"), "health_score": row.get("health_score"), "band": row.get("band")})
        return _json(HealthHistory(as_of=pub.as_of, run_id=pub.run_id, account_id=account_id, points=points))

    @app.get(
        "/api/customers/{account_id}",
        response_model=CustomerDetail,
        **needs("customers"),
        responses=responses(401, 403, 404, 422, 503),
    )
    async def customer(account_id: str = PathParam(max_length=200)):
        await service.fresh()
        pub, row = active_account(account_id)
        risk = pub.risk_by_id.get(account_id, {})
        return _json(
            CustomerDetail(
                account_id=account_id,
                run_id=pub.run_id,
                health=row,
                churn_probability_3m=risk.get("p_churn_3m"),
                arr=risk.get("arr"),
                drivers=risk.get("reasons", []),
                recommendation={k: risk.get(k) for k in ("playbook", "action", "owner", "due_days")},
            )
        )

    @app.post(
        "/api/events",
        status_code=202,
        response_model=EventsAccepted,
        **needs("events"),
        responses=responses(400, 401, 403, 413, 422, 503, rejected=EventsRejected),
    )
    async def post_events(body: EventsIn, response: Response):
        if len(body.events) > MAX_EVENTS:
            raise HTTPException(413, f"at most {MAX_EVENTS:,} events per request")
        pub = service.publication()
        timing: dict[str, float] = {}
        start = time.perf_counter()
        try:
            clean, errors, updates = await run_in_threadpool(service.ingest, pub, body.events, timing)
        except OSError as exc:  # disk full, I/O error: say so instead of a bare 500
            log.error("live events could not be stored: %s", exc)
            raise HTTPException(
                503,
                f"the events could not be stored durably ({exc.strerror}); retry later (event keys make a retry safe)",
            ) from None
        timing["total"] = 1000 * (time.perf_counter() - start)
        response.headers["Server-Timing"] = server_timing(timing)
        if errors:
            return JSONResponse(
                {
                    "detail": "invalid events; nothing of this batch was stored",
                    "errors": errors[:200],
                    "error_count": len(errors),
                },
                status_code=422,
                headers={"Server-Timing": response.headers["Server-Timing"]},
            )
        metrics.events.inc(len(clean))
        return EventsAccepted(accepted=len(clean), health_updates=updates, worker=os.getpid())

    @app.get("/api/interventions", response_model=CtaList, responses=responses(401, 403, 422), **needs("customers"))
    async def list_interventions(
        status: Annotated[CtaStatus | None, Query(description="Only CTAs in this status.")] = None,
        account: Annotated[str | None, Query(max_length=200, description="Only this account's CTAs.")] = None,
        owner: Annotated[str | None, Query(max_length=320, description="Owner role or address.")] = None,
        rule: Annotated[str | None, Query(max_length=64, description="Only CTAs opened by this rule.")] = None,
    ):
        """Calls to action, soonest due first, then by priority (docs/interventions.md)."""
        rows = await run_in_threadpool(service.ctas.list, status, account, owner, rule)
        return CtaList(interventions=rows, total=len(rows))

    @app.get(
        "/api/interventions/{cta_id}", response_model=Cta, responses=responses(401, 403, 404, 422), **needs("customers")
    )
    async def get_intervention(cta_id: str = PathParam(max_length=64)):
        cta = await run_in_threadpool(service.ctas.get, cta_id)
        if cta is None:
            raise HTTPException(404, f"no intervention {cta_id!r}")
        return cta

    @app.patch(
        "/api/interventions/{cta_id}",
        response_model=Cta,
        responses=responses(400, 401, 403, 404, 422),
        **needs("customers.write"),
    )
    async def update_intervention(body: CtaUpdate, request: Request, cta_id: str = PathParam(max_length=64)):
        """Change a CTA's status (``in_progress``, ``snoozed`` with ``snooze_until``, ``done``) and/or
        add a note (its author is the token's name). Stored durably before the answer."""
        record = service.tokens.lookup(bearer_token(request.scope["headers"]))
        author = record.name if record else "unknown"
        try:
            cta = await run_in_threadpool(
                engine.update, service.ctas, cta_id, author, body.status, body.note, body.snooze_until
            )
        except engine.TransitionError as exc:
            return JSONResponse(
                {"detail": [{"loc": ["body", exc.field], "msg": str(exc), "type": "value_error"}]}, status_code=422
            )
        if cta is None:
            raise HTTPException(404, f"no intervention {cta_id!r}")
        if service.loop is not None and not cta.get("holdout"):
            message = {"type": "intervention", "change": "changed", "sent_at": time.time(), **feed_view(cta)}
            service.loop.call_soon_threadsafe(service.feed.publish, [message])
        return cta

    @app.websocket("/ws/customer-health", dependencies=[Depends(Scope("feed"))])
    async def customer_health_feed(
        websocket: WebSocket, token: str | None = None, tier: str | None = None, band: str | None = None
    ):
        record = service.tokens.lookup(bearer_token(websocket.scope["headers"]) or token)
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
        await service.fresh()  # a snapshot with what every worker stored
        client = service.feed.client(websocket, tiers, bands)  # holds updates until the snapshot is out
        pump = None
        try:
            await websocket.send_text(json.dumps(service.snapshot(pub, client.wants), default=str))
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


def server_config(app, host: str, port: int, ping_timeout_s: float = STALL_S):
    """How ``cfx serve`` runs the app under uvicorn.

    The sans-I/O websockets protocol lets the feed write frames straight to each connection
    (:mod:`cfxlib.api.feed`). No permessage-deflate: compressing every small JSON message for
    every client costs far more CPU than it saves on the wire, and uncompressed frames can be
    encoded once for all clients."""
    import uvicorn

    return uvicorn.Config(
        app if isinstance(app, str) else ExposeServerSend(app),  # a factory's name: it wraps itself
        host=host,
        port=port,
        log_level="warning",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        # uvicorn's keepalive closed a client that did not answer a ping within 20 s, so a reader
        # that paused (or lagged behind megabytes of buffers) was cut: the feed's own stall rule
        # (service.feed_stall_s) decides, and pings only find peers that are gone.
        ws_ping_interval=20.0,
        ws_ping_timeout=ping_timeout_s,
    )


def _quiet_uvicorn_access(access_log: bool) -> None:
    logging.getLogger("uvicorn.access").disabled = True  # request lines can carry ?token=: ours redacts
    if access_log:
        configure_access_log()
    else:
        logging.getLogger("cfx.access").disabled = True


def _die_with_parent() -> None:
    """Linux: this worker gets SIGTERM when the process that started it dies (even by SIGKILL),
    so no orphan keeps the port from the supervisor's replacement."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def worker_app():
    """One worker process of ``cfx serve --workers N`` (uvicorn imports this factory in each):
    the app for ``$CFX_HOME`` and the settings in the environment the parent passed on."""
    _die_with_parent()
    settings = load_settings()
    _quiet_uvicorn_access(settings.service.access_log)
    app = create_app(Home(settings.home), settings.service.feed_buffer_bytes)
    return ExposeServerSend(AccessLog(app))


class WorkersNeedBroker(UserError):
    """``--workers`` above 1 without ``CFX_BROKER__URL``."""


def serve(
    home: Home,
    host: str,
    port: int,
    feed_buffer_bytes: int = MAX_BUFFER_BYTES,
    access_log: bool = True,
    workers: int = 1,
) -> None:
    """Run the service until interrupted; print where it listens, then one access-log line per
    request on standard output (tokens redacted; ``access_log=False`` for none).

    ``workers`` > 1: that many processes share the port (uvicorn's supervisor restarts one that
    dies), the event log and, through the broker (``CFX_BROKER__URL``), one live feed."""
    import uvicorn

    _quiet_uvicorn_access(access_log)
    settings = load_settings()
    if workers > 1 and settings.broker.url is None:
        raise WorkersNeedBroker(
            f"--workers {workers} needs a broker so that every worker's clients get every change: set "
            "CFX_BROKER__URL (e.g. redis://127.0.0.1:6379/0; `cfx up` starts a local redis-server), or use 1 worker"
        )
    app = create_app(home, feed_buffer_bytes)
    app.state.service.events.open()  # before uvicorn: a second writer is a user error, not a startup traceback
    shown = f"[{host}]" if ":" in host else host
    print(
        f"cfx serve: listening on http://{shown}:{port} (API docs http://{shown}:{port}/docs; "
        f"WebSocket ws://{shown}:{port}/ws/customer-health); state {home.root}; "
        + (f"{workers} workers, broker {without_password(settings.broker.url)}; " if workers > 1 else "")
        + "Ctrl-C stops",
        flush=True,
    )
    if workers == 1:
        uvicorn.Server(server_config(AccessLog(app), host, port, app.state.feed_stall_s)).run()
        return
    app.state.service.events.close()  # the workers open it themselves
    from uvicorn.supervisors import Multiprocess

    os.environ["CFX_HOME"] = str(home.root)
    os.environ["CFX_SERVICE__FEED_BUFFER_BYTES"] = str(feed_buffer_bytes)
    os.environ["CFX_SERVICE__ACCESS_LOG"] = "true" if access_log else "false"
    config = server_config("cfxlib.api.app:worker_app", host, port, app.state.feed_stall_s)
    config.factory, config.workers = True, workers
    Multiprocess(config, sockets=[config.bind_socket()]).run()
