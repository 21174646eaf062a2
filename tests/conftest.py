"""Shared test set-up: make the helper modules in tests/ importable."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hubstub import hub_stub, stub_origins_allowed  # noqa: F401  (fixtures: a local Hub stand-in, its origin allowed)
