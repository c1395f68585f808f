"""Shared fixtures: paths, a private $CFX_HOME per test, and the `cfx` command."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# The suite never depends on the caller's cfx settings: an operator's shell may export CFX_*
# variables (ports, recipients, a home) or have state in ~/.cfx. They are dropped for the whole
# run, in this process and every process it starts, and CFX_HOME points at a throwaway folder.
for _name in [n for n in os.environ if n.startswith("CFX_")]:
    del os.environ[_name]
os.environ["CFX_HOME"] = tempfile.mkdtemp(prefix="cfx-test-home-")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
CFX = Path(sys.executable).with_name("cfx")

QUICK_SPARK_JVM = {"CFX_SPARK__CONF": '{"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"}'}
"""Environment for a `cfx` subprocess that starts Spark: its JVM lives a minute or two, so only
the JIT's quick tier (the `spark.conf` setting, as a user would set it). `cfx run --engine spark`
on the 220-account test company, alone, 2026-12-05: 7 min 44 s with Java's defaults, 5 min 35 s
with this (docs/scaling.md)."""


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh $CFX_HOME for this test (also set for in-process calls)."""
    path = tmp_path / "cfx-home"
    monkeypatch.setenv("CFX_HOME", str(path))
    return path


def run_cfx(*args: str, home: Path, cwd: Path | None = None, timeout: float = 600, env: dict | None = None):
    """Run the installed `cfx` command; returns the CompletedProcess (text)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CFX_")}
    full_env["CFX_HOME"] = str(home)
    full_env.update(env or {})
    return subprocess.run(
        [str(CFX), *args],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cfx(home):
    """Call `cfx ARGS...` as a subprocess with this test's $CFX_HOME."""

    def call(*args: str, **kw):
        return run_cfx(*args, home=home, **kw)

    return call
