"""``cfx up | down | status``: the service, the dashboards and the scheduler under supervisord.

cfx writes supervisord's configuration under ``$CFX_HOME/supervisor/`` (no secret in it: the
processes inherit the environment of ``cfx up``), runs supervisord, and talks to it over its
UNIX socket with XML-RPC. Each program restarts on failure (supervisord backs off between quick
failures), logs to ``$CFX_HOME/logs/NAME.log`` rotated at 10 MB x 5, and is stopped with its
whole process group (Voilà's kernels included), so ``cfx down`` leaves nothing behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import signal
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path

from cfxlib.core.errors import UserError
from cfxlib.core.home import Home
from cfxlib.core.processes import pid_alive
from cfxlib.core.settings import Settings

MAX_SOCKET_PATH = 100
PROGRAMS = ("cfx-serve", "cfx-dashboards", "cfx-scheduler")


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def socket_path(home: Home) -> Path:
    """supervisord's socket; under /tmp when the home's path is too long for a UNIX socket."""
    path = home.supervisor / "supervisor.sock"
    if len(str(path)) <= MAX_SOCKET_PATH:
        return path
    return Path("/tmp") / f"cfx-supervisor-{hashlib.sha256(str(home.root).encode()).hexdigest()[:16]}.sock"


def config_path(home: Home) -> Path:
    return home.supervisor / "supervisord.conf"


def pid_path(home: Home) -> Path:
    return home.supervisor / "supervisord.pid"


@dataclass(frozen=True)
class Program:
    name: str
    command: list[str]


def local_redis(settings: Settings) -> tuple[str, int] | None:
    """(host, port) of the broker when ``CFX_BROKER__URL`` names this machine and nothing answers
    there: ``cfx up`` then runs Debian's ``redis-server`` itself (no persistence: the event log
    is the durable record, the broker only carries notices)."""
    import socket
    from urllib.parse import urlsplit

    url = settings.broker.url
    if not url or not url.startswith("redis://"):
        return None
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if host not in ("127.0.0.1", "localhost", "::1"):
        return None
    try:
        with socket.create_connection((host, port), timeout=1):
            return None  # somebody answers: use it
    except OSError:
        return host, port


def programs(settings: Settings, redis: tuple[str, int] | None = None) -> list[Program]:
    svc, dash = settings.service, settings.dashboards
    api = dash.api or f"http://{svc.host}:{svc.port}"
    serve = [_bin("cfx"), "serve", "--host", svc.host, "--port", str(svc.port), "--workers", str(svc.workers)]
    extra = []
    if redis is not None:
        import shutil

        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        extra.append(
            Program(
                "cfx-redis",
                [binary, "--bind", redis[0], "--port", str(redis[1]), "--save", "", "--appendonly", "no"],
            )
        )
    return [
        *extra,
        Program("cfx-serve", serve),
        Program(
            "cfx-dashboards", [_bin("cfx"), "dashboards", "--host", dash.host, "--port", str(dash.port), "--api", api]
        ),
        Program("cfx-scheduler", [_bin("cfx"), "schedule", "daemon"]),
    ]


def _quote(word: str) -> str:
    return '"' + word.replace('"', '\\"') + '"' if any(c in word for c in ' "%;#') else word


def write_config(home: Home, settings: Settings, workdir: Path) -> Path:
    home.supervisor.mkdir(parents=True, exist_ok=True)
    home.logs.mkdir(parents=True, exist_ok=True)
    sock = socket_path(home)
    lines = [
        "; written by `cfx up`; edits are overwritten. No secrets here: processes inherit cfx up's environment.",
        "[unix_http_server]",
        f"file={sock}",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={home.logs / 'supervisord.log'}",
        "logfile_maxbytes=10MB",
        "logfile_backups=5",
        f"pidfile={pid_path(home)}",
        f"childlogdir={home.logs}",
        f"directory={workdir}",
        f"identifier=cfx-{hashlib.sha256(str(home.root).encode()).hexdigest()[:12]}",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{sock}",
    ]
    redis = local_redis(settings)
    for program in programs(settings, redis):
        log = home.logs / f"{program.name.removeprefix('cfx-')}.log"
        lines += [
            "",
            f"[program:{program.name}]",
            "command=" + " ".join(_quote(w) for w in program.command),
            f"directory={workdir}",
            f'environment=CFX_HOME="{home.root}",PYTHONUNBUFFERED="1"',
            "autostart=true",
            "autorestart=true",
            "startsecs=3",
            "startretries=10",
            "stopsignal=TERM",
            "stopwaitsecs=20",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={log}",
            "stdout_logfile_maxbytes=10MB",
            "stdout_logfile_backups=5",
        ]
    path = config_path(home)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def rpc(home: Home):
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, f"unix://{socket_path(home)}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def running_pid(home: Home) -> int | None:
    """supervisord's pid when it runs for this home (pid file and socket both answer)."""
    try:
        pid = int(pid_path(home).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    try:
        rpc(home).supervisor.getState()
    except (OSError, xmlrpc.client.Fault):
        return None
    return pid


def status(home: Home) -> list[dict]:
    """Each supervised process: name, pid, state, uptime (seconds)."""
    if running_pid(home) is None:
        return []
    now = time.time()
    out = []
    for info in rpc(home).supervisor.getAllProcessInfo():
        running = info["statename"] == "RUNNING"
        out.append(
            {
                "name": info["name"],
                "pid": info["pid"] or None,
                "state": info["statename"],
                "uptime_s": round(now - info["start"]) if running and info["start"] else 0,
                "log": info.get("stdout_logfile"),
            }
        )
    return out


def preflight(home: Home, settings: Settings) -> list[str]:
    """What stops ``cfx up`` before it starts anything: a port another process listens on, or
    live events written by another ``cfx serve`` of this home."""
    import socket

    problems = []
    for name, host, port, var in (
        ("cfx serve", settings.service.host, settings.service.port, "CFX_SERVICE__PORT"),
        ("cfx dashboards", settings.dashboards.host, settings.dashboards.port, "CFX_DASHBOARDS__PORT"),
    ):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                problems.append(
                    f"port {port} on {host} (for {name}) is taken by another process: stop it (a `{name}` started "
                    f"by hand?) or choose another port ({var})"
                )
    lock = home.events / ".writer.lock"
    if lock.exists():
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            problems.append(
                f"another process is writing live events to {home.events} (a `cfx serve` started by hand on this "
                "CFX_HOME?): stop it first"
            )
        finally:
            os.close(fd)
    return problems


def start(home: Home, settings: Settings, workdir: Path, detach: bool) -> None:
    """Start supervisord (refused when one already runs for this home, or when a port or the
    event log is taken by another process: see :func:`preflight`)."""
    pid = running_pid(home)
    if pid is not None:
        raise UserError(f"cfx is already up for {home.root} (supervisord pid {pid}); `cfx status` or `cfx down`")
    problems = preflight(home, settings)
    redis = local_redis(settings)
    if redis is not None:
        import shutil

        if not (shutil.which("redis-server") or Path("/usr/bin/redis-server").exists()):
            problems.append(
                f"CFX_BROKER__URL names {redis[0]}:{redis[1]}, where nothing answers, and redis-server is not "
                "installed to start there: apt-get install redis-server, or point CFX_BROKER__URL at a running Redis"
            )
    if problems:
        raise UserError("cfx up refused: " + "; ".join(problems))
    conf = write_config(home, settings, workdir)
    socket_path(home).unlink(missing_ok=True)  # a stale socket from a crash
    command = [_bin("supervisord"), "-c", str(conf)]
    if not detach:
        os.execv(command[0], [*command, "-n"])  # supervisord in the foreground; Ctrl-C stops everything
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise UserError(f"supervisord did not start: {(result.stderr or result.stdout).strip()[-500:]}")


def stop(home: Home, timeout_s: float = 60) -> list[dict]:
    """Stop every program and supervisord; make sure no process of theirs is left."""
    pid = running_pid(home)
    if pid is None:
        return []
    before = status(home)
    rpc(home).supervisor.shutdown()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.2)
    for proc in before:  # belt and braces: a program's group that outlived supervisord
        if proc["pid"] and pid_alive(proc["pid"]):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc["pid"], sig)
                except OSError:
                    break
                time.sleep(1)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    socket_path(home).unlink(missing_ok=True)
    return before


def log_tail(path: str | None, lines: int = 15) -> str:
    if not path or not Path(path).exists():
        return ""
    return "\n".join(Path(path).read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
