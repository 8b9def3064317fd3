"""Response caching through the running sidecar, with the SDK client and the demo upstream's counting tools."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from mcp import Client, MCPError

import proxy.runtime.app
from proxy.context import CallContext, Principal
from proxy.pipeline import Handler
from proxy.reply import Reply
from proxy.stages import build_stages
from tests.kit import make_config, run_sidecar, wait_until

MODES = ["legacy", "2026-07-28"]


class TestIdentity:
    """Stands in for auth and policy (not merged yet): the principal, its claims and a cache obligation come from
    params._meta (which the cache key ignores), the policy revision from a variable the test can change."""

    name = "test_identity"
    policy_revision = "rev-1"

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Reply:
        meta = ctx.params.get("_meta") or {}
        subject = meta.get("test/principal")
        if subject:
            principal = Principal(subject=subject, issuer="https://issuer.test", claims=meta.get("test/claims", {}))
            ctx = ctx.evolve(principal=principal)
        if "test/cache" in meta:
            ctx = ctx.evolve(obligations={"cache": meta["test/cache"]})
        ctx.record.policy_revision = self.policy_revision
        return await call_next(ctx)


@pytest.fixture
def identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestIdentity]:
    stage = TestIdentity()
    monkeypatch.setattr(proxy.runtime.app, "build_stages", lambda config, deps: [stage, *build_stages(config, deps)])
    yield stage


def cache_config(upstream: str, **dotted: Any):
    return make_config(upstream, cache__enabled=True, **dotted)


async def lookup(client: Client, key: str, **meta: Any) -> int:
    """The upstream's invocation count as the lookup result reports it (a cached result repeats an old count)."""
    extra = {f"test/{name}": value for name, value in meta.items()}
    result = await client.call_tool("lookup", {"key": key}, meta=extra or None)
    assert not result.is_error
    return result.structured_content["invocations"]


async def upstream_calls(upstream: str, tool: str) -> int:
    async with Client(upstream, cache=None) as client:
        result = await client.call_tool("invocations", {})
    return result.structured_content.get(tool, 0)


