"""Processes of a benchmark run: started on a chosen core, waited for, their own CPU and memory accounting read."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CPUS = sorted(os.sched_getaffinity(0))  # read once, before the runner pins itself


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cores() -> tuple[set[int] | None, set[int] | None]:
    """(sidecar core, load core): the first two CPUs this process may use, or no pinning on a 1-CPU machine."""
    if len(CPUS) < 2:
        return None, None
    return {CPUS[0]}, {CPUS[1]}


@dataclass
class Proc:
    """A child process of the run, pinned to `cpus` (None: wherever the kernel likes): `program` with `args`, by
    default this Python (`args` then start with -m)."""

    name: str
    args: Sequence[str]
    port: int
    cpus: set[int] | None = None
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    program: str = sys.executable

    def start(self, log_dir: Path) -> Proc:
        cpus = self.cpus
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **self.env}
        self.log_path = log_dir / f"{self.name}.log"
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [self.program, *self.args], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"{self.name} did not listen on {self.port} within {timeout}s")

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """User + system CPU time the process itself has used (from /proc/<pid>/stat)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)

    def memory_mb(self) -> dict[str, float]:
        """Current (VmRSS) and peak (VmHWM) resident memory in MB."""
        found: dict[str, float] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found["rss_mb" if key == "VmRSS" else "peak_rss_mb"] = round(int(value.split()[0]) / 1024, 1)
        return found

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.terminate()
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=timeout)


def machine_counters() -> tuple[float, list[int]]:
    """(1-minute load average, the aggregate CPU line of /proc/stat) for machine_noise()."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    return os.getloadavg()[0], fields


def machine_noise(before: tuple[float, list[int]]) -> dict[str, float]:
    """How disturbed a measurement was: the load average, and the share of CPU time stolen by the hypervisor."""
    _, start = before
    load, end = machine_counters()
    delta = [after - earlier for after, earlier in zip(end, start, strict=True)]
    total = sum(delta[:8]) or 1  # user nice system idle iowait irq softirq steal
    return {"load_average": round(load, 2), "steal_pct": round(delta[7] / total * 100, 1)}
