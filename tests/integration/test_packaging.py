"""The package as a user installs it: a wheel built from the repository, installed in a fresh
virtual environment with pip (its declared dependencies, held to the lock's pins), runs
`cfx --help` and `cfx demo-data` from outside the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.xdist_group("packaging")


def test_a_wheel_installed_in_a_fresh_venv_runs(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CFX_", "PYTHONPATH", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    dist = tmp_path / "dist"
    source = tmp_path / "source"  # built from a copy: setuptools writes build/ beside the sources
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "build", "dist", "runs", "test-artifacts", "*.egg-info", "__pycache__"
        ),
    )
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(source)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("cfx-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            str(wheel),
            "-c",
            str(REPO / "requirements.lock"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env["CFX_HOME"] = str(tmp_path / "home")
    cfx = str(venv / "bin" / "cfx")
    helped = subprocess.run([cfx, "--help"], cwd=outside, capture_output=True, text=True, env=env, timeout=120)
    assert helped.returncode == 0 and "demo-data" in helped.stdout, helped.stderr[-3000:]
    made = subprocess.run(
        [cfx, "demo-data", str(outside / "data"), "--accounts", "25", "--months", "4"],
        cwd=outside,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    assert (outside / "data" / "accounts.csv").read_text().count("\n") == 26
    # the installed package is the wheel's, not the repository's source
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import cfxlib; print(cfxlib.__file__)"],
        cwd=outside,
        capture_output=True,
        text=True,
        env=env,
    )
    assert str(venv) in where.stdout, where.stdout
