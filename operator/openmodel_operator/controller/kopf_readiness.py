"""A fix for Kopf's start-up readiness wait, which made an operator restart quadratic in the objects it holds.

Kopf (1.45) keeps one "not indexed yet" toggle per listed object of every kind with an index, and every
object's worker waits until all of them are gone. Each dropped toggle woke *every* waiting worker to
re-check the whole set: with N objects that is N x N wake-ups, each a lock round-trip (issue 13: 62 % of a
2000-model restart, 150 s). A waiter only cares about the set's overall state (all indexed, or not), so the
set now wakes its waiters only when that state changes: once, when the last toggle goes. Individual
toggles keep their own behaviour.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kopf._cogs.aiokits import aiotoggles

_MARK = "_openmodel_wakes_on_change"


async def _make_toggle(self: Any, __val: bool = False, *, name: str | None = None) -> aiotoggles.Toggle:
    toggle = aiotoggles.Toggle(__val, name=name, condition=self._condition)
    async with self._condition:
        before = self.is_on()
        self._toggles.add(toggle)
        if self.is_on() != before:
            self._condition.notify_all()
    return toggle


async def _drop_toggle(self: Any, toggle: aiotoggles.Toggle) -> None:
    async with self._condition:
        before = self.is_on()
        self._toggles.discard(toggle)
        if self.is_on() != before:
            self._condition.notify_all()


async def _drop_toggles(self: Any, toggles: Iterable[aiotoggles.Toggle]) -> None:
    async with self._condition:
        before = self.is_on()
        self._toggles.difference_update(toggles)
        if self.is_on() != before:
            self._condition.notify_all()


def install() -> None:
    """Make Kopf's toggle sets wake their waiters only on a change of their overall state (idempotent)."""
    cls: Any = aiotoggles.ToggleSet
    if getattr(cls, _MARK, False):
        return
    cls.make_toggle = _make_toggle
    cls.drop_toggle = _drop_toggle
    cls.drop_toggles = _drop_toggles
    setattr(cls, _MARK, True)
