"""Dashboards under concurrent viewers: time to widgets, time from an event to the page, memory.

A fresh home with the default demo company is published (``cfx run``); ``cfx serve`` and
``cfx dashboards`` start; headless Chromium opens the customer success dashboard in N pages at
once (each its own kernel, as N people would) and records, per viewer, the time from navigation
to the widgets being visible and to the feed being live. Then events dated today are posted one
at a time and the time until every page shows the update is recorded. Memory: the resident size
of each dashboard kernel process (psutil). Results go to docs/benchmarks.md.

    .venv/bin/python bench/dashboards.py [--viewers 20] [--events 10]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, now, update_section  # noqa: E402

CFX = str(Path(sys.executable).with_name("cfx"))
CHROMIUM = os.environ.get("CFX_CHROMIUM", "/usr/bin/chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, seconds: float = 90) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer")


def cfx(*args: str, env: dict) -> str:
    return subprocess.run([CFX, *args], env=env, check=True, capture_output=True, text=True).stdout.strip()


async def viewers(dash: str, service: str, analyst: str, ingest: str, n: int, events: int, accounts: list[str]) -> dict:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        pages = [
            await (await browser.new_context(viewport={"width": 1366, "height": 900})).new_page() for _ in range(n)
        ]

        async def open_one(page):
            start = time.perf_counter()
            await page.goto(
                f"{dash}/voila/render/customer_success.ipynb?token={analyst}", wait_until="commit", timeout=300_000
            )
            await page.wait_for_selector(".cfx-health-gauge", timeout=300_000)
            visible = time.perf_counter() - start
            await page.wait_for_selector(".cfx-feed-status:has-text('live')", timeout=300_000)
            return visible, time.perf_counter() - start

        opened = await asyncio.gather(*(open_one(pg) for pg in pages))
        changes, count = [], 0
        async with httpx.AsyncClient() as client:
            for k in range(events):
                account = accounts[k % len(accounts)]
                event = {
                    "table": "nps_responses",
                    "response_id": f"bench-dash-{time.time()}-{k}",
                    "account_id": account,
                    "date": datetime.date.today().isoformat(),
                    "score": k % 2 * 10,
                }
                start = time.perf_counter()
                r = await client.post(
                    f"{service}/api/events", json={"events": [event]}, headers={"Authorization": f"Bearer {ingest}"}
                )
                if r.json().get("health_updates", 0) == 0:
                    continue  # the score did not change: no update to wait for
                count += 1
                marker = f"{count} live update"

                async def seen(page, marker=marker, start=start):
                    await page.wait_for_selector(f".cfx-health-gauge:has-text('{marker}')", timeout=30_000)
                    return time.perf_counter() - start

                changes += await asyncio.gather(*(seen(pg) for pg in pages))
                await asyncio.sleep(0.5)
        await browser.close()
    return {"visible": [o[0] for o in opened], "live": [o[1] for o in opened], "change": changes}


def kernel_memory(dash_pid: int) -> list[float]:
    out = []
    for child in psutil.Process(dash_pid).children(recursive=True):
        try:
            if "ipykernel" in " ".join(child.cmdline()):
                out.append(child.memory_info().rss / 2**20)
        except psutil.Error:
            pass
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--events", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cfx-bench-dash-"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CFX_")}, "CFX_HOME": str(work / "home")}
    env["CFX_DASHBOARDS__MAX_KERNELS"] = str(max(20, args.viewers))
    procs = []
    try:
        print("publishing the default demo company (cfx run)...", flush=True)
        subprocess.run([CFX, "run"], env=env, check=True, capture_output=True)
        sport, dport = free_port(), free_port()
        log = open(work / "servers.log", "w")  # noqa: SIM115
        procs.append(subprocess.Popen([CFX, "serve", "--port", str(sport)], env=env, stdout=log, stderr=log))
        wait_http(f"http://127.0.0.1:{sport}/healthz")
        api = f"http://127.0.0.1:{sport}"
        procs.append(
            subprocess.Popen([CFX, "dashboards", "--port", str(dport), "--api", api], env=env, stdout=log, stderr=log)
        )
        wait_http(f"http://127.0.0.1:{dport}/login")
        analyst = cfx("token", "create", "--role", "analyst", env=env)
        ingest = cfx("token", "create", "--role", "ingest", env=env)
        health = httpx.get(f"{api}/api/customers/health?page_size=50", headers={"Authorization": f"Bearer {analyst}"})
        accounts = [r["account_id"] for r in health.json()["accounts"]]
        print(f"opening {args.viewers} viewers...", flush=True)
        got = asyncio.run(
            viewers(f"http://127.0.0.1:{dport}", api, analyst, ingest, args.viewers, args.events, accounts)
        )
        memory = kernel_memory(procs[1].pid)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    p = lambda xs, q: float(np.percentile(xs, q)) if xs else float("nan")  # noqa: E731
    visible, live, change = got["visible"], got["live"], got["change"]
    lines = [
        machine() + f" Date: {now()}.",
        "",
        f"Command: `.venv/bin/python bench/dashboards.py --viewers {args.viewers} --events {args.events}` — default demo "
        "company published, `cfx serve` and `cfx dashboards` on this machine, headless Chromium opening the customer "
        f"success dashboard in {args.viewers} pages at once (one kernel each), then events dated today posted one at "
        "a time.",
        "",
        "| measure | p50 | p95 | max | goal |",
        "|---|---:|---:|---:|---|",
        f"| navigation to widgets visible, s ({len(visible)} viewers at once) | {p(visible, 50):.1f} | {p(visible, 95):.1f} | {max(visible):.1f} | p95 < 3 s: {'met' if p(visible, 95) < 3 else 'not met'} |",
        f"| navigation to feed live, s | {p(live, 50):.1f} | {p(live, 95):.1f} | {max(live):.1f} | |",
        f"| POST to the page changing, s ({len(change)} page updates) | {p(change, 50):.2f} | {p(change, 95):.2f} | {max(change) if change else float('nan'):.2f} | p95 < 1 s: {'met' if p(change, 95) < 1 else 'not met'} |",
        "",
        f"Memory per viewer's kernel: {np.mean(memory):.0f} MB resident on average over {len(memory)} kernels "
        f"(max {max(memory):.0f} MB)."
        if memory
        else "Memory per kernel: not measured (no kernel found).",
    ]
    update_section("Dashboards under concurrent viewers (bench/dashboards.py)", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
