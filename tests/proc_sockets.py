"""Which ports a process listens on and which workers a parent runs, read from /proc (Linux), so a test waits for
every listener it uses instead of the first one to come up."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Collection
from pathlib import Path

LISTEN = "0A"  # the TCP state in /proc/net/tcp


def worker_pids(parent: int) -> list[int]:
    return [int(pid) for pid in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()]


def listening_ports(pid: int) -> set[int]:
    """The TCP ports `pid` holds a listening socket on: its socket descriptors matched with /proc/net/tcp{,6}."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(fd_dir / fd)
        except FileNotFoundError:  # closed while we looked
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            local, state, inode = (row.split()[index] for index in (1, 3, 9))
            if state == LISTEN and inode in inodes:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def wait_for_workers(process: subprocess.Popen[bytes], workers: int, ports: Collection[int],
                     timeout: float = 20.0) -> list[int]:
    """Until `process` runs `workers` children that each listen on every one of `ports` (one worker: the process
    itself, as `serve` forks none then); their pids."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before its workers listened on {ports}")
        try:
            children = worker_pids(process.pid) if workers > 1 else [process.pid]
            if len(children) == workers and all(set(ports) <= listening_ports(pid) for pid in children):
                return children
        except (FileNotFoundError, ProcessLookupError):  # a worker came or went while we looked
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{workers} workers did not all listen on {sorted(ports)} within {timeout}s")
