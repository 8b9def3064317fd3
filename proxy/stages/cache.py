"""Cache stage (innermost): answer repeated calls from the cache, share one upstream call among identical misses,
store what may be stored, and drop entries when the upstream announces changes. The cache itself (rules, store,
flights, counts) is the shared ResponseCache of proxy/cache/controller.py.

Being innermost, a hit has already passed auth, policy and rate limits. A store that fails is bypassed: the call
still goes upstream, and the failure is logged and counted.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.cache import rules
from proxy.cache.controller import ResponseCache
from proxy.cache.rules import Flight, Plan
from proxy.cache.store import StoreUnavailableError
from proxy.config import CacheConfig
from proxy.context import CallContext
from proxy.net.sse_codec import SseEvent
from proxy.pipeline import Handler
from proxy.reply import JSON, Reply, ResultHook
from proxy.stages.deps import Deps


class CacheStage:
    name = "cache"

    def __init__(self, cache: ResponseCache) -> None:
        self.cache = cache
        self.flights = cache.flights

    @classmethod
    def from_config(cls, config: CacheConfig, deps: Deps) -> CacheStage | None:
        return cls(deps.cache) if deps.cache is not None else None

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Reply:
        rule = await self.cache.rule_for(ctx)
        if rule is None:
            if ctx.is_request:
                self.cache.mark(ctx, "bypass")
            return self._watched(await call_next(ctx))
        plan = self.cache.plan_for(ctx, rule)
        try:
            found, tokens = await self.cache.lookup(plan)
        except StoreUnavailableError as error:
            self.cache.unavailable(error, "lookup")
            self.cache.mark(ctx, "bypass")
            return self._watched(await call_next(ctx))
        if found is not None:
            return self._hit(ctx, found)
        flight = self.flights.lead(plan.flight_key)
        if flight is None:
            shared = await self.flights.follow(plan.flight_key, self.cache.config.single_flight_wait_seconds)
            if shared is not None and shared[0] in plan.candidates:
                ctx.record.extra["cache_coalesced"] = True
                return self._hit(ctx, shared[1])
        return await self._miss(ctx, plan, tokens, flight, call_next)

    def _hit(self, ctx: CallContext, result: bytes) -> Reply:
        self.cache.mark(ctx, "hit")
        ctx.record.outcome = "cached"
        ctx.record.http_status = 200
        return Reply(status=200, headers={"Content-Type": JSON}, body=rules.response_bytes(ctx.request_id, result))

    async def _miss(self, ctx: CallContext, plan: Plan, tokens: list[str | None], flight: Flight | None,
                    call_next: Handler) -> Reply:
        self.cache.mark(ctx, "miss")
        try:
            reply = await call_next(ctx)
        except BaseException:
            if flight is not None:
                self.flights.finish(plan.flight_key, flight, None)
            raise
        reply.add_result_hook(self._storer(ctx, plan, tokens, flight, reply))
        if flight is not None:  # whatever happens to the reply, the followers are released once it is done
            reply.on_done(lambda _: self.flights.finish(plan.flight_key, flight, None))
        return self._watched(reply)

    def _storer(self, ctx: CallContext, plan: Plan, tokens: list[str | None], flight: Flight | None,
                reply: Reply) -> ResultHook:
        async def store(message: dict[str, Any]) -> dict[str, Any] | None:
            stored = None
            try:
                stored = await self.cache.store_result(ctx, plan, tokens, message, reply.status)
            finally:  # released only now, so a call arriving meanwhile follows instead of missing the entry
                if flight is not None:
                    self.flights.finish(plan.flight_key, flight, stored)
            return None

        return store

    def _watched(self, reply: Reply) -> Reply:
        if reply.is_stream:
            reply.observe_events(self._observe)
        return reply

    async def _observe(self, event: SseEvent) -> None:
        """Bump generations on change notifications from the upstream, before the client sees them."""
        data = event.data
        if not data or "notifications/" not in data or ("list_changed" not in data and "/updated" not in data):
            return
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        generation = rules.invalidated_by(message) if isinstance(message, dict) else None
        if generation is None:
            return
        await self.cache.invalidate(generation)  # (the catalog watches upstream replies itself: ToolCatalog.watch)
