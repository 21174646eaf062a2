"""The work queue that replaced a Kopf daemon per model (controller/work_queue.py, issue 13).

What a user would notice if it broke: a model never reconciled again after a wake-up during its pass
(drift not repaired), two passes of one model at once (children applied twice, status written out of
order), a new model waiting behind a 10,000-model catch-up, a deleted model's pass coming back.
"""

from __future__ import annotations

import asyncio
import collections

import pytest

from openmodel_operator.controller.work_queue import Key, Lane, WorkQueue

A: Key = ("ns", "a")
B: Key = ("ns", "b")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def next_key(queue: WorkQueue, timeout: float = 0.2) -> Key | None:
    try:
        return await asyncio.wait_for(queue.get(), timeout)
    except TimeoutError:
        return None


async def passes_with_urgent_rewakes(queue: WorkQueue, attackers: list[Key], passes: int) -> list[Key]:
    """Run ``passes`` passes; each attacker's model is woken urgently again during its own pass (a tenant
    editing its children in a loop). The keys in the order they ran."""
    ran: list[Key] = []
    for _ in range(passes):
        key = await next_key(queue)
        assert key is not None
        ran.append(key)
        if key in attackers:
            queue.add(key, Lane.URGENT)
        queue.done(key, None)
    return ran


async def test_many_wakeups_of_one_model_are_one_pass_and_other_models_still_run() -> None:
    queue = WorkQueue()
    for _ in range(1000):
        queue.add(A)
    queue.add(B)  # control: another model is not swallowed by the deduplication
    assert len(queue) == 2
    assert await next_key(queue) == A
    assert await next_key(queue) == B
    assert await next_key(queue) is None


async def test_a_wakeup_during_a_pass_runs_the_model_again_after_it_never_at_the_same_time() -> None:
    queue = WorkQueue()
    queue.add(A)
    assert await next_key(queue) == A
    queue.add(A, Lane.URGENT)  # a child was edited while the pass ran
    assert await next_key(queue) is None, "a second pass of a running model started"
    queue.done(A, next_in=30)
    assert await next_key(queue) == A, "the wake-up during the pass was lost"


async def test_a_new_model_goes_before_a_restart_backlog() -> None:
    queue = WorkQueue()
    for i in range(10_000):
        queue.add(("ns", f"old-{i}"))  # a restart's catch-up
    queue.add(("ns", "old-5000"), Lane.URGENT)  # an edited model already waiting moves up
    queue.add(A, Lane.URGENT)  # created now
    assert await next_key(queue) == ("ns", "old-5000")
    assert await next_key(queue) == A
    assert await next_key(queue) == ("ns", "old-0"), "the backlog keeps its order"


async def test_a_new_model_goes_before_a_policy_wave_and_the_wave_before_the_backlog() -> None:
    """A policy change wakes every model it governs (10,000 at a time); a model created meanwhile is served
    within seconds, and the wave goes before a restart's catch-up."""
    queue = WorkQueue()
    backlog = [("ns", f"old-{i}") for i in range(100)]
    wave = [("ns", f"gov-{i}") for i in range(100)]
    for key in backlog:
        queue.add(key)
    for key in wave:
        queue.add(key, Lane.POLICY)
    queue.add(A, Lane.URGENT)
    ran = [await next_key(queue) for _ in range(8)]
    assert ran[0] == A
    assert [k for k in ran if k in wave] == wave[:5] and [k for k in ran if k in backlog] == backlog[:2]


async def test_a_tenant_keeping_its_models_urgent_cannot_stall_a_revocation_wave() -> None:
    """Attack: a tenant's models are re-woken urgently forever (children edited in a loop); the policy lane
    (a key revoked) still gets one key in four, and every lane is served (control)."""
    queue = WorkQueue()
    attackers = [("evil", f"m{i}") for i in range(4)]
    wave = [("ns", f"gov-{i}") for i in range(10)]
    for key in wave:
        queue.add(key, Lane.POLICY)
    for key in attackers:
        queue.add(key, Lane.URGENT)
    ran = await passes_with_urgent_rewakes(queue, attackers, 40)
    assert set(wave) <= set(ran), f"the revocation wave stalled behind urgent re-wakes: {ran}"
    assert sum(k in attackers for k in ran) >= 20  # control: urgent work still gets its half


async def test_a_forgotten_model_never_runs_again_even_when_its_pass_was_running() -> None:
    queue = WorkQueue()
    queue.add(A)
    queue.add(B)
    queue.forget(B)  # deleted while it waited
    assert await next_key(queue) == A
    queue.add(A)  # woken during the pass ...
    queue.forget(A)  # ... and deleted during the pass
    queue.done(A, next_in=0)
    assert await next_key(queue) is None
    queue.add(A)  # control: created again under the same name, it runs
    assert await next_key(queue) == A


async def test_the_resync_timer_fires_once_and_a_later_timer_replaces_it() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock)
    queue.add(A)
    assert await next_key(queue) == A
    queue.done(A, next_in=30)
    queue.add_after(B, 10)
    assert await next_key(queue) is None
    clock.now += 10
    assert await next_key(queue) == B
    queue.add_after(A, 60)  # replaces the 30 s timer
    clock.now += 25
    assert await next_key(queue) is None, "a replaced timer fired"
    clock.now += 40
    assert await next_key(queue) == A
    clock.now += 1000
    assert await next_key(queue) is None, "a timer fired twice"


