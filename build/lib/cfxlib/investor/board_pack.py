"""The monthly board pack: the publication's PDFs and figures for the month, kept and sent once.

``cfx investor board-pack`` copies the latest publication's investor PDF, launch report,
``metrics_snapshot.json`` and ``finance.json`` into ``$CFX_HOME/investor/board-packs/YYYY-MM/``
(written once per month, like the weekly snapshots) and emails the two PDFs to the investor
recipients once (outbox key ``board-pack/YYYY-MM``); webhooks get ``board_pack.ready``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from cfxlib.core.home import Home
from cfxlib.core.settings import Settings
from cfxlib.investor.weekly import publication_of
from cfxlib.notify.deliver import notify, outbox_for
from cfxlib.notify.outbox import Attachment, EmailContent
from cfxlib.publish.formats import pct, usd
from cfxlib.publish.snapshot import published

FILES = (
    Path("reports") / "investor_metrics.pdf",
    Path("reports") / "enterprise_launch_report.pdf",
    Path("metrics_snapshot.json"),
    Path("finance.json"),
)


@dataclass
class BoardPack:
    month: str
    folder: Path
    created: bool
    queued: int


def build(home: Home, settings: Settings) -> BoardPack:
    snap = published(home)
    month = snap["as_of"]
    pub = publication_of(home, snap["run_id"])
    folder = home.root / "investor" / "board-packs" / month
    created = not folder.exists()
    if created:
        tmp = folder.with_name(f".{month}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for rel in FILES:
            if (pub / rel).exists():
                shutil.copy2(pub / rel, tmp / rel.name)
        tmp.rename(folder)  # the month's pack appears whole or not at all
    outbox = outbox_for(home)
    attachments = [
        Attachment(
            filename=f"ChatterFix {path.stem.replace('_', ' ')} {month}.pdf",
            mime="application/pdf",
            blob=outbox.put_blob(path.read_bytes()),
        )
        for path in sorted(folder.glob("*.pdf"))
    ]
    subject = (
        f"ChatterFix board pack {month}: ARR {usd(snap['arr'])} ({pct(snap.get('arr_growth_mom'), signed=True)} MoM)"
    )
    text = (
        f"The board pack for {month} is attached: investor metrics and the enterprise launch report.\n"
        f"ARR {usd(snap['arr'])}, {snap['customers']:,} customers, NRR {pct(snap.get('nrr_12m'))}.\n"
        f"Run {snap['run_id']}, data {snap['data_hash'][:12]}.\n"
    )
    queued = notify(
        outbox,
        f"board-pack/{month}",
        "board_pack.ready",
        {"month": month, "run_id": snap["run_id"], "files": sorted(p.name for p in folder.iterdir())},
        EmailContent(subject=subject, text=text, attachments=attachments),
        list(settings.investor.recipients),
        settings.webhooks.urls,
    )
    return BoardPack(month, folder, created, queued)
