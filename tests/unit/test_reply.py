"""The Reply: its constructors, the body parsed once, result hooks, observers, adopt() and finish()."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from proxy.net.sse_codec import SseEvent
from proxy.reply import EVENT_STREAM, JSON, Reply


async def events_of(*events: SseEvent) -> AsyncIterator[SseEvent]:
    for event in events:
        yield event


def data_event(message: dict[str, Any]) -> SseEvent:
    return SseEvent(data=orjson.dumps(message).decode())


def test_json_reply_keeps_its_message_and_extra_headers() -> None:
    message = {"jsonrpc": "2.0", "id": 1, "result": {}}
    reply = Reply.json(message, status=429, headers={"Retry-After": "2"})
    assert (reply.status, reply.message, reply.body) == (429, message, None)
    assert reply.headers == {"Content-Type": JSON, "Retry-After": "2"} and not reply.is_stream


def test_empty_reply_is_202_without_content_type() -> None:
    shared = {"X": "1"}
    reply = Reply.empty(headers=shared)
    assert (reply.status, reply.body, reply.content_type) == (202, b"", "")
    reply.headers["Y"] = "2"
    assert shared == {"X": "1"}  # the caller's mapping is copied


def test_content_type_is_found_case_insensitively_without_parameters() -> None:
    reply = Reply(headers={"content-TYPE": "Text/Event-Stream; charset=utf-8"})
    assert reply.content_type == EVENT_STREAM


def test_parsed_body_reads_a_json_body_once() -> None:
    reply = Reply(headers={"Content-Type": "application/json"}, body=b'{"jsonrpc":"2.0","id":1,"result":{}}')
    first = reply.parsed_body()
    assert first == {"jsonrpc": "2.0", "id": 1, "result": {}}
    reply.body = b"changed"
    assert reply.parsed_body() is first


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/json", b"{not json"), ("application/json", b"[1, 2]"), ("text/plain", b'{"id": 1}'),
    ("application/json", b""),
])
def test_parsed_body_is_none_for_what_is_not_a_json_object(content_type: str, body: bytes) -> None:
    reply = Reply(headers={"Content-Type": content_type}, body=body)
    assert reply.parsed_body() is None and reply.message is None


async def test_hooks_run_in_order_and_report_a_change() -> None:
    reply = Reply.json({"id": 1})
    seen: list[dict[str, Any]] = []

    async def look(message: dict[str, Any]) -> None:
        seen.append(message)

    async def change(message: dict[str, Any]) -> dict[str, Any]:
        return {**message, "changed": True}

    reply.add_result_hook(look)
    message, changed = await reply.apply_hooks({"id": 1})
    assert (message, changed) == ({"id": 1}, False)
    reply.add_result_hook(change)
    reply.add_result_hook(look)
    message, changed = await reply.apply_hooks({"id": 2})
    assert changed and message == {"id": 2, "changed": True} and reply.message is message
    assert seen[-1] == {"id": 2, "changed": True}  # a later hook sees the earlier one's change


async def test_observers_may_be_sync_or_async() -> None:
    reply = Reply()
    seen: list[str] = []

    async def later(event: SseEvent) -> None:
        seen.append("async:" + event.data)

    reply.observe_events(lambda event: seen.append("sync:" + event.data))  # type: ignore[func-returns-value]
    reply.observe_events(later)
    await reply.notify_observers(SseEvent(data="x"))
    assert seen == ["sync:x", "async:x"]


async def test_finish_releases_then_runs_every_callback_even_when_release_fails() -> None:
    order: list[str] = []

    def release() -> None:
        order.append("release")
        raise OSError("gone")

    async def done(reply: Reply) -> None:
        order.append("async-done")

    reply = Reply(release=release)
    reply.on_done(lambda reply: order.append("done"))  # type: ignore[func-returns-value]
    reply.on_done(done)
    with pytest.raises(OSError, match="gone"):
        await reply.finish()
    assert order == ["release", "done", "async-done"]


async def test_finish_awaits_an_async_release() -> None:
    released: list[bool] = []

    async def release() -> None:
        released.append(True)

    await Reply(release=release).finish()
    assert released == [True]


async def test_read_final_finds_the_response_among_other_events_and_finishes() -> None:
    finished: list[Reply] = []
    answer = {"jsonrpc": "2.0", "id": 7, "result": {"ok": 1}}
    stream = events_of(SseEvent(data=""), SseEvent(data="{broken"),
                       data_event({"jsonrpc": "2.0", "method": "notifications/progress", "params": {}}),
                       data_event({"jsonrpc": "2.0", "id": 6, "result": {}}), data_event(answer),
                       data_event({"jsonrpc": "2.0", "id": 7, "result": {"late": 1}}))
    reply = Reply(events=stream)
    reply.on_done(finished.append)  # type: ignore[arg-type]
    assert reply.is_stream
    assert await reply.read_final(7) == answer
    assert reply.message == answer and finished == [reply]


async def test_read_final_of_a_stream_without_the_answer_is_none() -> None:
    reply = Reply(events=events_of(data_event({"jsonrpc": "2.0", "id": 1, "result": {}})))
    assert await reply.read_final(2) is None


async def test_read_final_of_a_json_body() -> None:
    reply = Reply(headers={"Content-Type": JSON}, body=b'{"jsonrpc":"2.0","id":1,"result":{}}')
    assert await reply.read_final(1) == {"jsonrpc": "2.0", "id": 1, "result": {}}


async def test_adopt_runs_inner_hooks_first_and_finishes_inner_with_the_outcome() -> None:
    order: list[str] = []
    outer, inner = Reply(), Reply()

    def hook(name: str) -> Any:
        async def run(message: dict[str, Any]) -> None:
            order.append(name)
        return run

    outer.add_result_hook(hook("outer"))
    inner.add_result_hook(hook("inner"))
    outer.observe_events(lambda event: order.append("outer-event"))  # type: ignore[func-returns-value]
    inner.observe_events(lambda event: order.append("inner-event"))  # type: ignore[func-returns-value]
    inner_seen: list[tuple[Any, str | None, bool]] = []
    inner.on_done(lambda reply: inner_seen.append(  # type: ignore[func-returns-value]
        (reply.message, reply.stream_error, reply.final_relayed)))
    outer.on_done(lambda reply: order.append("outer-done"))  # type: ignore[func-returns-value]
    inner.on_done(lambda reply: order.append("inner-done"))  # type: ignore[func-returns-value]

    outer.adopt(inner)
    await outer.notify_observers(SseEvent(data="e"))
    await outer.apply_hooks({"id": 1})
    outer.stream_error, outer.final_relayed = "broken", True
    await outer.finish()
    assert order == ["inner-event", "outer-event", "inner", "outer", "inner-done", "outer-done"]
    assert inner_seen == [({"id": 1}, "broken", True)]


async def test_adopt_keeps_a_message_inner_already_has() -> None:
    outer, inner = Reply(), Reply.json({"id": "inner"})
    outer.adopt(inner)
    outer.message = {"id": "outer"}
    await outer.finish()
    assert inner.message == {"id": "inner"}
