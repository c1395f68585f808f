"""The ``cfx`` command line.

Every command reads its settings from :func:`cfxlib.core.settings.load_settings` and writes its state
under ``$CFX_HOME``. User mistakes (bad input, bad options) end with a clear message and a
non-zero exit code, never a traceback.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from cfxlib import __version__
from cfxlib.core.errors import UserError
from cfxlib.core.home import Home
from cfxlib.core.settings import load_settings

app = typer.Typer(
    name="cfx",
    help="ChatterFix customer, revenue and investor intelligence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=False, soft_wrap=True)  # paths and sentences are never cut by line wrapping
err = Console(stderr=True, soft_wrap=True)


def _print_table(table: Table) -> None:
    """Print a table at its full width: figures and ids are never cut to fit 80 columns or a pipe
    (a narrow terminal wraps the lines instead)."""
    needed = console.measure(table, options=console.options.update(width=100_000)).maximum
    wide = Console(width=max(console.width, needed), soft_wrap=True, force_terminal=console.is_terminal)
    wide.print(table, markup=False, highlight=False)


def _version(value: bool) -> None:
    if value:
        console.print(f"cfx {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = False,
) -> None:
    """ChatterFix customer, revenue and investor intelligence."""


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserError(f"{option} must be a date YYYY-MM-DD, not {value!r}") from None


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal,
    )


# --------------------------------------------------------------------------- demo-data


@app.command("demo-data")
def demo_data(
    out_dir: Annotated[Path, typer.Argument(help="Directory to write the data files into.")],
    accounts: Annotated[int, typer.Option(help="Number of customer accounts.")] = 2000,
    months: Annotated[int, typer.Option(help="Months of history.")] = 36,
    seed: Annotated[int, typer.Option(help="Random seed; the same options give identical files.")] = 42,
    end_month: Annotated[
        str | None, typer.Option(help="Last month of data, YYYY-MM (default: last complete month).")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="File format: csv or parquet.")] = "csv",
) -> None:
    """Write the demo company's data directory (and its churn truth under _truth/)."""
    from cfxlib.demo import DemoOptions, generate

    opts = DemoOptions(accounts=accounts, months=months, seed=seed, end_month=end_month, fmt=format)
    with _progress() as progress:
        task = progress.add_task("generating accounts", total=accounts)
        rows = generate(out_dir, opts, progress=lambda done, total: progress.update(task, completed=done))
    table = Table(title=f"Demo company written to {out_dir}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in rows.items():
        table.add_row(name, f"{n:,}")
    _print_table(table)


# --------------------------------------------------------------------------- ingest


def _has_events(home: Home) -> bool:
    """Whether live events arrived since the last ingest folded them in."""
    from cfxlib.store.eventlog import EventLog

    return bool(EventLog(home.events).read_checkpointed()[0])


def _spark(settings):
    from cfxlib.store.spark import SparkConnection, session

    return SparkConnection(session(settings.spark.master, settings.spark.driver_memory, settings.spark.conf))


def _data_location(value: str | Path | None) -> str | Path | None:
    """A data directory: a local path, or (Spark) a URL such as gs://bucket/folder."""
    if value is None or "://" in str(value):
        return value
    return Path(value)


def _ingest(data_dir: str | Path, home: Home, as_of: date | None, engine: str, settings):
    """Validate and load ``data_dir`` plus the live events: those folded into earlier ingests
    (the archive) and those accepted since (the log after its checkpoint). On success the new
    events are archived and the log checkpointed, so no ingest reads the whole log again.
    ``engine`` duckdb loads the warehouse; spark writes the lake's tables (:mod:`cfxlib.store.lake`)."""
    from cfxlib.store.eventarchive import FoldedEvents
    from cfxlib.store.eventlog import EventLog
    from cfxlib.store.warehouse import ingest

    log = EventLog(home.events)
    archive = FoldedEvents(home.events)
    new, mark = log.read_checkpointed()
    events = archive.read() + new

    if engine == "spark":
        from cfxlib.store import lake

        with console.status(f"validating {data_dir} on Spark and writing its tables"):
            result = lake.ingest(
                data_dir, home.ensure(), _spark(settings), as_of=as_of, events=events, location=settings.spark.tables
            )
    elif isinstance(data_dir, str):
        raise UserError(f"{data_dir}: the embedded ingest reads local folders; read a URL with --engine spark")
    else:
        result = _ingest_duckdb(data_dir, home, as_of, events, ingest)
    if new:
        archive.fold(new)
        log.checkpoint(mark)
    return result


def _ingest_duckdb(data_dir: Path, home: Home, as_of: date | None, events: list[dict], ingest):
    with _progress() as progress:
        tasks: dict[str, int] = {}

        def report(table: str, rows: int) -> None:
            if table not in tasks:
                tasks[table] = progress.add_task(f"loading {table}", total=None)
            progress.update(tasks[table], completed=rows)

        return ingest(data_dir, home.ensure().warehouse, as_of=as_of, progress=report, events=events)


def print_summary(home: Home, engine: str, settings) -> None:
    from cfxlib.store import lake
    from cfxlib.store.summary import summary as tables_summary

    con = lake.connect(
        home, engine, settings.spark.master, settings.spark.driver_memory, spark_conf=settings.spark.conf
    )
    try:
        summary = tables_summary(con)
    finally:
        con.close()
    where = lake.current(home)["location"] if lake.newest(home) == "lake" else home.warehouse
    console.print(
        f"[bold]Tables[/bold] {where} (on {engine})\n"
        f"data {summary['first_date']} to {summary['last_date']} (as of {summary['as_of']}), "
        f"hash {summary['data_hash'][:12]}\n"
        f"accounts {summary['accounts']:,}; active subscriptions {summary['active_subscriptions']:,}; "
        f"active customers {summary['active_customers']:,}"
    )
    table = Table(title=f"Recurring revenue at {summary['as_of']}")
    for col in ("tier", "customers", "MRR (USD)", "ARR (USD)"):
        table.add_column(col, justify="right" if col != "tier" else "left")
    for row in summary["by_tier"]:
        table.add_row(row["tier"], f"{row['customers']:,}", f"{row['mrr']:,.2f}", f"{row['arr']:,.2f}")
    table.add_row(
        Text("total", style="bold"),  # a styled cell: _print_table prints without markup
        f"{summary['active_customers']:,}",
        f"{summary['mrr']:,.2f}",
        f"{summary['arr']:,.2f}",
    )
    _print_table(table)


@app.command("ingest")
def ingest_cmd(
    data_dir: Annotated[
        str,
        typer.Argument(
            help="Data directory: one NAME.csv or NAME.parquet per table (Spark: NAME.parquet, a file or "
            "a folder of parts, at a local path or any URL Spark reads, such as gs://...)."
        ),
    ],
    as_of: Annotated[
        str | None,
        typer.Option(
            help="Point-in-time view as of this date, YYYY-MM-DD: rows dated after it are left out "
            "(and counted), not refused. Dates after today are always refused."
        ),
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(help="duckdb: load the embedded warehouse; spark: validate on Spark and write its tables."),
    ] = None,
) -> None:
    """Validate a data directory and load it (all or nothing): into the warehouse, or on Spark."""
    settings = load_settings()
    engine = _engine(engine, settings)
    home = Home(settings.home)
    location = _data_location(data_dir)
    result = _ingest(location, home, _parse_date(as_of, "--as-of"), engine, settings)
    _print_loaded(result, location)
    print_summary(home, engine, settings)


@app.command("validate")
def validate_cmd(
    data: Annotated[
        str,
        typer.Argument(
            help="Folder of NAME.parquet tables: a local path, or for Spark any URL it reads (gs://... "
            "on a cluster with the GCS connector)."
        ),
    ],
    engine: Annotated[str, typer.Option(help="duckdb (embedded) or spark (settings [spark]).")] = "duckdb",
) -> None:
    """Check Parquet input where it lives: every rule of `cfx ingest`, as SQL on the engine (nothing is loaded)."""
    from cfxlib.contract.issues import InputError
    from cfxlib.store import engine_validate

    if engine not in ("duckdb", "spark"):
        raise UserError(f"--engine must be duckdb or spark, not {engine!r}")
    settings = load_settings()
    if engine == "spark":
        con = _spark(settings)
    else:
        import duckdb

        con = duckdb.connect()
    with console.status(f"validating {data} on {engine}"):
        log = engine_validate.validate(con, data)
    if log:
        raise InputError(log, f"{data} is invalid")
    console.print(f"{data}: every rule of the data contract holds (checked on {engine}).", markup=False)


def _engine(option: str | None, settings) -> str:
    """The engine of this command: the option, else the setting (``CFX_ENGINE``)."""
    if option is not None and option not in ("duckdb", "spark"):
        raise UserError(f"--engine must be duckdb or spark, not {option!r}")
    return option or settings.engine


def _last_ingest(home: Home) -> tuple[str, dict] | None:
    """(engine, metadata) of the newest ingest, warehouse or lake; None when there was none."""
    from cfxlib.core import provenance
    from cfxlib.store import lake, warehouse

    source = lake.newest(home)
    if source is None:
        return None
    if source == "lake":
        engine, meta = "spark", dict(lake.current(home))
    else:
        con = warehouse.connect(home.warehouse)
        try:
            engine, meta = "duckdb", warehouse.ingest_metadata(con)
        finally:
            con.close()
    demo_dirs = {str(home.demo_data), str(home.root / "demo-data-parquet")}  # homes made before the demo marker
    if meta.get("source") != provenance.DEMO:
        demo = provenance.is_demo_data(meta.get("data_dir")) or str(meta.get("data_dir")) in demo_dirs
        meta["source"] = provenance.DEMO if demo else provenance.DATA
    return engine, meta


def _print_loaded(result, data_dir: str | Path) -> None:
    console.print(f"Loaded {sum(result.rows.values()):,} rows from {data_dir}.", markup=False)
    if result.as_of is not None:
        left = ", ".join(f"{t} {n:,}" for t, n in result.left_out.items()) or "none"
        console.print(f"Point in time {result.as_of}: rows dated after it left out: {left}.", markup=False)


# --------------------------------------------------------------------------- run


@app.command("run")
def run_cmd(
    data: Annotated[
        str | None, typer.Option("--data", help="Data directory to ingest first (Spark: a local path or a URL).")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option(help="Reporting date YYYY-MM-DD (reports the month that contains it).")
    ] = None,
    engine: Annotated[
        str | None, typer.Option(help="duckdb (default) or spark: where the set-based computations run.")
    ] = None,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Run on the generated demo company (fictional figures, stamped 'Demo data', never sent to investors).",
        ),
    ] = False,
) -> None:
    """The main job: ingest, execute the notebooks, render the site and PDFs, publish atomically."""
    import os

    from cfxlib.core import provenance
    from cfxlib.demo import DemoOptions, generate
    from cfxlib.publish import pipeline

    settings = load_settings()
    engine = _engine(engine, settings)
    os.environ["CFX_ENGINE"] = engine  # the notebooks' kernels inherit it
    home = Home(settings.home).ensure()
    as_of_date = _parse_date(as_of, "--as-of") or settings.as_of
    if demo and data:
        raise UserError("--demo and --data exclude each other: run the demo company or your data, not both")
    data_dir = None if demo else _data_location(data or settings.data_dir)
    ingest_engine = engine
    last = _last_ingest(home)
    last_is_demo = last is not None and last[1].get("source") == provenance.DEMO
    if data_dir is None and not demo and (last is None or last_is_demo):
        why = "the last run was the demo company, which only --demo publishes" if last_is_demo else "no data configured"
        raise UserError(
            f"{why}: point cfx at your data with `cfx run --data DIR` (or data_dir in cfx.toml, or CFX_DATA_DIR; "
            "`cfx ingest DIR` also works), or run the fictional demo company with `cfx run --demo` (what `make run` does)"
        )
    if demo and not (last_is_demo and provenance.is_demo_data(last[1].get("data_dir"))):
        opts = settings.demo
        fmt = "parquet" if engine == "spark" else "csv"  # Spark reads Parquet
        target = home.demo_data if fmt == "csv" else home.root / "demo-data-parquet"
        console.print(f"Demo company (fictional data, stamped 'Demo data'): generating it into {target}")
        with _progress() as progress:
            task = progress.add_task("generating accounts", total=opts.accounts)
            generate(
                target,
                DemoOptions(
                    accounts=opts.accounts, months=opts.months, seed=opts.seed, end_month=opts.end_month, fmt=fmt
                ),
                progress=lambda done, total: progress.update(task, completed=done),
            )
        data_dir = target
    elif data_dir is None:
        # Reload the data of the last ingest (with the engine that made it) when live events
        # arrived since, or when this run's point in time differs (each run is as of its own date).
        ingest_engine, meta = last
        wanted = as_of_date.isoformat() if as_of_date else None
        if _has_events(home) or meta.get("as_of") != wanted:
            data_dir = _data_location(meta["data_dir"])
    if data_dir is not None:
        _print_loaded(_ingest(data_dir, home, as_of_date, ingest_engine, settings), data_dir)
    print_summary(home, engine, settings)
    month = f"{as_of_date.year:04d}-{as_of_date.month:02d}" if as_of_date else None
    names = [s.name for s in pipeline.STEPS] + ["render"]
    with _progress() as progress:
        # each step's timer starts when the step starts, not when the run does
        tasks = {n: progress.add_task(n, total=1, start=False) for n in names}

        def report(name: str, state: str) -> None:
            if state == "start":
                progress.start_task(tasks[name])
            elif state == "done":
                progress.update(tasks[name], completed=1)
                progress.stop_task(tasks[name])
            elif state == "failed":
                progress.update(tasks[name], description=f"[red]{name} failed")
                progress.stop_task(tasks[name])

        notebooks = settings.pipeline.notebook_dir
        result = pipeline.run(
            home, as_of_month=month, notebooks=notebooks, timeout=settings.pipeline.notebook_timeout_s, progress=report
        )
    timings = ", ".join(f"{n} {result.steps[n].get('seconds', 0):.0f}s" for n in names if n in result.steps)
    _evaluate_interventions(home, settings)
    pub = home.published
    console.print(f"Published run {result.run_id} (as of {result.as_of})", markup=False)
    console.print(f"  site:    {pub / 'site' / 'index.html'}", markup=False)
    for pdf in sorted((pub / "reports").glob("*.pdf")):
        console.print(f"  PDF:     {pdf}", markup=False)
    console.print(f"  run:     {result.run_dir}", markup=False)
    console.print(f"Steps (in pipeline order): {timings}", markup=False)


