"""The MCP listener as the sidecar serves it, byte by byte: pipelined calls, Expect: 100-continue against the body
limit, the methods the MCP path does not take, and what serving does once started."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import resource
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from proxy.config.base import parse_host_port
from proxy.runtime.server import YOUNG_COLLECTION_THRESHOLD, connection_limit, serve
from tests.kit import RunningSidecar, make_config, modern_headers, modern_request, run_sidecar
from tests.raw_http import WAIT, assert_closed, connect, exchange, read_reply, request

MAX_BODY = 2048


@pytest.fixture
async def sidecar(stateless_upstream: str) -> AsyncIterator[RunningSidecar]:
    async with run_sidecar(make_config(stateless_upstream, server__max_body_bytes=MAX_BODY)) as running:
        yield running


def port_of(sidecar: RunningSidecar) -> int:
    return parse_host_port(sidecar.config.server.listen)[1]


CALL_HEADERS = {name.replace("-", "_"): value for name, value in modern_headers("tools/call", "add").items()}


def call(numbers: tuple[int, int], request_id: int) -> bytes:
    arguments = {"a": numbers[0], "b": numbers[1]}
    body = orjson.dumps(modern_request("tools/call", {"name": "add", "arguments": arguments}, request_id=request_id))
    return request("POST", "/mcp", body, **CALL_HEADERS)


async def test_pipelined_calls_are_answered_in_order_on_one_connection(sidecar: RunningSidecar) -> None:
    reader, writer = await connect(port_of(sidecar))
    writer.write(b"".join(call((number, 100), request_id=number) for number in range(1, 6)))
    for number in range(1, 6):
        reply = await read_reply(reader)
        answer = orjson.loads(reply.body)
        assert (reply.status, answer["id"], answer["result"]["structuredContent"]) == (200, number,
                                                                                        {"result": number + 100})


async def test_expect_100_continue_gets_the_body_invited_then_the_call_answered(sidecar: RunningSidecar) -> None:
    body = orjson.dumps(modern_request("tools/call", {"name": "add", "arguments": {"a": 2, "b": 3}}))
    reader, writer = await connect(port_of(sidecar))
    writer.write(request("POST", "/mcp", **CALL_HEADERS, Expect="100-continue", Content_Length=str(len(body))))
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT) == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(body)
    reply = await read_reply(reader)
    assert orjson.loads(reply.body)["result"]["structuredContent"] == {"result": 5}


async def test_an_oversized_body_announced_with_expect_is_refused_before_it_is_sent(sidecar: RunningSidecar) -> None:
    head = request("POST", "/mcp", **CALL_HEADERS, Expect="100-continue", Content_Length=str(MAX_BODY + 1))
    reply, reader = await exchange(port_of(sidecar), head)
    assert (reply.status, reply.headers["connection"]) == (413, "close")  # no 100 Continue before it
    assert orjson.loads(reply.body)["error"]["code"] == -32600
    await assert_closed(reader)


async def test_a_call_announcing_a_huge_body_gets_its_413_without_sending_it(sidecar: RunningSidecar) -> None:
    reply, reader = await exchange(port_of(sidecar), request("POST", "/mcp", **CALL_HEADERS,
                                                             Content_Length=str(8 * 1024**3)))
    assert (reply.status, reply.headers["connection"]) == (413, "close")
    assert orjson.loads(reply.body)["error"]["code"] == -32600
    await assert_closed(reader)


async def test_a_request_head_past_its_deadline_gets_408_and_is_counted(stateless_upstream: str) -> None:
    config = make_config(stateless_upstream, server__request_head_timeout_seconds=0.2)
    async with run_sidecar(config) as running, aiohttp.ClientSession() as http:
        reply, reader = await exchange(port_of(running), b"POST /mcp HTTP/1.1\r\nHost: t\r\n")  # and no more
        assert (reply.status, reply.headers["connection"]) == (408, "close")
        await assert_closed(reader)
        async with http.get(running.admin_url + "/metrics") as metrics:
            text = await metrics.text()
    assert 'mcp_sidecar_listener_request_timeouts_total{phase="head"} 1.0' in text
    assert "mcp_sidecar_listener_refused_connections_total 0.0" in text


async def test_methods_the_mcp_path_does_not_take_get_405_with_allow(sidecar: RunningSidecar) -> None:
    reader, writer = await connect(port_of(sidecar))
    writer.write(request("HEAD", "/mcp") + request("PUT", "/mcp", b"{}") + call((4, 4), request_id=9))
    head = await read_reply(reader, head_only=True)
    assert (head.status, head.headers["allow"]) == (405, "DELETE, GET, POST")
    put = await read_reply(reader)
    assert (put.status, put.headers["allow"]) == (405, "DELETE, GET, POST")
    answer = orjson.loads((await read_reply(reader)).body)  # the connection kept its framing through both
    assert answer["result"]["structuredContent"] == {"result": 8}


async def test_serve_takes_what_startup_built_out_of_the_collectors_sight(stateless_upstream: str) -> None:
    gc.unfreeze()
    thresholds = gc.get_threshold()
    started = asyncio.Event()
    serving = asyncio.ensure_future(serve(make_config(stateless_upstream), started))
    try:
        async with asyncio.timeout(10):
            await started.wait()
        assert gc.get_freeze_count() > 10_000  # modules, config, telemetry: never garbage, never walked again
        assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_the_connection_limit_leaves_room_under_the_open_file_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    assert connection_limit(50) == 50  # configured: as given
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, 4096))
    assert connection_limit(None) == 1024 - 256  # room for upstream connections and files
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1_048_576, 1_048_576))
    assert connection_limit(None) == 10_000
