"""Where the repository is (for a source checkout: notebooks, reports, scheduler jobs)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[3]  # src/cfxlib/core/repo.py -> the repository
