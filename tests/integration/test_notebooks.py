"""The notebooks run top to bottom under nbval, as an analyst would open them, on a small demo.

Their parameters default to empty strings: the notebooks then use $CFX_HOME and a scratch
folder, which is how they behave in JupyterLab."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from tests.conftest import REPO


def test_notebooks_are_thin_and_committed_without_outputs():
    for path in sorted([*(REPO / "notebooks").glob("*.ipynb"), *(REPO / "dashboards").glob("*.ipynb")]):
        nb = json.loads(path.read_text())
        tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: exactly one parameters cell"
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            assert not cell.get("outputs") and cell.get("execution_count") is None, f"{path.name}: outputs committed"
            assert "def " not in source and "class " not in source, f"{path.name}: logic belongs in cfxlib"
        params = "".join(tagged[0]["source"])
        for line in params.splitlines():
            if line and not line.startswith("#"):
                name, value = (part.strip() for part in line.split("=", 1))
                assert value.startswith('"') or value.replace(".", "").isdigit(), (
                    f"{path.name}: {name} is not a literal"
                )


def test_notebooks_execute_under_nbval(demo_home):
    env = {**os.environ, "CFX_HOME": str(demo_home)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "--nbval-current-env",
            "-p",
            "no:cacheprovider",
            "-q",
            str(REPO / "notebooks"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    # nbval runs every code cell of every notebook as one test item: all of them, and all passed
    cells = sum(
        1
        for path in (REPO / "notebooks").glob("*.ipynb")
        for cell in json.loads(path.read_text())["cells"]
        if cell["cell_type"] == "code"
    )
    assert cells >= 6 * 3
    assert re.search(rf"\b{cells} passed\b", result.stdout), result.stdout[-2000:]
    assert "failed" not in result.stdout and "error" not in result.stdout.lower()
    assert (demo_home / "scratch" / "artifacts" / "metrics_snapshot.json").exists()