def _evaluate_interventions(home: Home, settings) -> None:
    """The batch evaluation of the intervention rules after a publication (never fails the run:
    the publication stands; a problem is said and the next run evaluates again)."""
    from cfxlib.interventions.batch import evaluate_publication

    try:
        changes = evaluate_publication(home, settings)
    except UserError as exc:
        err.print(f"interventions not evaluated: {exc}", markup=False, highlight=False)
        return
    counts = {k: sum(1 for c in changes if c["change"] == k) for k in ("opened", "changed", "closed")}
    held = sum(1 for c in changes if c["change"] == "opened" and c.get("holdout"))
    console.print(
        f"Interventions: {counts['opened']} opened ({held} held out), {counts['changed']} changed, "
        f"{counts['closed']} closed (cfx interventions list)",
        markup=False,
    )


report_app = typer.Typer(help="Write report artifacts (tables, figures, JSON, Markdown).", no_args_is_help=True)
app.add_typer(report_app, name="report")


@report_app.command("finance")
def report_finance(
    out: Annotated[Path | None, typer.Option(help="Folder to write into (default: $CFX_HOME/reports/finance).")] = None,
    horizon: Annotated[int, typer.Option(help="Forecast horizon, months.")] = 12,
) -> None:
    """Revenue metrics, the ARR forecast with its backtest, figures and finance.json."""
    from cfxlib.metrics import finance
    from cfxlib.publish import finance_report
    from cfxlib.store import lake

    settings = load_settings()
    home = Home(settings.home)
    target = out or home.root / "reports" / "finance"
    con = lake.connect_embedded(home, settings.duckdb.memory_limit)
    try:
        with err.status("computing revenue metrics and the ARR forecast"):
            results = finance.compute(con, h=horizon)
    finally:
        con.close()
    files = finance_report.write(results, target)
    summary = finance.payloads(results)["summary"]
    fc = summary["arr_forecast_12m"]
    console.print(
        f"ARR {summary['arr']:,.0f} USD at {summary['as_of']}; forecast in {horizon} months "
        f"{fc['arr']:,.0f} (80% {fc['lo_80']:,.0f} to {fc['hi_80']:,.0f}; {fc['model']})",
        markup=False,
    )
    bt = results.backtest["overall"]
    if bt:
        console.print(
            f"Backtest of the total ARR forecast: MAPE {bt['mape']:.1f}% over {bt['points']} points from {bt['origins']} origins; "
            f"coverage 80%: {100 * bt['coverage_80']:.0f}%, 95%: {100 * bt['coverage_95']:.0f}%"
        )
    _print_files(files, target)


