"""Event streams that stay silent get SSE keepalive comments (server.stream_keepalive_seconds), so an idle timeout
between client and sidecar cannot cut them: approval waits, legacy /sse streams, relayed GET streams."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
from aiohttp import web
from mcp import Client

from proxy import mcp
from proxy.approval.book import ApprovalBook
from proxy.config import ApprovalConfig
from proxy.reply import Reply
from proxy.stages.approval import ApprovalStage
from tests.integration.test_approval import pending, with_policy
from tests.integration.test_legacy_sse import sidecar_sse_url
from tests.integration.test_stdio_upstream import stdio_config
from tests.integration.test_tracing import traced_config
from tests.kit import (
    ACCEPT_BOTH,
    bound,
    make_config,
    make_ctx,
    modern_headers,
    modern_request,
    run_sidecar,
    start_raw_upstream,
    wait_until,
)
from tests.otlp_kit import CLIENT, SERVER, otlp_receiver

KEEPALIVE = b": keepalive\n\n"
FAST = 0.2  # keepalive interval in these tests


async def read_until(stream: aiohttp.StreamReader, marker: bytes, timeout: float = 5.0) -> bytes:
    """What the stream carries up to and including the first `marker`."""
    seen = b""
    async with asyncio.timeout(timeout):
        while marker not in seen:
            more = await stream.readany()
            assert more, f"the stream ended before {marker!r}: {seen!r}"
            seen += more
    return seen


def events_of(raw: bytes) -> list[dict]:
    return [orjson.loads(line[5:]) for line in raw.split(b"\n") if line.startswith(b"data:")]


async def post_call(http: aiohttp.ClientSession, url: str, tool: str, arguments: dict, **headers: str):
    """A tools/call whose response head must come within 5 s (the body is the caller's to read)."""
    call = modern_request("tools/call", {"name": tool, "arguments": arguments}, request_id=7)
    return await asyncio.wait_for(http.post(url, data=orjson.dumps(call),
                                            headers={**modern_headers("tools/call", tool), **headers}), 5)


async def approve_first(http: aiohttp.ClientSession, admin_url: str) -> None:
    async with asyncio.timeout(5):
        while not (waiting := await pending(http, admin_url)):
            await asyncio.sleep(0.02)
    async with http.post(f"{admin_url}/approvals/{waiting[0]['id']}/approve", json=bound(waiting[0])) as response:
        assert response.status == 200


async def test_a_call_waiting_for_approval_streams_keepalives_then_the_answer(stateless_upstream, monkeypatch) -> None:
    with_policy(monkeypatch, "delete_file")
    config = make_config(stateless_upstream, server__stream_keepalive_seconds=FAST)
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        async with await post_call(http, sidecar.url, "delete_file", {"path": "/tmp/k"}) as response:
            assert response.status == 200 and response.content_type == "text/event-stream"
            waited = await read_until(response.content, KEEPALIVE * 2)  # the head, then keepalives: undecided
            assert waited.replace(KEEPALIVE, b"") == b""
            await approve_first(http, sidecar.admin_url)
            rest = await asyncio.wait_for(response.content.read(), 5)
    [answer] = events_of(rest)
    assert answer["id"] == 7 and answer["result"]["content"][0]["text"] == "deleted /tmp/k"


async def test_a_client_that_takes_only_json_waits_in_silence_for_a_json_answer(stateless_upstream,
                                                                                monkeypatch) -> None:
    with_policy(monkeypatch, "delete_file")
    config = make_config(stateless_upstream, server__stream_keepalive_seconds=FAST)
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        call = asyncio.create_task(post_call(http, sidecar.url, "delete_file", {"path": "/tmp/j"},
                                             Accept="application/json"))
        await approve_first(http, sidecar.admin_url)
        async with await call as response:
            assert response.content_type == "application/json"
            answer = await response.json()
        assert sidecar.app.heartbeat.sent == 0
    assert answer["result"]["content"][0]["text"] == "deleted /tmp/j"


async def test_a_denial_after_the_wait_arrives_as_the_stream_s_event(stateless_upstream, monkeypatch) -> None:
    with_policy(monkeypatch, "delete_file")
    async with run_sidecar(make_config(stateless_upstream)) as sidecar, aiohttp.ClientSession() as http:
        async with await post_call(http, sidecar.url, "delete_file", {"path": "/"}) as response:
            await wait_until(sidecar.app.deps.approvals.pending)
            waiting = await sidecar.app.deps.approvals.pending()
            async with http.post(f"{sidecar.admin_url}/approvals/{waiting[0]['id']}/deny",
                                 json=bound(waiting[0], note="weekend freeze")) as decided:
                assert decided.status == 200
            [answer] = events_of(await asyncio.wait_for(response.content.read(), 5))
    assert answer["id"] == 7 and answer["result"]["isError"] is True
    assert "weekend freeze" in answer["result"]["content"][0]["text"]


async def test_an_approved_call_whose_upstream_answers_no_json_rpc_gets_an_upstream_error(monkeypatch) -> None:
    async def broken(request: web.Request, body: bytes) -> web.Response:
        return web.Response(status=500, text="<html>oops</html>", content_type="text/html")

    with_policy(monkeypatch, "delete_file")
    async with start_raw_upstream(broken) as upstream, run_sidecar(make_config(upstream.url)) as sidecar, \
            aiohttp.ClientSession() as http:
        async with await post_call(http, sidecar.url, "delete_file", {"path": "/x"}) as response:
            await approve_first(http, sidecar.admin_url)
            [answer] = events_of(await asyncio.wait_for(response.content.read(), 5))
    assert answer["id"] == 7 and answer["error"]["code"] == -31002


async def test_an_approved_call_s_upstream_span_stays_in_the_caller_s_trace(stateless_upstream, monkeypatch) -> None:
    with_policy(monkeypatch, "delete_file")
    async with otlp_receiver() as receiver:
        async with run_sidecar(traced_config(stateless_upstream, receiver)) as sidecar, \
                aiohttp.ClientSession() as http:
            async with await post_call(http, sidecar.url, "delete_file", {"path": "/t"}) as response:
                await approve_first(http, sidecar.admin_url)
                [answer] = events_of(await asyncio.wait_for(response.content.read(), 5))
        await wait_until(lambda: receiver.named("tools/call delete_file", kind=CLIENT))
    [server] = receiver.named("tools/call delete_file", "sidecar-under-test", SERVER)
    [client_span] = receiver.named("tools/call delete_file", "sidecar-under-test", CLIENT)
    assert answer["result"]["content"][0]["text"] == "deleted /t"
    assert client_span.trace_id == server.trace_id and client_span.parent_span_id == server.span_id


async def test_an_sdk_client_gets_its_result_through_the_keepalives(stateless_upstream, monkeypatch) -> None:
    with_policy(monkeypatch, "delete_file")
    config = make_config(stateless_upstream, server__stream_keepalive_seconds=FAST / 2)
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        heartbeat = sidecar.app.heartbeat
        async with Client(sidecar.url, cache=None) as client:
            call = asyncio.create_task(client.call_tool("delete_file", {"path": "/tmp/s"}))
            await wait_until(lambda: heartbeat.open_streams == 1 and heartbeat.sent >= 3)  # all on the call's stream
            assert heartbeat.open_streams == 1
            await approve_first(http, sidecar.admin_url)
            result = await asyncio.wait_for(call, 5)
    assert result.is_error is False and result.content[0].text == "deleted /tmp/s"


async def is_empty(book: ApprovalBook) -> bool:
    return await book.pending() == []


async def test_a_client_leaving_during_the_wait_withdraws_its_approval(stateless_upstream, monkeypatch) -> None:
    with_policy(monkeypatch, "delete_file")
    async with run_sidecar(make_config(stateless_upstream)) as sidecar, aiohttp.ClientSession() as http:
        response = await post_call(http, sidecar.url, "delete_file", {"path": "/tmp/g"})
        book = sidecar.app.deps.approvals
        await wait_until(book.pending)
        assert len(await book.pending()) == 1
        response.close()  # the client goes away before anyone decides
        await wait_until(lambda: is_empty(book))


async def test_a_streamed_answer_finished_unread_withdraws_its_approval() -> None:
    """The transport finishes a reply whose stream never started (its client was already gone)."""
    book = ApprovalBook()
    stage = ApprovalStage(ApprovalConfig(), book)
    ctx = make_ctx(target="delete_file", obligations={"require_approval": True}, headers={"accept": ACCEPT_BOTH})

    async def never(_ctx) -> Reply:
        raise AssertionError("an undecided call must not reach the upstream")

    reply = await stage(ctx, never)
    assert reply.is_stream and len(await book.pending()) == 1
    await reply.finish()
    assert await book.pending() == []


async def test_an_idle_legacy_sse_stream_gets_keepalives() -> None:
    async with run_sidecar(stdio_config(server__stream_keepalive_seconds=FAST)) as sidecar:
        async with aiohttp.ClientSession() as http, http.get(sidecar_sse_url(sidecar)) as stream:
            seen = await read_until(stream.content, KEEPALIVE * 2)
    assert seen.startswith(b"event: endpoint") and seen.endswith(b"\n\n" + KEEPALIVE * 2)


async def test_no_keepalives_when_turned_off() -> None:
    async with run_sidecar(stdio_config(server__stream_keepalive_seconds=0)) as sidecar:
        async with aiohttp.ClientSession() as http, http.get(sidecar_sse_url(sidecar)) as stream:
            endpoint = await read_until(stream.content, b"\n\n")
            quiet = asyncio.create_task(stream.content.readany())
            done, _ = await asyncio.wait({quiet}, timeout=FAST * 3)  # three intervals of the fast setting
            quiet.cancel()
    assert endpoint.startswith(b"event: endpoint") and not done
    assert sidecar.app.heartbeat.sent == 0


async def test_a_relayed_get_stream_gets_keepalives_while_the_upstream_is_silent(stateful_upstream) -> None:
    config = make_config(stateful_upstream, server__stream_keepalive_seconds=FAST)
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "keepalive", "version": "1"}}}
    headers = {"Content-Type": "application/json", "Accept": ACCEPT_BOTH}
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        async with http.post(sidecar.url, data=orjson.dumps(initialize), headers=headers) as response:
            assert response.status == 200
            session = response.headers[mcp.HEADER_SESSION_ID]
        headers = {**headers, mcp.HEADER_SESSION_ID: session, mcp.HEADER_PROTOCOL_VERSION: "2025-11-25"}
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        async with http.post(sidecar.url, data=orjson.dumps(note), headers=headers) as response:
            assert response.status == 202
        get_headers = {**headers, "Accept": "text/event-stream"}
        async with http.get(sidecar.url, headers=get_headers) as stream:
            assert stream.status == 200 and stream.content_type == "text/event-stream"
            seen = await read_until(stream.content, KEEPALIVE * 2)
        async with http.delete(sidecar.url, headers=headers):
            pass
    assert seen.endswith(KEEPALIVE * 2)
