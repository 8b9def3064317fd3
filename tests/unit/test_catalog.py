"""proxy/catalog.py without sockets: the trusted tool view drops itself when the upstream announces a change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from proxy.catalog import ToolCatalog, ToolInfo
from proxy.net.sse_codec import SseEvent
from proxy.reply import Reply


async def events(*messages: dict[str, Any]) -> AsyncIterator[SseEvent]:
    for message in messages:
        yield SseEvent(data=orjson.dumps(message).decode())


async def relay(reply: Reply) -> None:
    assert reply.events is not None
    async for event in reply.events:
        await reply.notify_observers(event)


async def test_a_list_changed_on_any_upstream_stream_drops_the_view() -> None:
    catalog = ToolCatalog(upstream=None, ttl_seconds=300)  # type: ignore[arg-type]  # never fetches here
    catalog._tools = {"add": ToolInfo.from_definition({"name": "add"})}
    quiet = catalog.watch(Reply(events=events({"jsonrpc": "2.0", "method": "notifications/progress", "params": {}})))
    await relay(quiet)
    assert catalog._tools is not None
    announced = catalog.watch(Reply(events=events({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})))
    await relay(announced)
    assert catalog._tools is None
    plain = Reply.json({"jsonrpc": "2.0", "id": 1, "result": {}})
    assert catalog.watch(plain) is plain and not plain.event_observers
