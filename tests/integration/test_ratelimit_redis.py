"""The Redis store against a real Redis: atomic all-or-none takes, server-clock refill, failure modes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from proxy.limits.buckets import BucketSpec, StoreUnavailableError
from proxy.limits.redis_buckets import RedisBuckets
from tests.kit import wait_until
from tests.redis_kit import SHARED_URL, needs_redis_server, needs_shared_redis, private_redis, unique_prefix


@pytest.fixture
async def shared_store() -> AsyncIterator[RedisBuckets]:
    store = RedisBuckets(SHARED_URL, prefix=unique_prefix("store"), timeout=1.0, fail_open=False)
    await store.start()
    yield store
    await store.close()


@needs_shared_redis
async def test_capacity_n_lets_exactly_n_of_m_concurrent_calls_through(shared_store: RedisBuckets) -> None:
    spec = BucketSpec("burst", capacity=10, rate=0.01)
    results = await asyncio.gather(*(shared_store.take([(spec, "burst")], 1) for _ in range(50)))
    assert sum(result.allowed for result in results) == 10
    refused = [result for result in results if not result.allowed]
    # One token takes 100 s at this rate; the server clock moves on a little while the 50 calls run.
    assert all(99 < result.retry_after <= 100 for result in refused)


@needs_shared_redis
async def test_all_buckets_or_none(shared_store: RedisBuckets) -> None:
    wide, narrow = BucketSpec("wide", 10, 0.01), BucketSpec("narrow", 2, 0.01)
    checks = [(wide, "wide"), (narrow, "narrow:alice")]
    assert [(await shared_store.take(checks, 1)).allowed for _ in range(4)] == [True, True, False, False]
    decision = await shared_store.take([(wide, "wide")], 1)
    assert decision.states[0].remaining == 7  # the two refused calls took nothing from `wide`


@needs_shared_redis
async def test_refill_restores_exactly_the_tokens_the_server_clock_allows(shared_store: RedisBuckets) -> None:
    spec = BucketSpec("refill", capacity=5, rate=10.0)  # one token per 100 ms
    checks = [(spec, "refill")]
    for _ in range(5):
        assert (await shared_store.take(checks, 1)).allowed
    refused = await shared_store.take(checks, 1)
    assert not refused.allowed and 0 < refused.retry_after <= 0.1
    key = shared_store.prefix + "refill"
    async with redis.Redis.from_url(SHARED_URL) as raw:
        await asyncio.sleep(0.25)  # bounded: about 2.5 tokens come back
        tokens_before, ts_before = (float(value) for value in await raw.hmget(key, "tokens", "ts"))
        taken = await shared_store.take(checks, 1)
        ts_after = float(await raw.hget(key, "ts"))
        ttl_ms = await raw.pttl(key)
    # Exactly what the server clock says elapsed between the two stored timestamps, minus the one token taken.
    expected = min(5.0, tokens_before + (ts_after - ts_before) * 10.0 / 1000) - 1
    assert taken.allowed and taken.states[0].remaining == int(expected)
    assert 2 <= expected + 1 < 5
    # The key expires once the bucket would be full again (plus one second).
    assert 0 < ttl_ms <= taken.states[0].reset_after * 1000 + 1000


@needs_shared_redis
async def test_waiting_retry_after_is_enough(shared_store: RedisBuckets) -> None:
    spec = BucketSpec("wait", capacity=1, rate=5.0)
    assert (await shared_store.take([(spec, "wait")], 1)).allowed
    refused = await shared_store.take([(spec, "wait")], 1)
    assert not refused.allowed
    await asyncio.sleep(refused.retry_after + 0.01)
    assert (await shared_store.take([(spec, "wait")], 1)).allowed


@needs_redis_server
@pytest.mark.parametrize("failure_mode", ["fail_open", "fail_closed"])
async def test_redis_down_follows_failure_mode_and_recovers(failure_mode: str) -> None:
    spec = BucketSpec("b", capacity=2, rate=0.01)
    checks = [(spec, "b")]
    with private_redis() as server:
        store = RedisBuckets(server.url, prefix=unique_prefix("down"), timeout=0.2,
                             fail_open=failure_mode == "fail_open", retry_seconds=0.1)
        await store.start()
        try:
            assert [(await store.take(checks, 1)).allowed for _ in range(3)] == [True, True, False]
            assert (await store.ping())[0]
            server.stop()
            started = time.monotonic()
            if failure_mode == "fail_open":
                decisions = [await store.take(checks, 1) for _ in range(3)]
                assert all(decision.allowed and decision.degraded for decision in decisions)
                assert store.passed_unchecked == 3
                assert await store.ping() == (True, "redis unreachable (ConnectionError); failing open")
            else:
                for _ in range(3):
                    with pytest.raises(StoreUnavailableError):
                        await store.take(checks, 1)
                assert (await store.ping())[0] is False
            assert store.failures >= 1
            assert time.monotonic() - started < 2  # short timeouts, no client-side retry storm
            server.start()
            # Once Redis answers again the limits apply again (a fresh Redis: full buckets).
            outcomes: list[bool] = []

            async def take_recorded() -> bool:
                try:
                    decision = await store.take(checks, 1)
                except StoreUnavailableError:
                    return False
                if not decision.degraded:
                    outcomes.append(decision.allowed)
                return len(outcomes) >= 3

            async with asyncio.timeout(5):
                while not await take_recorded():
                    await asyncio.sleep(0.05)
            assert outcomes == [True, True, False]
            assert store.down_since is None
        finally:
            await store.close()


async def test_a_store_that_was_never_reachable_fails_closed_quickly() -> None:
    store = RedisBuckets("redis://127.0.0.1:9/0", prefix=unique_prefix(), timeout=0.2, fail_open=False)
    await store.start()
    try:
        with pytest.raises(StoreUnavailableError):
            await store.take([(BucketSpec("b", 1, 1.0), "b")], 1)
        await wait_until(lambda: store.failures == 1, timeout=1)
    finally:
        await store.close()


@needs_shared_redis
async def test_retry_credits_are_shared_single_use_and_expire(shared_store: RedisBuckets) -> None:
    other_replica = RedisBuckets(SHARED_URL, prefix=shared_store.prefix, timeout=1.0, fail_open=False)
    await other_replica.start()
    try:
        assert not await shared_store.redeem_retry("~mrtr:alice")
        await shared_store.grant_retry("~mrtr:alice")
        assert await other_replica.redeem_retry("~mrtr:alice")
        assert not await shared_store.redeem_retry("~mrtr:alice")
        await shared_store.grant_retry("~mrtr:bob")
        async with redis.Redis.from_url(SHARED_URL) as raw:
            ttl_ms = await raw.pttl(shared_store.prefix + "~mrtr:bob")
        assert 290_000 < ttl_ms <= 300_000
    finally:
        await other_replica.close()
