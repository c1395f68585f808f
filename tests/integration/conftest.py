"""A small demo company loaded into a warehouse, shared by the integration tests of a module."""

from __future__ import annotations

import pytest

from cfxlib.demo import DemoOptions, generate
from cfxlib.store import warehouse


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo-home")
    data, home = root / "data", root / "home"
    generate(data, DemoOptions(accounts=300, months=24, seed=21, end_month="2025-12"))
    warehouse.ingest(data, home / "warehouse" / "cfx.duckdb")
    return home


SMALL = {"CFX_DEMO__ACCOUNTS": "220", "CFX_DEMO__MONTHS": "20", "CFX_DEMO__END_MONTH": "2025-12"}
"""A small demo company for end-to-end runs."""


@pytest.fixture(scope="session")
def published(tmp_path_factory):
    """A home where `cfx run` has published a small demo company (shared by the
    "pipeline" xdist group: pipeline and service tests run on one worker)."""
    from tests.conftest import run_cfx

    home = tmp_path_factory.mktemp("pipeline-home")
    result = run_cfx("run", "--demo", home=home, env=SMALL, timeout=1200)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return home


@pytest.fixture
def published_copy(published, tmp_path):
    """A copy of the published small demo home, so a test can change its state freely."""
    import shutil

    target = tmp_path / "home"
    shutil.copytree(published, target, symlinks=True)
    return target
