"""The Relay, the one way back: final response found, hooks run by the contract, stream ended, finished once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from proxy.errors import UpstreamError
from proxy.net.sse_codec import SseEvent
from proxy.reply import Reply
from proxy.transport.relay import Relay
from tests.kit import make_ctx

NOTE = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}}
FINAL = {"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "a"}, {"name": "b"}]}}


class Upstream:
    """A stream of messages, optionally breaking after them; records whether its reader closed it early."""

    def __init__(self, *messages: dict[str, Any], breaks: bool = False) -> None:
        self.messages = messages
        self.breaks = breaks
        self.closed_early = False

    async def events(self) -> AsyncIterator[SseEvent]:
        try:
            for message in self.messages:
                yield SseEvent(data=orjson.dumps(message).decode())
            if self.breaks:
                raise UpstreamError("upstream stream broke")
        except GeneratorExit:
            self.closed_early = True
            raise


def drop_b(seen: list[str]) -> Any:
    async def hook(message: dict[str, Any]) -> dict[str, Any] | None:
        seen.append("hook")
        tools = [tool for tool in message["result"]["tools"] if tool["name"] != "b"]
        return {**message, "result": {"tools": tools}}

    return hook


async def relayed(relay: Relay) -> list[tuple[dict[str, Any], bool]]:
    return [(orjson.loads(event.data), last) async for event, last in relay.events()]


async def test_the_final_response_is_hooked_and_ends_the_stream() -> None:
    upstream, seen = Upstream(NOTE, FINAL, NOTE), []
    reply = Reply(events=upstream.events())
    reply.add_result_hook(drop_b(seen))
    reply.observe_events(lambda event: seen.append("observed"))
    reply.on_done(lambda done: seen.append(f"done final_relayed={done.final_relayed}"))
    relay = Relay(make_ctx("tools/list", target=None), reply)
    out = await relayed(relay)
    assert out == [(NOTE, False), ({"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "a"}]}}, True)]
    assert seen == ["observed", "observed", "hook"]  # the note after the final response is never read
    await relay.finish()
    await relay.finish()  # once only
    assert seen[-1] == "done final_relayed=True" and seen.count("done final_relayed=True") == 1
    assert upstream.closed_early  # its end of stream is not waited for
    assert reply.message == {"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "a"}]}}


async def test_a_buffered_stream_goes_out_whole_after_its_final_response() -> None:
    reply = Reply(events=Upstream(FINAL, NOTE).events(), stream_buffered=True)
    relay = Relay(make_ctx("tools/list", target=None), reply)
    assert await relayed(relay) == [(FINAL, False), (NOTE, False)]
    await relay.finish()
    assert reply.final_relayed is False and reply.message == FINAL


async def test_a_stream_broken_before_its_answer_ends_with_an_error_and_records_it() -> None:
    reply = Reply(events=Upstream(NOTE, breaks=True).events())
    relay = Relay(make_ctx(), reply)
    out = await relayed(relay)
    assert out[0] == (NOTE, False)
    error, last = out[1]
    assert last and error["id"] == 1 and error["error"]["message"] == "upstream stream broke"
    await relay.finish()
    assert reply.stream_error == "upstream stream broke" and reply.final_relayed is False


async def test_notifications_and_get_streams_run_no_result_hook() -> None:
    seen: list[str] = []
    reply = Reply(events=Upstream(FINAL).events())
    reply.add_result_hook(drop_b(seen))
    relay = Relay(make_ctx(request_id=None), reply)
    assert await relayed(relay) == [(FINAL, False)]
    assert seen == []


async def test_a_json_answer_keeps_its_bytes_unless_a_hook_changed_it() -> None:
    body = orjson.dumps(FINAL) + b" "  # not canonical: only a changed answer is re-encoded
    untouched = Reply(headers={"Content-Type": "application/json"}, body=body)
    untouched.add_result_hook(lambda message: _none())
    assert await Relay(make_ctx("tools/list", target=None), untouched).body() == body
    seen: list[str] = []
    changed = Reply(headers={"Content-Type": "application/json"}, body=body)
    changed.add_result_hook(drop_b(seen))
    out = orjson.loads(await Relay(make_ctx("tools/list", target=None), changed).body())
    assert out["result"]["tools"] == [{"name": "a"}] and seen == ["hook"]


async def test_finish_closes_a_stream_left_early_then_releases_then_runs_done_callbacks() -> None:
    order: list[str] = []

    async def broken_events() -> AsyncIterator[SseEvent]:
        try:
            yield SseEvent(data=orjson.dumps(FINAL).decode())
            yield SseEvent(data="never")
        finally:
            order.append("upstream closed")

    reply = Reply(events=broken_events(), release=lambda: order.append("released"))
    reply.on_done(lambda done: order.append("done"))
    relay = Relay(make_ctx("tools/list", target=None), reply)
    assert [last async for _, last in relay.events()] == [True]
    await relay.finish()
    assert order == ["upstream closed", "released", "done"]


async def _none() -> None:
    return None
