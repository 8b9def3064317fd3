"""Prometheus metrics of several worker processes, merged through a directory they share.

With `server.workers` > 1 a scrape of `/metrics` reaches one worker chosen by the kernel. Each worker therefore
publishes its samples to `<directory>/worker-<pid>-<token>.json` (the token tells a worker from an earlier one that
had the same pid), and the one that answers a scrape renders the sum over every file. Counters and histograms of a
worker that has died stay in the sum (their series must not go down, or `rate()` would read a reset); its gauges
(calls in flight) are dropped.

A worker's publishes are serialised and each replaces its file atomically, so every file only grows between
writes; the worker answering a scrape refreshes its own first, so the sum a scrape returns never falls below an
earlier one. Another worker's samples are as old as its last publish (at most
`telemetry.worker_metrics_publish_seconds`).
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.core import Metric as Family

_PREFIX, _SUFFIX = "worker-", ".json"
_KEPT_AFTER_DEATH = frozenset({"counter", "histogram"})


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class WorkerMetrics:
    """One worker's view of the shared directory: publishes its own samples, merges everyone's."""

    def __init__(self, directory: Path, pid: int | None = None,
                 alive: Callable[[int], bool] = pid_alive) -> None:
        self.directory = directory
        self.pid = os.getpid() if pid is None else pid
        self.alive = alive
        self.token = os.urandom(4).hex()
        self.path = directory / f"{_PREFIX}{self.pid}-{self.token}{_SUFFIX}"
        # Held from collecting to replacing: a snapshot taken earlier can never overwrite a later one.
        self.publishing = threading.Lock()

    def publish(self, families: Iterable[Family]) -> None:
        """Replace this worker's file with `families`, atomically (a reader sees the old file or the new one). The
        caller holds `publishing` from the moment it collected `families`."""
        records = [{"name": family.name, "type": family.type, "help": family.documentation,
                    "samples": [[sample.name, sample.labels, sample.value] for sample in family.samples
                                if math.isfinite(sample.value)]}
                   for family in families]
        descriptor, partial = tempfile.mkstemp(prefix=".publishing-", dir=self.directory)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(orjson.dumps(records))
            os.replace(partial, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
            raise

    def merged(self) -> list[Family]:
        """Every worker's families, samples with the same name and labels summed."""
        families: dict[str, Family] = {}
        totals: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        for pid, token, records in self._published():
            # A file of this pid but another token is an earlier worker's whose pid came back to us: it is dead.
            living = token == self.token if pid == self.pid else self.alive(pid)
            for record in records:
                if not living and record["type"] not in _KEPT_AFTER_DEATH:
                    continue
                name = record["name"]
                if name not in families:
                    families[name] = Family(name, record["help"], record["type"])
                    totals[name] = {}
                sums = totals[name]
                for sample_name, labels, value in record["samples"]:
                    key = (sample_name, tuple(sorted(labels.items())))
                    sums[key] = sums.get(key, 0.0) + value
        for name, family in families.items():
            for (sample_name, labels), value in totals[name].items():
                family.add_sample(sample_name, dict(labels), value)
        return list(families.values())

    def _published(self) -> Iterator[tuple[int, str, list[dict[str, Any]]]]:
        for path in sorted(self.directory.glob(f"{_PREFIX}*{_SUFFIX}")):
            pid_text, _, token = path.name.removeprefix(_PREFIX).removesuffix(_SUFFIX).partition("-")
            if not pid_text.isdigit() or not token:
                continue
            with contextlib.suppress(FileNotFoundError, orjson.JSONDecodeError):  # a file is only ever whole
                yield int(pid_text), token, orjson.loads(path.read_bytes())


def clear(directory: Path) -> None:
    """Forget what workers of an earlier run published here (the supervisor calls this before forking)."""
    for path in [*directory.glob(f"{_PREFIX}*"), *directory.glob(".publishing-*")]:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

