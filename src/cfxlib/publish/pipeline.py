"""The main job: execute the notebooks into a run folder, render, and publish atomically.

A run lives in ``$CFX_HOME/runs/<YYYYMMDD-HHMMSS>-<commit>/``::

    run.json          status, parameters, data hash, code commit, package versions, step timings
    notebooks/        the executed notebooks
    logs/             one log per step
    artifacts/        tables (Parquet), figures (PNG), payloads (JSON), page fragments (Markdown)
    reports/          launch report (md, html, pdf), investor metrics PDF
    site-src/         the Quarto project with the run's artifacts, as rendered
    publish/          what gets published: site/, reports/, JSON payloads, run.json

Steps run in dependency order, two at a time where independent, the longest chain first. Only when every step succeeded
does ``$CFX_HOME/published`` (a symbolic link) switch to the new run's ``publish/`` folder, in one
atomic rename; a failed run keeps its folder, says which notebook and cell failed, and leaves the
previous publication untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from cfxlib import __version__
from cfxlib.core import provenance
from cfxlib.core.errors import UserError
from cfxlib.core.home import Home
from cfxlib.core.repo import REPO  # noqa: F401  (re-exported: pipeline.REPO)
from cfxlib.publish import render


@dataclass(frozen=True)
class Step:
    """A notebook of the main job.

    ``needs``: the steps whose artifacts this one reads (its only ordering constraint).
    ``seconds``: what the step took on the default demo (docs/benchmarks.md, Pipeline); used
    only to start the step with the longest remaining chain first when several are ready.
    """

    name: str
    needs: tuple[str, ...] = ()
    seconds: float = 1.0


STEPS = (
    Step("01_data_quality", seconds=2),
    Step("02_revenue", seconds=3.5),
    Step("03_forecast", seconds=16.5),
    Step("04_customer_health", seconds=3.6),
    Step("05_churn_model", seconds=12.5),
    Step(
        "06_investor_snapshot",
        ("01_data_quality", "02_revenue", "03_forecast", "04_customer_health", "05_churn_model"),
        seconds=2.5,
    ),
)
"""Steps 01-05 read only the warehouse, so they run in any order; 06 reads all their artifacts."""


def schedule_order(steps: tuple[Step, ...] = STEPS) -> list[Step]:
    """``steps`` in the order to start them when ready: longest remaining chain first (the chain's
    ``seconds`` down to the last step that needs it), so the slowest chain never waits for a
    short step that could run beside it."""
    by_name = {s.name: s for s in steps}
    unknown = {n for s in steps for n in s.needs} - set(by_name)
    if unknown:
        raise ValueError(f"steps need unknown step(s): {', '.join(sorted(unknown))}")
    memo: dict[str, float] = {}

    def chain(name: str) -> float:
        if name not in memo:
            after = [s for s in steps if name in s.needs]
            memo[name] = by_name[name].seconds + max((chain(s.name) for s in after), default=0.0)
        return memo[name]

    return sorted(steps, key=lambda s: -chain(s.name))


PUBLISHED_FILES = (
    "metrics_snapshot.json",
    "finance.json",
    "customer_success.json",
    "customer_success.md",
    "data_quality.json",
)
KEY_PACKAGES = (
    "pandas",
    "numpy",
    "duckdb",
    "pandera",
    "scikit-learn",
    "statsforecast",
    "prophet",
    "papermill",
    "pypandoc_binary",
    "typst",
)


class PipelineError(UserError):
    """A step failed; the message names the notebook and cell and where the run folder is."""


def git_commit(repo: Path = REPO) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10
        )
        commit = out.stdout.strip() if out.returncode == 0 else ""
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if commit and dirty.stdout.strip():
            commit += "-dirty"
        return commit or "nogit"
    except (OSError, subprocess.TimeoutExpired):
        return "nogit"


def package_versions() -> dict[str, str]:
    out = {"cfx": __version__}
    for name in KEY_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def kernel_name() -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    return "cfx" if "cfx" in KernelSpecManager().find_kernel_specs() else "python3"


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    status: str
    steps: dict = field(default_factory=dict)
    published: Path | None = None
    as_of: str | None = None


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _ipc_kernel_manager(folder: str, log: Path) -> type:
    """A kernel manager whose kernel talks over Unix sockets in ``folder`` instead of TCP ports.

    With TCP, a free port is picked, released and bound again by the kernel; notebooks started
    at the same moment (the two lanes of a run, parallel runs, test workers) can race for it and
    the kernel dies with "Address already in use". Sockets in a private folder cannot collide.

    The kernel process's own output (for example ipykernel's "KeyboardInterrupt caught in
    kernel" when it is shut down, which is expected) goes to the step's ``log`` rather than the
    terminal; errors in the notebook still reach the user through papermill's exception."""
    from jupyter_client import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(transport="ipc", ip=os.path.join(folder, "kernel"), **kwargs)

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            sink = open(log, "ab")  # noqa: SIM115 - the child process inherits it; ours is closed below
            kw["stdout"] = kw["stderr"] = sink
            try:
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            finally:
                sink.close()  # the child has its own copy of the descriptor

    return IPCKernelManager


