"""Deadlines as numbers and one sweep: the check runs every TICK while it reports deadlines pending, then stops."""

from __future__ import annotations

import asyncio
import time

from proxy.net.deadlines import NO_DEADLINE, TICK, DeadlineSweep, deadline_in


def test_deadline_in() -> None:
    assert deadline_in(None) == NO_DEADLINE == float("inf")
    before = time.monotonic()
    deadline = deadline_in(2.5)
    assert before + 2.5 <= deadline <= time.monotonic() + 2.5


async def test_the_sweep_repeats_while_deadlines_are_pending_then_stops() -> None:
    deadlines = [time.monotonic() + TICK, time.monotonic() + 3 * TICK]
    failed: list[float] = []
    done = asyncio.Event()

    def fail_overdue(now: float) -> bool:
        while deadlines and deadlines[0] <= now:
            failed.append(deadlines.pop(0))
        if not deadlines:
            done.set()
        return bool(deadlines)

    sweep = DeadlineSweep(fail_overdue)
    sweep.watch()
    await asyncio.wait_for(done.wait(), 3)
    assert len(failed) == 2 and sweep._timer is None  # nothing pending: no timer left behind


async def test_watch_twice_schedules_one_sweep_about_a_tick_away() -> None:
    ran = asyncio.Event()
    sweep = DeadlineSweep(lambda now: ran.set() is not None)  # nothing pending after one run
    before = asyncio.get_running_loop().time()
    sweep.watch()
    timer = sweep._timer
    sweep.watch()
    assert timer is not None and sweep._timer is timer
    assert before + TICK <= timer.when() <= asyncio.get_running_loop().time() + TICK
    await asyncio.wait_for(ran.wait(), 3)
    assert sweep._timer is None


async def test_a_cancelled_sweep_is_cancelled_and_can_be_watched_again() -> None:
    sweep = DeadlineSweep(lambda now: False)
    sweep.watch()
    timer = sweep._timer
    sweep.cancel()
    sweep.cancel()  # harmless
    assert timer is not None and timer.cancelled() and sweep._timer is None
    sweep.watch()
    assert sweep._timer is not None and not sweep._timer.cancelled()
    sweep.cancel()
