"""Rate limits through the running sidecar: the SDK client's view, concurrency, replicas sharing Redis, Redis down."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from mcp import Client
from mcp.types import ElicitResult

from tests.kit import (
    child_env,
    free_port,
    make_config,
    modern_headers,
    modern_request,
    run_sidecar,
    serve_process,
    stop_process,
    wait_for_port,
    wait_until,
)
from tests.redis_kit import SHARED_URL, needs_redis_server, needs_shared_redis, private_redis, unique_prefix

TOOLS_ONLY = {"methods": ["tools/call"]}  # the SDK client follows every call_tool with a tools/list


def bucket(name: str, capacity: int, rate: float = 0.001, key: tuple[str, ...] = (), **match: Any) -> dict[str, Any]:
    return {"name": name, "capacity": capacity, "refill_per_second": rate, "key": list(key),
            "match": match or TOOLS_ONLY}


def limits(*buckets: dict[str, Any], backend: str = "memory", **settings: Any) -> dict[str, Any]:
    overrides = {"rate_limits__buckets": list(buckets), "rate_limits__backend": backend}
    overrides.update({f"rate_limits__{name}": value for name, value in settings.items()})
    return overrides


async def call_tool(http: aiohttp.ClientSession, url: str, name: str = "add",
                    arguments: dict[str, Any] | None = None, request_id: int = 1) -> tuple[int, dict, Any]:
    """One 2026-07-28 tools/call over plain HTTP: (status, headers, JSON-RPC message)."""
    message = modern_request("tools/call", {"name": name, "arguments": arguments or {"a": 1, "b": 2}}, request_id)
    async with http.post(url, data=orjson.dumps(message), headers=modern_headers("tools/call", name)) as response:
        return response.status, dict(response.headers), orjson.loads(await response.read())


def is_refused(message: dict[str, Any]) -> bool:
    return bool(message.get("result", {}).get("isError"))


@pytest.mark.parametrize("mode", ["auto", "legacy", "2026-07-28"])
async def test_sdk_client_sees_a_readable_limit(stateful_upstream: str, mode: str) -> None:
    config = make_config(stateful_upstream, **limits(bucket("tool_calls", 2, rate=0.05)))
    async with run_sidecar(config) as sidecar, Client(sidecar.url, mode=mode, cache=None) as client:
        first = await client.call_tool("add", {"a": 1, "b": 2})
        second = await client.call_tool("echo", {"text": "hi"})
        limited = await client.call_tool("add", {"a": 1, "b": 2})
        listed = await client.list_tools()  # other methods are not limited by this bucket
    assert (first.is_error, second.is_error) == (False, False)
    assert limited.is_error is True
    text = limited.content[0].text
    assert "Rate limit 'tool_calls' exceeded" in text and "Retry after 20 s" in text
    assert "add" in {tool.name for tool in listed.tools}


@pytest.mark.parametrize("backend", ["memory", pytest.param("redis", marks=needs_shared_redis)])
async def test_capacity_n_lets_exactly_n_of_m_concurrent_calls_through(stateless_upstream: str, backend: str) -> None:
    config = make_config(stateless_upstream, **limits(bucket("burst", 5, tools=["lookup"]), backend=backend,
                                                       redis_url=SHARED_URL, key_prefix=unique_prefix("burst")))
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        before = await invocations(http, sidecar.url)
        started = time.monotonic()
        answers = await asyncio.gather(*(call_tool(http, sidecar.url, "lookup", {"key": "k"}, index)
                                         for index in range(20)))
        elapsed = math.ceil(time.monotonic() - started)  # the bucket refills 1 ms of token per second that passes
        after = await invocations(http, sidecar.url)
    allowed = [headers for _, headers, message in answers if not is_refused(message)]
    refused = [headers for _, headers, message in answers if is_refused(message)]
    assert len(allowed) == 5 and len(refused) == 15
    assert after - before == 5  # refused calls never reached the upstream
    assert all(headers["RateLimit-Policy"] == '"burst";q=5;w=5000' for headers in allowed + refused)
    # Seconds until full: 1000 per missing token, less the whole seconds that passed while the calls ran.
    reported = sorted((headers["RateLimit"] for headers in allowed), key=lambda value: int(value.split(";")[1][2:]))
    for left, value in enumerate(reported):
        name, remaining, reset = value.split(";")
        assert (name, remaining) == ('"burst"', f"r={left}")
        assert (5 - left) * 1000 - elapsed <= int(reset.removeprefix("t=")) <= (5 - left) * 1000
    assert all(1000 - elapsed <= int(headers["Retry-After"]) <= 1000 for headers in refused)


async def invocations(http: aiohttp.ClientSession, url: str) -> int:
    """How often the upstream ran `lookup` (the buckets here match `lookup` only)."""
    _, _, message = await call_tool(http, url, "invocations", {}, 999)
    return message["result"]["structuredContent"].get("lookup", 0)


async def test_other_methods_get_429_with_retry_after(stateless_upstream: str) -> None:
    config = make_config(stateless_upstream, **limits(bucket("reads", 1, rate=0.5, methods=["resources/read"])))
    message = modern_request("resources/read", {"uri": "demo://readme"}, 5)
    headers = modern_headers("resources/read", "demo://readme")
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(2):
            async with http.post(sidecar.url, data=orjson.dumps(message), headers=headers) as response:
                statuses.append((response.status, dict(response.headers), orjson.loads(await response.read())))
    (ok_status, ok_headers, _), (status, refused_headers, refused) = statuses
    assert ok_status == 200 and ok_headers["RateLimit"] == '"reads";r=0;t=2'
    assert status == 429 and refused_headers["Retry-After"] == "2"
    assert refused["id"] == 5 and refused["error"]["code"] == -31029
    assert refused["error"]["data"]["retry_after"] == 2 and refused["error"]["data"]["bucket"] == "reads"


async def test_per_session_buckets_do_not_interfere(stateful_upstream: str) -> None:
    config = make_config(stateful_upstream, **limits(bucket("per_session", 2, key=("session",))))
    async with run_sidecar(config) as sidecar, Client(sidecar.url, mode="legacy", cache=None) as alice, \
                Client(sidecar.url, mode="legacy", cache=None) as bob:
        outcomes: dict[str, list[bool]] = {"alice": [], "bob": []}
        for _ in range(3):
            for name, client in (("alice", alice), ("bob", bob)):
                result = await client.call_tool("echo", {"text": name})
                outcomes[name].append(not result.is_error)
    assert outcomes == {"alice": [True, True, False], "bob": [True, True, False]}


@pytest.fixture(scope="module")
def mrtr_upstream() -> Iterator[str]:
    """An upstream whose `approve` tool answers `input_required` first (2026-07-28 multi-round trip)."""
    port = free_port()
    with serve_process([sys.executable, "-m", "tests.integration.mrtr_upstream", str(port)], port) as url:
        yield url


async def test_input_required_retry_is_not_charged_twice(mrtr_upstream: str) -> None:
    async def approve(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="accept", content={"ok": True})

    config = make_config(mrtr_upstream, **limits(bucket("once", 1, key=("client",))))
    async with run_sidecar(config) as sidecar, \
            Client(sidecar.url, mode="2026-07-28", cache=None, elicitation_callback=approve) as client:
        done = await client.call_tool("approve", {"action": "deploy"})  # two legs, one token
        again = await client.call_tool("approve", {"action": "deploy"})
    assert (done.is_error, done.content[0].text) == (False, "deploy: approved")
    assert again.is_error and "Rate limit 'once' exceeded" in again.content[0].text


@needs_shared_redis
async def test_input_required_retry_on_another_replica_is_free_with_redis(mrtr_upstream: str) -> None:
    shared = limits(bucket("once", 1, key=("client",)), backend="redis", redis_url=SHARED_URL,
                    key_prefix=unique_prefix("mrtr"))
    first_leg = modern_request("tools/call", {"name": "approve", "arguments": {"action": "ship"}}, 1)
    headers = modern_headers("tools/call", "approve")
    async with run_sidecar(make_config(mrtr_upstream, **shared)) as replica_a, \
            run_sidecar(make_config(mrtr_upstream, **shared)) as replica_b, aiohttp.ClientSession() as http:
        async with http.post(replica_a.url, data=orjson.dumps(first_leg), headers=headers) as response:
            asked = orjson.loads(await response.read())["result"]
        assert asked["resultType"] == "input_required"
        retry = modern_request("tools/call", {
            "name": "approve", "arguments": {"action": "ship"}, "requestState": asked["requestState"],
            "inputResponses": {"approval": {"action": "accept", "content": {"ok": True}}}}, 2)
        async with http.post(replica_b.url, data=orjson.dumps(retry), headers=headers) as response:
            answered = orjson.loads(await response.read())["result"]
        _, _, fresh = await call_tool(http, replica_b.url, "approve", {"action": "ship"}, 3)
    assert answered["content"][0]["text"] == "ship: approved"
    assert is_refused(fresh)  # the one token went to the first leg; the retry was free, a new call is not


def start_sidecar_process(config_file: Path, port: int) -> subprocess.Popen[bytes]:
    """`mcp-sidecar serve` as its own process (a replica), on the given port."""
    return subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--config", str(config_file),
                             "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{free_port()}"],
                            env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@needs_shared_redis
async def test_two_sidecar_processes_sharing_redis_enforce_one_limit(stateless_upstream: str, tmp_path: Path) -> None:
    config_file = tmp_path / "sidecar.yaml"
    config_file.write_text(yaml.safe_dump({
        "upstream": {"url": stateless_upstream},
        "audit": {"enabled": False},
        "auth": {"mode": "off"},
        "logging": {"level": "warning"},
        "rate_limits": {"backend": "redis", "redis_url": SHARED_URL, "key_prefix": unique_prefix("replicas"),
                        "buckets": [bucket("shared", 6)]},
    }))
    ports = [free_port() for _ in range(2)]
    children = [start_sidecar_process(config_file, port) for port in ports]
    try:
        for port, child in zip(ports, children, strict=True):
            await asyncio.to_thread(wait_for_port, port, 20.0, child)
        urls = [f"http://127.0.0.1:{port}/mcp" for port in ports]
        async with aiohttp.ClientSession() as http:
            # Alternate between the replicas: separate buckets would let all 12 through.
            answers = [await call_tool(http, urls[index % 2], request_id=index) for index in range(12)]
        assert [not is_refused(message) for _, _, message in answers] == [True] * 6 + [False] * 6
        assert [headers["RateLimit"] for _, headers, _ in answers[:6]] == [
            f'"shared";r={left};t={(6 - left) * 1000}' for left in range(5, -1, -1)]
    finally:
        for child in children:
            stop_process(child)


@needs_redis_server
async def test_redis_stopped_mid_run_fails_closed_and_recovers(stateless_upstream: str) -> None:
    with private_redis() as server:
        config = make_config(stateless_upstream, **limits(
            bucket("guarded", 100), backend="redis", redis_url=server.url, key_prefix=unique_prefix("guard"),
            failure_mode="fail_closed", redis_timeout_seconds=0.2, redis_retry_seconds=0.1))
        async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
            _, _, message = await call_tool(http, sidecar.url)
            assert not is_refused(message)
            server.stop()
            _, headers, message = await call_tool(http, sidecar.url)
            assert is_refused(message) and "cannot be checked" in message["result"]["content"][0]["text"]
            assert headers["Retry-After"] == "1"
            async with http.get(f"{sidecar.admin_url}/readyz") as response:
                assert response.status == 503
            server.start()
            answers: list[dict[str, Any]] = []

            async def recovered() -> bool:
                answers.append((await call_tool(http, sidecar.url))[2])
                return not is_refused(answers[-1])

            async with asyncio.timeout(5):
                while not await recovered():
                    await asyncio.sleep(0.05)
            async with http.get(f"{sidecar.admin_url}/readyz") as response:
                assert response.status == 200
    assert answers[-1]["result"]["structuredContent"] == {"result": 3}


async def test_the_audit_event_names_the_bucket_and_what_is_left(stateless_upstream: str, tmp_path: Path) -> None:
    audit_file = tmp_path / "audit.jsonl"
    config = make_config(stateless_upstream, audit__enabled=True, audit__sink="file", audit__path=str(audit_file),
                         **limits(bucket("audited", 1, rate=0.25)))
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        for index in range(2):
            await call_tool(http, sidecar.url, request_id=index)
    await wait_until(lambda: audit_file.exists() and len(audit_file.read_text().splitlines()) >= 2)
    events = [orjson.loads(line) for line in audit_file.read_text().splitlines()]
    assert [(event["outcome"], event["rate_limit"]) for event in events] == [
        ("allowed", {"bucket": "audited", "remaining": 0, "limit": 1, "retry_after_seconds": 0}),
        ("limited", {"bucket": "audited", "remaining": 0, "limit": 1, "retry_after_seconds": 4}),
    ]
