"""The rate_limit stage on its own: buckets chosen per call, obligations, refusals, headers, MRTR retries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy import mcp
from proxy.config import ConfigError
from proxy.context import CallContext, Principal
from proxy.limits.buckets import BucketSpec, Decision, MemoryBuckets
from proxy.pipeline import build_chain
from proxy.reply import Reply
from proxy.stages.ratelimit import RateLimitStage, caller_of
from tests.kit import make_config, make_ctx


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def stage(*specs: BucketSpec, clock: FakeClock | None = None) -> RateLimitStage:
    clock = clock or FakeClock()
    return RateLimitStage(specs, MemoryBuckets(clock))


async def upstream_ok(ctx: CallContext) -> Reply:
    return Reply.json({"jsonrpc": "2.0", "id": ctx.request_id, "result": {"content": []}})


async def run(stage_: RateLimitStage, ctx: CallContext, terminal: Any = upstream_ok) -> Reply:
    return await build_chain([stage_], terminal)(ctx)


def as_user(subject: str, **claims: Any) -> dict[str, Any]:
    return {"principal": Principal(subject=subject, claims=claims)}


async def test_tools_call_refusal_is_a_readable_tool_error_with_headers() -> None:
    limited = stage(BucketSpec("per_user", capacity=2, rate=0.5, key=("subject",)))
    allowed = [await run(limited, make_ctx(**as_user("alice"))) for _ in range(2)]
    assert allowed[0].headers["RateLimit-Policy"] == '"per_user";q=2;w=4'
    assert allowed[1].headers["RateLimit"] == '"per_user";r=0;t=4'
    ctx = make_ctx(**as_user("alice"))
    refused = await run(limited, ctx)
    assert refused.status == 200 and refused.headers["Retry-After"] == "2"
    result = refused.message["result"]
    assert result["isError"] is True
    assert "Rate limit 'per_user' exceeded" in result["content"][0]["text"]
    assert "Retry after 2 s" in result["content"][0]["text"]
    assert ctx.record.outcome == "limited"
    assert ctx.record.rate_limit == {"bucket": "per_user", "remaining": 0, "limit": 2, "retry_after_seconds": 2}


async def test_other_methods_get_a_jsonrpc_error_and_429() -> None:
    limited = stage(BucketSpec("global", capacity=1, rate=0.1))
    await run(limited, make_ctx("prompts/get", target="greet"))
    refused = await run(limited, make_ctx("resources/read", target="demo://readme", request_id=7))
    assert refused.status == 429 and refused.headers["Retry-After"] == "10"
    error = refused.message["error"]
    assert refused.message["id"] == 7
    assert error["code"] == -31029 and error["data"]["retry_after"] == 10 and error["data"]["bucket"] == "global"


async def test_per_user_buckets_do_not_interfere() -> None:
    limited = stage(BucketSpec("per_user", capacity=3, rate=0.01, key=("subject",)))
    outcomes: dict[str, list[bool]] = {"alice": [], "bob": []}
    for _ in range(5):
        for user in outcomes:
            ctx = make_ctx(**as_user(user))
            await run(limited, ctx)
            outcomes[user].append(ctx.record.outcome == "allowed")
    assert outcomes == {"alice": [True] * 3 + [False] * 2, "bob": [True] * 3 + [False] * 2}


async def test_per_plan_buckets_apply_by_claim() -> None:
    free = BucketSpec("free", capacity=1, rate=0.01, key=("subject",), claims={"plan": frozenset({"free"})})
    pro = BucketSpec("pro", capacity=3, rate=0.01, key=("subject",), claims={"plan": frozenset({"pro"})})
    limited = stage(free, pro)
    counts = {}
    for user, plan in (("ann", "free"), ("paul", "pro")):
        ctxs = [make_ctx(**as_user(user, plan=plan)) for _ in range(4)]
        for ctx in ctxs:
            await run(limited, ctx)
        counts[plan] = sum(ctx.record.outcome == "allowed" for ctx in ctxs)
    assert counts == {"free": 1, "pro": 3}


async def test_a_callers_plan_change_moves_it_to_the_other_bucket() -> None:
    """The same subject, first on the free plan then on pro: buckets that read claims are matched on every call."""
    free = BucketSpec("free", capacity=1, rate=0.01, key=("subject",), claims={"plan": frozenset({"free"})})
    pro = BucketSpec("pro", capacity=5, rate=0.01, key=("subject",), claims={"plan": frozenset({"pro"})})
    limited = stage(free, pro)
    first, second = make_ctx(**as_user("ann", plan="free")), make_ctx(**as_user("ann", plan="pro"))
    await run(limited, first)
    await run(limited, second)
    assert [first.record.rate_limit["bucket"], second.record.rate_limit["bucket"]] == ["free", "pro"]


async def test_remembered_checks_keep_callers_and_methods_apart() -> None:
    limited = stage(BucketSpec("per_user", capacity=1, rate=0.01, key=("subject",)))
    calls = [make_ctx(**as_user(user)) for user in ("ann", "bob", "ann")]
    for ctx in calls:
        await run(limited, ctx)
    assert [ctx.record.outcome for ctx in calls] == ["allowed", "allowed", "limited"]
    listing = BucketSpec("listing", capacity=5, rate=0.01, methods=frozenset({"tools/list"}))
    limited = stage(BucketSpec("per_user", capacity=5, rate=0.01, key=("subject",)), listing)
    prompts = await run(limited, make_ctx("prompts/list", target=None, **as_user("cid")))
    tools = await run(limited, make_ctx("tools/list", target=None, **as_user("cid")))
    assert prompts.headers["RateLimit-Policy"] == '"per_user";q=5;w=500'  # listing is for tools/list only
    assert tools.headers["RateLimit-Policy"] == '"per_user";q=5;w=500, "listing";q=5;w=500'


async def test_obligations_choose_buckets_and_cost() -> None:
    cheap, other = BucketSpec("cheap", capacity=10, rate=0.01), BucketSpec("other", capacity=1, rate=0.01)
    limited = stage(cheap, other)
    obligation = {"rate_limit": {"buckets": ["cheap"], "cost": 4}}
    ctxs = [make_ctx(obligations=obligation) for _ in range(3)]
    for ctx in ctxs:
        await run(limited, ctx)
    assert [ctx.record.outcome for ctx in ctxs] == ["allowed", "allowed", "limited"]
    assert ctxs[1].record.rate_limit["remaining"] == 2
    unknown = await run(limited, make_ctx(obligations={"rate_limit": {"buckets": ["nope"], "cost": 1}}))
    assert unknown.message["result"]["isError"] is True
    free = make_ctx(obligations={"rate_limit": {"buckets": None, "cost": 0}})
    assert (await run(limited, free)).message["result"] == {"content": []}


async def test_notifications_responses_and_streams_are_not_charged() -> None:
    limited = stage(BucketSpec("global", capacity=1, rate=0.01))
    free = [make_ctx("notifications/progress", target=None, request_id=None),
            make_ctx(kind=mcp.Kind.RESPONSE, method=None, message={"jsonrpc": "2.0", "id": 3, "result": {}}),
            make_ctx(kind=mcp.Kind.STREAM, method=None, request_id=None, message={})]
    for ctx in free:
        await run(limited, ctx)
        assert ctx.record.rate_limit is None
    charged = [make_ctx() for _ in range(2)]
    for ctx in charged:
        await run(limited, ctx)
    assert [ctx.record.outcome for ctx in charged] == ["allowed", "limited"]


def with_params(ctx: CallContext, **params: Any) -> CallContext:
    return ctx.evolve(message={**ctx.message, "params": {**ctx.params, **params}})


async def test_input_required_retry_is_not_charged_twice() -> None:
    limited = stage(BucketSpec("one", capacity=1, rate=0.001, key=("subject",)))

    async def asks_for_input(ctx: CallContext) -> Reply:
        result = {"resultType": "input_required", "inputRequests": {"q": {}}}
        return Reply.json({"jsonrpc": "2.0", "id": ctx.request_id, "result": result})

    first = make_ctx(target="confirm_action", **as_user("alice"))
    reply = await run(limited, first, asks_for_input)
    await reply.apply_hooks(reply.message)  # what the transport does with the final response
    retry = with_params(make_ctx(target="confirm_action", request_id=2, **as_user("alice")), inputResponses={})
    await run(limited, retry)
    assert retry.record.outcome == "allowed"
    # The credit is single use, and a made-up retry without an input_required before it is charged.
    again = with_params(make_ctx(target="confirm_action", request_id=3, **as_user("alice")), inputResponses={})
    await run(limited, again)
    assert again.record.outcome == "limited"
    assert caller_of(again).tool == "confirm_action"


@pytest.mark.parametrize(("overrides", "problem"), [
    ({"rate_limits.buckets": [{"name": "a", "capacity": 1, "refill_per_second": 1, "key": ["user"]}]},
     "rate_limits.buckets.0.key: unknown key part 'user'"),
    ({"rate_limits.buckets": [{"name": "a", "capacity": 1, "refill_per_second": 1},
                              {"name": "a", "capacity": 2, "refill_per_second": 1}]},
     "rate_limits: buckets.1.name: duplicate bucket name 'a'"),
    ({"rate_limits.buckets": [{"name": "a", "capacity": 1, "refill_per_second": 0}]},
     "rate_limits.buckets.0.refill_per_second: Input should be greater than 0"),
    ({"rate_limits.buckets": [{"name": "a", "capacity": 0, "refill_per_second": 1}]},
     "rate_limits.buckets.0.capacity: Input should be greater than 0"),
    ({"rate_limits.failure_mode": "fail_sideways"}, "rate_limits.failure_mode: Input should be"),
    ({"rate_limits.redis_url": "http://x"}, "rate_limits.redis_url: must be a redis://"),
])
def test_bad_settings_fail_at_load_with_a_dotted_path(overrides: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(**{key.replace(".", "__"): value for key, value in overrides.items()})
    assert any(line.startswith(problem) for line in caught.value.problems), caught.value.problems


def test_the_documented_per_plan_example_loads() -> None:
    doc = (Path(__file__).resolve().parents[3] / "docs" / "rate-limits.md").read_text()
    section = doc[doc.index("Per-plan quotas"):]
    example = yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    config = make_config(**{f"rate_limits__{key}": value for key, value in example["rate_limits"].items()})
    names = [bucket.name for bucket in config.rate_limits.buckets]
    assert names == ["upstream_guard", "free_per_user", "pro_per_user", "pro_expensive_tool"]
    assert config.rate_limits.buckets[1].match.claims == {"plan": ("free",)}


async def test_a_call_let_through_by_an_unavailable_store_is_counted() -> None:
    class DownStore(MemoryBuckets):
        async def take(self, checks: Any, cost: int) -> Decision:
            return Decision(True, (), degraded=True)  # what RedisBuckets answers with fail_open while Redis is down

    counted: list[str] = []
    spec = BucketSpec("all", capacity=1, rate=1)
    limited = RateLimitStage((spec,), DownStore(FakeClock()), count=counted.append)
    assert (await run(limited, make_ctx())).status == 200
    assert counted == ["rate_limit_fail_open"]
    await run(RateLimitStage((spec,), MemoryBuckets(FakeClock()), count=counted.append), make_ctx())
    assert counted == ["rate_limit_fail_open"]  # a healthy store counts nothing
