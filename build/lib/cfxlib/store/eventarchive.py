"""Live events already folded into an ingest, kept compactly so the event log can be trimmed.

The warehouse is rebuilt from the data files at every ingest, so events accepted by the service
must be loaded again each time. Once an ingest that included them succeeded, they move from the
log (zero-padded 16 MB segments, JSON lines) to ``folded.parquet`` beside it: one row per event
key (the latest event for a key wins, as in the warehouse), the event as canonical JSON. The
log's checkpoint (:meth:`cfxlib.store.eventlog.EventLog.checkpoint`) then marks them as folded, and
segments holding only folded events are removed. Order of operations: archive first (atomic
replace), checkpoint second; a crash between the two only folds the same events again, which
their keys make harmless.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from cfxlib.contract.schemas import TABLES
from cfxlib.core.outputs import fsync_dir

ARCHIVE_FILE = "folded.parquet"


def event_key(event: dict) -> str:
    """``table`` and the table's key values of an event, as one string."""
    spec = TABLES.get(event.get("table"))
    keys = spec.key if spec is not None else ()
    return json.dumps([event.get("table"), *[str(event.get(k)) for k in keys]])


def canonical(event: dict) -> str:
    return json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)


class FoldedEvents:
    """The archive of folded events in ``folder`` (the event log's folder)."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / ARCHIVE_FILE

    def read(self) -> list[dict]:
        """Every folded event (one per key), in the order first folded."""
        if not self.path.is_file():
            return []
        return [json.loads(text) for text in pd.read_parquet(self.path, columns=["event"])["event"]]

    def fold(self, events: list[dict]) -> int:
        """Add ``events`` (later ones replace earlier ones with the same key); returns the count kept."""
        merged: dict[str, str] = {}
        for event in [*self.read(), *events]:
            merged[event_key(event)] = canonical(event)
        frame = pd.DataFrame({"key": list(merged), "event": list(merged.values())})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        frame.to_parquet(tmp, index=False, compression="zstd")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)
        return len(frame)
