"""The multiplexer over an in-memory channel: id and progress-token remapping, routing, failure, backpressure."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from proxy.errors import UpstreamError
from proxy.net.deadlines import TICK
from proxy.net.message_box import Mailbox, MailboxClosedError
from proxy.upstream.channel.mux import CallOverdueError, Multiplexer


class MemoryChannel:
    label = "memory"

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def open(self, on_message: Callable[[bytes], None]) -> None: ...

    async def send(self, data: bytes) -> None:
        self.sent.append(orjson.loads(data))

    async def wait_closed(self) -> str:
        return "closed"

    async def close(self) -> None: ...


def request(request_id: Any, method: str = "tools/call", token: Any = None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": "x"}
    if token is not None:
        params["_meta"] = {"progressToken": token}
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def feed(mux: Multiplexer, message: dict[str, Any]) -> None:
    mux.feed(orjson.dumps(message))


async def test_callers_with_the_same_id_get_their_own_replies() -> None:
    channel = MemoryChannel()
    mux = Multiplexer(channel, 8, sessionful=False)
    first, second = await mux.call(request(1)), await mux.call(request(1))
    upstream_ids = [message["id"] for message in channel.sent]
    assert len(set(upstream_ids)) == 2
    feed(mux, {"jsonrpc": "2.0", "id": upstream_ids[1], "result": {"who": "second"}})
    feed(mux, {"jsonrpc": "2.0", "id": upstream_ids[0], "result": {"who": "first"}})
    assert await first.inbox.get() == {"jsonrpc": "2.0", "id": 1, "result": {"who": "first"}}
    assert await second.inbox.get() == {"jsonrpc": "2.0", "id": 1, "result": {"who": "second"}}
    assert mux.in_flight == 0


async def test_progress_tokens_are_remapped_both_ways() -> None:
    channel = MemoryChannel()
    mux = Multiplexer(channel, 8, sessionful=False)
    call = await mux.call(request("a", token="tok"))
    sent_token = channel.sent[0]["params"]["_meta"]["progressToken"]
    assert sent_token != "tok"
    feed(mux, {"jsonrpc": "2.0", "method": "notifications/progress",
               "params": {"progressToken": sent_token, "progress": 1}})
    assert (await call.inbox.get())["params"] == {"progressToken": "tok", "progress": 1}


async def test_a_shared_channel_refuses_server_requests() -> None:
    channel = MemoryChannel()
    mux = Multiplexer(channel, 8, sessionful=False)
    await mux.call(request(1))
    feed(mux, {"jsonrpc": "2.0", "id": 99, "method": "sampling/createMessage", "params": {}})
    await asyncio.sleep(0.01)
    assert channel.sent[-1]["id"] == 99 and channel.sent[-1]["error"]["code"] == -32601


async def test_a_session_routes_server_requests_to_the_call_in_progress_else_to_its_get_stream() -> None:
    channel = MemoryChannel()
    mux = Multiplexer(channel, 8, sessionful=True)
    mux.push = Mailbox(8)
    call = await mux.call(request(1))
    elicit = {"jsonrpc": "2.0", "id": 5, "method": "elicitation/create", "params": {}}
    feed(mux, elicit)
    assert await call.inbox.get() == elicit
    changed = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
    feed(mux, changed)
    assert await mux.push.get() == changed


async def test_cancellation_names_the_upstream_id() -> None:
    channel = MemoryChannel()
    mux = Multiplexer(channel, 8, sessionful=True)
    await mux.call(request(3))
    upstream_id = channel.sent[0]["id"]
    await mux.notify({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3}})
    assert channel.sent[-1]["params"]["requestId"] == upstream_id
    assert mux.in_flight == 0


async def test_a_closed_channel_fails_every_call_at_once() -> None:
    mux = Multiplexer(MemoryChannel(), 8, sessionful=False)
    calls = [await mux.call(request(index)) for index in range(3)]
    mux.fail_all(UpstreamError("gone"))
    for call in calls:
        with pytest.raises(UpstreamError, match="gone"):
            await call.inbox.get()
    with pytest.raises(UpstreamError):
        await mux.call(request(4))


async def test_a_caller_that_falls_behind_is_cancelled() -> None:
    channel = MemoryChannel()
    mux = Multiplexer(channel, 2, sessionful=False)
    call = await mux.call(request(1, token="t"))
    token = channel.sent[0]["params"]["_meta"]["progressToken"]
    for step in range(3):
        feed(mux, {"jsonrpc": "2.0", "method": "notifications/progress",
                   "params": {"progressToken": token, "progress": step}})
    await asyncio.sleep(0.01)
    with pytest.raises(MailboxClosedError):
        await call.inbox.get()
    assert mux.in_flight == 0
    assert channel.sent[-1]["method"] == "notifications/cancelled"


async def test_a_call_waiting_past_its_time_is_overdue_and_the_others_are_not() -> None:
    mux = Multiplexer(MemoryChannel(), 8, sessionful=False)
    slow, patient = await mux.call(request(1)), await mux.call(request(2))
    loop = asyncio.get_running_loop()
    patient_waits = asyncio.ensure_future(mux.next_message(patient, 5))
    started = loop.time()
    with pytest.raises(CallOverdueError):
        await asyncio.wait_for(mux.next_message(slow, 0.15), 5)
    assert 0.15 <= loop.time() - started < 0.15 + TICK + 0.25
    feed(mux, {"jsonrpc": "2.0", "id": patient.upstream_id, "result": {}})
    assert (await asyncio.wait_for(patient_waits, 5))["id"] == 2


async def test_each_wait_has_its_own_time_and_a_message_queued_in_time_is_taken() -> None:
    mux = Multiplexer(MemoryChannel(), 8, sessionful=False)
    call = await mux.call(request(1, token="t"))
    progress = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": call.upstream_id}}
    feed(mux, progress)
    await asyncio.sleep(0.2)  # longer than the next wait's time: the message is already there, it still counts
    assert (await mux.next_message(call, 0.1))["method"] == "notifications/progress"
    waiting = asyncio.ensure_future(mux.next_message(call, 0.3))
    await asyncio.sleep(0.2)  # two thirds of that wait's own time; the first wait's time has long passed
    feed(mux, {"jsonrpc": "2.0", "id": call.upstream_id, "result": {}})
    assert (await asyncio.wait_for(waiting, 5))["id"] == 1


async def test_an_oversized_answer_fails_its_own_call_and_an_unreadable_one_every_call() -> None:
    channel = MemoryChannel()
    mux = Multiplexer(channel, 8, sessionful=False)
    first, second = await mux.call(request(1)), await mux.call(request(2))
    first_id = channel.sent[0]["id"]
    mux.feed_oversized(b'{"jsonrpc":"2.0","id":%d,"result":{"text":"xx' % first_id, b'xx"}}')
    with pytest.raises(UpstreamError, match=r"larger than upstream\.max_event_bytes"):
        await first.inbox.get()
    assert mux.in_flight == 1
    mux.feed_oversized(b'{"method":"notifications/message","params":{', b"}}")  # nobody's answer
    assert mux.in_flight == 1
    third = await mux.call(request(3))
    mux.feed_oversized(b'{"result":{"text":"xx', b'xx"},"id":1,"extra":{}}')
    for call in (second, third):
        with pytest.raises(UpstreamError, match="every call in flight"):
            await call.inbox.get()
    assert mux.in_flight == 0
