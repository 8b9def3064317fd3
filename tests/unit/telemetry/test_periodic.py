"""PeriodicThread: work every interval on a daemon thread, failures logged and retried, one last call on stop."""

from __future__ import annotations

import threading

from proxy.telemetry.periodic import PeriodicThread


class Work:
    def __init__(self, fail_first: int = 0) -> None:
        self.calls = 0
        self.fail_first = fail_first
        self.enough = threading.Event()
        self.wanted = 3

    def __call__(self) -> None:
        self.calls += 1
        if self.calls >= self.wanted:
            self.enough.set()
        if self.calls <= self.fail_first:
            raise OSError("collector unreachable")


def test_work_runs_every_interval_on_a_named_daemon_thread() -> None:
    work = Work()
    periodic = PeriodicThread(work, 0.01, "test-periodic", "test.failed")
    assert periodic._thread.daemon and periodic._thread.name == "test-periodic"
    assert work.enough.wait(5)
    assert periodic.stop(5)


def test_failures_do_not_end_the_thread() -> None:
    work = Work(fail_first=2)
    periodic = PeriodicThread(work, 0.01, "test-periodic", "test.failed")
    assert work.enough.wait(5)  # the third call came after two failures
    periodic.stop(5)


def test_stop_makes_one_last_call_and_only_once() -> None:
    work = Work()
    periodic = PeriodicThread(work, 3600, "test-periodic", "test.failed")  # the interval never passes in the test
    assert work.calls == 0
    assert periodic.stop(5) is True
    assert work.calls == 1 and not periodic._thread.is_alive()
    assert periodic.stop(5) is False and work.calls == 1


def test_run_once_swallows_a_failure() -> None:
    work = Work(fail_first=1)
    periodic = PeriodicThread(work, 3600, "test-periodic", "test.failed")
    periodic.run_once()
    assert work.calls == 1
    periodic.stop(5)
    assert work.calls == 2


def test_a_call_still_running_at_stop_gets_no_last_call_after_it() -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow() -> None:
        calls.append(1)
        started.set()
        release.wait(5)

    periodic = PeriodicThread(slow, 0.001, "test-periodic", "test.failed")
    assert started.wait(5)
    assert periodic.stop(0.05) is True  # the call in progress outlives the timeout
    assert len(calls) == 1
    release.set()
    periodic._thread.join(5)