def _print_files(files: dict, target: Path) -> None:
    """Name every file a report wrote (the folder alone does not say what is in it)."""
    paths = sorted({Path(p) for p in files.values()})
    console.print(f"Wrote {len(paths)} files to {target}:", markup=False)
    for path in paths:
        console.print(f"  {path}", markup=False)


@report_app.command("customer-success")
def report_customer_success(
    format: Annotated[
        list[str] | None, typer.Option("--format", help="json and/or md (repeat the option for both; default both).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder to write into (default: $CFX_HOME/reports/customer-success). With one --format and "
            "no --out, the report goes to standard output instead."
        ),
    ] = None,
    as_of: Annotated[str | None, typer.Option(help="Month YYYY-MM (default: the data's last month).")] = None,
) -> None:
    """KPI summary, at-risk accounts with recommendations, and the churn model card."""
    from cfxlib.customers import report as customer_results
    from cfxlib.publish import customer_report
    from cfxlib.store import lake, warehouse

    format = format or ["json", "md"]
    bad = [f for f in format if f not in ("json", "md")]
    if bad:
        raise UserError(f"--format must be json or md, not {', '.join(bad)}")
    settings = load_settings()
    home = Home(settings.home)
    target = out or home.root / "reports" / "customer-success"
    con = lake.connect_embedded(home, settings.duckdb.memory_limit)
    try:
        truth = customer_results.truth_for(warehouse.ingest_metadata(con))
        with err.status("scoring health and churn, evaluating the model"):
            results = customer_results.compute(
                con, _parse_month(as_of), truth, settings.costs.downtime_cost_per_hour_usd
            )
    finally:
        con.close()
    k, card = results.kpis, results.card or {}
    headline = (
        f"{k['accounts_at_risk']:,} accounts at risk; ARR at risk {k['arr_at_risk']:,.0f} USD; "
        f"churn model ROC AUC {card.get('roc_auc', float('nan')):.3f} out of time"
        + (f" ({card['oracle_ratio']:.3f} of the oracle)" if "oracle_ratio" in card else "")
    )
    if out is None and format in (["md"], ["json"]):
        # one format and no folder: the report itself goes to standard output (pipe it, page it)
        text = (
            customer_report.markdown(results)
            if format == ["md"]
            else json.dumps(customer_results.payload(results), indent=1)
        )
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        err.print(headline, markup=False)
        return
    files = customer_report.write(results, target, formats=tuple(format))
    console.print(headline, markup=False)
    _print_files(files, target)


churn_app = typer.Typer(help="Churn prediction.", no_args_is_help=True)
app.add_typer(churn_app, name="churn")


@churn_app.command("score")
def churn_score(
    as_of: Annotated[
        str, typer.Option(help="Month YYYY-MM: train on outcomes known at its end, score accounts active then.")
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="CSV file to write: account_id, p_churn_3m, tier, arr, health_score, band, reasons (riskiest first)."
        ),
    ],
) -> None:
    """Churn probability within 3 months for every account active at the end of a month."""
    from cfxlib.core.outputs import write_csv
    from cfxlib.customers import scoring
    from cfxlib.store import lake

    month = _parse_month(as_of)
    settings = load_settings()
    con = lake.connect_embedded(Home(settings.home), settings.duckdb.memory_limit)
    try:
        with err.status(f"training on outcomes known at the end of {month}"):
            result = scoring.churn_scores(con, month)
        scores = _churn_table(result, con, month)
    finally:
        con.close()
    write_csv(scores, out, float_format="%.6f")
    console.print(
        f"Scored {len(scores):,} accounts active at the end of {month} (trained on {result.training_rows:,} of {result.available_rows:,} snapshots); wrote {out}"
    )


