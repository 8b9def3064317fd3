"""Deadlines as numbers checked by one periodic sweep, instead of a timer per call.

A waiting call stores `time.monotonic() + seconds` where its owner can see it; the owner's `DeadlineSweep` runs its
check every TICK seconds while the check reports deadlines still pending, and fails what is overdue. A call that
finishes only resets a number. An `asyncio.timeout` per call cost a timer handle, a `current_task()` and, on
CPython 3.11, three `getpid()` system calls: more than the rest of a proxied call's glue.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

TICK = 0.05  # a deadline fires up to this late
NO_DEADLINE = float("inf")


def deadline_in(seconds: float | None) -> float:
    return NO_DEADLINE if seconds is None else time.monotonic() + seconds


class DeadlineSweep:
    """Runs `fail_overdue(now)` every TICK seconds for as long as it returns True (deadlines still pending)."""

    def __init__(self, fail_overdue: Callable[[float], bool]) -> None:
        self._fail_overdue = fail_overdue
        self._timer: asyncio.TimerHandle | None = None

    def watch(self) -> None:
        """A deadline was set: make sure a sweep is coming."""
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(TICK, self._sweep)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _sweep(self) -> None:
        self._timer = None
        if self._fail_overdue(time.monotonic()):
            self.watch()
