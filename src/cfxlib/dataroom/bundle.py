"""Assemble the data room's plaintext files from a publication, as ``dataroom/manifest.yml`` says.

Every file is written into a local staging folder (plaintext never leaves the machine); tables
become CSV with formulas neutralised; the investor deck is rendered to PDF with the run's numbers.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import yaml

from cfxlib.contract.money import MONEY_FIELDS, round_cents
from cfxlib.core import provenance
from cfxlib.core.errors import UserError
from cfxlib.core.home import Home
from cfxlib.core.outputs import write_atomic, write_csv
from cfxlib.core.repo import REPO
from cfxlib.dataroom.spec import FileSpec, Spec
from cfxlib.publish import history, pages, render


class BundleError(UserError):
    """A file the data room needs is missing from the publication."""


def whole_cents(frame: pd.DataFrame) -> pd.DataFrame:
    """Dollar columns (:data:`~cfxlib.contract.money.MONEY_FIELDS`, ``*_usd``) as text to the cent
    (``2349.55``, never ``2349.5532000000003``); other numbers keep 12 significant digits."""
    out = frame.copy()
    for column in out.columns:
        money = column in MONEY_FIELDS or str(column).endswith("_usd")
        if money and pd.api.types.is_float_dtype(out[column]):
            cents = round_cents(out[column].to_numpy())
            out[column] = [None if pd.isna(v) else f"{v:.2f}" for v in cents]
    return out


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _deck(pub: Path, page: Path, out: Path, work: Path, home: Home) -> None:
    """Render a Markdown page with ``{{< var >}}`` numbers and ``_artifacts`` includes to PDF."""
    snap = _read_json(pub / "metrics_snapshot.json")
    finance = _read_json(pub / "finance.json")
    customer = _read_json(pub / "customer_success.json") or None
    base = work / "deck"
    shutil.rmtree(base, ignore_errors=True)
    shutil.copytree(pub / "artifacts", base / "_artifacts", ignore=shutil.ignore_patterns("*.parquet", "*.csv"))
    # the week before the current one (the current week's snapshot holds these same figures)
    this_week = history.iso_week(datetime.now(UTC).date())
    last_week = history.previous_week(history.snapshots_dir(home.root), this_week)
    for name, text in pages.report_fragments(snap, finance, customer, last_week).items():
        (base / "_artifacts" / name).write_text(text + "\n", encoding="utf-8")
    values = yaml.safe_load((pub / "artifacts" / "variables.yml").read_text(encoding="utf-8")) or {}
    shutil.copy2(page, base / page.name)
    title, body = render.report_markdown(base / page.name, values)
    text = f"# ChatterFix {title[0].lower() + title[1:]} — {snap.get('as_of', '')}\n\n{body.strip()}\n"
    footer = f"ChatterFix · cfx run {snap.get('run_id', '')} · data {snap.get('data_hash', '')[:12]}"
    demo = snap.get("source") == provenance.DEMO
    if demo:
        footer = f"{provenance.DEMO_LABEL.upper()} · {footer}"
    render.render_pdf(text, base, out, f"ChatterFix {title.lower()}", footer, provenance.DEMO_NOTE if demo else "")


def _weekly(home: Home, out: Path) -> None:
    weeks = history.read_weeks(history.snapshots_dir(home.root))
    columns = [
        "week",
        "as_of",
        "run_id",
        "data_hash",
        "mrr",
        "arr",
        "arr_growth_mom",
        "customers",
        "nrr_12m",
        "grr_12m",
        "logo_churn_rate",
        "uptime_pct",
        "worst_service_uptime_pct",
        "arr_at_risk",
    ]
    write_csv(pd.DataFrame([{c: w.get(c) for c in columns} for w in weeks], columns=columns), out)


def _run_log(pub: Path, out: Path) -> None:
    run = _read_json(pub / "run.json")
    summary = {
        k: run.get(k)
        for k in ("run_id", "status", "started_at", "finished_at", "as_of", "code_commit", "data_hash", "packages")
    }
    summary["steps"] = {
        name: {"status": s.get("status"), "seconds": s.get("seconds")} for name, s in (run.get("steps") or {}).items()
    }
    write_atomic(out, (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def produce(item: FileSpec, pub: Path, out: Path, work: Path, home: Home, spec_dir: Path) -> None:
    """Write one data room file to ``out`` (deck pages are relative to ``spec_dir``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if item.source == "publication":
        src = pub / item.path
        if not src.exists():
            raise BundleError(f"the publication has no {item.path} (needed for {item.name}); run `cfx run`")
        shutil.copyfile(src, out)
    elif item.source == "table":
        src = pub / item.path
        if not src.exists():
            raise BundleError(f"the publication has no {item.path} (needed for {item.name})")
        write_csv(whole_cents(pd.read_parquet(src)), out, float_format="%.12g")
    elif item.source == "repository":
        shutil.copyfile(REPO / item.path, out)
    elif item.source == "deck":
        _deck(pub, spec_dir / item.path, out, work, home)
    elif item.source == "weekly":
        _weekly(home, out)
    elif item.source == "model_card":
        text = pages.model_card(_read_json(pub / "customer_success.json"))
        write_atomic(out, ("# Churn model card\n\n" + text.strip() + "\n").encode("utf-8"))
    elif item.source == "run_log":
        _run_log(pub, out)


def assemble(spec: Spec, pub: Path, plain: Path, work: Path, home: Home, spec_dir: Path) -> list[dict]:
    """Write every file of ``spec`` under ``plain/<section>/<name>``; returns their entries."""
    entries = []
    for section in spec.sections:
        for item in section.files:
            rel = f"{section.id}/{item.name}"
            produce(item, pub, plain / rel, work, home, spec_dir)
            entries.append({"path": rel, "section": section.id, "section_title": section.title})
    return entries
