"""`mcp-sidecar serve --demo` spawns the demo server over stdio, and SIGTERM leaves no process behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client

from tests.kit import ROOT, child_env, free_port, wait_for_port, wait_until


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(child) for child in task.read_text().split()]
    return found


@pytest.fixture
def served_demo() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port, admin = free_port(), free_port()
    sidecar = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--demo", "--listen", f"127.0.0.1:{port}",
         "--admin-listen", f"127.0.0.1:{admin}"],
        env=child_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process=sidecar)
        yield sidecar, port
    finally:
        if sidecar.poll() is None:
            sidecar.kill()
            sidecar.wait(5)


async def test_serve_demo_spawns_the_demo_over_stdio_and_stops_cleanly(served_demo) -> None:
    sidecar, port = served_demo
    async with Client(f"http://127.0.0.1:{port}/mcp", mode="2026-07-28", cache=None) as client:
        added = await client.call_tool("add", {"a": 20, "b": 22})
    children = children_of(sidecar.pid)
    assert added.structured_content == {"result": 42}
    assert len(children) == 1  # the shared demo child, spoken to over stdio
    sidecar.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(sidecar.wait, 10) == 0
    await wait_until(lambda: not any(os.path.exists(f"/proc/{child}") for child in children))
