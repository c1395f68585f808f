"""Pilots: prospects trying the product, recorded durably as JSON lines under ``$CFX_HOME``.

A pilot is written (and fsynced, with its folder) before the service answers 201, so an
acknowledged pilot survives a crash. The file is append-only; :meth:`PilotStore.list` returns
every pilot in the order recorded.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path

from cfxlib.core.outputs import fsync_dir


class PilotStore:
    def __init__(self, folder: Path):
        self.path = Path(folder) / "pilots.jsonl"
        self._lock = threading.Lock()

    def add(self, pilot: dict) -> dict:
        """Record ``pilot`` (already validated); returns it with ``pilot_id``, ``status`` and ``created_at``."""
        record = {
            "pilot_id": f"PILOT-{secrets.token_hex(4).upper()}",
            "status": "proposed",
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **pilot,
        }
        line = (json.dumps(record, default=str, sort_keys=True) + "\n").encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            if new:
                fsync_dir(self.path.parent)
        return record

    def list(self) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                break  # a torn last line (a crash mid-write) was never acknowledged
        return out
