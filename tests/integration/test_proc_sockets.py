"""The test kit waits for every worker's listeners, not for the first socket on the first port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kit import free_port, wait_for_port
from tests.proc_sockets import listening_ports, wait_for_workers

# Two forked workers; each listens on the first port at once and on the second once its file `go-<n>` appears,
# as a sidecar worker binds its MCP port before its admin port.
STAGGERED = """
import os, socket, sys, time
first, second, gates = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

def listen(port):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock

for number in range(2):
    if os.fork() == 0:
        held = [listen(first)]
        deadline = time.monotonic() + 30
        while not os.path.exists(f"{gates}/go-{number}") and time.monotonic() < deadline:
            time.sleep(0.02)
        held.append(listen(second))
        time.sleep(60)
        os._exit(0)
os.wait()
"""


def test_waiting_for_workers_covers_every_port_of_every_worker(tmp_path: Path) -> None:
    first, second = free_port(), free_port()
    process = subprocess.Popen([sys.executable, "-c", STAGGERED, str(first), str(second), str(tmp_path)],
                               start_new_session=True)
    try:
        wait_for_port(first, process=process)  # what the kit used to wait for
        with pytest.raises(TimeoutError):
            wait_for_workers(process, 2, (first, second), timeout=0.3)
        (tmp_path / "go-0").touch()
        with pytest.raises(TimeoutError):  # one worker on both ports is not yet every worker
            wait_for_workers(process, 2, (first, second), timeout=0.3)
        (tmp_path / "go-1").touch()
        workers = wait_for_workers(process, 2, (first, second), timeout=10)
        assert len(workers) == 2 and all({first, second} <= listening_ports(pid) for pid in workers)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the parent this test started, and its two workers
        process.wait(timeout=10)
