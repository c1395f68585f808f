"""`cfx serve --workers 2` with a real redis-server between the workers: every feed client gets
every change once whichever worker took the POST; a worker killed with SIGKILL leaves the other's
clients receiving and its own clients reconnect to a correct snapshot; with Redis stopped, POSTs
still succeed and are durable, /healthz says degraded, and all recovers when Redis returns."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time

import httpx
import pytest
import websockets

from cfxlib.store.eventlog import EventLog
from tests.integration.test_api import Server, token
from tests.integration.test_interventions import nps
from tests.servers import RedisServer

pytestmark = pytest.mark.xdist_group("pipeline")


class Client:
    """A feed client: its worker (from the snapshot), the newest state per account, every update."""

    def __init__(self, ws, snapshot: dict):
        self.ws, self.worker = ws, snapshot["worker"]
        self.state = {r["account_id"]: r for r in snapshot["accounts"]}
        self.updates: list[dict] = []

    async def read_until(self, done, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not done(self) and time.monotonic() < deadline:
            try:
                message = json.loads(await asyncio.wait_for(self.ws.recv(), 0.5))
            except TimeoutError:
                continue
            if message["type"] == "update":
                self.updates.append(message)
                self.state[message["account_id"]] = message

    def causes(self) -> list[str]:
        return [u["cause"]["response_id"] for u in self.updates]


async def connect(url: str, analyst: str) -> Client:
    ws = await websockets.connect(f"{url.replace('http', 'ws')}/ws/customer-health?token={analyst}", max_size=None)
    return Client(ws, json.loads(await asyncio.wait_for(ws.recv(), 30)))


async def clients_on_every_worker(url: str, analyst: str, each: int = 2) -> list[Client]:
    """Connect until each of the two workers serves ``each`` clients. The workers share one
    listening socket and the idle one accepts: a worker still busy (loading the publication on a
    loaded machine) takes none, so keep connecting, a little apart, for up to 60 s."""
    clients: list[Client] = []
    deadline = time.monotonic() + 60
    workers: set = set()
    while time.monotonic() < deadline and len(clients) < 200:
        workers = {c.worker for c in clients}
        if len(workers) >= 2 and all(sum(c.worker == w for c in clients) >= each for w in workers):
            return clients
        clients.append(await connect(url, analyst))
        await asyncio.sleep(0.1)
    raise AssertionError(f"connections all went to {workers}")


def post(url: str, ingest: str, events: list[dict]) -> httpx.Response:
    with httpx.Client() as http:  # a new connection each time: the kernel picks the worker
        return http.post(url + "/api/events", json={"events": events}, headers={"Authorization": f"Bearer {ingest}"})


def healthz_by_worker(url: str, tries: int = 30) -> dict[int, dict]:
    """/healthz of each worker that answered one of ``tries`` new connections."""
    seen: dict[int, dict] = {}
    for _ in range(tries):
        try:
            with httpx.Client() as http:
                body = http.get(url + "/healthz", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            continue
        seen[body["pid"]] = body
    return seen


def test_two_workers_share_one_feed_through_redis(published_copy):
    home = published_copy
    redis = RedisServer().start()
    server = Server(home, {"CFX_BROKER__URL": redis.url}, args=("--workers", "2")).start()
    try:
        analyst, ingest = token(home, "analyst"), token(home, "ingest")
        auth = {"Authorization": f"Bearer {analyst}"}
        accounts = [
            r["account_id"]
            for r in httpx.get(server.url + "/api/customers/health?page_size=60", headers=auth).json()["accounts"]
        ]

        async def every_change_once() -> tuple[list[Client], set[str], set[int]]:
            clients = await clients_on_every_worker(server.url, analyst)
            changed: set[str] = set()  # events that changed their account's score: one update each
            takers: set[int] = set()
            for i, account in enumerate(accounts[:40] * 2):  # a new connection per POST: both workers take some
                if i >= 16 and len(takers) == 2:
                    break
                event = nps(account, 0 if i % 2 else 10, "w")
                answer = post(server.url, ingest, [event])
                assert answer.status_code == 202
                takers.add(answer.json()["worker"])
                if answer.json()["health_updates"]:
                    changed.add(event["response_id"])
            await asyncio.gather(*(c.read_until(lambda c: changed <= set(c.causes()), 15) for c in clients))
            return clients, changed, takers

        clients, changed, takers = asyncio.run(every_change_once())
        workers = {c.worker for c in clients}
        assert len(workers) == 2 and takers == workers, (workers, takers)
        assert len(changed) >= 8  # the test did change scores
        for c in clients:
            got = [cause for cause in c.causes() if cause.startswith("w-")]
            assert sorted(got) == sorted(changed), f"a client of worker {c.worker} got {len(got)} of {len(changed)}"
        for account in accounts[:40]:
            api = httpx.get(server.url + f"/api/customers/{account}", headers=auth).json()["health"]
            assert all(c.state[account]["health_score"] == api["health_score"] for c in clients), account

        # SIGKILL one worker: the other's clients keep receiving; the killed one's clients reconnect
        victim = next(iter(workers))

        async def after_kill() -> None:
            opened: list[Client] = []
            while sum(c.worker != victim for c in opened) < 2 and len(opened) < 60:
                opened.append(await connect(server.url, analyst))
            os.kill(victim, signal.SIGKILL)
            survivors = [c for c in opened if c.worker != victim]
            assert len(survivors) >= 2, "connections all went to one worker"
            event = nps(accounts[50], 0, "after-kill")
            deadline = time.monotonic() + 20
            while (answer := post(server.url, ingest, [event])).status_code != 202 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert answer.status_code == 202 and answer.json()["health_updates"] == 1
            await asyncio.gather(*(c.read_until(lambda c: event["response_id"] in c.causes(), 10) for c in survivors))
            assert all(event["response_id"] in c.causes() for c in survivors)
            # a client of the killed worker reconnects (to the survivor or its replacement): a correct snapshot
            again = await connect(server.url, analyst)
            api = httpx.get(server.url + f"/api/customers/{accounts[50]}", headers=auth).json()["health"]
            assert again.state[accounts[50]]["health_score"] == api["health_score"]
            for c in [*opened, again]:
                with contextlib.suppress(Exception):  # the killed worker's clients are closed already
                    await c.ws.close()

        asyncio.run(after_kill())

        # Redis stops: POSTs still succeed and are durable; /healthz says degraded; it recovers
        redis.stop()
        deadline = time.time() + 20
        while time.time() < deadline:
            states = {pid: (b.get("broker") or {}).get("status") for pid, b in healthz_by_worker(server.url).items()}
            if len(states) == 2 and set(states.values()) == {"degraded"}:
                break
            time.sleep(0.5)
        assert set(states.values()) == {"degraded"} and len(states) == 2, states
        assert all(b["healthy"] is False for b in healthz_by_worker(server.url, 6).values())

        async def while_redis_is_down() -> str:
            clients = await clients_on_every_worker(server.url, analyst, each=1)
            event = nps(accounts[51], 0, "no-redis")
            answer = post(server.url, ingest, [event])
            assert answer.status_code == 202 and answer.json()["health_updates"] == 1
            # the log is followed without the broker too (every 0.25 s)
            await asyncio.gather(*(c.read_until(lambda c: event["response_id"] in c.causes(), 10) for c in clients))
            assert all(event["response_id"] in c.causes() for c in clients)
            for c in clients:
                await c.ws.close()
            return event["response_id"]

        stored = asyncio.run(while_redis_is_down())
        assert stored in {e.get("response_id") for e in EventLog(home / "events").read()}

        redis = RedisServer(redis.port).start()
        deadline = time.time() + 20
        while time.time() < deadline:
            states = {pid: (b.get("broker") or {}).get("status") for pid, b in healthz_by_worker(server.url).items()}
            if set(states.values()) == {"ok"}:
                break
            time.sleep(0.5)
        assert set(states.values()) == {"ok"}, states
    finally:
        server.stop()
        redis.stop()


def test_up_starts_redis_and_two_workers_and_restarts_a_killed_service(published_copy):
    """`cfx up` with CFX_BROKER__URL on this machine where nothing answers: redis-server runs
    under supervisord; `cfx health` and /healthz check the broker; a service killed with SIGKILL
    leaves no worker behind and comes back answering on its port; `cfx down` leaves nothing."""
    from cfxlib.core.processes import pid_alive
    from tests.conftest import run_cfx
    from tests.servers import free_port

    home, port = published_copy, free_port()
    env = {
        "CFX_SERVICE__PORT": str(port),
        "CFX_DASHBOARDS__PORT": str(free_port()),
        "CFX_BROKER__URL": f"redis://127.0.0.1:{free_port()}/0",
        "CFX_SERVICE__WORKERS": "2",
    }

    def status() -> dict[str, dict]:
        return {p["name"]: p for p in json.loads(run_cfx("status", "--json", home=home, env=env).stdout)}

    up = run_cfx("up", "--detach", home=home, env=env, timeout=300)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        procs = status()
        assert set(procs) == {"cfx-redis", "cfx-serve", "cfx-dashboards", "cfx-scheduler"}
        assert all(p["state"] == "RUNNING" for p in procs.values())
        deadline = time.time() + 20
        while time.time() < deadline:
            found = healthz_by_worker(f"http://127.0.0.1:{port}")
            brokers = {pid: (b.get("broker") or {}).get("status") for pid, b in found.items()}
            if len(brokers) == 2 and set(brokers.values()) == {"ok"}:
                break
            time.sleep(0.5)
        assert len(brokers) == 2 and set(brokers.values()) == {"ok"}, brokers
        health = json.loads(run_cfx("health", "--json", home=home, env=env).stdout)
        checks = {c["name"]: c for c in health["checks"]}
        assert checks["broker"]["ok"] and checks["cfx-serve"]["ok"], checks
        # SIGKILL the service: its workers go with it and the replacement takes the port
        parent, workers = procs["cfx-serve"]["pid"], set(brokers)
        os.kill(parent, signal.SIGKILL)
        deadline = time.time() + 60
        while time.time() < deadline:
            serve = status()["cfx-serve"]
            answering = set(healthz_by_worker(f"http://127.0.0.1:{port}", 10)) if serve["state"] == "RUNNING" else set()
            if serve["pid"] != parent and answering and not answering & workers:
                break
            time.sleep(0.5)
        assert serve["pid"] != parent and answering and not answering & workers
        assert not any(pid_alive(w) for w in workers), "a worker outlived its killed parent"
        pids = [p["pid"] for p in status().values()]
    finally:
        down = run_cfx("down", home=home, env=env, timeout=120)
    assert down.returncode == 0
    assert not any(pid_alive(pid) for pid in pids), "cfx down left a process behind"
