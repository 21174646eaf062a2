"""The collector settings of a long-lived operator process (issue 13): fewer young collections, and the heap
listed at start kept out of later full collections; reference counting still frees what is dropped."""

from __future__ import annotations

import gc
import weakref

from openmodel_operator.controller import gc_tuning


class _Held:
    pass


def test_the_listed_heap_is_frozen_and_still_freed_by_reference_counting() -> None:
    before = gc.get_threshold()
    try:
        gc_tuning.tune()
        assert gc.get_threshold()[0] == gc_tuning.YOUNG_THRESHOLD
        held = _Held()
        ref = weakref.ref(held)
        gc_tuning.freeze_listed_heap()
        assert gc.get_freeze_count() > 0
        del held  # a frozen object without cycles is freed at once (reference counting)
        assert ref() is None
        young = [_Held() for _ in range(10)]
        assert all(gc.is_tracked(o) for o in young)  # objects made later are collected as usual
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
