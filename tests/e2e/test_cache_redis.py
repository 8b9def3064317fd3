"""The Redis cache backend: entries shared by two sidecars, and a Redis that dies mid-run is bypassed.

The shared Redis on 127.0.0.1:6379 is only ever written under a namespace unique to the test (never flushed).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from mcp import Client

from tests.kit import free_port, make_config, run_sidecar, stop_process, wait_for_port

SHARED_REDIS = "redis://127.0.0.1:6379/0"


def redis_config(upstream: str, url: str, namespace: str) -> Any:
    return make_config(upstream, cache__enabled=True, cache__backend="redis", cache__redis_url=url,
                       cache__namespace=namespace, cache__max_ttl_seconds=60,  # generation keys expire soon too
                       cache__tools={"lookup": {"ttl_seconds": 30, "scope": "public"}})


@pytest.fixture
def shared_redis() -> str:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    return SHARED_REDIS


@pytest.fixture
def own_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A private redis-server this test may stop."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process=process)
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        stop_process(process)


async def lookup(client: Client, key: str) -> int:
    result = await client.call_tool("lookup", {"key": key})
    assert not result.is_error
    return result.structured_content["invocations"]


async def admin(sidecar: Any, method: str, path: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.request(method, sidecar.admin_url + path) as response:
        return response.status, await response.json()


async def test_two_sidecars_share_entries_and_invalidations(stateless_upstream: str, shared_redis: str) -> None:
    namespace = f"test-cache-{uuid.uuid4().hex}"
    key = uuid.uuid4().hex
    first_config = redis_config(stateless_upstream, shared_redis, namespace)
    second_config = redis_config(stateless_upstream, shared_redis, namespace)
    async with run_sidecar(first_config) as first, run_sidecar(second_config) as second, \
            Client(first.url, cache=None) as one, Client(second.url, cache=None) as two:
        stored = await lookup(one, key)
        assert await lookup(two, key) == stored  # served from Redis by the other replica
        assert await admin(second, "POST", "/cache/purge?tool=lookup") == (200, {"purged": "tool:lookup"})
        fresh = await lookup(one, key)  # the purge through one replica holds for the other
        assert fresh > stored
        assert await lookup(two, key) == fresh
        _, stats = await admin(second, "GET", "/cache/stats")
    assert stats["hit"] == 2 and stats.get("store_errors", 0) == 0


async def test_redis_stopped_mid_run_is_bypassed(stateless_upstream: str,
                                                 own_redis: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, process = own_redis
    key = uuid.uuid4().hex
    async with run_sidecar(redis_config(stateless_upstream, url, "bypass-test")) as sidecar, \
            Client(sidecar.url, cache=None) as client:
        first = await lookup(client, key)
        assert await lookup(client, key) == first
        stop_process(process)
        after = [await lookup(client, key) for _ in range(3)]  # every call still answered, by the upstream
        _, stats = await admin(sidecar, "GET", "/cache/stats")
    assert after[0] > first and after == sorted(set(after))
    assert stats["store_errors"] >= 1 and stats["bypass"] >= 3
