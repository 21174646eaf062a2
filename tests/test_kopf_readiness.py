"""Kopf's readiness toggle set, after ``controller.kopf_readiness.install``: the same answers, linear wake-ups."""

from __future__ import annotations

import asyncio

from kopf._cogs.aiokits import aiotoggles

from openmodel_operator.controller import kopf_readiness

kopf_readiness.install()


class CountingSet(aiotoggles.ToggleSet):
    """Counts how often waiters re-check the set (each re-check is one wake-up of one waiting worker)."""

    checks = 0

    def is_on(self) -> bool:
        CountingSet.checks += 1
        return super().is_on()


async def test_waiters_are_released_when_the_last_toggle_goes_and_not_before() -> None:
    ready = CountingSet(all)
    toggles = [await ready.make_toggle(name=str(i)) for i in range(200)]
    waiters = [asyncio.create_task(ready.wait_for(True)) for _ in range(200)]
    await asyncio.sleep(0)
    CountingSet.checks = 0
    for toggle in toggles[:-1]:
        await ready.drop_toggle(toggle)
        await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)  # one object not indexed yet: nobody proceeds
    await ready.drop_toggle(toggles[-1])
    await asyncio.wait_for(asyncio.gather(*waiters), timeout=5)
    # linear: two checks per drop plus one per waiter; before the fix, every drop woke all 200 waiters (~40,000)
    assert CountingSet.checks < 5 * 200


async def test_a_new_toggle_blocks_again_and_an_any_set_still_reports_changes() -> None:
    ready = aiotoggles.ToggleSet(all)
    assert ready.is_on()  # empty: everything indexed
    blocker = await ready.make_toggle()
    assert ready.is_off()
    await ready.drop_toggles([blocker])
    assert ready.is_on()
    paused = aiotoggles.ToggleSet(any)  # Kopf's pause set: any toggle on pauses the operator
    peer = await paused.make_toggle(True)
    waiter = asyncio.create_task(paused.wait_for(False))
    await asyncio.sleep(0)
    assert not waiter.done()
    await paused.drop_toggle(peer)
    await asyncio.wait_for(waiter, timeout=5)
    single = await paused.make_toggle()
    on = asyncio.create_task(single.wait_for(True))
    await single.turn_to(True)  # individual toggles keep waking their own waiters
    await asyncio.wait_for(on, timeout=5)
