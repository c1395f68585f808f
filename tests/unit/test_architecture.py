"""The package layout is the architecture: layers import only downwards (import-linter), and
code lives in the subpackages, not beside them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "src" / "cfxlib"
TOP_LEVEL_MODULES = {"__init__.py", "cli.py", "revenue.py", "forecast.py", "churn.py"}
"""The command line, and the three public paths the contract names (re-exports only)."""


def test_layers_import_only_downwards():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout


def test_a_layer_violation_is_caught(tmp_path):
    """The check itself can fail: a lower layer importing a higher one breaks the contract."""
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(PACKAGE, copy / "src" / "cfxlib")
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    bad = copy / "src" / "cfxlib" / "contract" / "money.py"
    bad.write_text(bad.read_text() + "\nfrom cfxlib.metrics import revenue  # noqa: E402,F401\n")
    lint = Path(sys.executable).with_name("lint-imports")
    env = {"PYTHONPATH": str(copy / "src"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([str(lint)], cwd=copy, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode != 0 and "cfxlib.contract.money -> cfxlib.metrics.revenue" in result.stdout


def test_code_lives_in_subpackages():
    modules = {p.name for p in PACKAGE.glob("*.py")}
    assert modules == TOP_LEVEL_MODULES
    for shim in ("revenue.py", "forecast.py", "churn.py"):
        body = [
            line for line in (PACKAGE / shim).read_text().splitlines() if line and not line.startswith(('"""', "from "))
        ]
        assert not body, f"{shim} must only re-export"
