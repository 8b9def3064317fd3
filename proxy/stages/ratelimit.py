"""Rate limit stage: takes tokens from every bucket that applies to a request, or refuses it.

Only requests are charged: responses, notifications, the GET stream and DELETE pass free (a stream is not a
call; the POST that opened a 2026-07-28 `subscriptions/listen` stream was charged as a request).
Policy obligations `rate_limit: {buckets, cost}` choose the buckets (names; None = those whose `match` fits)
and the cost. The retry of an `input_required` round trip is free once its first leg was charged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from proxy import mcp
from proxy.config import BucketConfig, RateLimitsConfig
from proxy.context import CallContext
from proxy.errors import LimiterUnavailableError, RateLimitedError
from proxy.limits.buckets import (
    CLAIM_PREFIX,
    BucketSpec,
    BucketStore,
    Caller,
    Check,
    Decision,
    MemoryBuckets,
    StoreUnavailableError,
    round_trip_key,
)
from proxy.limits.redis_buckets import RedisBuckets
from proxy.pipeline import Handler
from proxy.reply import Reply, ResultHook
from proxy.stages.deps import Deps

MRTR_RETRY_PARAMS = ("inputResponses", "requestState")
MAX_REMEMBERED_CALLERS = 4096


def spec_of(bucket: BucketConfig) -> BucketSpec:
    match = bucket.match
    return BucketSpec(
        name=bucket.name, capacity=bucket.capacity, rate=bucket.refill_per_second, key=bucket.key,
        methods=frozenset(match.methods) if match.methods is not None else None,
        tools=frozenset(match.tools) if match.tools is not None else None,
        claims={path: frozenset(values) for path, values in match.claims.items()} if match.claims else None,
    )


class RateLimitStage:
    name = "rate_limit"

    def __init__(self, specs: tuple[BucketSpec, ...], store: BucketStore, default_cost: int = 1,
                 count: Callable[[str], None] | None = None) -> None:
        self.specs = specs
        self.count = count  # deps.metrics.count: calls let through while the store is down
        self.by_name = {spec.name: spec for spec in specs}
        self.store = store
        self.default_cost = default_cost
        # The checks of a caller, remembered when no bucket reads claims (the key parts then say it all): matching
        # and keying every bucket again is most of this stage's own work.
        self._remembered: dict[tuple[Any, ...], tuple[Check, ...]] | None = None if any(
            spec.claims or any(part.startswith(CLAIM_PREFIX) for part in spec.key) for spec in specs) else {}

    @classmethod
    def from_config(cls, config: RateLimitsConfig, deps: Deps) -> RateLimitStage | None:
        if not config.buckets:
            return None
        store: BucketStore
        if config.backend == "redis":
            store = RedisBuckets(config.redis_url, prefix=config.key_prefix, timeout=config.redis_timeout_seconds,
                                 fail_open=config.failure_mode == "fail_open",
                                 retry_seconds=config.redis_retry_seconds, clock=deps.clock)
            deps.readiness.add("rate_limits", store.ping)
        else:
            store = MemoryBuckets(deps.clock, config.max_keys)
        specs = tuple(spec_of(bucket) for bucket in config.buckets)
        return cls(specs, store, config.default_cost, deps.metrics.count)

    async def start(self) -> None:
        if isinstance(self.store, RedisBuckets):
            await self.store.start()

    async def close(self) -> None:
        if isinstance(self.store, RedisBuckets):
            await self.store.close()

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Reply:
        if not ctx.is_request:
            return await call_next(ctx)
        caller = caller_of(ctx)
        if _is_mrtr_retry(ctx) and await self.store.redeem_retry(round_trip_key(caller, ctx.target)):
            return await self._watch_round_trip(ctx, await call_next(ctx), caller)
        checks, cost = self._checks(ctx, caller)
        if not checks:
            return await call_next(ctx)
        try:
            decision = await self.store.take(checks, cost)
        except StoreUnavailableError as error:
            raise LimiterUnavailableError(f"Rate limits cannot be checked right now ({error}); retry later.",
                                     headers={"Retry-After": "1"}) from None
        _record(ctx, decision)
        if decision.degraded and self.count is not None:
            self.count("rate_limit_fail_open")
        headers = rate_limit_headers(decision)
        if not decision.allowed:
            raise _refusal(ctx, decision, headers)
        reply = await call_next(ctx)
        reply.headers.update(headers)
        return await self._watch_round_trip(ctx, reply, caller)

    def _checks(self, ctx: CallContext, caller: Caller) -> tuple[tuple[Check, ...], int]:
        obligation = ctx.obligations.get("rate_limit") or {}
        cost = obligation.get("cost", self.default_cost)
        if not isinstance(cost, int) or isinstance(cost, bool) or cost < 0:
            raise LimiterUnavailableError(f"Policy asked for an invalid rate limit cost {cost!r}.")
        names = obligation.get("buckets")
        remembered = self._remembered
        if remembered is None:
            return self._matched_checks(names, caller), cost
        key = (None if names is None else tuple(names), caller.subject, caller.method, caller.tool, caller.session,
               caller.client)
        checks = remembered.get(key)
        if checks is None:
            checks = self._matched_checks(names, caller)
            if len(remembered) >= MAX_REMEMBERED_CALLERS:
                remembered.clear()
            remembered[key] = checks
        return checks, cost

    def _matched_checks(self, names: Any, caller: Caller) -> tuple[Check, ...]:
        if names is None:
            specs = [spec for spec in self.specs if spec.applies(caller)]
        else:
            unknown = [name for name in names if name not in self.by_name]
            if unknown:
                raise LimiterUnavailableError(f"Policy named rate limit buckets that are not configured: {unknown}.")
            specs = [self.by_name[name] for name in names]
        return tuple([(spec, spec.key_for(caller)) for spec in specs])

    async def _watch_round_trip(self, ctx: CallContext, reply: Reply, caller: Caller) -> Reply:
        """A charged 2026-07-28 call answered `input_required` earns one free retry."""
        if ctx.era is not mcp.Era.MODERN:
            return reply
        if reply.events is not None:  # a stream: its final response is known only once it comes
            reply.add_result_hook(self._granter(ctx, caller))
            return reply
        # A whole answer is here already: read it now, and parse the body only when it may ask for input (a hook
        # would have the transport parse every reply just for this).
        message = reply.message
        if message is None and reply.body and b"input_required" in reply.body:
            message = reply.parsed_body()
        if message is not None and _asks_for_input(message):
            await self.store.grant_retry(round_trip_key(caller, ctx.target))
        return reply

    def _granter(self, ctx: CallContext, caller: Caller) -> ResultHook:
        async def grant_on_input_required(message: dict[str, Any]) -> None:
            if _asks_for_input(message):
                await self.store.grant_retry(round_trip_key(caller, ctx.target))

        return grant_on_input_required


def _asks_for_input(message: dict[str, Any]) -> bool:
    result = message.get("result")
    return isinstance(result, dict) and result.get("resultType") == "input_required"


def caller_of(ctx: CallContext) -> Caller:
    method = ctx.method  # positional: a keyword call of a dataclass __init__ costs about twice as much
    return Caller(ctx.principal.subject, ctx.principal.claims, method, ctx.target if method == "tools/call" else None,
                  ctx.session_id, ctx.client_address)


def _is_mrtr_retry(ctx: CallContext) -> bool:
    params = ctx.params
    return any(name in params for name in MRTR_RETRY_PARAMS)


def _record(ctx: CallContext, decision: Decision) -> None:
    deciding = decision.deciding
    if deciding is None:  # fail_open while the store is down
        ctx.record.rate_limit = {"bucket": None, "remaining": None, "limit": None, "retry_after_seconds": 0,
                                 "degraded": True}
        return
    ctx.record.rate_limit = {"bucket": deciding.spec.name, "remaining": deciding.remaining,
                             "limit": deciding.spec.capacity,
                             "retry_after_seconds": 0 if decision.allowed else math.ceil(deciding.retry_after)}


def rate_limit_headers(decision: Decision) -> dict[str, str]:
    """RateLimit / RateLimit-Policy (draft-ietf-httpapi-ratelimit-headers), and Retry-After on a refusal."""
    if not decision.states:
        return {}
    policies = ", ".join([state.spec.policy_item for state in decision.states])
    limits = ", ".join([f'"{state.spec.name}";r={state.remaining};t={math.ceil(state.reset_after)}'
                        for state in decision.states])
    headers = {"RateLimit-Policy": policies, "RateLimit": limits}
    if not decision.allowed:
        headers["Retry-After"] = str(max(1, math.ceil(decision.retry_after)))
    return headers


def _refusal(ctx: CallContext, decision: Decision, headers: dict[str, str]) -> RateLimitedError:
    deciding = decision.deciding
    assert deciding is not None
    seconds = max(1, math.ceil(decision.retry_after))
    at = time.strftime("%H:%M:%S", time.gmtime(ctx.started_wall + decision.retry_after))
    spec = deciding.spec
    message = (f"Rate limit '{spec.name}' exceeded ({spec.capacity} per {spec.window_seconds} s). "
               f"Retry after {seconds} s (at {at} UTC).")
    data = {"bucket": spec.name, "retry_after": seconds, "retry_after_ms": math.ceil(decision.retry_after * 1000),
            "limit": spec.capacity, "remaining": deciding.remaining, "window_seconds": spec.window_seconds}
    return RateLimitedError(message, data=data, headers=headers)