def _churn_table(result, con, month: str):
    """The contract's ``account_id, p_churn_3m``, then tier, ARR, health band and the reasons in
    words, riskiest first."""
    import pandas as pd

    from cfxlib.customers import health

    s = result.scores
    explained = result.drivers.explain(s)
    table = pd.DataFrame(
        {
            "account_id": s["account_id"].to_numpy(),
            "p_churn_3m": s["p_churn_3m"].to_numpy(),
            "tier": s["tier"].to_numpy(),
            "arr": (12 * s["mrr"]).round(2).to_numpy(),
            "reasons": ["; ".join(r) for r in explained["reasons"]],
        }
    )
    bands = health.health_scores(con, pd.Period(month, freq="M").end_time.date(), changes=False)
    table = table.merge(bands[["account_id", "health_score", "band"]], on="account_id", how="left")
    table = table[["account_id", "p_churn_3m", "tier", "arr", "health_score", "band", "reasons"]]
    return table.sort_values(["p_churn_3m", "account_id"], ascending=[False, True]).reset_index(drop=True)


def _parse_month(value: str | None) -> str | None:
    if value is None:
        return None
    import re

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
        raise UserError(f"month must be YYYY-MM, not {value!r}")
    return value


@app.command("serve")
def serve_cmd(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8001).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Processes sharing the port (default 1); above 1 needs CFX_BROKER__URL (docs/scaling.md).",
        ),
    ] = None,
) -> None:
    """The HTTP and WebSocket service for the latest publication (finance, customers, events)."""
    from cfxlib.api.app import serve

    settings = load_settings()
    home = Home(settings.home).ensure()
    serve(
        home,
        host or settings.service.host,
        port or settings.service.port,
        settings.service.feed_buffer_bytes,
        access_log=settings.service.access_log,
        workers=workers or settings.service.workers,
    )


@app.command("dashboards")
def dashboards_cmd(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8002).")] = None,
    api: Annotated[str | None, typer.Option(help="Base URL of `cfx serve` (default from settings).")] = None,
) -> None:
    """The Voilà dashboards (customer success, reporting portal) behind cfx tokens (?token=...)."""
    from cfxlib.dashboards.server import run

    settings = load_settings()
    home = Home(settings.home).ensure()
    d, svc = settings.dashboards, settings.service
    api_url = api or d.api or f"http://{svc.host}:{svc.port}"
    import httpx

    try:
        httpx.get(f"{api_url.rstrip('/')}/healthz", timeout=3)
    except httpx.HTTPError as exc:
        err.print(
            f"warning: the cfx service is not reachable at {api_url} ({type(exc).__name__}); the dashboards say so "
            "until it answers: start `cfx serve` (or `cfx up`), or pass --api URL",
            markup=False,
            highlight=False,
        )
    run(
        home,
        host or d.host,
        port or d.port,
        api_url,
        max_kernels=d.max_kernels,
        cull_idle_s=d.cull_idle_s,
        preheat=d.preheat,
    )


token_app = typer.Typer(help="API tokens (stored hashed under $CFX_HOME; shown once).", no_args_is_help=True)
app.add_typer(token_app, name="token")


def _tokens():
    from cfxlib.api.auth import TokenStore

    return TokenStore(Home(load_settings().home).ensure().tokens)


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="analyst, executive, investor or ingest.")],
    name: Annotated[str, typer.Option(help="A label to recognise the token by.")] = "",
    expires: Annotated[int | None, typer.Option(help="Days until the token expires (default: never).")] = None,
) -> None:
    """Create a token and print it (it cannot be shown again)."""
    token, record = _tokens().create(role, name, expires)
    err.print(
        f"token {record.id} ({record.role}, {record.name}) created; store it now, it is not kept", highlight=False
    )
    print(token)


@token_app.command("list")
def token_list() -> None:
    """Tokens by id, role, name and state (never the token itself)."""
    table = Table()
    for col in ("id", "role", "name", "created", "expires", "state"):
        table.add_column(col)
    for r in _tokens().list():
        state = "revoked" if r.revoked_at else ("active" if r.active() else "expired")
        table.add_row(r.id, r.role, r.name, r.created_at, r.expires_at or "never", state)
    _print_table(table)


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help="The token's id (see `cfx token list`).")]) -> None:
    """Revoke a token: it is refused from the next request on."""
    record = _tokens().revoke(token_id)
    console.print(f"token {record.id} revoked")


# --------------------------------------------------------------------------- investor, notify

investor_app = typer.Typer(
    help="Investor automation: weekly snapshots, alerts, the weekly update.", no_args_is_help=True
)
app.add_typer(investor_app, name="investor")
notify_app = typer.Typer(help="The notification outbox (email and signed webhooks).", no_args_is_help=True)
app.add_typer(notify_app, name="notify")


def _flush(home: Home, settings, due_only: bool = False):
    """Deliver what waits and say what happened (one line per problem, never a secret)."""
    from cfxlib.notify.deliver import flush

    report = flush(home, settings, due_only=due_only)
    if report.busy:
        err.print("another `cfx notify flush` is delivering; it will send what waits", highlight=False)
        return report
    if report.sent:
        console.print(f"notifications delivered: {len(report.sent)}", highlight=False)
    reasons: dict[str, int] = {}
    for _key, why in report.waiting:
        reasons[why] = reasons.get(why, 0) + 1
    for why, n in reasons.items():
        err.print(f"{n} notification(s) wait in the outbox: {why}", markup=False, highlight=False)
    for key, why in report.failed:
        err.print(f"notification {key} failed for good: {why} (see `cfx notify list`)", markup=False, highlight=False)
    return report


