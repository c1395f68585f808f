"""A small demo company loaded into a warehouse, shared by the integration tests of a module."""

from __future__ import annotations

import pytest

from cfxlib import warehouse
from cfxlib.demo import DemoOptions, generate


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo-home")
    data, home = root / "data", root / "home"
    generate(data, DemoOptions(accounts=300, months=24, seed=21, end_month="2025-12"))
    warehouse.ingest(data, home / "warehouse" / "cfx.duckdb")
    return home
