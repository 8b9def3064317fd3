"""Cache stage (innermost): answer repeated calls from the cache, share one upstream call among identical misses,
store what may be stored, and drop entries when the upstream announces changes. Rules and keys: proxy/cache/rules.py.

Being innermost, a hit has already passed auth, policy and rate limits. A store that fails is bypassed: the call
still goes upstream, and the failure is logged and counted.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from proxy.cache import rules as cache
from proxy.cache.rules import Flight, Plan, Rule, SingleFlight
from proxy.cache.store import Store, StoreUnavailableError, create_store
from proxy.config import CacheConfig
from proxy.context import CallContext
from proxy.net.sse_codec import SseEvent
from proxy.pipeline import Deps, Handler
from proxy.reply import JSON, Reply, ResultHook

if TYPE_CHECKING:
    from proxy.catalog import ToolCatalog

log = structlog.get_logger("proxy.cache.rules")

class CacheStage:
    name = "cache"

    def __init__(self, config: CacheConfig, store: Store, upstream_name: str,
                 catalog: ToolCatalog | None = None) -> None:
        self.config = config
        self.store = store
        self.upstream_name = upstream_name
        self.catalog = catalog
        self.flights = SingleFlight()
        self.counts: Counter[str] = Counter()

    @classmethod
    def from_config(cls, config: CacheConfig, deps: Deps) -> CacheStage | None:
        if not config.enabled:
            return None
        stage = cls(config, create_store(config, deps.clock), deps.config.upstream.name, deps.catalog)
        deps.cache = stage
        return stage

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Reply:
        rule = await self._rule(ctx)
        if rule is None:
            if ctx.is_request:
                self._mark(ctx, "bypass")
            return self._watched(await call_next(ctx))
        plan = cache.make_plan(ctx, rule, self.upstream_name)
        try:
            found, tokens = await self._lookup(plan)
        except StoreUnavailableError as error:
            self._unavailable(error, "lookup")
            self._mark(ctx, "bypass")
            return self._watched(await call_next(ctx))
        if found is not None:
            return self._hit(ctx, found)
        flight = self.flights.lead(plan.flight_key)
        if flight is None:
            shared = await self.flights.follow(plan.flight_key, self.config.single_flight_wait_seconds)
            if shared is not None and shared[0] in plan.candidates:
                ctx.record.extra["cache_coalesced"] = True
                return self._hit(ctx, shared[1])
        return await self._miss(ctx, plan, tokens, flight, call_next)

    async def _rule(self, ctx: CallContext) -> Rule | None:
        rule = cache.request_rule(ctx, self.config)
        if rule is not None or not self._read_only_candidate(ctx):
            return rule
        assert self.catalog is not None and ctx.target is not None
        info = await self.catalog.get(ctx.target)
        return cache.read_only_rule(self.config) if info and info.annotations.get("readOnlyHint") is True else None

    def _read_only_candidate(self, ctx: CallContext) -> bool:
        return (self.config.cache_read_only_tools and self.catalog is not None and ctx.is_request
                and ctx.method == "tools/call" and ctx.target is not None and "cache" not in ctx.obligations
                and ctx.target not in self.config.tools and not cache.is_retry(ctx.params))

    async def _lookup(self, plan: Plan) -> tuple[bytes | None, list[str | None]]:
        values, tokens = await self.store.fetch(plan.candidates, plan.generations)
        for value in values:
            result = cache.decode_entry(value, tokens) if value is not None else None
            if result is not None:
                return result, tokens
        return None, tokens

    def _hit(self, ctx: CallContext, result: bytes) -> Reply:
        self._mark(ctx, "hit")
        ctx.record.outcome = "cached"
        ctx.record.http_status = 200
        return Reply(status=200, headers={"Content-Type": JSON}, body=cache.response_bytes(ctx.request_id, result))

    async def _miss(self, ctx: CallContext, plan: Plan, tokens: list[str | None], flight: Flight | None,
                    call_next: Handler) -> Reply:
        self._mark(ctx, "miss")
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
            terms = cache.entry_terms(plan.rule, message, self.config.max_ttl_seconds) if reply.status == 200 else None
            result = orjson.dumps(message["result"]) if terms is not None else b""
            if terms is None or len(result) > self.config.max_entry_bytes:
                if flight is not None:
                    self.flights.finish(plan.flight_key, flight, None)
                return None
            scope, ttl = terms
            key = plan.public_key if scope == cache.PUBLIC and plan.public_key else plan.private_key
            try:  # stored under the tokens read before the call: a change announced meanwhile makes it stale
                await self.store.put(key, cache.encode_entry(tokens, result), ttl)
                self._mark(ctx, "stored")
            except StoreUnavailableError as error:
                self._unavailable(error, "store")
            finally:  # released only now, so a call arriving meanwhile follows instead of missing the entry
                if flight is not None:
                    self.flights.finish(plan.flight_key, flight, (key, result))
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
        generation = cache.invalidated_by(message) if isinstance(message, dict) else None
        if generation is None:
            return
        await self.invalidate(generation)  # (the catalog watches upstream replies itself: ToolCatalog.watch)

    async def invalidate(self, generation: str) -> bool:
        try:
            await self.store.bump(generation)
        except StoreUnavailableError as error:
            self._unavailable(error, "invalidate")
            return False
        self.counts["invalidations"] += 1
        log.info("cache.invalidated", generation=generation)
        return True

    async def purge(self, tool: str | None = None) -> tuple[bool, str]:
        """Admin purge: one tool's entries, or everything. Returns (done, the generation bumped)."""
        generation = f"tool:{tool}" if tool else "all"
        return await self.invalidate(generation), generation

    def stats(self) -> dict[str, Any]:
        return {"backend": self.config.backend, "in_flight": len(self.flights), **self.store.usage(), **self.counts}

    def _mark(self, ctx: CallContext, status: str) -> None:
        ctx.record.cache_status = status
        self.counts[status] += 1

    def _unavailable(self, error: StoreUnavailableError, operation: str) -> None:
        self.counts["store_errors"] += 1
        if error.fresh:
            log.warning("cache.store_unavailable", operation=operation, error=str(error))

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self.store.close()