@investor_app.command("weekly")
def investor_weekly(
    week: Annotated[str | None, typer.Option(help="ISO week YYYY-Www (default: the current week).")] = None,
    allow_demo: Annotated[
        bool, typer.Option("--allow-demo", help="Send or upload even when the publication is the demo company.")
    ] = False,
) -> None:
    """Record the week's snapshot, evaluate the alerts, and send the weekly investor update (once per
    recipient per week; re-running sends nothing twice)."""
    from cfxlib.investor import weekly
    from cfxlib.publish.snapshot import refuse_demo

    settings = load_settings()
    home = Home(settings.home).ensure()
    refuse_demo(home, allow_demo, "`cfx investor weekly` records and sends")
    try:
        result = weekly.weekly(home, settings, week)
    except ValueError as exc:
        raise UserError(f"--week: {exc}") from None
    what = {
        "written": "written",
        "unchanged": "already recorded (same data; unchanged)",
        "kept": "already recorded from other data; kept as first reported (snapshots are append-only)",
    }[result.status]
    console.print(f"week {result.week} snapshot {what}: {result.path}", highlight=False)
    for notice in result.notices:
        console.print(f"alert {notice.rule.title}: {notice.kind}", highlight=False)
    console.print(f"update: {result.update_path}", highlight=False)
    if not settings.investor.recipients and not settings.webhooks.urls:
        err.print("no recipients: set CFX_INVESTOR__RECIPIENTS (JSON list) or CFX_WEBHOOKS__URLS to send the update")
    if settings.smtp.host and settings.smtp.sender.endswith("@localhost"):
        err.print(
            f"the From address is {settings.smtp.sender}: set CFX_SMTP__SENDER to an address investors can reply to",
            markup=False,
            highlight=False,
        )
    console.print(f"notifications queued (update and alerts): {result.queued}", highlight=False)
    _flush(home, settings)


@investor_app.command("alerts")
def investor_alerts(
    as_json: Annotated[bool, typer.Option("--json", help="Print every rule's state as JSON.")] = False,
    allow_demo: Annotated[
        bool, typer.Option("--allow-demo", help="Send or upload even when the publication is the demo company.")
    ] = False,
) -> None:
    """Evaluate the alert rules against the latest published snapshot and notify what changed."""
    from cfxlib.investor import alerts
    from cfxlib.publish.snapshot import published, refuse_demo

    settings = load_settings()
    home = Home(settings.home).ensure()
    refuse_demo(home, allow_demo, "`cfx investor alerts` evaluates and sends")
    evaluation = alerts.evaluate(home, settings, published(home))
    notices = evaluation.notices
    if evaluation.skipped:
        err.print(f"alerts not evaluated: {evaluation.skipped}", markup=False, highlight=False)
    if as_json:
        print(json.dumps(alerts.state_table(home), indent=2))
    else:
        table = Table()
        for col in ("rule", "state", "value", "threshold", "month", "since"):
            table.add_column(col)
        for row in alerts.state_table(home):
            value = "n/a" if row["value"] is None else f"{row['value']:,.2f}"
            threshold = "n/a" if row["threshold"] is None else f"{row['threshold']:,.2f}"
            table.add_row(row["rule"], row["state"], value, threshold, row["as_of"] or "", row["since"] or "")
        _print_table(table)
        for notice in notices:
            console.print(f"alert {notice.rule.title}: {notice.kind}", highlight=False)
    _flush(home, settings)


@investor_app.command("history")
def investor_history(
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
) -> None:
    """The weekly snapshots, week over week."""
    from cfxlib.investor import weekly
    from cfxlib.publish.formats import pct, usd

    rows = weekly.history_rows(Home(load_settings().home))
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print("no weekly snapshot yet: `cfx investor weekly` records one")
        return
    table = Table()
    for col in ("week", "as of", "ARR", "WoW", "customers", "NRR", "GRR", "logo churn", "worst uptime", "alerts"):
        table.add_column(col, justify="left" if col in ("week", "as of") else "right")
    for r in rows:
        uptime = r["worst_service_uptime_pct"]
        table.add_row(
            r["week"],
            r["as_of"],
            usd(r["arr"]),
            pct(r["arr_wow"], signed=True) if r["arr_wow"] is not None else "—",
            f"{r['customers']:,}",
            pct(r["nrr_12m"]),
            pct(r["grr_12m"]),
            pct(r["logo_churn_rate"], 2),
            "n/a" if uptime is None else f"{uptime:.3f}%",
            str(r["alerts"]),
        )
    _print_table(table)


@investor_app.command("board-pack")
def investor_board_pack(
    allow_demo: Annotated[
        bool, typer.Option("--allow-demo", help="Send or upload even when the publication is the demo company.")
    ] = False,
) -> None:
    """Keep the month's board pack (PDFs, snapshot, finance figures) and send it once to investors."""
    from cfxlib.investor import board_pack
    from cfxlib.publish.snapshot import refuse_demo

    settings = load_settings()
    home = Home(settings.home).ensure()
    refuse_demo(home, allow_demo, "`cfx investor board-pack` keeps and sends")
    pack = board_pack.build(home, settings)
    console.print(
        f"board pack {pack.month} {'written' if pack.created else 'already kept'}: {pack.folder}", highlight=False
    )
    console.print(f"notifications queued: {pack.queued}", highlight=False)
    _flush(home, settings)


@notify_app.command("flush")
def notify_flush(
    due: Annotated[bool, typer.Option("--due", help="Only messages whose retry time has come (scheduler).")] = False,
    strict: Annotated[bool, typer.Option(help="Exit 3 when anything still waits or failed.")] = False,
    allow_demo: Annotated[
        bool, typer.Option("--allow-demo", help="Send or upload even when the publication is the demo company.")
    ] = False,
) -> None:
    """Deliver the notifications that wait in the outbox."""
    from cfxlib.publish.snapshot import refuse_demo

    settings = load_settings()
    home = Home(settings.home).ensure()
    refuse_demo(home, allow_demo, "`cfx notify flush` delivers")
    report = _flush(home, settings, due_only=due)
    if not report.sent and not report.waiting and not report.failed and not report.busy:
        console.print("outbox: nothing to deliver")
    if strict and not report.ok:
        raise typer.Exit(3)


