"""Dashboards under concurrent viewers: time to widgets, time from an event to the page, memory.

A fresh home with the default demo company is published (``cfx run``). Per scenario (viewers,
how they arrive) ``cfx serve`` and ``cfx dashboards`` start afresh; headless Chromium opens the
customer success dashboard in one page per viewer (each its own browser context and kernel, as
separate people would) and records, per viewer, the time from navigation to the widgets being
visible and to the feed being live, and the CPU-seconds Chromium, the kernels, the Voilà server
and the service used meanwhile. Then events dated today are posted one at a time and the time
until every page shows the update is recorded. Memory: the resident size of each dashboard
kernel process (psutil). Results go to docs/benchmarks.md.

    .venv/bin/python bench/dashboards.py [--scenario VIEWERS:ARRIVAL_S ...] [--events 5]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import math
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
GIVE_UP_S = 120
"""A page without its widgets this long after navigation is counted as never showing them."""


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


def tree_cpu(pid: int, part=lambda proc: True) -> float:
    """CPU-seconds used so far by a process and its descendants (those ``part`` accepts)."""
    total = 0.0
    for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        try:
            if part(proc):
                t = proc.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _is_kernel(proc: psutil.Process) -> bool:
    return "ipykernel" in " ".join(proc.cmdline())


def cpu_by_group(pids: dict[str, int]) -> dict[str, float]:
    """CPU-seconds used so far by each named process and its children, the dashboard kernels
    (ipykernel children of the dashboards server) counted apart from the server itself."""
    out = {name: tree_cpu(pid) for name, pid in pids.items()}
    out["kernels"] = tree_cpu(pids["dashboards"], _is_kernel)
    out["dashboards"] -= out["kernels"]
    return out


async def viewers(
    dash: str,
    service: str,
    analyst: str,
    ingest: str,
    n: int,
    events: int,
    accounts: list[str],
    arrival_s: float,
    pids: dict[str, int],
    post_sizes: tuple[int, ...] = (1,),
) -> dict:
    from playwright.async_api import TimeoutError as PlaywrightTimeout
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        pages = [
            await (await browser.new_context(viewport={"width": 1366, "height": 900})).new_page() for _ in range(n)
        ]
        pids["chromium"] = browser_pid(os.getpid())
        # A viewer's browser is already running; this one was just launched. Warm it up on the
        # server's token page (no kernel, nothing cached for the viewers' own contexts).
        warm = await browser.new_context()
        await (await warm.new_page()).goto(f"{dash}/login")
        await warm.close()
        await asyncio.to_thread(wait_quiet, pids["chromium"], 0.2)  # the new tabs' processes have started

        async def open_one(k, page):
            await asyncio.sleep(k * arrival_s)
            start = time.perf_counter()
            await page.goto(
                f"{dash}/voila/render/customer_success.ipynb?token={analyst}", wait_until="commit", timeout=300_000
            )
            try:
                await page.wait_for_selector(".cfx-health-gauge", timeout=GIVE_UP_S * 1000)
                visible = time.perf_counter() - start
                await page.wait_for_selector(".cfx-feed-status:has-text('live')", timeout=GIVE_UP_S * 1000)
            except PlaywrightTimeout:  # counted, not fatal: the row says how many never showed
                return math.inf
            return visible

        before = cpu_by_group(pids)
        if arrival_s < 0:  # each viewer arrives once the one before sees its widgets; all stay open
            opened = [await open_one(0, pg) for pg in pages]
        else:
            opened = await asyncio.gather(*(open_one(k, pg) for k, pg in enumerate(pages)))
        after = cpu_by_group(pids)
        changes: dict[int, list[float]] = {}
        count = 0
        async with httpx.AsyncClient() as client:
            for per_post in post_sizes:
                changes[per_post] = []
                for k in range(events):
                    batch = [
                        {
                            "table": "nps_responses",
                            "response_id": f"bench-dash-{time.time()}-{k}-{j}",
                            "account_id": accounts[(k * per_post + j) % len(accounts)],
                            "date": datetime.date.today().isoformat(),
                            "score": k % 2 * 10,
                        }
                        for j in range(per_post)
                    ]
                    start = time.perf_counter()
                    r = await client.post(
                        f"{service}/api/events", json={"events": batch}, headers={"Authorization": f"Bearer {ingest}"}
                    )
                    if r.json().get("health_updates", 0) == 0:
                        continue  # no score changed: no update to wait for
                    count += r.json()["health_updates"]
                    marker = f"{count} live update"

                    async def seen(page, marker=marker, start=start):
                        # the page's count of live updates (its status bar; the gauge's text before 2026-12-04)
                        await page.wait_for_selector(
                            f".cfx-statusbar:has-text('{marker}'), .cfx-health-gauge:has-text('{marker}')",
                            timeout=30_000,
                        )
                        return time.perf_counter() - start

                    shown = [pg for pg, seconds in zip(pages, opened, strict=True) if math.isfinite(seconds)]
                    changes[per_post] += await asyncio.gather(*(seen(pg) for pg in shown))
                    await asyncio.sleep(0.5)
        await browser.close()
    cpu = {k: after[k] - before[k] for k in after}
    return {
        "visible": list(opened),
        "change": changes,
        "cpu": cpu,
    }


def browser_pid(bench_pid: int) -> int:
    """The headless Chromium that playwright started (a descendant of this process)."""
    for child in psutil.Process(bench_pid).children(recursive=True):
        try:
            if "chrom" in child.name() and child.parent() and "chrom" not in child.parent().name():
                return child.pid
        except psutil.Error:
            pass
    raise SystemExit("no Chromium process found")


def wait_quiet(pid: int, idle_cpu_s: float = 0.05, seconds: float = 180) -> None:
    """Until the process and its children have used under ``idle_cpu_s`` CPU-seconds in a
    second: a server has started, or a browser has opened its empty tabs."""
    deadline, last = time.time() + seconds, tree_cpu(pid)
    while time.time() < deadline:
        time.sleep(1)
        now_cpu = tree_cpu(pid)
        if now_cpu - last < idle_cpu_s:
            return
        last = now_cpu
    raise SystemExit(f"process {pid} did not settle")


def kernel_memory(dash_pid: int) -> list[float]:
    out = []
    for child in psutil.Process(dash_pid).children(recursive=True):
        try:
            if "ipykernel" in " ".join(child.cmdline()):
                out.append(child.memory_info().rss / 2**20)
        except psutil.Error:
            pass
    return out


SCENARIOS = ["1:0", "20:-1", "20:2", "10:0", "20:0"]
"""viewers:seconds between arrivals (0: all at once; -1: each once the one before sees its
widgets, all staying open)."""


def scenario(spec: str, env: dict, work: Path, events: int, post_sizes: tuple[int, ...], preheat: bool = True) -> dict:
    """Start ``cfx serve`` and ``cfx dashboards`` afresh, open the viewers, post the events."""
    n, arrival_s = spec.split(":")
    env = {**env, "CFX_DASHBOARDS__MAX_KERNELS": str(max(20, int(n)))}
    env["CFX_DASHBOARDS__PREHEAT"] = "true" if preheat else "false"
    procs = []
    try:
        sport, dport = free_port(), free_port()
        log = open(work / f"servers-{spec.replace(':', '-')}.log", "w")  # noqa: SIM115
        procs.append(subprocess.Popen([CFX, "serve", "--port", str(sport)], env=env, stdout=log, stderr=log))
        wait_http(f"http://127.0.0.1:{sport}/healthz")
        api = f"http://127.0.0.1:{sport}"
        procs.append(
            subprocess.Popen([CFX, "dashboards", "--port", str(dport), "--api", api], env=env, stdout=log, stderr=log)
        )
        wait_http(f"http://127.0.0.1:{dport}/login")
        wait_quiet(procs[1].pid)
        analyst = cfx("token", "create", "--role", "analyst", env=env)
        ingest = cfx("token", "create", "--role", "ingest", env=env)
        health = httpx.get(f"{api}/api/customers/health?page_size=200", headers={"Authorization": f"Bearer {analyst}"})
        accounts = [r["account_id"] for r in health.json()["accounts"]]
        print(f"{spec}: opening {n} viewers, {arrival_s} s apart...", flush=True)
        got = asyncio.run(
            viewers(
                f"http://127.0.0.1:{dport}",
                api,
                analyst,
                ingest,
                int(n),
                events,
                accounts,
                float(arrival_s),
                {"service": procs[0].pid, "dashboards": procs[1].pid},
                post_sizes,
            )
        )
        got["memory"] = kernel_memory(procs[1].pid)
        print("per viewer, s:", " ".join(f"{v:.1f}" for v in got["visible"]), flush=True)
        return got
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def row(spec: str, got: dict) -> str:
    def p(xs: list[float], q: float) -> str:
        value = float(np.percentile(xs, q, method="higher")) if xs else float("nan")
        return f">{GIVE_UP_S}" if value == math.inf else f"{value:.2f}"

    n, arrival_s = spec.split(":")
    visible, cpu, memory = got["visible"], got["cpu"], got["memory"]
    arrival = {0.0: "at once", -1.0: "one after another"}.get(float(arrival_s), f"one per {float(arrival_s):g} s")
    per_view = " / ".join(f"{cpu[k] / int(n):.2f}" for k in ("chromium", "kernels", "dashboards", "service"))
    return (
        f"| {n} | {arrival} | {p(visible, 50)} / {p(visible, 95)} / {p(visible, 100)} | "
        f"{sum(not math.isfinite(v) for v in visible)} | "
        + " | ".join(f"{p(c, 50)} / {p(c, 95)} / {p(c, 100)}" for c in got["change"].values())
        + f" | {per_view} | {np.mean(memory):.0f} MB |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--scenario",
        action="append",
        help=f"VIEWERS:ARRIVAL_S, repeatable (default {' '.join(SCENARIOS)}): ARRIVAL_S seconds between "
        "viewers arriving (0: all at once; -1: each once the one before sees its widgets, all staying open)",
    )
    parser.add_argument("--events", type=int, default=5)
    parser.add_argument(
        "--no-preheat",
        action="store_true",
        help="start every page view's kernel on request (`dashboards.preheat = false`), as before preheating",
    )
    parser.add_argument(
        "--per-post",
        type=int,
        action="append",
        help="answers per POST, repeatable (default 1 and 100): one answer moves the book's mean of 2,000 "
        "accounts by about 0.005 point, under what the page prints, so only the status bar changes; 100 "
        "answers move it visibly, so the gauge and the trend charts change too",
    )
    parser.add_argument("--keep-logs", type=Path, help="copy the servers' logs (one per scenario) into this folder")
    args = parser.parse_args()
    post_sizes = tuple(args.per_post or (1, 100))
    specs = args.scenario or SCENARIOS
    work = Path(tempfile.mkdtemp(prefix="cfx-bench-dash-"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CFX_")}, "CFX_HOME": str(work / "home")}
    started = now()
    try:
        print("publishing the default demo company (cfx run)...", flush=True)
        subprocess.run([CFX, "run", "--demo"], env=env, check=True, capture_output=True)
        rows = []
        for spec in specs:
            rows.append(row(spec, scenario(spec, env, work, args.events, post_sizes, not args.no_preheat)))
            print(rows[-1], flush=True)
    finally:
        if args.keep_logs:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for log in work.glob("servers-*.log"):
                shutil.copy(log, args.keep_logs / log.name)
        shutil.rmtree(work, ignore_errors=True)
    command = " ".join(f"--scenario {s}" for s in specs) + "".join(f" --per-post {k}" for k in post_sizes)
    command += " --no-preheat" if args.no_preheat else ""
    lines = [
        f"Machine: {machine()}. Date: {started} to {now()}.",
        "",
        f"Command: `.venv/bin/python bench/dashboards.py {command} --events {args.events}` — the default demo "
        "company (2,000 accounts) published; per scenario `cfx serve` and `cfx dashboards` started afresh and left "
        "to settle; headless Chromium, started on this machine, warmed up on the token page and its empty tabs "
        "settled, and the dashboards' preheated kernels ready (unless `--no-preheat`), then opens the customer success "
        "dashboard in one page per viewer (own browser context, own kernel); then NPS answers dated today are "
        "posted, one POST at a time, first with one answer each, then with 100 answers for 100 accounts each (time "
        "until every page shows the new count of live updates, which the page writes after the charts). "
        "CPU-s per view: used while the viewers opened, by "
        "Chromium / the dashboard kernels / the Voilà server / `cfx serve`, divided by the viewers.",
        "",
        "| viewers | arrival | navigation to widgets visible p50 / p95 / max, s | pages without widgets after "
        f"{GIVE_UP_S} s | "
        + " | ".join(
            f"POST of {k} answer{'s' if k > 1 else ''} to every page changing p50 / p95 / max, s" for k in post_sizes
        )
        + " | CPU-s per view | memory per kernel |",
        "|---:|---|---:|---:|" + "---:|" * len(post_sizes) + "---:|---:|",
        *rows,
    ]
    update_section("Dashboards under concurrent viewers (bench/dashboards.py)", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
