"""`mcp-sidecar serve --workers 2`: two processes on one port both serve, and SIGTERM drains them all."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.kit import child_env, free_port, modern_headers, modern_request, serve_workers, wait_until
from tests.proc_sockets import worker_pids

SIDECAR_ENV = child_env(MCP_SIDECAR__AUDIT__ENABLED="false", MCP_SIDECAR__AUTH__MODE="off")


def socket_count(pid: int) -> int:
    fd_dir = Path(f"/proc/{pid}/fd")
    count = 0
    for fd in os.listdir(fd_dir):
        try:
            count += os.readlink(fd_dir / fd).startswith("socket:")
        except FileNotFoundError:  # closed while we looked
            continue
    return count


@pytest.fixture
def two_workers(stateful_upstream: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    with serve_workers(stateful_upstream, SIDECAR_ENV) as workers:
        yield workers.process, workers.url


async def test_both_workers_accept_and_answer(two_workers: tuple[subprocess.Popen[bytes], str]) -> None:
    process, url = two_workers
    await wait_until(lambda: len(worker_pids(process.pid)) == 2, timeout=10)
    workers = worker_pids(process.pid)
    before = {pid: socket_count(pid) for pid in workers}
    # Twenty connections held open at once: SO_REUSEPORT hashes each to a worker (all on one: odds 2**-19).
    sessions = [aiohttp.ClientSession() for _ in range(20)]
    try:
        for number, session in enumerate(sessions):
            body = modern_request("tools/call", {"name": "add", "arguments": {"a": number, "b": 1}})
            async with session.post(url, json=body, headers=modern_headers("tools/call", "add")) as response:
                assert response.status == 200
                assert (await response.json())["result"]["structuredContent"] == {"result": number + 1}
        grown = {pid: socket_count(pid) - before[pid] for pid in workers}
    finally:
        await asyncio.gather(*(session.close() for session in sessions))
    assert all(growth > 0 for growth in grown.values()), grown


async def test_sigterm_lets_calls_in_flight_finish_then_exits_zero(
        two_workers: tuple[subprocess.Popen[bytes], str]) -> None:
    process, url = two_workers
    body = modern_request("tools/call", {"name": "slow_count", "arguments": {"steps": 4, "delay_ms": 150}})
    body["params"]["_meta"]["progressToken"] = "drain"
    events: list[dict] = []
    headers = modern_headers("tools/call", "slow_count")
    async with (aiohttp.ClientSession() as session, asyncio.timeout(10),
                session.post(url, json=body, headers=headers) as response):
        assert response.content_type == "text/event-stream"
        async for line in response.content:
            if not line.startswith(b"data:"):
                continue
            events.append(orjson.loads(line[5:]))
            if len(events) == 1:
                process.send_signal(signal.SIGTERM)  # the call is now in flight in one of the workers
    assert events[0]["method"] == "notifications/progress"
    assert events[-1]["result"]["content"][0]["text"] == "counted to 4"
    assert await asyncio.to_thread(process.wait, 10) == 0
    assert b"Traceback" not in process.stderr.read()


def test_workers_that_cannot_start_make_the_parent_exit_nonzero(stateless_upstream: str) -> None:
    with socket.socket() as taken:  # a plain listener without SO_REUSEPORT: the workers cannot bind beside it
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "proxy", "serve", "--workers", "2", "--upstream", stateless_upstream,
             "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{free_port()}"],
            env=SIDECAR_ENV, capture_output=True, timeout=20,
        )
    assert done.returncode == 1
    assert b"worker.failed_to_start" in done.stderr


def test_a_broken_policy_is_reported_once_by_the_parent_with_exit_2(stateless_upstream: str, tmp_path: Path) -> None:
    (tmp_path / "broken.rego").write_text("package mcp\n\ndecision := {\n")
    env = {**SIDECAR_ENV, "MCP_SIDECAR__POLICY__ENGINE": "rego", "MCP_SIDECAR__POLICY__DIRECTORY": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--workers", "2", "--upstream", stateless_upstream,
         "--listen", f"127.0.0.1:{free_port()}", "--admin-listen", f"127.0.0.1:{free_port()}"],
        env=env, capture_output=True, timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.count(b"does not load") == 1 and b"broken.rego" in done.stderr
    assert b"worker" not in done.stderr


async def scraped_calls(admin: str) -> float:
    """tools/call count in one scrape, on a new connection (so the kernel picks the worker again)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        async with session.get(f"{admin}/metrics") as response:
            text = await response.text()
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "mcp_sidecar_calls_total" and sample.labels.get("mcp_method_name") == "tools/call")


async def test_metrics_count_the_calls_of_every_worker_whichever_answers(stateless_upstream: str,
                                                                         tmp_path: Path) -> None:
    env = {**SIDECAR_ENV, "MCP_SIDECAR__TELEMETRY__WORKER_METRICS_DIR": str(tmp_path),
           "MCP_SIDECAR__TELEMETRY__WORKER_METRICS_PUBLISH_SECONDS": "0.2"}
    with serve_workers(stateless_upstream, env) as workers:
        await wait_until(lambda: len(worker_pids(workers.process.pid)) == 2, timeout=10)
        calls = 20  # each on its own connection: SO_REUSEPORT spreads them (all on one worker: odds 2**-19)
        for number in range(calls):
            async with aiohttp.ClientSession() as session:
                body = modern_request("tools/call", {"name": "add", "arguments": {"a": number, "b": 1}})
                async with session.post(workers.url, json=body,
                                        headers=modern_headers("tools/call", "add")) as response:
                    assert response.status == 200
        await wait_until(lambda: _equals(scraped_calls(workers.admin), calls), timeout=5)
        scrapes = [await scraped_calls(workers.admin) for _ in range(12)]  # reaching either worker
        published = sorted(int(name.removeprefix("worker-").split("-")[0]) for name in os.listdir(tmp_path)
                           if name.startswith("worker-"))  # worker-<pid>-<token>.json
        assert published == sorted(worker_pids(workers.process.pid))
    assert scrapes == [calls] * 12


async def _equals(value: Any, expected: float) -> bool:
    return await value == expected
