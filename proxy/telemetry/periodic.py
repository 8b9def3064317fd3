"""A function called every few seconds from one daemon thread, and once more when stopped."""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

log = structlog.get_logger("proxy.periodic")


class PeriodicThread:
    """Calls `work` every `interval_seconds`; `stop()` calls it a last time, so the last interval is not lost. A
    failure is logged as `failure_event` and the next interval tries again (an unreachable collector, a full disk
    must not end the thread)."""

    def __init__(self, work: Callable[[], None], interval_seconds: float, name: str, failure_event: str) -> None:
        self.work = work
        self.interval_seconds = interval_seconds
        self.failure_event = failure_event
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval_seconds):
            self.run_once()

    def run_once(self) -> None:
        try:
            self.work()
        except Exception:
            log.exception(self.failure_event)

    def stop(self, timeout_seconds: float) -> bool:
        """Blocking: waits for a call in progress (up to the timeout), then makes the last one, unless that call is
        still running. False when it had been stopped before."""
        if self._stopped.is_set():
            return False
        self._stopped.set()
        self._thread.join(timeout=timeout_seconds)
        if not self._thread.is_alive():
            self.run_once()
        return True
