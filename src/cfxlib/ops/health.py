"""``cfx health``: the local checks (:mod:`cfxlib.ops.probes`) plus the running components over
HTTP: the service's ``/healthz`` and an authenticated call, and the dashboards answering."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from cfxlib.core.home import Home
from cfxlib.core.settings import Settings
from cfxlib.ops import probes
from cfxlib.ops.probes import Check


def service_url(settings: Settings) -> str:
    return f"http://{settings.service.host}:{settings.service.port}"


def dashboards_url(settings: Settings) -> str:
    return f"http://{settings.dashboards.host}:{settings.dashboards.port}"


def service(settings: Settings, token: str | None, timeout_s: float = 5) -> list[Check]:
    url = service_url(settings)
    try:
        health = httpx.get(f"{url}/healthz", timeout=timeout_s)
    except httpx.HTTPError as exc:
        return [Check("service", False, f"{url} does not answer ({type(exc).__name__}): is `cfx serve` running?")]
    body = health.json() if health.headers.get("content-type", "").startswith("application/json") else {}
    checks = [
        Check(
            "service",
            health.status_code == 200,
            f"{url}/healthz {health.status_code} ({body.get('status', '?')}, run {body.get('run_id')})",
        )
    ]
    if token is None:
        checks.append(Check("service API", False, "no token to make an authenticated call"))
        return checks
    try:
        api = httpx.get(f"{url}/api/finance/summary", headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return [*checks, Check("service API", False, f"authenticated call failed ({type(exc).__name__})")]
    ok = api.status_code == 200
    detail = f"GET /api/finance/summary {api.status_code}" + (
        f" (ARR {api.json().get('arr'):,.0f} USD as of {api.json().get('as_of')})" if ok else ""
    )
    return [*checks, Check("service API", ok, detail)]


def dashboards(settings: Settings, timeout_s: float = 5) -> Check:
    url = dashboards_url(settings)
    try:
        answer = httpx.get(f"{url}/", timeout=timeout_s, follow_redirects=False)
    except httpx.HTTPError as exc:
        return Check("dashboards", False, f"{url} does not answer ({type(exc).__name__}): is `cfx dashboards` running?")
    return Check("dashboards", answer.status_code < 500, f"{url}/ answers {answer.status_code}")


def answering_pid(settings: Settings, name: str, timeout_s: float = 2) -> int | None:
    """The process id the service (``/healthz``) or the dashboards (``/login``) report, if any."""
    try:
        if name == "cfx-serve":
            answer = httpx.get(f"{service_url(settings)}/healthz", timeout=timeout_s)
            return (
                answer.json().get("pid")
                if answer.headers.get("content-type", "").startswith("application/json")
                else None
            )
        answer = httpx.get(f"{dashboards_url(settings)}/login", timeout=timeout_s)
        return int(answer.headers["x-cfx-pid"]) if "x-cfx-pid" in answer.headers else None
    except (httpx.HTTPError, ValueError):
        return None


def _parent(pid: int) -> int | None:
    """The parent's process id (Linux ``/proc``), or None."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def supervised(home: Home, settings: Settings) -> list[Check]:
    """When cfx is up for this home: each supervised program RUNNING, and the service and the
    dashboards answering from the supervised process itself (not another one on the same port)."""
    from cfxlib.ops import supervisor

    if supervisor.running_pid(home) is None:
        return []
    out = []
    for proc in supervisor.status(home):
        name, state, pid = proc["name"], proc["state"], proc["pid"]
        if state != "RUNNING":
            out.append(Check(name, False, f"supervised process is {state} (see {proc.get('log')})"))
            continue
        if name in ("cfx-serve", "cfx-dashboards"):
            answering = answering_pid(settings, name)
            if answering != pid and not (answering and _parent(answering) == pid):  # --workers: a child answers
                port = settings.service.port if name == "cfx-serve" else settings.dashboards.port
                who = f"process {answering}" if answering else "nobody"
                out.append(Check(name, False, f"supervised pid {pid} RUNNING, but port {port} is answered by {who}"))
                continue
        out.append(Check(name, True, f"supervised pid {pid} RUNNING and answering"))
    return out


def all_checks(home: Home, settings: Settings, token: str | None) -> list[Check]:
    return [
        *probes.local_checks(home, settings),
        *service(settings, token),
        dashboards(settings),
        *supervised(home, settings),
    ]


def components_up(home: Home, settings: Settings) -> dict[str, Check]:
    """What `cfx up --detach` waits for: each supervised component RUNNING and answering from its
    own process."""
    serve = service(settings, None, timeout_s=2)[0]
    serve = Check("cfx-serve", serve.ok or "503" in serve.detail, serve.detail)  # up, even with nothing published
    dash = dashboards(settings, timeout_s=2)
    sched = probes.scheduler(home)
    found = {
        "cfx-serve": serve,
        "cfx-dashboards": Check("cfx-dashboards", dash.ok, dash.detail),
        "cfx-scheduler": Check("cfx-scheduler", sched.ok, sched.detail),
    }
    for check in supervised(home, settings):
        if not check.ok and check.name in found:
            found[check.name] = check
    return found


def wait_up(home: Home, settings: Settings, timeout_s: float) -> dict[str, Check]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = components_up(home, settings)
        if all(c.ok for c in found.values()) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def restart_all(home: Home, settings: Settings, timeout_s: float = 120) -> list[Check]:
    """Restart every component supervised by ``cfx up`` in turn and wait until each answers its
    health check again; one check per component (none when cfx is not up for this home)."""
    from cfxlib.ops import supervisor

    if supervisor.running_pid(home) is None:
        return []
    server = supervisor.rpc(home)
    out = []
    for info in server.supervisor.getAllProcessInfo():
        name = info["name"]
        start = time.monotonic()
        try:
            if info["statename"] == "RUNNING":
                server.supervisor.stopProcess(name, True)
            server.supervisor.startProcess(name, True)
        except Exception as exc:  # noqa: BLE001 - xmlrpc faults name the reason
            out.append(Check(name, False, f"did not restart: {exc}"))
            continue
        deadline = start + timeout_s
        while True:
            found = components_up(home, settings).get(name)
            if found is None or found.ok or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        ok = found is None or found.ok
        what = found.detail if found is not None else "running"
        out.append(Check(name, ok, f"restarted in {time.monotonic() - start:.1f} s; {what}"))
    return out