async def admin(sidecar: Any, method: str, path: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.request(method, sidecar.admin_url + path) as response:
        return response.status, await response.json()


@pytest.mark.parametrize("mode", MODES)
async def test_a_hit_does_not_reach_the_upstream(upstream_url: str, mode: str, tmp_path: Any) -> None:
    audit_path = tmp_path / "audit.jsonl"
    config = cache_config(upstream_url, cache__tools={"lookup": {"ttl_seconds": 30}},
                          audit__enabled=True, audit__sink="file", audit__path=str(audit_path))
    key = uuid.uuid4().hex
    async with run_sidecar(config) as sidecar, Client(sidecar.url, mode=mode, cache=None) as client:
        first = await lookup(client, key)
        before = await upstream_calls(upstream_url, "lookup")
        assert await lookup(client, key) == first
        assert await lookup(client, key) == first
        assert await upstream_calls(upstream_url, "lookup") == before
        assert await lookup(client, key + "-other") > first  # other arguments, other entry
        _, stats = await admin(sidecar, "GET", "/cache/stats")
    assert stats["hit"] == 2 and stats["stored"] == 2
    events = [orjson.loads(line) for line in audit_path.read_bytes().splitlines()]
    lookups = [(event["cache"], event["outcome"]) for event in events if event["target"] == "lookup"]
    assert lookups == [("stored", "allowed"), ("hit", "cached"), ("hit", "cached"), ("stored", "allowed")]


async def test_private_entries_stay_with_their_caller_public_ones_are_shared(
        stateless_upstream: str, identity: TestIdentity) -> None:
    config = cache_config(stateless_upstream, cache__tools={"lookup": {"ttl_seconds": 30, "key_claims": ["tenant"]}})
    private, public = uuid.uuid4().hex, uuid.uuid4().hex
    shared = {"scope": "public", "ttl_seconds": 30}
    async with run_sidecar(config) as sidecar, Client(sidecar.url, cache=None) as client:
        alice = await lookup(client, private, principal="alice", claims={"tenant": "a"})
        assert await lookup(client, private, principal="alice", claims={"tenant": "a"}) == alice
        bob = await lookup(client, private, principal="bob", claims={"tenant": "a"})
        assert bob > alice  # bob never sees alice's private entry
        assert await lookup(client, private, principal="alice", claims={"tenant": "b"}) > bob  # a claim that matters
        assert await lookup(client, private, principal="bob", claims={"tenant": "a"}) == bob

        first = await lookup(client, public, principal="alice", cache=shared)
        assert await lookup(client, public, principal="bob", cache=shared) == first
        assert await lookup(client, public, principal="carol", cache={"scope": "none"}) > first


async def test_fifty_concurrent_identical_calls_reach_the_upstream_once(stateless_upstream: str) -> None:
    config = cache_config(stateless_upstream, cache__tools={"slow_count": {"ttl_seconds": 30}})
    steps = 7 + uuid.uuid4().int % 1000  # arguments no earlier run has cached
    before = await upstream_calls(stateless_upstream, "slow_count")
    async with run_sidecar(config) as sidecar, Client(sidecar.url, cache=None) as client:
        results = await asyncio.gather(*(client.call_tool("slow_count", {"steps": 1, "delay_ms": 300 + steps})
                                         for _ in range(50)))
        _, stats = await admin(sidecar, "GET", "/cache/stats")
    assert {result.content[0].text for result in results} == {"counted to 1"}
    assert await upstream_calls(stateless_upstream, "slow_count") == before + 1
    assert stats["hit"] == 49 and stats["in_flight"] == 0  # one leader went upstream, 49 shared its result


async def test_list_changed_on_a_subscriptions_listen_stream_invalidates(stateful_upstream: str) -> None:
    config = cache_config(stateful_upstream, cache__tools={"lookup": {"ttl_seconds": 30}})
    key = uuid.uuid4().hex
    async with run_sidecar(config) as sidecar, Client(sidecar.url, mode="2026-07-28", cache=None) as client:
        first = await lookup(client, key)
        assert await lookup(client, key) == first
        async with client.listen(tools_list_changed=True) as subscription:
            assert (await client.call_tool("change_tools", {})).content[0].text == "announced"
            async with asyncio.timeout(5):
                event = await anext(aiter(subscription))  # relayed only after the sidecar invalidated
        assert type(event).__name__ == "ToolsListChanged"
        second = await lookup(client, key)
        assert second > first
        assert await lookup(client, key) == second
        _, stats = await admin(sidecar, "GET", "/cache/stats")
    assert stats["invalidations"] == 1


async def test_list_changed_on_the_legacy_get_stream_invalidates(stateful_upstream: str) -> None:
    config = cache_config(stateful_upstream, cache__tools={"lookup": {"ttl_seconds": 30}})
    key = uuid.uuid4().hex
    async with run_sidecar(config) as sidecar, Client(sidecar.url, mode="legacy", cache=None) as client:
        first = await lookup(client, key)
        assert await lookup(client, key) == first
        cache = sidecar.app.deps.cache
        assert cache is not None
        assert (await client.call_tool("change_tools", {})).content[0].text == "announced"
        await wait_until(lambda: cache.counts["invalidations"] == 1)  # the GET stream is not ordered with the call
        second = await lookup(client, key)
        assert second > first
        assert await lookup(client, key) == second


async def test_a_policy_revision_change_invalidates(stateless_upstream: str, identity: TestIdentity) -> None:
    config = cache_config(stateless_upstream, cache__tools={"lookup": {"ttl_seconds": 30}})
    key = uuid.uuid4().hex
    async with run_sidecar(config) as sidecar, Client(sidecar.url, cache=None) as client:
        first = await lookup(client, key)
        assert await lookup(client, key) == first
        identity.policy_revision = "rev-2"
        second = await lookup(client, key)
        assert second > first
        assert await lookup(client, key) == second


async def test_admin_purge_by_tool_and_all(stateless_upstream: str) -> None:
    config = cache_config(stateless_upstream, cache__tools={"lookup": {"ttl_seconds": 30}})
    key = uuid.uuid4().hex
    async with run_sidecar(config) as sidecar, Client(sidecar.url, cache=None) as client:
        first = await lookup(client, key)
        assert await lookup(client, key) == first
        assert await admin(sidecar, "POST", "/cache/purge?tool=echo") == (200, {"purged": "tool:echo"})
        assert await lookup(client, key) == first
        assert await admin(sidecar, "POST", "/cache/purge?tool=lookup") == (200, {"purged": "tool:lookup"})
        second = await lookup(client, key)
        assert second > first and await lookup(client, key) == second
        assert await admin(sidecar, "POST", "/cache/purge") == (200, {"purged": "all"})
        assert await lookup(client, key) > second


@pytest.mark.parametrize("mode", MODES)
async def test_errors_and_is_error_results_are_never_cached(stateless_upstream: str, mode: str) -> None:
    config = cache_config(stateless_upstream, cache__tools={"fail": {"ttl_seconds": 30, "scope": "public"}},
                          cache__methods={"resources/read": {"ttl_seconds": 30, "scope": "public"}})
    before = await upstream_calls(stateless_upstream, "fail")
    async with run_sidecar(config) as sidecar, Client(sidecar.url, mode=mode, cache=None) as client:
        for _ in range(2):
            assert (await client.call_tool("fail", {"message": "nope"})).is_error
        for _ in range(2):
            with pytest.raises(MCPError):
                await client.read_resource("demo://no-such-resource")
        _, stats = await admin(sidecar, "GET", "/cache/stats")
    assert await upstream_calls(stateless_upstream, "fail") == before + 2
    assert stats.get("stored", 0) == 0 and stats.get("hit", 0) == 0


@pytest.mark.parametrize(("mode", "cached"), [("legacy", True), ("2026-07-28", False)])
async def test_resources_read_follows_the_upstreams_hints_else_the_configured_ttl(
        stateless_upstream: str, mode: str, cached: bool) -> None:
    """A legacy upstream gives no hints: the configured TTL applies. The demo's 2026-07-28 answers say
    ttlMs 0 (do not cache), which beats the configured fallback."""
    config = cache_config(stateless_upstream, cache__methods={"resources/read": {"ttl_seconds": 30}})
    async with run_sidecar(config) as sidecar, Client(sidecar.url, mode=mode, cache=None) as client:
        texts = [(await client.read_resource("demo://readme")).contents[0].text for _ in range(3)]
        _, stats = await admin(sidecar, "GET", "/cache/stats")
    assert set(texts) == {"This is the mcp-sidecar demo server."}
    assert (stats.get("stored", 0), stats.get("hit", 0)) == ((1, 2) if cached else (0, 0))


async def test_read_only_tools_by_trusted_annotations(stateless_upstream: str) -> None:
    config = cache_config(stateless_upstream, cache__cache_read_only_tools=True)
    key = uuid.uuid4().hex
    deletes = await upstream_calls(stateless_upstream, "delete_file")
    async with run_sidecar(config) as sidecar, Client(sidecar.url, cache=None) as client:
        first = await lookup(client, key)  # readOnlyHint: true in the sidecar's own tools/list
        assert await lookup(client, key) == first
        for _ in range(2):  # destructive: never cached
            assert (await client.call_tool("delete_file", {"path": "/tmp/x"})).content[0].text == "deleted /tmp/x"
    assert await upstream_calls(stateless_upstream, "delete_file") == deletes + 2
