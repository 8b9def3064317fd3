"""Faults of a spawned stdio server, over real processes (tests/integration/faulty_stdio_server.py): an answer
over max_event_bytes."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.test_stdio_upstream import upstream_of
from tests.kit import make_config, modern_headers, modern_request, run_sidecar, wait_until

SERVER = [sys.executable, str(Path(__file__).with_name("faulty_stdio_server.py"))]


def faulty_config(tmp_path: Path, env: dict[str, str] | None = None, **dotted: Any):
    dotted = {"upstream__restart_backoff_seconds": 0.1, "upstream__timeout_seconds": 30,
              "upstream__shutdown_grace_seconds": 0.3, **dotted}
    return make_config(None, upstream__command=SERVER, upstream__env={"PID_FILE": str(tmp_path / "pids"),
                                                                      **(env or {})}, **dotted)


async def call_tool(http: aiohttp.ClientSession, url: str, name: str, arguments: dict[str, Any],
                    within: float = 5) -> tuple[int, dict[str, Any], float]:
    """A 2026-07-28 tools/call; its status, body and how long it took (bounded)."""
    body = modern_request("tools/call", {"name": name, "arguments": arguments})
    started = time.monotonic()
    async with asyncio.timeout(within), http.post(url, json=body, headers=modern_headers("tools/call", name)) as reply:
        return reply.status, await reply.json(), time.monotonic() - started


@dataclass
class BigAnswer:
    reply: tuple[int, dict[str, Any], float]  # the big call's status, body and seconds
    slow: asyncio.Task[tuple[int, dict[str, Any], float]]  # the call that was in flight beside it
    upstream: Any
    call: Callable[[str, dict[str, Any]], Awaitable[tuple[int, dict[str, Any], float]]]


@contextlib.asynccontextmanager
async def big_answer_beside_a_slow_call(tmp_path: Path, layout: str, slow_seconds: float) -> AsyncIterator[BigAnswer]:
    """A child limited to 64 KiB lines, a slow call in flight, then a 200 kB answer to a second call."""
    async with run_sidecar(faulty_config(tmp_path, upstream__max_event_bytes=64 * 1024)) as sidecar, \
            aiohttp.ClientSession() as http:
        upstream = upstream_of(sidecar)
        await upstream.shared.acquire(10)
        slow = asyncio.create_task(call_tool(http, sidecar.url, "slow", {"seconds": slow_seconds}))
        await wait_until(lambda: upstream.shared.mux.in_flight == 1)
        big = await call_tool(http, sidecar.url, "big", {"layout": layout, "bytes": 200_000})
        yield BigAnswer(big, slow, upstream, lambda name, arguments: call_tool(http, sidecar.url, name, arguments))


@pytest.mark.parametrize("layout", ["id-first", "id-last"])
async def test_an_answer_over_max_event_bytes_fails_its_caller_at_once_and_no_other(tmp_path: Path,
                                                                                  layout: str) -> None:
    async with big_answer_beside_a_slow_call(tmp_path, layout, 1.5) as scene:
        status, answer, took = scene.reply
        assert took < 3 and status == 502
        assert "larger than upstream.max_event_bytes" in answer["error"]["message"]
        status, answer, _ = await scene.slow
        assert status == 200 and answer["result"]["content"][0]["text"] == "slow done"
        assert scene.upstream.restarts == 0


async def test_an_over_long_answer_whose_id_cannot_be_read_fails_every_call_in_flight(tmp_path: Path) -> None:
    async with big_answer_beside_a_slow_call(tmp_path, "id-inside", 20) as scene:
        status, answer, took = scene.reply
        assert took < 3 and status == 502 and "every call in flight" in answer["error"]["message"]
        status, answer, took = await scene.slow
        assert took < 5 and status == 502 and "every call in flight" in answer["error"]["message"]
        status, answer, _ = await scene.call("add", {"a": 1, "b": 2})  # the child serves on
        assert status == 200 and scene.upstream.restarts == 0
