"""The cyclic garbage collector, tuned for a process that holds a large, long-lived heap (issue 13).

At 10,000 models the caches hold millions of long-lived containers, and a restart allocates hundreds of
thousands more while it decodes the listings: with Python's defaults (a young collection every 700
allocations, and full ones over the whole heap) the collector took about a quarter of a restart's CPU
(``bench_operator.py --scenario catchup`` reports it per phase). Two changes, both standard for such
services: fewer young collections, and the heap held once the start-up listings are in is moved out of the
collector's sight (``gc.freeze``). Reference counting still frees every object, frozen or not; only garbage
in reference cycles among the frozen objects would stay, and the caches make none.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # allocations between young collections (Python's default: 700)
OLDER_THRESHOLDS = (20, 20)


def tune() -> None:
    """Fewer collections while the caches fill (called once at start)."""
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)


def freeze_listed_heap() -> None:
    """Once everything is listed: collect what start-up left, then keep the rest out of later collections."""
    gc.collect()
    gc.freeze()
