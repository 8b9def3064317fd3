"""Recent calls shared through a capped Redis stream: a call through one sidecar shows in another's console API;
with Redis out of reach calls go on, the failures are counted and the console says the stream is unreachable."""

from __future__ import annotations

import aiohttp
from mcp import Client

from tests.kit import free_port, make_config, run_sidecar, wait_until
from tests.redis_kit import SHARED_URL, needs_shared_redis, unique_prefix


def shared(upstream: str, key: str, url: str = SHARED_URL, **extra):
    return make_config(upstream, audit__enabled=True, admin__recent_calls=50, admin__recent_calls_redis_url=url,
                       admin__recent_calls_key=key, **extra)


async def calls_at(http: aiohttp.ClientSession, admin: str, **filters: str) -> tuple[int, dict]:
    async with http.get(admin + "/console/api/calls", params=filters) as response:
        return response.status, await response.json()


@needs_shared_redis
async def test_a_call_through_one_sidecar_shows_in_anothers_recent_calls(stateless_upstream, capsys) -> None:
    key = unique_prefix("recent")
    async with run_sidecar(shared(stateless_upstream, key)) as one, run_sidecar(
            shared(stateless_upstream, key)) as other, aiohttp.ClientSession() as http:
        async with Client(one.url, cache=None) as client:
            await client.call_tool("add", {"a": 40, "b": 2})

        async def listed() -> bool:
            status, body = await calls_at(http, other.admin_url, tool="add")
            return status == 200 and len(body["calls"]) == 1

        await wait_until(listed)
        _, body = await calls_at(http, other.admin_url, tool="add")
        async with http.get(other.admin_url + "/console/api/overview") as response:
            overview = await response.json()
        import redis.asyncio as redis

        raw = redis.Redis.from_url(SHARED_URL)
        try:
            await raw.delete(key)
        finally:
            await raw.aclose()
    [call] = body["calls"]
    assert call["tool"] == "add" and call["outcome"] == "allowed" and "arguments" not in call
    assert overview["recent"]["tool_calls"] >= 1


async def test_redis_out_of_reach_never_stops_a_call(stateless_upstream) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    config = shared(stateless_upstream, "k", url=dead)
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        async with Client(sidecar.url, cache=None) as client:
            result = await client.call_tool("add", {"a": 1, "b": 1})
        status, body = await calls_at(http, sidecar.admin_url)
        async with http.get(sidecar.admin_url + "/console/api/overview") as response:
            overview = await response.json()
    assert result.structured_content == {"result": 2}
    assert status == 503 and "unreachable" in body["error"] and overview["recent"] is None


async def test_unwritten_events_are_counted_and_the_backlog_is_bounded() -> None:
    from proxy.runtime.admin import recent

    counted: list[int] = []
    stream = recent.RedisRecentCalls(f"redis://127.0.0.1:{free_port()}/0", "k", 10,
                                     lambda name, amount: counted.append(amount))
    try:
        for n in range(recent.MAX_BACKLOG + 5):  # all in one pass: the writer has not run yet
            stream.append({"n": n})
        assert sum(counted) == 5  # the oldest beyond the backlog, dropped at once
        await wait_until(lambda: sum(counted) == recent.MAX_BACKLOG + 5)  # the batch the dead Redis refused
    finally:
        await stream.close()
