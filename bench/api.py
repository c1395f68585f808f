"""Benchmark: the service under load — finance summary throughput, and WebSocket fan-out latency.

    .venv/bin/python bench/api.py [--clients 50] [--seconds 10] [--ws-clients 200] [--rate 500] [--ws-seconds 30]

A small demo company is published (`cfx run`), `cfx serve` is started on 127.0.0.1, and load comes
from this process (asyncio, httpx, websockets) on the same 2-core machine:

1. HTTP: N concurrent clients call `/healthz` (trivial) for S seconds, then
   `/api/finance/summary` (token) for S seconds: requests per second and p99 latency, as a ratio.
2. WebSocket: M clients connected to `/ws/customer-health`; events are posted at R per second for
   T seconds; for every update, the time from the POST being sent to its arrival at each client.
   Lost updates = updates the service reported (health_updates) x clients - updates received.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import websockets

sys.path.insert(0, str(Path(__file__).parent))
from _measure import machine, now, update_section  # noqa: E402

CFX = str(Path(sys.executable).with_name("cfx"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def http_load(url: str, headers: dict, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient):
        nonlocal errors
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            r = await client.get(url, headers=headers)
            latencies.append(time.perf_counter() - t0)
            errors += r.status_code != 200

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        elapsed = time.perf_counter() - start
    lat = np.array(latencies)
    return {
        "rps": len(lat) / elapsed,
        "p50_ms": 1000 * np.percentile(lat, 50),
        "p99_ms": 1000 * np.percentile(lat, 99),
        "errors": errors,
    }


async def ws_load(
    port: int, base: str, token: str, ingest: str, accounts: list[str], clients: int, rate: int, seconds: float
) -> dict:
    arrivals: list[float] = []
    received = 0
    sockets = []
    for _ in range(clients):
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws/customer-health?token={token}", max_size=2**25)
        await ws.recv()  # snapshot
        sockets.append(ws)

    async def reader(ws):
        nonlocal received
        try:
            async for raw in ws:
                msg = json.loads(raw)
                if msg.get("type") == "update":
                    arrivals.append(time.time() - msg["posted"] if "posted" in msg else time.time() - msg["sent_at"])
                    received += 1
        except websockets.ConnectionClosed:
            pass

    readers = [asyncio.create_task(reader(ws)) for ws in sockets]
    reported = 0
    batch = max(1, rate // 10)
    async with httpx.AsyncClient(timeout=30) as client:
        start = time.perf_counter()
        n = 0
        while time.perf_counter() - start < seconds:
            events = []
            for _ in range(batch):
                n += 1
                events.append(
                    {
                        "table": "nps_responses",
                        "response_id": f"bench-{n}",
                        "account_id": random.choice(accounts),
                        "date": "2025-12-31",
                        "score": random.randint(0, 10),
                    }
                )
            r = await client.post(
                f"{base}/api/events", json={"events": events}, headers={"Authorization": f"Bearer {ingest}"}
            )
            reported += r.json().get("health_updates", 0)
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
        posted = n
        elapsed = time.perf_counter() - start
    await asyncio.sleep(3)
    for ws in sockets:
        await ws.close()
    for t in readers:
        t.cancel()
    lat = np.array(arrivals) if arrivals else np.array([np.nan])
    return {
        "events": posted,
        "events_per_s": posted / elapsed,
        "updates_reported": reported,
        "expected_messages": reported * clients,
        "received": received,
        "lost": reported * clients - received,
        "p50_ms": 1000 * np.nanpercentile(lat, 50),
        "p99_ms": 1000 * np.nanpercentile(lat, 99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--ws-clients", type=int, default=200)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--ws-seconds", type=float, default=30)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="cfx-api-bench-"))
    env = {
        **os.environ,
        "CFX_HOME": str(home),
        "CFX_DEMO__ACCOUNTS": "500",
        "CFX_DEMO__MONTHS": "24",
        "CFX_DEMO__END_MONTH": "2025-12",
    }
    subprocess.run([CFX, "run"], env=env, check=True, capture_output=True)
    token = subprocess.run(
        [CFX, "token", "create", "--role", "analyst"], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    ingest = subprocess.run(
        [CFX, "token", "create", "--role", "ingest"], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    port = free_port()
    server = subprocess.Popen(
        [CFX, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        trivial = asyncio.run(http_load(base + "/healthz", {}, args.clients, args.seconds))
        summary = asyncio.run(
            http_load(base + "/api/finance/summary", {"Authorization": f"Bearer {token}"}, args.clients, args.seconds)
        )
        accounts = [
            a["account_id"]
            for a in httpx.get(
                base + "/api/customers/health?page_size=1000", headers={"Authorization": f"Bearer {token}"}
            ).json()["accounts"]
        ]
        ws = asyncio.run(ws_load(port, base, token, ingest, accounts, args.ws_clients, args.rate, args.ws_seconds))
    finally:
        server.terminate()
        server.wait(timeout=20)
    ratio = summary["rps"] / trivial["rps"]
    lines = [
        f"Machine: {machine()}. Date: {now()}.",
        "",
        f"Command: `.venv/bin/python bench/api.py --clients {args.clients} --seconds {args.seconds:g} --ws-clients {args.ws_clients} --rate {args.rate} --ws-seconds {args.ws_seconds:g}` "
        "— one `cfx serve` process (uvicorn, one worker) and the load generator share the 2 cores.",
        "",
        "| endpoint | requests/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|",
        f"| /healthz (trivial) | {trivial['rps']:,.0f} | {trivial['p50_ms']:.1f} | {trivial['p99_ms']:.1f} | {trivial['errors']} |",
        f"| /api/finance/summary | {summary['rps']:,.0f} | {summary['p50_ms']:.1f} | {summary['p99_ms']:.1f} | {summary['errors']} |",
        "",
        f"Summary throughput / trivial throughput = **{ratio:.2f}** (target at least 0.8: {'met' if ratio >= 0.8 else 'missed'}).",
        "",
        f"WebSocket: {args.ws_clients} clients, {ws['events']:,} events posted at {ws['events_per_s']:.0f}/s for {args.ws_seconds:g} s; "
        f"{ws['updates_reported']:,} health changes x {args.ws_clients} clients = {ws['expected_messages']:,} messages expected, "
        f"{ws['received']:,} received ({ws['lost']:,} lost or cut by the slow-client rule). Time from POST to arrival: "
        f"p50 {ws['p50_ms']:.0f} ms, **p99 {ws['p99_ms']:.0f} ms** (target under 100 ms: {'met' if ws['p99_ms'] < 100 else 'missed'}).",
    ]
    update_section("Service under load (bench/api.py)", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