async def test_a_wakeup_clears_a_pending_timer_run_and_the_pass_sets_the_next() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock)
    queue.add_after(A, 30)
    queue.add(A)  # woken before its resync
    assert await next_key(queue) == A
    queue.done(A, next_in=30)
    clock.now += 30
    assert await next_key(queue) == A  # one resync, 30 s after the pass
    assert await next_key(queue) is None


@pytest.mark.parametrize("workers", [1, 4])
async def test_workers_never_run_one_model_twice_at_once_and_lose_no_wakeup(workers: int) -> None:
    """Random wake-ups from 'watch events' while workers run passes: every wake-up is followed by a pass."""
    queue = WorkQueue()
    keys = [("ns", f"m{i}") for i in range(20)]
    running: set[Key] = set()
    passes: collections.Counter[Key] = collections.Counter()
    last_woken: dict[Key, int] = {}
    last_pass_start: dict[Key, int] = {}
    tick = 0

    async def worker() -> None:
        nonlocal tick
        while True:
            key = await queue.get()
            assert key not in running, f"{key} ran twice at once"
            running.add(key)
            tick += 1
            last_pass_start[key] = tick
            await asyncio.sleep(0.001 * (hash(key) % 3))
            passes[key] += 1
            running.discard(key)
            queue.done(key, None)

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    for round_ in range(200):
        key = keys[(round_ * 7) % len(keys)]
        tick += 1
        last_woken[key] = tick
        queue.add(key, Lane(round_ % 3))
        await asyncio.sleep(0)
    for _ in range(200):
        if not len(queue) and not running:
            break
        await asyncio.sleep(0.01)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for key, woken in last_woken.items():
        assert last_pass_start[key] > woken, f"{key} was woken after its last pass started and never ran again"
    assert sum(passes.values()) < 200, "wake-ups of a waiting model were not merged"


async def test_tenants_keeping_their_models_urgent_cannot_starve_the_background_lane() -> None:
    """Attack (review of issue 13): a tenant edits children of its own models so that they are always woken
    urgently; another tenant's resync (which would find a revocation) must still run."""
    queue = WorkQueue()
    attackers = [("evil", f"m{i}") for i in range(3)]
    victim = ("ns", "victim")
    queue.add(victim)
    for key in attackers:
        queue.add(key, Lane.URGENT)
    ran = await passes_with_urgent_rewakes(queue, attackers, 12)
    assert victim in ran[: 4], f"the background lane waited behind urgent re-wakes: {ran}"
    assert ran.count(victim) == 1 and len(ran) - 1 == sum(ran.count(k) for k in attackers)  # control: all served


async def test_a_pass_that_finds_every_examination_slot_taken_ends_instead_of_holding_its_worker() -> None:
    """Attack (review of issue 13): 32 models pointed at a slow mirror would hold every worker while they wait
    for an examination slot, and no revocation would run. A pass that finds no slot ends (ExaminationsBusy);
    its model is woken when a slot frees."""
    from openmodel_operator.api.openmodel import OpenModelSpec
    from openmodel_operator.controller.reconciler import ExaminationsBusy, Reconciler
    from openmodel_operator.controller.settings import OperatorSettings

    examined: list[str] = []
    reconciler = Reconciler(
        None,  # type: ignore[arg-type]
        OperatorSettings(max_concurrent_verifications=1),
        lambda *_: None,
        examiner=lambda request, policies: examined.append(request.uri),  # type: ignore[arg-type,return-value,func-returns-value]
    )
    freed: list[int] = []
    reconciler.on_slot_free = lambda: freed.append(1)
    spec = OpenModelSpec.model_validate({"source": {"uri": "hf://org/m"}})
    async with reconciler._verifications:  # another model's examination holds the only slot
        with pytest.raises(ExaminationsBusy):
            await reconciler._examine("ns", spec, "main", [])
    assert examined == [] and freed == []
    await reconciler._examine("ns", spec, "main", [])  # control: a free slot examines, then says it is free
    assert examined == ["hf://org/m"] and freed == [1]


async def test_a_held_queue_hands_out_urgent_keys_only_until_released() -> None:
    """While the operator lists the cluster at start, a new model runs at once; the catch-up of settled models,
    a policy wave and timers wait for the complete caches, then all run."""
    clock = FakeClock()
    queue = WorkQueue(clock, held=True)
    settled, waved, timed = ("ns", "settled"), ("ns", "waved"), ("ns", "timed")
    queue.add(settled, Lane.BACKGROUND)
    queue.add(waved, Lane.POLICY)
    queue.add_after(timed, 0)
    queue.add(A, Lane.URGENT)  # a new model: the control that must not wait
    assert await next_key(queue) == A
    assert await next_key(queue) is None, "a background, policy or timed key ran before the caches were complete"
    waiting = asyncio.ensure_future(queue.get())  # a worker blocked in get() when the listing ends
    await asyncio.sleep(0.05)
    assert not waiting.done()
    queue.release()
    first = await asyncio.wait_for(waiting, 1)
    rest = {await next_key(queue), await next_key(queue)}
    assert {first, *rest} == {settled, waved, timed}
    assert not queue.held


async def test_an_urgent_wakeup_of_a_waiting_key_runs_it_in_a_held_queue() -> None:
    """A settled model edited during the start-up listing moves to the urgent lane and is not held back."""
    queue = WorkQueue(held=True)
    queue.add(B, Lane.BACKGROUND)
    assert await next_key(queue) is None
    queue.add(B, Lane.URGENT)
    assert await next_key(queue) == B
