"""Where a publication's figures come from: the demo company or real data.

The demo generator marks its data directory with ``_demo.json``; an ingest of a marked directory
records ``source: "demo"``, and every artifact made from it carries that source. Demo figures are
fictional: they are stamped "Demo data" wherever they are shown, never sent to investors or
uploaded to a data room unless the caller says ``--allow-demo``, and only they may read the
generator's hidden answers (``_truth/``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

Source = Literal["demo", "data"]
DEMO: Source = "demo"
DATA: Source = "data"
DEMO_MARKER = "_demo.json"
"""Written by the demo generator at the root of its data directory."""
DEMO_LABEL = "Demo data"
"""The visible mark on every page, PDF page and dashboard of a demo publication."""
DEMO_NOTE = "Demo data: a fictional company made by the demo generator, not real figures."


def is_demo_data(data_dir: str | Path | None) -> bool:
    """True when ``data_dir`` is a local folder the demo generator wrote."""
    if data_dir is None or "://" in str(data_dir):
        return False
    return (Path(data_dir) / DEMO_MARKER).is_file()


def source_of(data_dir: str | Path | None) -> Source:
    return DEMO if is_demo_data(data_dir) else DATA


def write_marker(data_dir: Path, options: dict) -> None:
    (Path(data_dir) / DEMO_MARKER).write_text(
        json.dumps({"generator": "cfx demo-data", "note": DEMO_NOTE, "options": options}, indent=1) + "\n",
        encoding="utf-8",
    )


class DemoRefused(Exception):
    """Raised (as a user error by the callers) when demo figures would leave the machine."""
