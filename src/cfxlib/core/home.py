"""The layout of a state directory (``$CFX_HOME``).

Everything a command writes lives under one home, so two homes never share anything::

    $CFX_HOME/
      cfx.toml            optional settings
      warehouse/cfx.duckdb  the validated warehouse (swapped in atomically by ingest)
      lake/               the tables `cfx ingest --engine spark` wrote, and current.json pointing at them
      demo-data/          the demo company's data directory (when no data is configured)
      runs/<id>/          one folder per pipeline run
      published/          the outputs of the last successful run
      events/             live events accepted by the service, until the next run
      keys/               key files (data-room keys, SMTP passwords)
      tokens.json         hashed API tokens
      investor/           weekly snapshots, updates, alert state, board packs
      outbox/             notifications (pending, sent, failed)
      scheduler/          job store, run history, heartbeat
      dataroom/           staged versions, local manifests, the last sync
      supervisor/         supervisord's configuration, socket and pid file (`cfx up`)
      logs/               logs of the supervised processes (rotated)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Home:
    root: Path

    @property
    def warehouse_dir(self) -> Path:
        return self.root / "warehouse"

    @property
    def warehouse(self) -> Path:
        return self.warehouse_dir / "cfx.duckdb"

    @property
    def demo_data(self) -> Path:
        return self.root / "demo-data"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def published(self) -> Path:
        return self.root / "published"

    @property
    def events(self) -> Path:
        return self.root / "events"

    @property
    def interventions(self) -> Path:
        """The calls-to-action store (``cta.sqlite``) and nothing else."""
        return self.root / "interventions"

    @property
    def pilots(self) -> Path:
        return self.root / "pilots"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def tokens(self) -> Path:
        return self.root / "tokens.json"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def scheduler(self) -> Path:
        return self.root / "scheduler"

    @property
    def dataroom(self) -> Path:
        return self.root / "dataroom"

    @property
    def supervisor(self) -> Path:
        return self.root / "supervisor"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def ensure(self) -> Home:
        self.root.mkdir(parents=True, exist_ok=True)
        self.warehouse_dir.mkdir(exist_ok=True)
        return self