@notify_app.command("list")
def notify_list(
    state: Annotated[str | None, typer.Option(help="pending, sent or failed (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """The outbox: each notification's state, recipient, attempts and last error."""
    from cfxlib.notify.deliver import outbox_for
    from cfxlib.notify.outbox import STATES

    if state is not None and state not in STATES:
        raise UserError(f"--state must be one of {', '.join(STATES)}, not {state!r}")
    outbox = outbox_for(Home(load_settings().home))
    entries = outbox.entries((state,) if state else STATES)
    if as_json:
        for e in entries:
            m = e.message
            print(
                json.dumps(
                    {
                        "state": e.state,
                        "key": m.key,
                        "channel": m.channel,
                        "to": m.to,
                        "type": m.type,
                        "attempts": m.attempts,
                        "created_at": m.created_at.isoformat(),
                        "sent_at": m.sent_at.isoformat() if m.sent_at else None,
                        "last_error": m.last_error,
                    }
                )
            )
        return
    table = Table()
    for col in ("state", "type", "to", "key", "attempts", "created", "last error"):
        table.add_column(col)
    for e in entries:
        m = e.message
        table.add_row(
            e.state, m.type, m.to, m.key, str(m.attempts), f"{m.created_at:%Y-%m-%d %H:%M}", m.last_error or ""
        )
    _print_table(table)
    backlog = outbox.backlog()
    console.print(f"pending {backlog['pending']}, failed {backlog['failed']}", highlight=False)


@notify_app.command("retry")
def notify_retry(key: Annotated[str, typer.Argument(help="Key (or its start) of failed notifications.")]) -> None:
    """Put failed notifications back in the queue (after fixing an address or a receiver)."""
    from cfxlib.notify.deliver import outbox_for

    moved = outbox_for(Home(load_settings().home)).retry(key)
    console.print(f"{moved} notification(s) back in the queue; `cfx notify flush` delivers them")


@notify_app.command("webhook-secret")
def notify_webhook_secret(
    write: Annotated[bool, typer.Option(help="Also save it to $CFX_HOME/keys/webhook-secret (mode 0600).")] = False,
) -> None:
    """Make a new Standard Webhooks signing secret (whsec_...) and print it once."""
    import os

    from cfxlib.notify.webhooks import new_secret

    secret = new_secret()
    if write:
        home = Home(load_settings().home).ensure()
        home.keys.mkdir(parents=True, exist_ok=True)
        path = home.keys / "webhook-secret"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secret + "\n")
        err.print(f"saved to {path}; give the same secret to each receiver", highlight=False)
    print(secret)


# --------------------------------------------------------------------------- dataroom

dataroom_app = typer.Typer(help="The investor data room: signed, encrypted, versioned.", no_args_is_help=True)
app.add_typer(dataroom_app, name="dataroom")


@dataroom_app.command("keygen")
def dataroom_keygen(
    out: Annotated[Path, typer.Option("--out", help="File for the new private identity (mode 0600).")],
) -> None:
    """Make an age key pair for an investor: the identity goes to FILE, the public key is printed last."""
    from datetime import UTC, datetime

    from cfxlib.dataroom import crypto, room

    secret, public = crypto.new_identity()
    created = datetime.now(UTC).isoformat(timespec="seconds")
    crypto.write_private(out, f"# created: {created}\n# public key: {public}\n{secret}\n")
    err.print(f"identity written to {out} (keep it private); give the public key below to the data room owner")
    settings = load_settings()
    signer = room.signer_id(Home(settings.home))
    if signer:
        err.print(
            f"this home's data room signer key id (for `cfx dataroom open --key-id`): {signer}",
            highlight=False,
            markup=False,
        )
    print(public)


def _dataroom_context(target: str | None):
    from cfxlib.dataroom import room

    settings = load_settings()
    home = Home(settings.home).ensure()
    return settings, home, room.target_url(settings, home, target)


@dataroom_app.command("build")
def dataroom_build() -> None:
    """Stage the next version locally (plaintext, ciphertext, signed manifest) without uploading."""
    import json as _json

    from cfxlib.dataroom import room

    settings, home, url = _dataroom_context(None)
    nxt = room.next_version(home, settings, url)
    stage = room.stage_next(home, settings, nxt)
    label = nxt.label
    manifest = _json.loads((stage / "manifest.json").read_text(encoding="utf-8"))
    ch = manifest["changes"]
    console.print(f"staged {len(manifest['files'])} files in {stage}", highlight=False)
    console.print(
        f"changes since {ch['previous'] or 'nothing'}: {len(ch['added'])} added, {len(ch['changed'])} changed, "
        f"{len(ch['removed'])} removed, {len(ch['unchanged'])} unchanged",
        highlight=False,
    )
    print(label)


@dataroom_app.command("sync")
def dataroom_sync(
    target: Annotated[
        str | None, typer.Option(help="gs://BUCKET/PREFIX or file:///PATH (default from settings).")
    ] = None,
    allow_demo: Annotated[
        bool, typer.Option("--allow-demo", help="Send or upload even when the publication is the demo company.")
    ] = False,
    repo: Annotated[Path, typer.Option(help="The project directory (a git repository) for version tags.")] = Path("."),
    tag: Annotated[
        bool | None,
        typer.Option(
            "--tag/--no-tag",
            help="Tag the new version v<version>-data-room.<n> in git (default: setting dataroom.git_tag, "
            "else when --repo is a clean git tree).",
        ),
    ] = None,
) -> None:
    """Build, sign, encrypt and upload what changed as a new version (tagged in git when the
    project directory is a clean git tree); prints the label last."""
    from cfxlib.dataroom import room
    from cfxlib.publish.snapshot import refuse_demo

    settings, home, url = _dataroom_context(target)
    refuse_demo(home, allow_demo, "`cfx dataroom sync` uploads")
    result = room.sync(home, settings, url, repo=repo, tag=tag)
    if result.already:
        console.print(f"{url} already holds {result.label} (verified); nothing uploaded", highlight=False)
    else:
        ch = result.changes
        console.print(
            f"uploaded {len(result.uploaded)} files, reused {len(result.reused)} unchanged; "
            f"{len(ch['added'])} added, {len(ch['changed'])} changed, {len(ch['removed'])} removed since "
            f"{ch['previous'] or 'the first version'} -> {url}",
            highlight=False,
        )
        _flush(home, settings)
        console.print(f"data room version {result.number}; {result.tag_note}", highlight=False, markup=False)
    console.print(f"signer key id: {room.signer_id(home)}", highlight=False, markup=False)
    print(result.label)


SignerKeyId = Annotated[
    str | None,
    typer.Option(
        "--key-id",
        help="The signer key id you were given (RW..., printed by `cfx dataroom sync`); "
        "default CFX_DATAROOM__SIGNER or the key pinned in $CFX_HOME/keys.",
    ),
]
"""``--key-id`` of ``cfx dataroom verify`` and ``open``: the key signatures must verify against."""


@dataroom_app.command("verify")
def dataroom_verify(
    target: Annotated[str | None, typer.Option(help="gs://BUCKET/PREFIX or file:///PATH.")] = None,
    identity: Annotated[Path | None, typer.Option(help="An age identity: also decrypt and check every file.")] = None,
    version: Annotated[
        str | None, typer.Option(help="A version label, or a version number N (checked against its git tag).")
    ] = None,
    key_id: SignerKeyId = None,
    repo: Annotated[Path, typer.Option(help="The project directory (a git repository) for version tags.")] = Path("."),
) -> None:
    """Check signatures and hashes of a version (with --identity, of the decrypted files too);
    a version number is also checked against its git tag's manifest summary."""
    from cfxlib.dataroom import room

    settings, home, url = _dataroom_context(target)
    signer = key_id or settings.dataroom.signer
    tagged = None
    if version is not None and version.isdigit():
        tagged = room.tagged_version(repo, int(version))
        version = tagged.label
    result = room.verify(
        home, url, identity, version, timeout_s=settings.dataroom.timeout_s, signer=signer, tagged=tagged
    )
    detail = f", {result.files} files decrypted and checked" if identity else ""
    against = f"; matches its tag {tagged.tag}" if tagged else ""
    console.print(
        f"{result.label}: signature good ({result.key_source}); {result.objects} objects match{detail}{against}",
        highlight=False,
    )


@dataroom_app.command("open")
def dataroom_open(
    identity: Annotated[Path, typer.Option(help="Your age identity file.")],
    out: Annotated[Path, typer.Option(help="Folder to write the decrypted files into.")],
    target: Annotated[str | None, typer.Option(help="gs://BUCKET/PREFIX or file:///PATH.")] = None,
    version: Annotated[str | None, typer.Option(help="A version label (default: latest).")] = None,
    key_id: SignerKeyId = None,
) -> None:
    """Decrypt and verify a version into OUT (written only when every file checked)."""
    from cfxlib.dataroom import room

    settings, home, url = _dataroom_context(target)
    signer = key_id or settings.dataroom.signer
    result = room.verify(home, url, identity, version, out=out, timeout_s=settings.dataroom.timeout_s, signer=signer)
    console.print(f"{result.label}: {result.files} files verified and written to {out}", highlight=False)


@dataroom_app.command("list")
def dataroom_list(
    target: Annotated[str | None, typer.Option(help="gs://BUCKET/PREFIX or file:///PATH.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    repo: Annotated[Path, typer.Option(help="The project directory (a git repository) for version tags.")] = Path("."),
) -> None:
    """The versions at the target (latest marked), with their git tags."""
    from cfxlib.dataroom import room

    settings, home, url = _dataroom_context(target)
    rows = room.versions(home, url, settings.dataroom.timeout_s, repo=repo)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        ch = r["changes"] or {}
        what = (
            f"{len(ch.get('added', []))} added, {len(ch.get('changed', []))} changed, "
            f"{len(ch.get('removed', []))} removed"
            if ch
            else ""
        )
        console.print(
            f"{'*' if r['latest'] else ' '} {r['number'] or '-':>3} {r['label']}  {r['tag'] or '(no tag)'}  "
            f"{r['as_of'] or ''}  {r['created_at'] or ''}  {what}",
            highlight=False,
            markup=False,
        )


# --------------------------------------------------------------------------- interventions

interventions_app = typer.Typer(
    help="Calls to action: rules that turn risk into owned work (docs/interventions.md).", no_args_is_help=True
)
app.add_typer(interventions_app, name="interventions")


def _cta_store():
    from cfxlib.interventions import notices

    settings = load_settings()
    home = Home(settings.home).ensure()
    return notices.store_for(home)


@interventions_app.command("list")
def interventions_list(
    status: Annotated[
        str | None, typer.Option(help="open, in_progress, snoozed, done, closed_recovered, closed_churned.")
    ] = None,
    account: Annotated[str | None, typer.Option(help="Only this account's CTAs.")] = None,
    owner: Annotated[str | None, typer.Option(help="Owner role or address.")] = None,
    rule: Annotated[str | None, typer.Option(help="Only CTAs opened by this rule.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """Calls to action, soonest due first, then by priority."""
    from cfxlib.interventions.store import STATUSES

    if status is not None and status not in STATUSES:
        raise UserError(f"--status must be one of {', '.join(STATUSES)}, not {status!r}")
    rows = _cta_store().list(status, account, owner, rule)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print("no calls to action match", markup=False)
        return
    table = Table(show_lines=False)
    for col in ("id", "due", "priority", "status", "account", "rule", "playbook", "owner", "holdout"):
        table.add_column(col, overflow="fold")
    for c in rows:
        table.add_row(
            c["id"],
            c["due_date"],
            c["priority"],
            c["status"],
            f"{c.get('account_name') or ''} ({c['account_id']})",
            c["rule"],
            c["playbook"],
            c.get("owner_email") or c["owner"],
            "yes" if c["holdout"] else "",
        )
    _print_table(table)


@interventions_app.command("show")
def interventions_show(cta_id: Annotated[str, typer.Argument(help="The CTA's id (cta_...).")]) -> None:
    """One call to action with its reason, history and notes (JSON)."""
    cta = _cta_store().get(cta_id)
    if cta is None:
        raise UserError(f"no intervention {cta_id!r}; see `cfx interventions list`")
    print(json.dumps(cta, indent=2))


@interventions_app.command("update")
def interventions_update(
    cta_id: Annotated[str, typer.Argument(help="The CTA's id (cta_...).")],
    status: Annotated[str | None, typer.Option(help="in_progress, snoozed or done.")] = None,
    note: Annotated[str | None, typer.Option(help="A note to add (kept with your user name).")] = None,
    snooze_until: Annotated[str | None, typer.Option(help="With --status snoozed: YYYY-MM-DD, after today.")] = None,
) -> None:
    """Change a CTA's status and/or add a note (stored durably)."""
    import getpass

    from cfxlib.interventions import engine

    if status is not None and status not in ("in_progress", "snoozed", "done"):
        raise UserError(f"--status must be in_progress, snoozed or done, not {status!r} (closing is the rules' job)")
    if status is None and note is None and snooze_until is None:
        raise UserError("nothing to change: give --status, --note or --snooze-until")
    until = _parse_date(snooze_until, "--snooze-until") if snooze_until else None
    try:
        cta = engine.update(_cta_store(), cta_id, f"cli:{getpass.getuser()}", status, note, until)
    except engine.TransitionError as exc:
        raise UserError(f"--{exc.field.replace('_', '-')}: {exc}") from None
    if cta is None:
        raise UserError(f"no intervention {cta_id!r}; see `cfx interventions list`")
    console.print(f"{cta['id']}: {cta['status']} ({len(cta['notes'])} notes)", markup=False, highlight=False)


# --------------------------------------------------------------------------- schedule

schedule_app = typer.Typer(help="Scheduled jobs (scheduler/jobs.yml).", no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")


@schedule_app.command("list")
def schedule_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Each job with its schedule, next run time and last run."""
    from cfxlib.scheduler import daemon, jobs, runner

    settings = load_settings()
    home = Home(settings.home)
    defined = jobs.load_all(settings)
    nexts = daemon.next_runs([j for j in defined if j.enabled])
    rows = []
    for job in defined:
        last = (runner.history(home, job.name) or [None])[-1]
        nxt = nexts.get(job.name)
        rows.append(
            {
                "job": job.name,
                "command": job.command,
                "cron": job.cron,
                "timezone": job.timezone,
                "enabled": job.enabled,
                "next_run": nxt.isoformat() if nxt else None,
                "last_run": last and {k: last.get(k) for k in ("started_at", "status", "exit_code")},
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    console.print(f"jobs: {jobs.jobs_path(settings)}", highlight=False)
    for r in rows:
        last = r["last_run"]
        when = r["next_run"] or "disabled"
        console.print(
            f"{r['job']:<16} {r['cron']:<14} {r['timezone']:<17} next {when:<26} "
            f"last {last['status'] + ' ' + last['started_at'][:16] if last else 'never'}  ({r['command']})",
            highlight=False,
            markup=False,
        )


@schedule_app.command("run")
def schedule_run(job: Annotated[str, typer.Argument(help="The job's name (see `cfx schedule list`).")]) -> None:
    """Run one job now, recorded like a scheduled run; exits with its status."""
    from cfxlib.scheduler import runner

    entry = runner.run_job(job, trigger="manual")
    tail = (entry.get("output_tail") or "").strip()
    if tail:
        console.print(tail, markup=False, highlight=False)
    console.print(f"{job}: {entry['status']}" + (f" ({entry.get('detail')})" if entry.get("detail") else ""))
    if entry["status"] != "ok":
        raise typer.Exit(1)


@schedule_app.command("daemon")
def schedule_daemon() -> None:
    """Run the jobs on time until stopped (SIGTERM or Ctrl-C); one daemon per $CFX_HOME."""
    from cfxlib.scheduler import daemon

    settings = load_settings()
    home = Home(settings.home).ensure()
    daemon.run(home, settings, log=lambda text: console.print(text, markup=False, highlight=False))


# --------------------------------------------------------------------------- operations


@app.command("up")
def up_cmd(
    detach: Annotated[
        bool, typer.Option(help="Return once every component is healthy (default: stay in front).")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --detach waits for the components.")] = 180,
) -> None:
    """Run the service, the dashboards and the scheduler under one supervisor (supervisord)."""
    from cfxlib.ops import health, supervisor

    settings = load_settings()
    home = Home(settings.home).ensure()
    if not detach:
        console.print(f"starting cfx-serve, cfx-dashboards and cfx-scheduler for {home.root}; Ctrl-C stops them all")
    supervisor.start(home, settings, Path.cwd(), detach)
    found = health.wait_up(home, settings, timeout)
    procs = {p["name"]: p for p in supervisor.status(home)}
    bad = [name for name, check in found.items() if not check.ok]
    for name, check in found.items():
        pid = procs.get(name, {}).get("pid")
        console.print(
            f"{name:<15} {'up' if check.ok else 'NOT HEALTHY':<12} pid {pid}  {check.detail}",
            highlight=False,
            markup=False,
        )
    if bad:
        for name in bad:
            tail = supervisor.log_tail(procs.get(name, {}).get("log"))
            if tail:
                err.print(f"--- last lines of {name}'s log ---\n{tail}", markup=False, highlight=False)
        err.print(f"{', '.join(bad)} not healthy after {timeout:.0f} s; still supervised (`cfx status`, `cfx down`)")
        raise typer.Exit(1)
    console.print(
        f"cfx is up: service {health.service_url(settings)}, dashboards {health.dashboards_url(settings)}; "
        f"logs in {home.logs}",
        highlight=False,
    )


@app.command("down")
def down_cmd() -> None:
    """Stop every supervised process and the supervisor; nothing is left running."""
    from cfxlib.ops import supervisor

    home = Home(load_settings().home)
    stopped = supervisor.stop(home)
    if not stopped:
        console.print(f"cfx is not up for {home.root}")
        return
    console.print(f"stopped {', '.join(p['name'] for p in stopped)}", highlight=False)


@app.command("status")
def status_cmd(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Each supervised process with its pid, state and uptime."""
    from cfxlib.ops import supervisor

    home = Home(load_settings().home)
    rows = supervisor.status(home)
    if as_json:
        print(json.dumps([{k: r[k] for k in ("name", "pid", "state", "uptime_s")} for r in rows], indent=2))
        return
    if not rows:
        console.print(f"cfx is not up for {home.root} (`cfx up --detach` starts it)")
        return
    for r in rows:
        console.print(f"{r['name']:<15} {r['state']:<9} pid {r['pid'] or '-':<8} up {r['uptime_s']} s", highlight=False)


def _health_token(home: Home) -> str:
    """A token (role investor: finance summary only) kept for health checks under keys/, mode 0600."""
    import os

    from cfxlib.api.auth import TokenStore

    path = home.keys / "health-token"
    store = TokenStore(home.tokens)
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if store.lookup(token) is not None:
            return token
        path.unlink()
    token, _ = store.create("investor", "cfx health", None)
    home.keys.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


@app.command("health")
def health_cmd(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Check every component; exit 0 only when all pass."""
    from cfxlib.ops import health

    settings = load_settings()
    home = Home(settings.home).ensure()
    checks = health.all_checks(home, settings, _health_token(home))
    healthy = all(c.ok for c in checks)
    if as_json:
        print(json.dumps({"healthy": healthy, "checks": [c.as_dict() for c in checks]}, indent=2))
    else:
        for c in checks:
            console.print(f"{'ok  ' if c.ok else 'FAIL'} {c.name:<12} {c.detail}", highlight=False, markup=False)
        console.print("healthy" if healthy else "NOT healthy")
    if not healthy:
        raise typer.Exit(1)


@app.command("release")
def release_cmd(
    version: Annotated[str, typer.Argument(help="Semantic version, e.g. 1.2.0 (tag v1.2.0).")],
    repo: Annotated[Path, typer.Option(help="The repository to release.")] = Path("."),
    check: Annotated[
        list[str] | None, typer.Option(help="A check command (repeatable; default: ruff and the unit tests).")
    ] = None,
    milestone: Annotated[
        str | None, typer.Option(help="Milestone name: the tag becomes vVERSION-NAME (e.g. analytics, final).")
    ] = None,
) -> None:
    """Refuse a dirty tree, a version not above the latest release or a failing check (run in a
    clean environment); else restart the running services, write the completion summary, commit
    and tag."""
    from cfxlib.ops import health, probes, release

    settings = load_settings()
    home = Home(settings.home)
    with err.status("running the release checks"):
        out, tag = release.release(
            version,
            repo,
            probes.local_checks(home, settings),
            tuple(check) if check else release.DEFAULT_CHECKS,
            milestone=milestone,
            restart=lambda: health.restart_all(home, settings),
        )
    console.print(f"released {tag}: {out} committed and tagged", highlight=False)


@app.command("docs")
def docs_cmd(
    out_dir: Annotated[Path, typer.Option(help="Documentation folder of the repository.")] = Path("docs"),
) -> None:
    """Regenerate the generated documentation (the data dictionary) from the code."""
    from cfxlib.contract import datadict
    from cfxlib.publish import snapshot

    for path, write in (
        (out_dir / "data-dictionary.md", datadict.write),
        (out_dir / "metrics_snapshot.schema.json", snapshot.write_schema),
    ):
        changed = write(path)
        console.print(f"{path}: {'updated' if changed else 'already current'}")


def main() -> None:
    """Entry point: run the app and turn user mistakes into messages (exit code 2)."""
    try:
        app()
    except UserError as exc:
        err.print("error:", style="bold red", end=" ")
        err.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except FileNotFoundError as exc:
        err.print("error:", style="bold red", end=" ")
        err.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
