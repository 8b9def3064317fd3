"""The ResponseCache the stage and the admin app share: rules, lookups, stores, invalidation, purge and counts."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest

from proxy.cache.controller import ResponseCache
from proxy.cache.store import MemoryStore, StoreUnavailableError
from proxy.catalog import ToolInfo
from proxy.context import CallContext, Principal
from tests.kit import make_config, make_ctx


class Catalog:
    """The trusted tools/list view, as the controller asks it."""

    def __init__(self, *tools: dict[str, Any]) -> None:
        self.tools = {tool["name"]: ToolInfo.from_definition(tool) for tool in tools}
        self.asked: list[str] = []

    async def get(self, name: str) -> ToolInfo | None:
        self.asked.append(name)
        return self.tools.get(name)


class DeadStore(MemoryStore):
    async def fetch(self, keys: Sequence[str], generations: Sequence[str]) -> Any:
        raise StoreUnavailableError("down")

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        raise StoreUnavailableError("down")

    async def bump(self, generation: str) -> None:
        raise StoreUnavailableError("down", fresh=False)


def cache(store: type[MemoryStore] = MemoryStore, catalog: Any = None, **dotted: Any) -> ResponseCache:
    settings = {"cache__enabled": True, "cache__tools": {"lookup": {"ttl_seconds": 30},
                                                         "weather": {"ttl_seconds": 30, "scope": "public"}},
                **dotted}
    config = make_config(**settings).cache
    return ResponseCache(config, store(config), "upstream", catalog)


def call(tool: str = "lookup", subject: str = "alice", arguments: dict[str, Any] | None = None,
         **changes: Any) -> CallContext:
    principal = Principal(subject, issuer="https://idp")
    return make_ctx(target=tool, arguments=arguments or {"q": 1}, principal=principal, **changes)


def answer(result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "result": result}


async def stored(responses: ResponseCache, ctx: CallContext, result: dict[str, Any]) -> tuple[str, bytes] | None:
    rule = await responses.rule_for(ctx)
    assert rule is not None
    plan = responses.plan_for(ctx, rule)
    _, tokens = await responses.lookup(plan)
    return await responses.store_result(ctx, plan, tokens, answer(result), 200)


async def looked_up(responses: ResponseCache, ctx: CallContext) -> bytes | None:
    rule = await responses.rule_for(ctx)
    assert rule is not None
    result, _ = await responses.lookup(responses.plan_for(ctx, rule))
    return result


def test_disabled_config_builds_nothing() -> None:
    config = make_config().cache
    assert ResponseCache.from_config(config, time.monotonic, "u", None) is None
    enabled = make_config(cache__enabled=True).cache
    built = ResponseCache.from_config(enabled, time.monotonic, "u", None)
    assert built is not None and isinstance(built.store, MemoryStore)


async def test_a_stored_result_is_found_for_the_same_caller_only() -> None:
    responses = cache()
    ctx = call()
    shared = await stored(responses, ctx, {"content": [], "n": 1})
    assert shared is not None and shared[1] == b'{"content":[],"n":1}'
    assert ctx.record.cache_status == "stored"
    assert await looked_up(responses, call()) == b'{"content":[],"n":1}'
    assert await looked_up(responses, call(subject="bob")) is None  # private by default
    assert await looked_up(responses, call(arguments={"q": 2})) is None


async def test_a_public_rule_shares_the_result_between_callers() -> None:
    responses = cache()
    await stored(responses, call("weather"), {"t": 20})
    assert await looked_up(responses, call("weather", subject="bob")) == b'{"t":20}'


async def test_the_upstream_can_keep_a_public_rule_private() -> None:
    responses = cache()
    await stored(responses, call("weather"), {"t": 20, "cacheScope": "private"})
    assert await looked_up(responses, call("weather", subject="bob")) is None
    assert await looked_up(responses, call("weather")) is not None


@pytest.mark.parametrize("result", [{"isError": True, "content": []}, {"resultType": "input_required"}])
async def test_errors_and_retries_are_never_stored(result: dict[str, Any]) -> None:
    responses = cache()
    ctx = call()
    assert await stored(responses, ctx, result) is None
    assert ctx.record.cache_status is None and responses.counts["stored"] == 0


async def test_non_200_error_messages_and_oversized_results_are_not_stored() -> None:
    responses = cache(cache__max_entry_bytes=10)
    ctx = call()
    rule = await responses.rule_for(ctx)
    assert rule is not None
    plan = responses.plan_for(ctx, rule)
    assert await responses.store_result(ctx, plan, [], answer({"a": 1}), 500) is None
    error = {"jsonrpc": "2.0", "id": 1, "error": {"code": 1, "message": "x"}}
    assert await responses.store_result(ctx, plan, [], error, 200) is None
    assert await responses.store_result(ctx, plan, [], answer({"long": "x" * 20}), 200) is None
    assert await responses.store_result(ctx, plan, [], answer({"a": 1}), 200) is not None


async def test_purging_a_tool_leaves_the_others() -> None:
    responses = cache()
    await stored(responses, call("lookup"), {"n": 1})
    await stored(responses, call("weather"), {"t": 1})
    assert await responses.purge("lookup") == (True, "tool:lookup")
    assert await looked_up(responses, call("lookup")) is None
    assert await looked_up(responses, call("weather")) == b'{"t":1}'
    assert await responses.purge() == (True, "all")
    assert await looked_up(responses, call("weather")) is None
    assert responses.counts["invalidations"] == 2


async def test_a_result_stored_under_stale_tokens_is_stale() -> None:
    responses = cache()
    ctx = call()
    rule = await responses.rule_for(ctx)
    assert rule is not None
    plan = responses.plan_for(ctx, rule)
    _, tokens = await responses.lookup(plan)
    await responses.invalidate("tool:lookup")  # the tool changed while the call was upstream
    await responses.store_result(ctx, plan, tokens, answer({"old": True}), 200)
    assert await looked_up(responses, call()) is None


async def test_a_failing_store_is_counted_and_the_result_still_shared() -> None:
    responses = cache(DeadStore)
    ctx = call()
    rule = await responses.rule_for(ctx)
    assert rule is not None
    plan = responses.plan_for(ctx, rule)
    with pytest.raises(StoreUnavailableError):
        await responses.lookup(plan)
    shared = await responses.store_result(ctx, plan, [], answer({"n": 1}), 200)
    assert shared == (plan.private_key, b'{"n":1}') and ctx.record.cache_status is None
    assert await responses.purge("lookup") == (False, "tool:lookup")
    assert responses.counts["store_errors"] == 2 and responses.counts["invalidations"] == 0


async def test_stats_report_backend_usage_and_counts() -> None:
    responses = cache()
    await stored(responses, call(), {"n": 1})
    stats = responses.stats()
    assert stats["backend"] == "memory" and stats["in_flight"] == 0
    assert stats["entries"] == 1 and stats["bytes"] > 0 and stats["stored"] == 1
    responses.mark(call(), "hit")
    assert responses.stats()["hit"] == 1


async def test_unconfigured_tools_are_not_cached_without_the_read_only_option() -> None:
    catalog = Catalog({"name": "peek", "annotations": {"readOnlyHint": True}})
    assert await cache(catalog=catalog).rule_for(call("peek")) is None
    assert catalog.asked == []  # the catalogue is not even asked


async def test_read_only_tools_by_the_trusted_catalogue() -> None:
    catalog = Catalog({"name": "peek", "annotations": {"readOnlyHint": True}},
                      {"name": "poke", "annotations": {"readOnlyHint": "yes"}}, {"name": "plain"})
    responses = cache(catalog=catalog, cache__cache_read_only_tools=True, cache__default_ttl_seconds=7)
    rule = await responses.rule_for(call("peek"))
    assert rule is not None and (rule.scope, rule.ttl) == ("private", 7)
    assert await responses.rule_for(call("poke")) is None  # only a literal true counts
    assert await responses.rule_for(call("plain")) is None
    assert await responses.rule_for(call("missing")) is None
    assert await responses.rule_for(call("peek", obligations={"cache": "none"})) is None  # policy decides
    assert await responses.rule_for(call("peek", request_id=None)) is None
    assert catalog.asked == ["peek", "poke", "plain", "missing"]


async def test_configured_tools_win_over_the_catalogue() -> None:
    catalog = Catalog({"name": "lookup", "annotations": {"readOnlyHint": True}})
    responses = cache(catalog=catalog, cache__cache_read_only_tools=True)
    rule = await responses.rule_for(call("lookup"))
    assert rule is not None and rule.ttl == 30 and catalog.asked == []


async def test_close_empties_the_memory_store() -> None:
    responses = cache()
    await stored(responses, call(), {"n": 1})
    await responses.close()
    assert responses.stats()["entries"] == 0
