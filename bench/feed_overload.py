"""Benchmark: the live feed past its design load — conflation instead of lag, no silent cuts.

    .venv/bin/python bench/feed_overload.py [--rate 1000] [--seconds 60] [--parsers 10] [--fast 300]
                                            [--slow 100] [--paused 40] [--accounts 500]
                                            [--workers N] [--broker]

``--broker`` starts a throwaway ``redis-server`` and sets ``CFX_BROKER__URL``; ``--workers N``
(needs ``--broker``) runs ``cfx serve --workers N``. Memory is the whole process tree's.

A demo company is published and `cfx serve` started on 127.0.0.1. Feed clients in separate
processes: ``parsers`` decode every message (and time it against its POST), ``fast`` read raw
bytes as fast as they can, ``slow`` read 64 KB a second, ``paused`` read nothing until the burst
ends and then resume. One process posts NPS answers dated today at ``rate`` per second for
``seconds``. Measured: clients cut (an ``error`` or a closed connection), lagging notices,
conflated states, p99 from POST to arrival for the reading clients, how long a paused client
takes after resuming to hold every account's newest state, whether every client's final state
per account equals `/api/customers/{id}`, and the server's memory per client.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).parent))
import contextlib

from _measure import machine, now, update_section  # noqa: E402
from _wsload import RawFeedClient  # noqa: E402

CFX = str(Path(sys.executable).with_name("cfx"))
ACCOUNT = re.compile(rb'"account_id": "([^"]+)"')
SCORE = re.compile(rb'"health_score": ([0-9.]+)')
SENT = re.compile(rb'"sent_at": ([0-9.]+)')
TYPE = re.compile(rb'"type": "([a-z_]+)"')


class Reader(RawFeedClient):
    """A raw client that keeps, per account, the newest state it received (and counts kinds)."""

    def __init__(self, path: str, port: int, mode: str, resume_at: float, parse_every: int):
        super().__init__(path, port)
        self.mode, self.resume_at = mode, resume_at
        self.kinds: dict[str, int] = {}
        self.final: dict[str, tuple[float, float]] = {}  # account -> (score, arrival)
        self.latencies: list[float] = []
        self.conflated = 0
        self.window, self.window_bytes = 0, 0
        self.closed = False
        self.last_arrival = 0.0
        self.parse_every = parse_every
        self._n = 0
        self.error = ""
        self.last_seen = 0.0

    def connection_made(self, transport):
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.last_seen = time.time()
        before = len(self.messages)
        super().data_received(data)
        for arrived, payload in self.messages[before:]:
            kind = TYPE.search(payload)
            kind = kind.group(1).decode() if kind else "?"
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            if kind == "error" and not self.error:
                self.error = payload.decode(errors="replace")[:300]
            if kind == "update":
                account = ACCOUNT.search(payload).group(1).decode()
                self.final[account] = (float(SCORE.search(payload).group(1)), arrived)
                self.last_arrival = arrived
                self._n += 1
                if self.parse_every and self._n % self.parse_every == 0:
                    self.latencies.append(arrived - float(SENT.search(payload).group(1)))
                if b'"conflated"' in payload:
                    self.conflated += json.loads(payload).get("conflated", 0)
        del self.messages[:]  # nothing kept beyond the tallies
        if self.mode == "slow":
            second = int(time.time())
            if second != self.window:
                self.window, self.window_bytes = second, 0
            self.window_bytes += len(data)
            if self.window_bytes >= 64_000:
                self.transport.pause_reading()
                asyncio.get_running_loop().call_at(
                    asyncio.get_running_loop().time() + (second + 1 - time.time()), self.transport.resume_reading
                )

    def connection_lost(self, exc):
        self.closed = True
        super().connection_lost(exc)


def run_group(port: int, token: str, mode: str, clients: int, resume, out: str, ready) -> None:
    """``resume``: a shared double, 0 until the burst is over, then the time paused readers resume."""

    async def go():
        loop = asyncio.get_running_loop()
        readers = []
        for _ in range(clients):
            _, proto = await loop.create_connection(
                lambda: Reader(f"/ws/customer-health?token={token}", port, mode, 0.0, 1 if mode == "parse" else 50),
                "127.0.0.1",
                port,
            )
            readers.append(proto)
        await asyncio.gather(*(r.ready for r in readers))
        ready.set()
        if mode == "paused":
            for r in readers:
                r.transport.pause_reading()
        while not resume.value:  # the burst, however long connecting and posting took
            await asyncio.sleep(0.05)
        if mode == "paused":
            for r in readers:
                r.transport.resume_reading()
        await asyncio.sleep(max(0.0, resume.value + 10 - time.time()))
        # then read until nothing arrived for 5 s (at most 120 s more): what was sent is taken in
        deadline = time.time() + 120
        while time.time() < deadline and time.time() - max((r.last_seen for r in readers), default=0) < 5:
            await asyncio.sleep(1)
        result = {
            "kinds": {},
            "cut": sum(r.closed or r.kinds.get("error", 0) > 0 for r in readers),
            "latencies": [x for r in readers for x in r.latencies],
            "conflated": sum(r.conflated for r in readers),
            "final": [{a: s for a, (s, _) in r.final.items()} for r in readers],
            "caught_up": [max((t for _, t in r.final.values()), default=0.0) for r in readers],
            "errors": sorted({r.error for r in readers if r.error}),
        }
        for r in readers:
            for k, v in r.kinds.items():
                result["kinds"][k] = result["kinds"].get(k, 0) + v
            r.transport.close()
        with open(out, "w") as fh:
            json.dump(result, fh)

    asyncio.run(go())


def run_poster(base: str, ingest: str, accounts: list[str], rate: int, seconds: float, out: str) -> None:
    async def go():
        rng, today, n, reported, statuses = random.Random(11), datetime.date.today().isoformat(), 0, 0, {}
        takers: set = set()
        batch = max(1, rate // 20)
        limits = httpx.Limits(max_connections=2000, max_keepalive_connections=50)
        async with httpx.AsyncClient(timeout=300, limits=limits) as client:

            async def post(events):
                nonlocal reported
                try:
                    r = await client.post(
                        f"{base}/api/events", json={"events": events}, headers={"Authorization": f"Bearer {ingest}"}
                    )
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
                    return
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code == 202:
                    reported += r.json().get("health_updates", 0)
                    takers.add(r.json().get("worker"))

            tasks, start = [], time.perf_counter()
            while time.perf_counter() - start < seconds:
                events = []
                for _ in range(batch):
                    n += 1
                    events.append(
                        {
                            "table": "nps_responses",
                            "response_id": f"overload-{n}",
                            "account_id": rng.choice(accounts),
                            "date": today,
                            "score": rng.randint(0, 10),
                        }
                    )
                tasks.append(asyncio.create_task(post(events)))
                await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            elapsed = time.perf_counter() - start
            await asyncio.gather(*tasks)
        with open(out, "w") as fh:
            json.dump(
                {"events": n, "elapsed": elapsed, "reported": reported, "statuses": statuses, "workers": len(takers)},
                fh,
            )

    asyncio.run(go())


class Tree:
    """The resident memory of a process and all its children (``cfx serve --workers``)."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)

    def memory_info(self):
        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return type("Memory", (), {"rss": total})()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--parsers", type=int, default=10)
    parser.add_argument("--fast", type=int, default=150)
    parser.add_argument("--slow", type=int, default=50)
    parser.add_argument("--paused", type=int, default=20)
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--broker", action="store_true", help="a redis-server between the workers")
    args = parser.parse_args()
    if args.workers > 1 and not args.broker:
        parser.error("--workers above 1 needs --broker")
    home = Path(tempfile.mkdtemp(prefix="cfx-overload-"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CFX_")}, "CFX_HOME": str(home)}
    env.update(CFX_DEMO__ACCOUNTS=str(args.accounts), CFX_DEMO__MONTHS="24", CFX_DEMO__END_MONTH="2025-12")
    subprocess.run([CFX, "run", "--demo"], env=env, check=True, capture_output=True)
    token = subprocess.run(
        [CFX, "token", "create", "--role", "analyst"], env=env, capture_output=True, text=True
    ).stdout.strip()
    ingest = subprocess.run(
        [CFX, "token", "create", "--role", "ingest"], env=env, capture_output=True, text=True
    ).stdout.strip()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        redis_port = s.getsockname()[1]
    redis = None
    if args.broker:
        redis = subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        env["CFX_BROKER__URL"] = f"redis://127.0.0.1:{redis_port}/0"
    server = subprocess.Popen(
        [CFX, "serve", "--port", str(port), "--workers", str(args.workers)],
        env={**env, "CFX_SERVICE__ACCESS_LOG": "false"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {token}"}
    ctx = mp.get_context("spawn")
    try:
        for _ in range(240):
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        accounts = [
            a["account_id"]
            for a in httpx.get(base + "/api/customers/health?page_size=1000", headers=auth).json()["accounts"]
        ]
        proc = Tree(server.pid)
        time.sleep(5 if args.workers > 1 else 0)  # every worker warmed up
        idle_rss = proc.memory_info().rss
        groups = [("parse", args.parsers), ("fast", args.fast), ("slow", args.slow), ("paused", args.paused)]
        resume = ctx.Value("d", 0.0)
        readies, procs = [], []
        for mode, n in groups:
            if not n:
                continue
            ready = ctx.Event()
            p = ctx.Process(target=run_group, args=(port, token, mode, n, resume, str(home / f"{mode}.json"), ready))
            p.start()
            readies.append(ready)
            procs.append((mode, p))
        for ready in readies:
            if not ready.wait(300):
                raise RuntimeError("feed clients did not connect")
        connected_rss = proc.memory_info().rss
        poster = ctx.Process(
            target=run_poster, args=(base, ingest, accounts, args.rate, args.seconds, str(home / "poster.json"))
        )
        poster.start()
        peak = connected_rss
        while poster.is_alive():
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.5)
        time.sleep(1)
        resume.value = resume_at = time.time()  # the paused readers resume 1 s after the last POST
        for _, p in procs:
            while p.is_alive():
                peak = max(peak, proc.memory_info().rss)
                p.join(0.5)
        truth = {}
        for a in accounts:
            got = httpx.get(f"{base}/api/customers/{a}", headers=auth)
            truth[a] = got.json()["health"]["health_score"] if got.status_code == 200 else None
    finally:
        server.terminate()
        server.wait(timeout=30)
        if redis is not None:
            redis.terminate()
            redis.wait(10)
    posted = json.loads((home / "poster.json").read_text())
    rows, all_cut, mismatches = [], 0, 0
    clients = sum(n for _, n in groups)
    for mode, n in groups:
        if not n:
            continue
        got = json.loads((home / f"{mode}.json").read_text())
        all_cut += got["cut"]
        wrong = sum(
            1
            for final in got["final"]
            for a, s in final.items()
            if truth.get(a) is not None and abs(truth[a] - s) > 1e-9
        )
        mismatches += wrong
        lat = np.array(got["latencies"] or [np.nan]) * 1000
        caught = [t - resume_at for t in got["caught_up"] if t] if mode == "paused" else []
        rows.append(
            f"| {mode} | {n} | {got['cut']} | {got['kinds'].get('update', 0):,} | {got['conflated']:,} | "
            f"{got['kinds'].get('lagging', 0):,} | {np.nanpercentile(lat, 50):,.0f} | {np.nanpercentile(lat, 99):,.0f} | "
            + (f"{max(caught):.2f} s" if caught else "—")
            + f" | {wrong} |"
        )
        if got.get("errors"):
            rows.append(f"| {mode}: why cut | {'; '.join(got['errors'])[:300]} |||||||||")
    shutil.rmtree(home, ignore_errors=True)
    per_client = (peak - idle_rss) / clients / 1024
    lines = [
        f"Machine: {machine()}; date {now()}.",
        "",
        f"Command: `.venv/bin/python bench/feed_overload.py --rate {args.rate} --seconds {args.seconds:g} --parsers {args.parsers} "
        f"--fast {args.fast} --slow {args.slow} --paused {args.paused} --accounts {args.accounts}"
        + (f" --workers {args.workers} --broker" if args.broker else "")
        + "` — "
        + (
            f"`cfx serve --workers {args.workers}` with a local redis-server (POSTs taken by {posted['workers']} workers), "
            if args.broker
            else "one `cfx serve` without a broker, "
        )
        + f"{clients} feed clients in 4 processes, NPS answers dated today at {posted['events'] / posted['elapsed']:,.0f}/s for "
        f"{args.seconds:g} s ({posted['reported']:,} health changes; POST answers {posted['statuses']}); all on the same 2 cores.",
        "",
        "| clients | n | cut | updates received | states conflated | lagging notices | p50 ms POST to arrival | p99 ms | paused: caught up after resuming | final states unlike /api/customers |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Clients cut: **{all_cut}**; final states differing from `/api/customers/{{id}}`: **{mismatches}**. Server memory: "
        f"{idle_rss / 2**20:,.0f} MB idle, {connected_rss / 2**20:,.0f} MB with the clients connected, peak {peak / 2**20:,.0f} MB "
        f"during the burst: {per_client:,.0f} KB per client at most (a conflated backlog holds at most one state per "
        f"account and call to action: {args.accounts} accounts x ~1.5 KB per update, plus their CTAs).",
        "",
        "Latency is measured on the parsing clients for every update and on every 50th update of the others; a conflated "
        "update's latency is its newest state's (the POST that made it).",
    ]
    body = "\n".join(lines)
    print(body)
    config = (
        f"{args.workers} worker{'s' if args.workers > 1 else ''} with a Redis broker"
        if args.broker
        else "one process, no broker"
    )
    title = f"Feed at {args.rate:,} events/s and {clients} clients: {config} (bench/feed_overload.py)"
    update_section(title, body)


if __name__ == "__main__":
    main()