def _import_papermill():
    """papermill, imported without jsonschema's IRI grammar.

    papermill imports nbformat, which imports jsonschema, whose format checkers build the
    ``rfc3987_syntax`` grammar (a Lark parser) at import when that package is installed: 1.5 s
    before the first notebook of every run (python-jsonschema/jsonschema#1428). Nothing in a
    run checks IRI formats (nbformat validates notebooks without format checkers), so the run's
    process marks that one optional module as absent; jsonschema then leaves out the ``iri``
    checks, as it does when the package is not installed."""
    if "papermill" not in sys.modules and "rfc3987_syntax" not in sys.modules:
        sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment] - import raises ImportError
    import papermill

    return papermill


def _execute(step: Step, notebooks: Path, run_dir: Path, params: dict, timeout: int, kernel: str) -> float:
    pm = _import_papermill()

    source = notebooks / f"{step.name}.ipynb"
    if not source.exists():
        raise PipelineError(f"notebook {source} is missing")
    target = run_dir / "notebooks" / source.name
    log = run_dir / "logs" / f"{step.name}.log"
    start = time.perf_counter()
    sockets = tempfile.mkdtemp(prefix="cfx-kernel-")  # short path: Unix socket paths are limited to 107 bytes
    try:
        pm.execute_notebook(
            str(source),
            str(target),
            parameters=params,
            kernel_name=kernel,
            execution_timeout=timeout,
            progress_bar=False,
            log_output=False,
            cwd=str(run_dir),
            kernel_manager_class=_ipc_kernel_manager(sockets, run_dir / "logs" / f"{step.name}.kernel.log"),
        )
    except pm.PapermillExecutionError as exc:
        log.write_text(str(exc), encoding="utf-8")
        raise PipelineError(
            f"notebook {step.name} failed at cell {exc.cell_index} (execution count {exc.exec_count}): "
            f"{exc.ename}: {exc.evalue}. The executed notebook is {target}; the run folder {run_dir} is kept for inspection."
        ) from None
    except Exception as exc:  # kernel death, timeouts and the like
        log.write_text(repr(exc), encoding="utf-8")
        raise PipelineError(
            f"notebook {step.name} could not run: {type(exc).__name__}: {exc}. Run folder: {run_dir}"
        ) from None
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    seconds = time.perf_counter() - start
    log.write_text(f"ok in {seconds:.1f} s\n", encoding="utf-8")
    return seconds


def _publish_folder(run_dir: Path) -> Path:
    pub = run_dir / "publish"
    if pub.exists():
        shutil.rmtree(pub)
    (pub / "reports").mkdir(parents=True)
    for name in PUBLISHED_FILES:
        src = run_dir / "artifacts" / name
        if src.exists():
            shutil.copy2(src, pub / name)
    for src in (run_dir / "reports").iterdir():
        if src.is_file():
            shutil.copy2(src, pub / "reports" / src.name)
    shutil.copytree(run_dir / "reports" / "figures", pub / "reports" / "figures")
    shutil.copytree(run_dir / "artifacts", pub / "artifacts", ignore=shutil.ignore_patterns("*.md"))
    return pub


def _render_site(run_dir: Path, repo: Path, footer: str, banner: str = "") -> str:
    src = run_dir / "site-src"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir()
    shutil.copy2(repo / "_quarto.yml", src / "_quarto.yml")
    shutil.copy2(run_dir / "artifacts" / "variables.yml", src / render.VARIABLES_FILE)
    shutil.copytree(repo / "reports", src / "reports", ignore=shutil.ignore_patterns("_artifacts", "*.md"))
    shutil.copytree(
        run_dir / "artifacts",
        src / "reports" / "_artifacts",
        ignore=shutil.ignore_patterns("*.parquet", "*.json", "*.csv"),
    )
    if banner:  # on every page, for Quarto and the built-in renderer alike: a div after the front matter
        for page in (src / "reports").rglob("*.qmd"):
            text = page.read_text(encoding="utf-8")
            found = render.FRONT_MATTER.match(text)
            cut = found.end() if found else 0
            mark = f"\n::: {{.cfx-demo-banner}}\n{banner}\n:::\n\n"
            page.write_text(text[:cut] + mark + text[cut:], encoding="utf-8")
    return render.render_site(src, run_dir / "publish" / "site", footer=footer)


