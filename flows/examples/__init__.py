"""Example flows shipped with the app, one JSON file each (a Studio flow definition).

``design_example.json`` is the design's example ("VIP tagging"): ``seed_demo`` creates it as a
draft flow to look at, and the tests run it. It is kept here once, for both.
"""

from __future__ import annotations

import json
from pathlib import Path

FOLDER = Path(__file__).parent


def load(name: str) -> dict:
    """The example flow definition ``name`` (a new dict on each call: callers may change it)."""
    return json.loads((FOLDER / f"{name}.json").read_text())
