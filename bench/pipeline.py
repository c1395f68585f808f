"""Benchmark: `cfx run` on the default demo (2,000 accounts, 36 months) from an empty home.

    .venv/bin/python bench/pipeline.py

Measures the whole command (wall time, peak memory) and, from the run's run.json, every step;
also the fixed cost of one notebook (kernel start-up and papermill) on an empty notebook.
Target: at most 30 seconds on this 2-core machine (issue #29; it was 90 s before, 42 s when the issue was filed). Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).parent))
from _measure import machine, measure, now, update_section  # noqa: E402

CFX = str(Path(sys.executable).with_name("cfx"))


def kernel_overhead() -> float:
    import papermill as pm

    from cfxlib.publish.pipeline import kernel_name

    work = Path(tempfile.mkdtemp(prefix="cfx-kernel-"))
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("x = 1"))
    nbformat.write(nb, work / "empty.ipynb")
    try:
        start = time.perf_counter()
        pm.execute_notebook(
            str(work / "empty.ipynb"), str(work / "out.ipynb"), kernel_name=kernel_name(), progress_bar=False
        )
        return time.perf_counter() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    # No options; --help describes the benchmark instead of running it (and rewriting docs/benchmarks.md).
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    home = Path(tempfile.mkdtemp(prefix="cfx-pipeline-"))
    whole = measure([CFX, "run", "--demo"], env={"CFX_HOME": str(home)})
    assert whole.returncode == 0, f"cfx run failed; its home is kept: {home}"
    run = json.loads((home / "published" / "run.json").read_text())
    shutil.rmtree(home, ignore_errors=True)
    overhead = kernel_overhead()
    lines = [
        f"Machine: {machine()}. Date: {now()}.",
        "",
        "Command: `.venv/bin/python bench/pipeline.py` — `cfx run` in an empty `$CFX_HOME`: generate the default demo (2,000 accounts, "
        "36 months), ingest, execute the six notebooks (two at a time where independent), render the site and PDFs, publish.",
        "",
        f"**Whole command: {whole.seconds:.0f} s** (target at most 30 s, issue #29: {'met' if whole.seconds <= 30 else 'missed'}); peak memory of the cfx process {whole.peak_rss_mb:,.0f} MB "
        "(notebook kernels are separate processes).",
        "",
        "| step | seconds | note |",
        "|---|---:|---|",
    ]
    for name, step in run["steps"].items():
        note = step.get("engine", "")
        lines.append(f"| {name} | {step.get('seconds', float('nan')):.1f} | {note} |")
    lines += [
        "",
        f"Fixed cost of one notebook (kernel start-up, papermill, an empty cell): {overhead:.1f} s; six notebooks pay it six times, "
        "in two parallel lanes. Steps 03 (forecast with its 6-origin backtest) and 05 (two churn model fits and the model card) run side by side.",
        "The remainder of the whole-command time is demo generation, ingest and the summary.",
    ]
    update_section("Pipeline: cfx run on the default demo (bench/pipeline.py)", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
