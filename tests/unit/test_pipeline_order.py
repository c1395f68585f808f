"""The main job's step order: every step after the steps whose artifacts it reads, the longest
chain started first (so the slowest notebook never waits behind a short one)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cfxlib.publish import notebook_steps
from cfxlib.publish.pipeline import STEPS, Step, schedule_order

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def test_longest_chain_first_and_needs_respected():
    steps = (
        Step("a", seconds=1),
        Step("b", ("a",), seconds=10),
        Step("c", seconds=5),
        Step("d", ("b", "c"), seconds=1),
    )
    order = [s.name for s in schedule_order(steps)]
    assert order == ["a", "b", "c", "d"]  # a's chain (a, b, d) is 12 s, c's (c, d) 6 s
    assert [s.name for s in schedule_order(STEPS)][:2] == ["03_forecast", "05_churn_model"]
    with pytest.raises(ValueError, match="unknown step"):
        schedule_order((Step("x", ("nope",)),))


def test_every_artifact_a_step_reads_comes_from_a_step_it_needs():
    """The dependency list is the data flow: step 06 reads what 01-05 wrote; 01-05 read only the
    warehouse. Checked from the code: the artifacts each step function reads."""
    import inspect

    writes = {
        "01_data_quality": notebook_steps.data_quality,
        "02_revenue": notebook_steps.revenue,
        "03_forecast": notebook_steps.forecast,
        "04_customer_health": notebook_steps.customer_health,
        "05_churn_model": notebook_steps.churn_model,
        "06_investor_snapshot": notebook_steps.investor_snapshot,
    }
    needs = {s.name: set(s.needs) for s in STEPS}
    produced: dict[str, str] = {}
    for name, fn in writes.items():
        source = inspect.getsource(fn)
        for artifact in re.findall(r'"([a-z_]+\.(?:parquet|json))"', source):
            if "read" not in source.split(artifact)[0].rsplit("\n", 1)[-1]:
                produced.setdefault(artifact, name)
    produced |= {"finance.json": "03_forecast", "customer_success.json": "05_churn_model"}  # written by helpers
    for name, fn in writes.items():
        source = inspect.getsource(fn)
        reads = re.findall(r'(?:read_json|read_parquet)\((?:ctx\.artifacts / )?"([a-z_]+\.(?:parquet|json))"', source)
        for artifact in reads:
            assert produced[artifact] in needs[name], f"{name} reads {artifact} but does not need {produced[artifact]}"
    for nb in NOTEBOOKS.glob("0*.ipynb"):  # notebooks call only their own step
        calls = re.findall(r"nb\.([a-z_]+)\(ctx", json.dumps(json.loads(nb.read_text())["cells"]))
        assert len(calls) == 1, nb.name
