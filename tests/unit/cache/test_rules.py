"""Cache keys, scope rules, entry terms and single flight (proxy/cache/rules.py), without sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from proxy.cache import rules as cache
from proxy.cache.rules import PRIVATE, PUBLIC, Rule, SingleFlight
from proxy.context import Principal
from tests.kit import make_config, make_ctx

ALICE = Principal(subject="alice", issuer="https://a.test", claims={"tenant": "t1", "email": "a@x"})
BOB = Principal(subject="bob", issuer="https://a.test", claims={"tenant": "t1"})
PUBLIC_RULE = Rule(scope=PUBLIC, ttl=30)
PRIVATE_RULE = Rule(scope=PRIVATE, ttl=30, key_claims=("tenant",))


def ctx_for(arguments: dict[str, Any] | None = None, principal: Principal = ALICE, meta: dict[str, Any] | None = None,
            revision: str | None = "r1", method: str = "tools/call", **changes: Any):
    ctx = make_ctx(method, arguments=arguments if arguments is not None else {"key": "k"}, principal=principal,
                   **changes)
    if meta is not None:
        ctx = ctx.with_meta(**meta)
    ctx.record.policy_revision = revision
    return ctx


def plan(rule: Rule = PRIVATE_RULE, **kwargs: Any) -> cache.Plan:
    return cache.make_plan(ctx_for(**kwargs), rule, "upstream")


def test_key_ignores_meta_and_argument_order() -> None:
    a = plan(arguments={"a": 1, "b": {"y": 2, "x": 1}}, meta={"progressToken": 7, "traceparent": "00-1"})
    b = plan(arguments={"b": {"x": 1, "y": 2}, "a": 1})
    assert a.private_key == b.private_key


@pytest.mark.parametrize("change", [
    {"arguments": {"key": "other"}},
    {"revision": "r2"},
    {"version": "2025-11-25"},
    {"principal": BOB},
    {"principal": Principal(subject="alice", issuer="https://other.test")},
    {"principal": Principal(subject="alice", issuer="https://a.test", claims={"tenant": "t2"})},
    {"target": "echo"},
])
def test_private_key_changes_with_everything_the_result_depends_on(change: dict[str, Any]) -> None:
    assert plan(**change).private_key != plan().private_key


def test_claims_outside_key_claims_do_not_split_entries() -> None:
    same = Principal(subject="alice", issuer="https://a.test", claims={"tenant": "t1", "email": "other@x"})
    assert plan(principal=same).private_key == plan().private_key


def test_public_key_is_shared_across_callers_and_private_plans_have_none() -> None:
    assert plan(PUBLIC_RULE).public_key == plan(PUBLIC_RULE, principal=BOB).public_key
    assert plan(PUBLIC_RULE).private_key != plan(PUBLIC_RULE, principal=BOB).private_key
    assert plan(PRIVATE_RULE).public_key is None
    assert plan(PRIVATE_RULE).candidates == [plan(PRIVATE_RULE).private_key]
    assert plan(PRIVATE_RULE).flight_key == plan(PRIVATE_RULE).private_key
    assert plan(PUBLIC_RULE).flight_key == plan(PUBLIC_RULE).public_key
    hinted = plan(Rule(None, None, honour_hints=True), method="tools/list", target=None, arguments={})
    assert hinted.public_key is not None and hinted.flight_key == hinted.private_key  # scope unknown: no waiting


def test_unauthenticated_private_entries_are_per_legacy_session() -> None:
    anonymous = Principal(subject="anonymous", authenticated=False)
    one = plan(principal=anonymous, session_id="s1")
    assert one.private_key != plan(principal=anonymous, session_id="s2").private_key
    assert plan(principal=ALICE, session_id="s1").private_key == plan(principal=ALICE, session_id="s2").private_key


def test_upstream_name_is_in_the_key() -> None:
    ctx = ctx_for()
    assert cache.make_plan(ctx, PUBLIC_RULE, "a").public_key != cache.make_plan(ctx, PUBLIC_RULE, "b").public_key


def complete(result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "result": result}


@pytest.mark.parametrize("response", [
    {"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "bad"}},
    complete({"content": [], "isError": True}),
    complete({"resultType": "input_required", "inputRequests": {}}),
    {"jsonrpc": "2.0", "id": 1, "result": "not an object"},
])
def test_errors_is_error_and_input_required_are_never_stored(response: dict[str, Any]) -> None:
    assert cache.entry_terms(PUBLIC_RULE, response, 3600) is None


def test_upstream_private_scope_beats_a_public_rule() -> None:
    assert cache.entry_terms(PUBLIC_RULE, complete({"cacheScope": "private"}), 3600) == (PRIVATE, 30)
    assert cache.entry_terms(PUBLIC_RULE, complete({"content": []}), 3600) == (PUBLIC, 30)


@pytest.mark.parametrize(("rule", "result", "terms"), [
    (Rule(None, None, honour_hints=True), {"ttlMs": 5000, "cacheScope": "public"}, (PUBLIC, 5.0)),
    (Rule(None, None, honour_hints=True), {"ttlMs": 5000}, (PRIVATE, 5.0)),  # no scope hint: private
    (Rule(None, None, honour_hints=True), {"ttlMs": 0, "cacheScope": "public"}, None),  # 0 = do not cache
    (Rule(None, None, honour_hints=True), {"tools": []}, None),  # no hint, no configured ttl
    (Rule(None, 20, honour_hints=True), {"tools": []}, (PRIVATE, 20)),  # configured fallback
    (Rule(None, 20, honour_hints=True), {"ttlMs": 0}, None),  # the upstream's 0 beats the fallback
    (Rule(PRIVATE, 20, honour_hints=True), {"ttlMs": 9000, "cacheScope": "public"}, (PRIVATE, 9.0)),
    (Rule(None, None, honour_hints=True), {"ttlMs": 10_000_000, "cacheScope": "public"}, (PUBLIC, 60)),  # capped
])
def test_hinted_methods_follow_ttl_ms_and_cache_scope(rule: Rule, result: dict[str, Any], terms: Any) -> None:
    assert cache.entry_terms(rule, complete(result), 60) == terms


def test_request_rule_sources() -> None:
    config = make_config(cache__enabled=True, cache__tools={"lookup": {"ttl_seconds": 9, "scope": "public"}},
                         cache__methods={"prompts/list": {"scope": "none"}}).cache
    assert cache.request_rule(make_ctx(target="lookup"), config) == Rule(PUBLIC, 9.0)
    assert cache.request_rule(make_ctx(target="delete_file"), config) is None
    obligation = {"cache": {"scope": "private", "ttl_seconds": 5, "key_claims": ["tenant"]}}
    assert cache.request_rule(make_ctx(target="delete_file", obligations=obligation), config) == \
        Rule(PRIVATE, 5, ("tenant",))
    assert cache.request_rule(make_ctx(target="lookup", obligations={"cache": {"scope": "none"}}), config) is None
    assert cache.request_rule(make_ctx("tools/list", target=None), config) == Rule(None, None, honour_hints=True)
    assert cache.request_rule(make_ctx("prompts/list", target=None), config) is None
    assert cache.request_rule(make_ctx("prompts/get", target="greet"), config) is None
    private = {"cache": {"scope": "private"}}
    assert cache.request_rule(make_ctx("tools/list", target=None, obligations=private), config) == \
        Rule(PRIVATE, None, honour_hints=True)
    assert cache.request_rule(make_ctx("tools/list", target=None, obligations={"cache": {"scope": "none"}}),
                              config) is None


@pytest.mark.parametrize("retry", [{"inputResponses": {"x": {}}}, {"requestState": "opaque"}])
def test_multi_round_trip_retries_are_never_cached(retry: dict[str, Any]) -> None:
    config = make_config(cache__enabled=True, cache__tools={"lookup": {"ttl_seconds": 9}}).cache
    ctx = make_ctx(target="lookup")
    ctx = ctx.evolve(message={**ctx.message, "params": {**ctx.params, **retry}})
    assert cache.request_rule(ctx, config) is None


@pytest.mark.parametrize("obligation", [
    {"scope": "everyone"}, {"ttl_seconds": -1}, {"ttl_seconds": "10"}, {"key_claims": "tenant"}, "public", None,
])
def test_malformed_obligations_disable_caching(obligation: Any) -> None:
    assert cache.obligation_rule(obligation, 60, 3600) is None


def test_obligation_ttl_is_capped_and_defaults() -> None:
    assert cache.obligation_rule({"scope": "public", "ttl_seconds": 10**9}, 60, 3600) == Rule(PUBLIC, 3600)
    assert cache.obligation_rule({}, 60, 3600) == Rule(PRIVATE, 60)


def test_generations_and_invalidating_notifications() -> None:
    assert cache.generations_for("tools/call", "lookup") == ("all", "method:tools/call", "tools", "tool:lookup")
    assert "resource:demo://a" in cache.generations_for("resources/read", "demo://a")
    assert cache.invalidated_by({"method": "notifications/tools/list_changed"}) == "tools"
    assert cache.invalidated_by({"method": "notifications/resources/updated", "params": {"uri": "demo://a"}}) == \
        "resource:demo://a"
    assert cache.invalidated_by({"method": "notifications/progress", "params": {}}) is None


def test_entries_go_stale_when_a_generation_moves() -> None:
    entry = cache.encode_entry(["t1", None], b'{"content":[]}')
    assert cache.decode_entry(entry, ["t1", None]) == b'{"content":[]}'
    assert cache.decode_entry(entry, ["t2", None]) is None
    assert cache.decode_entry(b"garbage", ["t1", None]) is None


def test_a_hit_carries_the_current_request_id() -> None:
    assert cache.response_bytes("req-9", b'{"a":1}') == b'{"jsonrpc":"2.0","id":"req-9","result":{"a":1}}'


async def test_single_flight_shares_the_leaders_result() -> None:
    flights = SingleFlight()
    flight = flights.lead("k")
    assert flight is not None and flights.lead("k") is None
    followers = [asyncio.ensure_future(flights.follow("k", 1)) for _ in range(3)]
    await asyncio.sleep(0)
    flights.finish("k", flight, ("entry", b"{}"))
    assert await asyncio.gather(*followers) == [("entry", b"{}")] * 3
    assert len(flights) == 0


async def test_single_flight_followers_go_alone_when_the_leader_fails_or_stalls() -> None:
    flights = SingleFlight()
    flight = flights.lead("k")
    assert flight is not None
    follower = asyncio.ensure_future(flights.follow("k", 1))
    await asyncio.sleep(0)
    flights.finish("k", flight, None)
    assert await follower is None
    stalled = flights.lead("k2")
    assert stalled is not None
    assert await flights.follow("k2", 0.01) is None  # bounded wait


async def test_finishing_twice_never_releases_a_later_flight() -> None:
    flights = SingleFlight()
    first = flights.lead("k")
    assert first is not None
    flights.finish("k", first, None)
    second = flights.lead("k")
    assert second is not None
    flights.finish("k", first, None)
    assert flights.lead("k") is None and not second.done()


def test_key_claims_are_named_as_everywhere_else_exact_name_or_dotted_path() -> None:
    """Seam with auth.roles_claim and rate-limit `claim:` keys: one rule for naming a claim."""
    def keyed(claims: dict[str, Any], claim: str) -> str:
        principal = Principal(subject="alice", issuer="https://a.test", claims=claims)
        return plan(Rule(scope=PRIVATE, ttl=30, key_claims=(claim,)), principal=principal).private_key

    nested = "org.tenant"
    assert keyed({"org": {"tenant": "t1"}}, nested) != keyed({"org": {"tenant": "t2"}}, nested)
    namespaced = "https://acme.example/tenant"
    assert keyed({namespaced: "t1"}, namespaced) != keyed({namespaced: "t2"}, namespaced)
