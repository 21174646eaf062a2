"""Which OpenModels need a reconcile pass, in which order: a bounded set of workers instead of a task per model.

A Kopf daemon per model held a task, its coroutine frames and Kopf's daemon bookkeeping for every model,
and let every model run its pass at once after a restart (10,000 passes in flight). Here each model is a
key: woken keys wait in one of three lanes, timed keys (the next resync, a backoff) in a heap, and a fixed
number of workers take them. The rules a level-based reconciler needs:

* one pass per model at a time; a model woken during its pass runs again right after it (nothing is lost);
* a key waits at most once (a thousand wake-ups of one model are one pass);
* three lanes: **urgent** (a new model, a spec edit, a child changed, a deletion), **policy** (a policy,
  a key it references or a namespace's labels changed: every model it governs is decided again) and
  **background** (a restart's catch-up, due full passes). Workers take them in a fixed rotation
  (``ROTATION``): half the keys from the urgent lane, a quarter from each other one, and any lane's turn
  passes to the next one with keys. So a model created during a 10,000-model policy wave or catch-up is
  served within seconds, not after the backlog; a revocation's wave gets a quarter of the workers however
  many models a tenant keeps urgent (editing children, specs); and due passes are never starved;
* a forgotten key (a deleted model) never runs again; a model's deletion is a pass of its own, so it starts
  only after the pass that was running ended;
* a queue made ``held`` hands out urgent keys only until ``release``: while an operator lists the cluster at
  start (a minute at 10,000 models on a slow API server), a new, edited or deleted model runs at once and
  the catch-up of settled models waits for the complete caches (issue 13).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable

Key = tuple[str, str]  # (namespace, name)


class Lane(enum.IntEnum):
    """Where a woken key waits; a lower value wins when a key is woken in two."""

    URGENT = 0
    POLICY = 1
    BACKGROUND = 2


# whose turn each pop is: with every lane busy, urgent gets half the keys, policy and background a quarter each
ROTATION = (Lane.URGENT, Lane.POLICY, Lane.URGENT, Lane.BACKGROUND)


class WorkQueue:
    """Keys woken now (three lanes) or later (a heap), handed to workers one pass per key at a time."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, held: bool = False) -> None:
        self._clock = clock
        self._held = held
        self._lanes: tuple[deque[Key], ...] = tuple(deque() for _ in Lane)
        self._queued: dict[Key, Lane] = {}  # key -> the lane it waits in (a stale lane entry is skipped)
        self._timers: list[tuple[float, int, Key]] = []
        self._due: dict[Key, float] = {}  # key -> when its one live timer fires (older heap entries are stale)
        self._running: set[Key] = set()
        self._again: dict[Key, Lane] = {}  # woken while its pass ran: the lane it goes to when the pass ends
        self._gone: set[Key] = set()  # forgotten while its pass ran: no next pass when it ends
        self._wakeup = asyncio.Event()
        self._order = itertools.count()
        self._pops = 0

    def __len__(self) -> int:
        """Keys waiting in a lane (not the timed ones, not the running ones)."""
        return len(self._queued)

    def add(self, key: Key, lane: Lane = Lane.BACKGROUND) -> None:
        """Wake a key now; a key already waiting keeps its place (and moves to a more urgent lane if asked)."""
        if key in self._running:
            self._gone.discard(key)  # woken again after it was forgotten: it exists again
            self._again[key] = min(self._again.get(key, Lane.BACKGROUND), lane)
            return
        waiting = self._queued.get(key)
        if waiting is not None and waiting <= lane:
            return
        self._queued[key] = lane
        self._lanes[lane].append(key)
        self._wakeup.set()

    @property
    def held(self) -> bool:
        """Whether only urgent keys are handed out (until ``release``)."""
        return self._held

    def release(self) -> None:
        """Hand out every lane from now on; workers waiting in ``get`` look again."""
        self._held = False
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
        turn = ROTATION[self._pops % len(ROTATION)]
        self._pops += 1
        lanes = (Lane.URGENT,) if self._held else (turn, *(lane for lane in Lane if lane != turn))
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
        """The next key to run (urgent lane first; only it while held); it counts as running until ``done``."""
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
            self.add(key, lane)
        elif next_in is not None:
            self.add_after(key, next_in)