def _switch(home: Home, target: Path) -> Path:
    """Atomically point ``$CFX_HOME/published`` at ``target`` (a new symlink renamed over it)."""
    link = home.published
    if link.exists() and not link.is_symlink():
        raise PipelineError(f"{link} is a real folder, not cfx's publication link; move it away and rerun")
    tmp = home.root / f".published-{os.getpid()}-{threading.get_ident()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(os.path.relpath(target, home.root), tmp)
    os.replace(tmp, link)
    return link


def run(
    home: Home,
    as_of_month: str | None = None,
    notebooks: Path | None = None,
    timeout: int = 900,
    parallel: int = 2,
    progress: Callable[[str, str], None] | None = None,
    repo: Path = REPO,
) -> RunResult:
    """Execute every step into a new run folder; publish only if all of them succeeded."""
    notebooks = notebooks or repo / "notebooks"
    commit = git_commit(repo)
    run_id = f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{commit.split('-')[0]}"
    run_dir = home.runs / run_id
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = home.runs / f"{run_id}-{suffix}"
    run_id = run_dir.name
    for sub in ("notebooks", "logs", "artifacts/figures", "reports"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    params = {"cfx_home": str(home.root), "run_dir": str(run_dir), "as_of": as_of_month or "", "commit": commit}
    record = {
        "run_id": run_id,
        "status": "running",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": params,
        "code_commit": commit,
        "packages": package_versions(),
        "steps": {},
    }
    _write_json(run_dir / "run.json", record)
    _write_json(run_dir / "parameters.json", params)
    kernel = kernel_name()
    report = progress or (lambda name, state: None)
    done: set[str] = set()
    pending = schedule_order(STEPS)
    failure: Exception | None = None
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        running = {}
        while (pending or running) and failure is None:
            for step in [s for s in pending if set(s.needs) <= done][: max(0, parallel - len(running))]:
                pending.remove(step)
                report(step.name, "start")
                running[pool.submit(_execute, step, notebooks, run_dir, params, timeout, kernel)] = step
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                step = running.pop(fut)
                try:
                    seconds = fut.result()
                except Exception as exc:  # noqa: BLE001 - recorded, then raised below
                    failure = exc
                    record["steps"][step.name] = {"status": "failed"}
                    report(step.name, "failed")
                    continue
                done.add(step.name)
                record["steps"][step.name] = {"status": "ok", "seconds": round(seconds, 2)}
                report(step.name, "done")
        if failure is not None:
            for fut in running:
                fut.cancel()
    if failure is None:
        try:
            report("render", "start")
            start = time.perf_counter()
            quality = json.loads((run_dir / "artifacts" / "data_quality.json").read_text())
            snapshot = json.loads((run_dir / "artifacts" / "metrics_snapshot.json").read_text())
            pub = _publish_folder(run_dir)
            demo = quality.get("source") == provenance.DEMO
            footer = f"ChatterFix · data as of {snapshot['as_of']} · run {run_id} · data {quality['data_hash'][:12]} · code {commit}"
            if demo:
                footer = f"{provenance.DEMO_LABEL.upper()} · {footer}"
            engine = _render_site(run_dir, repo, footer, provenance.DEMO_NOTE if demo else "")
            if not (pub / "site" / "index.html").exists():
                raise PipelineError("rendering produced no site/index.html")
            record["steps"]["render"] = {
                "status": "ok",
                "seconds": round(time.perf_counter() - start, 2),
                "engine": engine,
            }
            record["data_hash"] = quality["data_hash"]
            record["source"] = quality.get("source", provenance.DATA)
            record["as_of"] = snapshot["as_of"]
            report("render", "done")
        except Exception as exc:  # noqa: BLE001
            failure = (
                exc
                if isinstance(exc, PipelineError)
                else PipelineError(f"rendering failed: {type(exc).__name__}: {exc}. Run folder: {run_dir}")
            )
            record["steps"]["render"] = {"status": "failed"}
    record["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    if failure is not None:
        record["status"] = "failed"
        record["error"] = str(failure)
        _write_json(run_dir / "run.json", record)
        raise failure if isinstance(failure, PipelineError) else PipelineError(str(failure))
    record["status"] = "published"
    _write_json(run_dir / "run.json", record)
    shutil.copy2(run_dir / "run.json", run_dir / "publish" / "run.json")
    link = _switch(home, run_dir / "publish")
    return RunResult(run_id, run_dir, "published", record["steps"], link, record.get("as_of"))
