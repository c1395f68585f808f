"""Helpers for benchmarks: run a command, measure wall time and peak memory; machine facts."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Measurement:
    seconds: float
    peak_rss_mb: float
    returncode: int


def measure(cmd: list[str], env: dict | None = None, cwd: Path | None = None) -> Measurement:
    """Run ``cmd`` to completion; wall time and the child's peak resident memory (ru_maxrss)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, cwd=cwd or REPO, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measurement(seconds, usage.ru_maxrss / 1024, proc.returncode)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, Python {platform.python_version()}, {platform.system()}"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def update_section(name: str, body: str) -> None:
    """Replace the section ``## name`` of docs/benchmarks.md (or append it)."""
    path = REPO / "docs" / "benchmarks.md"
    text = (
        path.read_text(encoding="utf-8")
        if path.exists()
        else "# Benchmarks\n\nEach section is written by the script it names; rerun it to refresh.\n"
    )
    start_marker = f"<!-- begin {name} -->"
    end_marker = f"<!-- end {name} -->"
    block = f"{start_marker}\n## {name}\n\n{body.strip()}\n{end_marker}"
    if start_marker in text:
        head, rest = text.split(start_marker, 1)
        tail = rest.split(end_marker, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
