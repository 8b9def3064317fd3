"""The bounded memory store and its generations (proxy/cache/store.py), without sockets."""

from __future__ import annotations

import pytest

from proxy.cache.store import BoundedMemoryCache, MemoryStore, RedisStore, StoreUnavailableError
from proxy.config import ConfigError
from tests.kit import make_config


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_memory_cache_evicts_least_recently_used_beyond_entry_count() -> None:
    memory = BoundedMemoryCache(max_entries=2, max_bytes=1000)
    await memory.set("a", b"1")
    await memory.set("b", b"2")
    assert await memory.get("a") == b"1"  # a is now the most recently used
    await memory.set("c", b"3")
    assert await memory.multi_get(["a", "b", "c"]) == [b"1", None, b"3"]
    assert len(memory) == 2


async def test_memory_cache_keeps_within_its_byte_budget() -> None:
    memory = BoundedMemoryCache(max_entries=100, max_bytes=10)
    await memory.set("a", b"12345")
    await memory.set("b", b"12345")
    await memory.set("c", b"123")
    assert await memory.get("a") is None
    assert memory.used_bytes == 8
    await memory.set("b", b"1")  # replacing an entry releases its old size
    assert memory.used_bytes == 4
    await memory.delete("b")
    assert memory.used_bytes == 3


async def test_memory_cache_expires_on_read() -> None:
    clock = FakeClock()
    memory = BoundedMemoryCache(max_entries=10, max_bytes=100, clock=clock)
    await memory.set("a", b"1", ttl=5)
    clock.now += 4.9
    assert await memory.get("a") == b"1"
    clock.now += 0.2
    assert await memory.get("a") is None
    assert memory.used_bytes == 0


async def test_memory_store_generations() -> None:
    store = MemoryStore(make_config(cache__enabled=True).cache)
    await store.put("k", b"v", ttl=10)
    values, tokens = await store.fetch(["k", "missing"], ["all", "tools"])
    assert values == [b"v", None] and tokens == [None, None]
    await store.bump("tools")
    _, moved = await store.fetch([], ["all", "tools"])
    assert moved[0] is None and moved[1] is not None
    await store.bump("tools")
    _, again = await store.fetch([], ["all", "tools"])
    assert again[1] != moved[1]


async def test_redis_store_unreachable_raises_store_unavailable_then_cools_down() -> None:
    clock = FakeClock()
    config = make_config(cache__enabled=True, cache__backend="redis", cache__redis_url="redis://127.0.0.1:9/0",
                         cache__op_timeout_seconds=0.5).cache
    store = RedisStore(config, clock)
    with pytest.raises(StoreUnavailableError) as first:
        await store.fetch(["k"], ["all"])
    assert first.value.fresh
    with pytest.raises(StoreUnavailableError) as second:
        await store.put("k", b"v", 5)
    assert not second.value.fresh  # cooling down: not even tried
    await store.close()


@pytest.mark.parametrize(("dotted", "problem"), [
    ({"cache__backend": "redis"}, "redis_url"),
    ({"cache__methods": {"tools/call": {"ttl_seconds": 5}}}, "cannot cache"),
    ({"cache__max_entry_bytes": 10, "cache__max_bytes": 5}, "max_entry_bytes"),
    ({"cache__tools": {"lookup": {"ttl_seconds": 0}}}, "cache.tools.lookup.ttl_seconds"),
    ({"cache__tools": {"lookup": {"ttl_seconds": 5, "scope": "everyone"}}}, "scope"),
    ({"cache__namespace": "a b"}, "namespace"),
])
def test_bad_cache_settings_fail_at_load(dotted: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as error:
        make_config(cache__enabled=True, **dotted)
    assert problem in str(error.value)
