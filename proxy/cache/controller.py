"""The response cache as the sidecar runs it: rules, store, single flights and counts, built once at startup.

Shared by the cache stage (lookups and stores on the way through) and the admin app (purge, stats). A store that
fails is bypassed by the caller; the failure is logged once per outage and counted here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from proxy.cache import rules
from proxy.cache.rules import Plan, Rule, SingleFlight
from proxy.cache.store import Store, StoreUnavailableError, create_store
from proxy.config import CacheConfig
from proxy.context import CallContext

if TYPE_CHECKING:
    from proxy.catalog import ToolCatalog

log = structlog.get_logger("proxy.cache")


class ResponseCache:
    def __init__(self, config: CacheConfig, store: Store, upstream_name: str,
                 catalog: ToolCatalog | None = None) -> None:
        self.config = config
        self.store = store
        self.upstream_name = upstream_name
        self.catalog = catalog
        self.flights = SingleFlight()
        self.counts: Counter[str] = Counter()

    @classmethod
    def from_config(cls, config: CacheConfig, clock: Callable[[], float], upstream_name: str,
                    catalog: ToolCatalog | None) -> ResponseCache | None:
        return cls(config, create_store(config, clock), upstream_name, catalog) if config.enabled else None

    async def rule_for(self, ctx: CallContext) -> Rule | None:
        """The configured rule or the policy's obligation; else read-only tools, if configured, by the catalog."""
        rule = rules.request_rule(ctx, self.config)
        if rule is not None or not self._read_only_candidate(ctx):
            return rule
        assert self.catalog is not None and ctx.target is not None
        info = await self.catalog.get(ctx.target)
        return rules.read_only_rule(self.config) if info and info.annotations.get("readOnlyHint") is True else None

    def _read_only_candidate(self, ctx: CallContext) -> bool:
        return (self.config.cache_read_only_tools and self.catalog is not None and ctx.is_request
                and ctx.method == "tools/call" and ctx.target is not None and "cache" not in ctx.obligations
                and ctx.target not in self.config.tools and not rules.is_retry(ctx.params))

    def plan_for(self, ctx: CallContext, rule: Rule) -> Plan:
        return rules.make_plan(ctx, rule, self.upstream_name)

    async def lookup(self, plan: Plan) -> tuple[bytes | None, list[str | None]]:
        """A stored result still current under the generation tokens read now; raises StoreUnavailableError."""
        values, tokens = await self.store.fetch(plan.candidates, plan.generations)
        for value in values:
            result = rules.decode_entry(value, tokens) if value is not None else None
            if result is not None:
                return result, tokens
        return None, tokens

    async def store_result(self, ctx: CallContext, plan: Plan, tokens: list[str | None],
                           message: dict[str, Any], status: int) -> tuple[str, bytes] | None:
        """Store a final response where its terms allow. The (key, result) it may be shared as with the flight's
        followers (even when the store failed: the result itself is good); None when it may not be cached."""
        terms = rules.entry_terms(plan.rule, message, self.config.max_ttl_seconds) if status == 200 else None
        result = orjson.dumps(message["result"]) if terms is not None else b""
        if terms is None or len(result) > self.config.max_entry_bytes:
            return None
        scope, ttl = terms
        key = plan.public_key if scope == rules.PUBLIC and plan.public_key else plan.private_key
        try:  # stored under the tokens read before the call: a change announced meanwhile makes it stale
            await self.store.put(key, rules.encode_entry(tokens, result), ttl)
            self.mark(ctx, "stored")
        except StoreUnavailableError as error:
            self.unavailable(error, "store")
        return key, result

    async def invalidate(self, generation: str) -> bool:
        try:
            await self.store.bump(generation)
        except StoreUnavailableError as error:
            self.unavailable(error, "invalidate")
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

    def mark(self, ctx: CallContext, status: str) -> None:
        ctx.record.cache_status = status
        self.counts[status] += 1

    def unavailable(self, error: StoreUnavailableError, operation: str) -> None:
        self.counts["store_errors"] += 1
        if error.fresh:
            log.warning("cache.store_unavailable", operation=operation, error=str(error))

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self.store.close()
