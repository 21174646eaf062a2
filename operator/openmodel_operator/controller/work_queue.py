"""Which OpenModels need a reconcile pass, in which order: a bounded set of workers instead of a task per model.

A Kopf daemon per model held a task, its coroutine frames and Kopf's daemon bookkeeping for every model,
and let every model run its pass at once after a restart (10,000 passes in flight). Here each model is a
key: woken keys wait in one of two lanes, timed keys (the next resync, a backoff) in a heap, and a fixed
number of workers take them. The rules a level-based reconciler needs:

* one pass per model at a time; a model woken during its pass runs again right after it (nothing is lost);
* a key waits at most once (a thousand wake-ups of one model are one pass);
* the urgent lane (a new model, a spec edit, a child changed, a policy change) goes before the background
  lane (a restart's catch-up, resyncs), so a model created during a 10,000-model catch-up is served within
  seconds, not after the backlog; but never strictly: every ``BACKGROUND_SHARE``-th key comes from the
  background lane when it has one, so tenants who keep their own models urgent (editing children, specs)
  cannot starve everybody else's resyncs;
* a forgotten key (a deleted model) never runs again; a model's deletion is a pass of its own, so it starts
  only after the pass that was running ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable

Key = tuple[str, str]  # (namespace, name)
URGENT = 0
BACKGROUND = 1
BACKGROUND_SHARE = 4  # one key in four from the background lane while both have keys


class WorkQueue:
    """Keys woken now (two lanes) or later (a heap), handed to workers one pass per key at a time."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lanes: tuple[deque[Key], deque[Key]] = (deque(), deque())
        self._queued: dict[Key, int] = {}  # key -> the lane it waits in (a stale lane entry is skipped)
        self._timers: list[tuple[float, int, Key]] = []
        self._due: dict[Key, float] = {}  # key -> when its one live timer fires (older heap entries are stale)
        self._running: set[Key] = set()
        self._again: dict[Key, int] = {}  # woken while its pass ran: the lane it goes to when the pass ends
        self._gone: set[Key] = set()  # forgotten while its pass ran: no next pass when it ends
        self._wakeup = asyncio.Event()
        self._order = itertools.count()
        self._pops = 0

    def __len__(self) -> int:
        """Keys waiting in a lane (not the timed ones, not the running ones)."""
        return len(self._queued)

    def add(self, key: Key, *, urgent: bool = False) -> None:
        """Wake a key now; a key already waiting keeps its place (and moves to the urgent lane if asked)."""
        lane = URGENT if urgent else BACKGROUND
        if key in self._running:
            self._gone.discard(key)  # woken again after it was forgotten: it exists again
            self._again[key] = min(self._again.get(key, BACKGROUND), lane)
            return
        waiting = self._queued.get(key)
        if waiting is not None and waiting <= lane:
            return
        self._queued[key] = lane
        self._lanes[lane].append(key)
        self._wakeup.set()

    def add_after(self, key: Key, delay: float) -> None:
        """Wake a key after ``delay`` seconds (replaces its earlier timer)."""
        when = self._clock() + max(0.0, delay)
        self._due[key] = when
        heapq.heappush(self._timers, (when, next(self._order), key))
        self._wakeup.set()

    def forget(self, key: Key) -> None:
        """The key never runs again (a running pass ends on its own): its lane entries and timer go."""
        self._queued.pop(key, None)
        self._due.pop(key, None)
        self._again.pop(key, None)
        if key in self._running:
            self._gone.add(key)

    def _release_timers(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            when, _, key = heapq.heappop(self._timers)
            if self._due.get(key) == when:
                del self._due[key]
                self.add(key)

    def _pop(self) -> Key | None:
        self._pops += 1
        lanes = (BACKGROUND, URGENT) if self._pops % BACKGROUND_SHARE == 0 else (URGENT, BACKGROUND)
        for lane in lanes:
            entries = self._lanes[lane]
            while entries:
                key = entries.popleft()
                if self._queued.get(key) == lane:
                    del self._queued[key]
                    return key
        return None

    def _next_timer(self) -> float | None:
        while self._timers and self._due.get(self._timers[0][2]) != self._timers[0][0]:
            heapq.heappop(self._timers)  # stale: replaced or forgotten
        return self._timers[0][0] if self._timers else None

    async def get(self) -> Key:
        """The next key to run (urgent lane first); it counts as running until ``done``."""
        while True:
            self._release_timers(self._clock())
            key = self._pop()
            if key is not None:
                self._running.add(key)
                self._due.pop(key, None)  # this pass is the resync: the next one is set by ``done``
                return key
            self._wakeup.clear()
            next_at = self._next_timer()
            timeout = None if next_at is None else max(0.0, next_at - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)

    def done(self, key: Key, next_in: float | None) -> None:
        """The pass of ``key`` ended: run it again now if it was woken meanwhile, else after ``next_in``."""
        self._running.discard(key)
        if key in self._gone:
            self._gone.discard(key)
            return
        lane = self._again.pop(key, None)
        if lane is not None:
            self.add(key, urgent=lane == URGENT)
        elif next_in is not None:
            self.add_after(key, next_in)
