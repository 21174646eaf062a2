"""Shared test set-up: make the helper modules in tests/ importable."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hubstub import hub_stub, stub_origins_allowed  # noqa: F401  (fixtures: a local Hub stand-in, its origin allowed)


@pytest.fixture(autouse=True)
def _collector_as_before() -> Iterator[None]:
    """An operator run in a test freezes the heap once it has listed (controller/gc_tuning.py): in this one
    long test process each test's heap is handed back to the collector, and its thresholds restored."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
