"""Prometheus metrics of several worker processes, merged through a directory they share.

With `server.workers` > 1 a scrape of `/metrics` reaches one worker chosen by the kernel. Each worker therefore
publishes its samples to `<directory>/worker-<pid>.json`, and the one that answers a scrape renders the sum over
every file. Counters and histograms of a worker that has died stay in the sum (their series must not go down, or
`rate()` would read a reset); its gauges (calls in flight) are dropped.

Every file only grows between writes, and the worker answering a scrape refreshes its own first, so the sum a scrape
returns never falls below an earlier one. Another worker's samples are as old as its last publish (at most
`telemetry.worker_metrics_publish_seconds`).
"""

from __future__ import annotations

import contextlib
import os
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
        self.path = directory / f"{_PREFIX}{self.pid}{_SUFFIX}"

    def publish(self, families: Iterable[Family]) -> None:
        """Replace this worker's file with `families`, atomically (a reader sees the old file or the new one)."""
        records = [{"name": family.name, "type": family.type, "help": family.documentation,
                    "samples": [[sample.name, sample.labels, sample.value] for sample in family.samples]}
                   for family in families]
        partial = self.path.with_suffix(".partial")
        partial.write_bytes(orjson.dumps(records))
        os.replace(partial, self.path)

    def merged(self) -> list[Family]:
        """Every worker's families, samples with the same name and labels summed."""
        families: dict[str, Family] = {}
        totals: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        for pid, records in self._published():
            living = pid == self.pid or self.alive(pid)
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

    def _published(self) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        for path in sorted(self.directory.glob(f"{_PREFIX}*{_SUFFIX}")):
            pid_text = path.name.removeprefix(_PREFIX).removesuffix(_SUFFIX)
            if not pid_text.isdigit():
                continue
            with contextlib.suppress(FileNotFoundError, orjson.JSONDecodeError):
                yield int(pid_text), orjson.loads(path.read_bytes())


def clear(directory: Path) -> None:
    """Forget what workers of an earlier run published here (the supervisor calls this before forking)."""
    for path in directory.glob(f"{_PREFIX}*"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

