"""The cache stage glue (proxy/stages/cache.py) with a fake terminal handler: hits, bypass, notifications."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson

from proxy import mcp
from proxy.cache.controller import ResponseCache
from proxy.cache.store import MemoryStore, StoreUnavailableError
from proxy.context import CallContext
from proxy.net.sse_codec import SseEvent
from proxy.reply import Reply
from proxy.stages.cache import CacheStage
from tests.kit import make_config, make_ctx


class Upstream:
    """Answers tools/call with a result counting its calls."""

    def __init__(self, result: dict[str, Any] | None = None) -> None:
        self.calls = 0
        self.result = result

    async def __call__(self, ctx: CallContext) -> Reply:
        self.calls += 1
        return Reply.json({"jsonrpc": "2.0", "id": ctx.request_id, "result": self.result or {"n": self.calls}})


class DeadStore(MemoryStore):
    async def fetch(self, keys: Sequence[str], generations: Sequence[str]) -> Any:
        raise StoreUnavailableError("down")


class Catalog:
    def __init__(self) -> None:
        self.invalidated = 0

    def invalidate(self) -> None:
        self.invalidated += 1


def stage(store_class: type[MemoryStore] = MemoryStore, catalog: Any = None, **dotted: Any) -> CacheStage:
    config = make_config(cache__enabled=True, cache__tools={"lookup": {"ttl_seconds": 30}}, **dotted).cache
    return CacheStage(ResponseCache(config, store_class(config), "upstream", catalog))


async def run(cache: CacheStage, upstream: Upstream, request_id: Any = 1) -> tuple[CallContext, dict[str, Any]]:
    """One call as the transport runs it: chain, then the result hooks on the final response, then done."""
    ctx = make_ctx(target="lookup", arguments={"key": "k"}, request_id=request_id)
    reply = await cache(ctx, upstream)
    message = reply.parsed_body()
    assert message is not None
    message, _ = await reply.apply_hooks(message)
    await reply.finish()
    return ctx, message


async def test_a_hit_answers_with_the_current_id_and_records_it() -> None:
    cache, upstream = stage(), Upstream()
    first_ctx, first = await run(cache, upstream, request_id=1)
    hit_ctx, hit = await run(cache, upstream, request_id="second")
    assert upstream.calls == 1
    assert hit == {"jsonrpc": "2.0", "id": "second", "result": first["result"]}
    assert (first_ctx.record.cache_status, hit_ctx.record.cache_status) == ("stored", "hit")
    assert hit_ctx.record.outcome == "cached"


async def test_is_error_results_are_not_stored() -> None:
    cache, upstream = stage(), Upstream({"content": [], "isError": True})
    await run(cache, upstream)
    ctx, _ = await run(cache, upstream)
    assert upstream.calls == 2 and ctx.record.cache_status == "miss"


async def test_oversized_results_are_not_stored() -> None:
    cache, upstream = stage(cache__max_entry_bytes=64), Upstream({"content": [{"type": "text", "text": "x" * 64}]})
    await run(cache, upstream)
    ctx, _ = await run(cache, upstream)
    assert upstream.calls == 2 and ctx.record.cache_status == "miss"


async def test_an_unavailable_store_is_bypassed_and_counted() -> None:
    cache, upstream = stage(DeadStore), Upstream()
    ctx, message = await run(cache, upstream)
    assert message["result"] == {"n": 1}
    assert ctx.record.cache_status == "bypass" and cache.cache.stats()["store_errors"] == 1


async def events(*messages: dict[str, Any]) -> AsyncIterator[SseEvent]:
    for message in messages:
        yield SseEvent(data=orjson.dumps(message).decode())


async def test_change_notifications_on_any_stream_invalidate() -> None:
    catalog = Catalog()
    cache, upstream = stage(catalog=catalog), Upstream()
    await run(cache, upstream)
    stream_ctx = make_ctx(target=None, request_id=None, kind=mcp.Kind.STREAM, method=None, message={})

    async def legacy_get_stream(ctx: CallContext) -> Reply:
        return Reply(events=events({"jsonrpc": "2.0", "method": "notifications/progress", "params": {}},
                                   {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}))

    reply = await cache(stream_ctx, legacy_get_stream)
    assert reply.events is not None
    async for event in reply.events:
        await reply.notify_observers(event)
    # the generations moved; the catalog drops its own view in the terminal (tests/unit/test_catalog.py)
    assert cache.cache.stats()["invalidations"] == 1
    _, message = await run(cache, upstream)
    assert upstream.calls == 2 and message["result"] == {"n": 2}
