"""Benchmark: how long a durable write of one live batch takes, old design against new.

    .venv/bin/python bench/eventlog.py [--seconds 30] [--rate 20] [--batch 25] [--background-mb 16]

Side by side in one loop, alternating, ``rate`` times per second each:

- append: the previous event store, ``O_APPEND`` write of the batch's JSON lines + ``fdatasync``
  (the file grows, so every sync commits the filesystem journal);
- event log: :class:`cfxlib.store.eventlog.EventLog`, the same bytes written in place into a
  zero-filled segment + ``fdatasync`` (no metadata to commit).

Twice: on a quiet disk, and while another process writes ``background-mb`` MB/s of new data to
the same filesystem without syncing (what a `cfx run` or any other program does), which is when
journal commits wait. Both logs live in one temporary folder on the filesystem of ``$TMPDIR``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _measure import machine, now, update_section  # noqa: E402

from cfxlib.store.eventlog import EventLog  # noqa: E402


def background_writer(folder: str, mb_per_s: float, stop) -> None:
    """Write new data at ``mb_per_s`` without syncing, rotating over 4 files of 8 MB."""
    block = os.urandom(1 << 20)
    i = 0
    while not stop.is_set():
        start = time.perf_counter()
        with open(Path(folder) / f"bg{i % 4}", "wb") as fh:
            for _ in range(8):
                fh.write(block)
        i += 1
        time.sleep(max(0.0, 8 / mb_per_s - (time.perf_counter() - start)))


def run(folder: Path, seconds: float, rate: float, batch: int) -> dict[str, np.ndarray]:
    events = [
        {"table": "nps_responses", "response_id": f"r{i}", "account_id": "ACC-000001", "date": "2025-12-31", "score": 7}
        for i in range(batch)
    ]
    data = "".join(json.dumps(e) + "\n" for e in events).encode()
    fd = os.open(folder / "append.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    log = EventLog(folder / "log")
    log.open()
    times: dict[str, list[float]] = {"append + fdatasync": [], "event log (in place + fdatasync)": []}
    end = time.perf_counter() + seconds
    try:
        while time.perf_counter() < end:
            start = time.perf_counter()
            os.write(fd, data)
            os.fdatasync(fd)
            times["append + fdatasync"].append(time.perf_counter() - start)
            start = time.perf_counter()
            log.append(events)
            times["event log (in place + fdatasync)"].append(time.perf_counter() - start)
            time.sleep(1 / rate)
    finally:
        os.close(fd)
        log.close()
    return {k: 1000 * np.array(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=20, help="batches per second, each design")
    parser.add_argument("--batch", type=int, default=25, help="events per batch")
    parser.add_argument("--background-mb", type=float, default=16, help="MB/s written by the other process")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="cfx-eventlog-bench-") as tmp:
        for condition in ("quiet disk", f"another process writing {args.background_mb:g} MB/s"):
            folder = Path(tempfile.mkdtemp(dir=tmp))
            os.sync()
            stop, writer = mp.Event(), None
            if condition != "quiet disk":
                writer = mp.Process(target=background_writer, args=(str(folder), args.background_mb, stop))
                writer.start()
            try:
                result = run(folder, args.seconds, args.rate, args.batch)
            finally:
                stop.set()
                if writer is not None:
                    writer.join()
            for design, ms in result.items():
                rows.append(
                    f"| {condition} | {design} | {len(ms):,} | {np.percentile(ms, 50):.1f} | "
                    f"{np.percentile(ms, 99):.1f} | {ms.max():.1f} |"
                )
    lines = [
        f"Machine: {machine()}. Date: {now()}. Filesystem of `$TMPDIR`: ext4 on a virtual disk.",
        "",
        f"Command: `.venv/bin/python bench/eventlog.py --seconds {args.seconds:g} --rate {args.rate:g} "
        f"--batch {args.batch} --background-mb {args.background_mb:g}`. One batch = {args.batch} NPS events "
        "as JSON lines; both designs alternate in one loop.",
        "",
        "| condition | design | batches | p50 ms | p99 ms | max ms |",
        "|---|---|---:|---:|---:|---:|",
        *rows,
    ]
    update_section("Live event log: durable write per batch (bench/eventlog.py)", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
