"""Token bucket algorithm: keys, matches, the memory store on a fake clock, retry credits."""

from __future__ import annotations

import asyncio

import pytest

from proxy.limits.buckets import BucketSpec, Caller, MemoryBuckets, RetryCredits, round_trip_key


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def caller(subject: str = "alice", tool: str | None = "add", method: str = "tools/call", **claims: object) -> Caller:
    return Caller(subject=subject, claims=claims, method=method, tool=tool, session="s1", client="10.0.0.1")


def test_keys_partition_by_the_named_parts() -> None:
    spec = BucketSpec("per_user_tool", 5, 1.0, key=("subject", "tool", "claim:org.plan"))
    assert spec.key_for(caller(org={"plan": "pro"})) == "per_user_tool:alice|add|pro"
    assert spec.key_for(caller("bob", tool="echo")) == "per_user_tool:bob|echo|-"
    assert BucketSpec("global", 5, 1.0).key_for(caller()) == "global"
    # A `|` inside a value cannot forge another caller's key.
    assert spec.key_for(caller("a|b", tool="c")) != spec.key_for(caller("a", tool="b|c"))


def test_matches_select_methods_tools_and_claims() -> None:
    tools_only = BucketSpec("t", 1, 1.0, methods=frozenset({"tools/call"}))
    assert tools_only.applies(caller()) and not tools_only.applies(caller(method="tools/list", tool=None))
    one_tool = BucketSpec("d", 1, 1.0, tools=frozenset({"delete_file"}))
    assert one_tool.applies(caller(tool="delete_file")) and not one_tool.applies(caller(tool="add"))
    free = BucketSpec("free", 1, 1.0, claims={"plan": frozenset({"free"})})
    assert free.applies(caller(plan="free")) and not free.applies(caller(plan="pro")) and not free.applies(caller())
    no_plan = BucketSpec("none", 1, 1.0, claims={"plan": frozenset({"-"})})
    assert no_plan.applies(caller()) and not no_plan.applies(caller(plan="free"))


def test_capacity_n_lets_exactly_n_through_and_refill_is_exact() -> None:
    clock = FakeClock()
    store = MemoryBuckets(clock)
    spec = BucketSpec("b", capacity=3, rate=2.0)
    checks = [(spec, "b")]
    results = [store.take_now(checks, 1) for _ in range(5)]
    assert [result.allowed for result in results] == [True, True, True, False, False]
    assert [result.states[0].remaining for result in results] == [2, 1, 0, 0, 0]
    assert results[3].retry_after == pytest.approx(0.5)
    assert results[2].states[0].reset_after == pytest.approx(1.5)
    clock.now += 0.5  # exactly one token back
    assert store.take_now(checks, 1).allowed
    assert not store.take_now(checks, 1).allowed
    clock.now += 10  # never more than capacity
    assert [store.take_now(checks, 1).allowed for _ in range(4)] == [True, True, True, False]


async def test_concurrent_takes_let_exactly_capacity_through() -> None:
    store = MemoryBuckets(FakeClock())
    spec = BucketSpec("b", capacity=7, rate=1.0)
    results = await asyncio.gather(*(store.take([(spec, "b")], 1) for _ in range(40)))
    assert sum(result.allowed for result in results) == 7


def test_all_buckets_or_none() -> None:
    clock = FakeClock()
    store = MemoryBuckets(clock)
    wide, narrow = BucketSpec("wide", 10, 1.0), BucketSpec("narrow", 2, 1.0)
    checks = [(wide, "wide"), (narrow, "narrow:alice")]
    assert [store.take_now(checks, 1).allowed for _ in range(3)] == [True, True, False]
    refused = store.take_now(checks, 1)
    assert refused.deciding is not None and refused.deciding.spec.name == "narrow"
    # The refused calls took nothing from the wide bucket.
    assert store.take_now([(wide, "wide")], 1).states[0].remaining == 7


def test_cost_and_cost_above_capacity() -> None:
    store = MemoryBuckets(FakeClock())
    spec = BucketSpec("b", capacity=5, rate=1.0)
    assert store.take_now([(spec, "b")], 3).states[0].remaining == 2
    refused = store.take_now([(spec, "b")], 3)
    assert not refused.allowed and refused.retry_after == pytest.approx(1.0)
    assert not store.take_now([(spec, "c")], 6).allowed


def test_allowed_decision_reports_the_tightest_bucket() -> None:
    store = MemoryBuckets(FakeClock())
    checks = [(BucketSpec("wide", 100, 1.0), "w"), (BucketSpec("narrow", 4, 1.0), "n")]
    decision = store.take_now(checks, 1)
    assert decision.deciding is not None and decision.deciding.spec.name == "narrow"
    assert decision.retry_after == 0


def test_keys_are_bounded_full_buckets_go_first() -> None:
    clock = FakeClock()
    store = MemoryBuckets(clock, max_keys=4)
    spec = BucketSpec("b", capacity=2, rate=1.0)
    for index in range(4):
        store.take_now([(spec, f"b:{index}")], 1)
    clock.now += 5  # all four are full again: dropping them loses nothing
    store.take_now([(spec, "b:new")], 1)
    assert len(store.buckets) <= 4 and store.evicted_in_use == 0
    for index in range(10):  # now every bucket is in use: plain LRU keeps the newest
        store.take_now([(spec, f"busy:{index}")], 1)
    assert len(store.buckets) <= 4 and list(store.buckets)[-3:] == [f"busy:{index}" for index in range(7, 10)]
    assert store.evicted_in_use > 0


def test_retry_credits_are_earned_single_use_and_expire() -> None:
    clock = FakeClock()
    credits = RetryCredits(clock, ttl=60)
    key = round_trip_key(caller(), "confirm_action")
    assert key == "~mrtr:alice|s1|10.0.0.1|tools/call|confirm_action"
    assert not credits.redeem(key)  # no input_required seen: no free retry
    credits.grant(key)
    assert credits.redeem(key) and not credits.redeem(key)
    credits.grant(key)
    clock.now += 61
    assert not credits.redeem(key)


def test_claims_are_named_as_everywhere_else_exact_name_or_dotted_path() -> None:
    """Seam with auth.roles_claim and cache key_claims: a namespaced claim (dots in its name) can key and match."""
    namespaced = "https://acme.example/plan"
    pro = Caller("alice", {namespaced: "pro", "org": {"id": "o1"}}, "tools/call", "add", None, None)
    spec = BucketSpec("b", 1, 1.0, key=(f"claim:{namespaced}", "claim:org.id"),
                      claims={namespaced: frozenset({"pro"})})
    assert spec.applies(pro) and spec.key_for(pro) == "b:pro|o1"
    assert not spec.applies(Caller("bob", {namespaced: "free"}, "tools/call", "add", None, None))
