"""Response caching rules: what may be cached, under which key, for whom, for how long. No aiohttp here.

A cache entry is found by a key that names everything the result depends on (upstream, method, target, canonical
params without `_meta`, protocol version, policy revision) and, unless the entry is public, the caller's
authorization context. Invalidation never scans keys: every entry records the generation tokens of the families
it belongs to ("all", "tools", "tool:<name>", "resource:<uri>", ...); bumping a token makes those entries stale.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from proxy import mcp
from proxy.config import CacheConfig
from proxy.context import CallContext, claim_at

PUBLIC = "public"
PRIVATE = "private"
NONE = "none"

# Methods whose results carry the 2026-07-28 caching hints (ttlMs, cacheScope).
HINTED_METHODS = frozenset({"server/discover", "resources/read", *mcp.LIST_METHODS})
# Params of a multi-round-trip retry: such a call and its result are never cached.
RETRY_PARAMS = ("inputResponses", "requestState")

# Which notification bumps which generation family.
CHANGE_FAMILIES = {
    "notifications/tools/list_changed": "tools",
    "notifications/prompts/list_changed": "prompts",
    "notifications/resources/list_changed": "resources",
}
METHOD_FAMILIES = {
    "tools/call": "tools",
    "tools/list": "tools",
    "prompts/list": "prompts",
    "resources/list": "resources",
    "resources/templates/list": "resources",
    "resources/read": "resources",
}


@dataclass(frozen=True, slots=True)
class Rule:
    """Whether and how one call may be cached, decided before it goes upstream.

    scope: "public" or "private", or None to follow the upstream's cacheScope (private when it gives none).
    ttl: seconds, or None to follow the upstream's ttlMs only. honour_hints: ttlMs/cacheScope apply.
    """

    scope: str | None
    ttl: float | None
    key_claims: tuple[str, ...] = ()
    honour_hints: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """A cacheable call's keys: where to look, where its result may go, and what invalidates it."""

    private_key: str
    public_key: str | None  # None when this call's result may never be shared
    flight_key: str  # identical concurrent calls share one upstream call under this key
    generations: tuple[str, ...]
    rule: Rule

    @property
    def candidates(self) -> list[str]:
        return [self.private_key] if self.public_key is None else [self.private_key, self.public_key]


def is_retry(params: Mapping[str, Any]) -> bool:
    return RETRY_PARAMS[0] in params or RETRY_PARAMS[1] in params


def obligation_rule(obligation: Any, default_ttl: float, max_ttl: float) -> Rule | None:
    """A policy's cache obligation as a rule; None when it says "none" or is malformed (fail safe: no caching)."""
    if not isinstance(obligation, Mapping):
        return None
    scope = obligation.get("scope", PRIVATE)
    ttl = obligation.get("ttl_seconds", default_ttl)
    claims = obligation.get("key_claims", ())
    if scope not in (PUBLIC, PRIVATE) or isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
        return None
    if not isinstance(claims, list | tuple) or not all(isinstance(claim, str) for claim in claims):
        return None
    return Rule(scope=scope, ttl=min(float(ttl), max_ttl), key_claims=tuple(claims))


@functools.lru_cache(maxsize=4096)  # a pure function of two strings, asked on every cached call
def generations_for(method: str, target: str | None) -> tuple[str, ...]:
    """The invalidation families an entry belongs to; "all" is in every one."""
    names = ["all", f"method:{method}"]
    family = METHOD_FAMILIES.get(method)
    if family is not None:
        names.append(family)
    if method == "tools/call" and target is not None:
        names.append(f"tool:{target}")
    if method == "resources/read" and target is not None:
        names.append(f"resource:{target}")
    return tuple(names)


def invalidated_by(notification: Mapping[str, Any]) -> str | None:
    """The generation a server-to-client notification bumps, if any."""
    method = notification.get("method")
    if method == "notifications/resources/updated":
        uri = mcp.params_of(dict(notification)).get("uri")
        return f"resource:{uri}" if isinstance(uri, str) else None
    return CHANGE_FAMILIES.get(method) if isinstance(method, str) else None


def caller_scope(ctx: CallContext, key_claims: Sequence[str]) -> list[Any]:
    """The caller's authorization context: issuer, subject, the claims policy names, and for callers
    without a token their legacy session (the only thing that tells them apart)."""
    principal = ctx.principal
    claims = {claim: claim_at(principal.claims, claim) for claim in key_claims}
    session = None if principal.authenticated else ctx.session_id
    return [PRIVATE, principal.issuer, principal.subject, claims, session]


def make_plan(ctx: CallContext, rule: Rule, upstream: str) -> Plan:
    assert ctx.method is not None
    # What the result depends on is serialised and hashed once; each key then adds its scope to a copy of that
    # hash. The base is one JSON array, so base + scope can never be read as another base + another scope.
    params = {k: v for k, v in ctx.params.items() if k != "_meta"}  # the params that decide the result
    base = hashlib.sha256(orjson.dumps([upstream, ctx.method, ctx.target, params, ctx.protocol_version,
                                        ctx.record.policy_revision], option=orjson.OPT_SORT_KEYS, default=str))
    private_key = _scoped(base, caller_scope(ctx, rule.key_claims))
    public_key = None if rule.scope == PRIVATE else _scoped(base, [PUBLIC])
    # Only calls whose result is meant to be shared wait on another caller's flight: an upstream-decided scope
    # is usually private, and waiting for a result one may not use would only add latency.
    flight_key = public_key if rule.scope == PUBLIC and public_key else private_key
    return Plan(private_key=private_key, public_key=public_key, flight_key=flight_key,
                generations=generations_for(ctx.method, ctx.target), rule=rule)


def _scoped(base: Any, scope: list[Any]) -> str:
    """The hex key of base (a sha256 object, left untouched) followed by one scope."""
    digest = base.copy()
    digest.update(orjson.dumps(scope, option=orjson.OPT_SORT_KEYS, default=str))
    return digest.hexdigest()


def entry_terms(rule: Rule, response: Mapping[str, Any], max_ttl: float) -> tuple[str, float] | None:
    """(scope, ttl seconds) for storing a response under a rule, or None when it must not be stored."""
    result = response.get("result")
    if "error" in response or not isinstance(result, Mapping):
        return None
    if result.get("isError") is True or result.get("resultType") == "input_required":
        return None
    ttl = rule.ttl
    ttl_ms = result.get("ttlMs")
    if rule.honour_hints and isinstance(ttl_ms, int | float) and not isinstance(ttl_ms, bool) and ttl_ms >= 0:
        ttl = ttl_ms / 1000  # the upstream's word beats the configured fallback, 0 included
    if ttl is None or ttl <= 0:
        return None
    upstream_scope = result.get("cacheScope")
    if upstream_scope == PRIVATE:  # whatever config or policy said, the upstream knows it is per caller
        scope = PRIVATE
    elif rule.scope == PUBLIC or (rule.scope is None and rule.honour_hints and upstream_scope == PUBLIC):
        scope = PUBLIC
    else:
        scope = PRIVATE
    return scope, min(ttl, max_ttl)


# An entry is one header line (the generation tokens it was stored under) and the result's JSON bytes.
def encode_entry(generations: Sequence[str | None], result: bytes) -> bytes:
    return orjson.dumps(list(generations)) + b"\n" + result


def decode_entry(value: bytes, current: Sequence[str | None]) -> bytes | None:
    """The result bytes of an entry, or None when any generation has moved on since it was stored."""
    header, sep, result = value.partition(b"\n")
    if not sep:
        return None
    try:
        stored = orjson.loads(header)
    except orjson.JSONDecodeError:
        return None
    return result if stored == list(current) else None


def response_bytes(request_id: Any, result: bytes) -> bytes:
    """A JSON-RPC response around cached result bytes, carrying the current request's id (no re-parsing)."""
    return b'{"jsonrpc":"2.0","id":' + orjson.dumps(request_id) + b',"result":' + result + b"}"


def request_rule(ctx: CallContext, config: CacheConfig) -> Rule | None:
    """The rule for a request from config and policy obligations; None means bypass.

    Tools marked read-only by the trusted catalogue are the stage's business (that needs an upstream lookup).
    """
    if not ctx.is_request or ctx.method is None or is_retry(ctx.params):
        return None
    if ctx.method == "tools/call":
        if "cache" in ctx.obligations:  # policy has the last word, "none" included
            return obligation_rule(ctx.obligations["cache"], config.default_ttl_seconds, config.max_ttl_seconds)
        tool = config.tools.get(ctx.target or "")
        if tool is None:
            return None
        return Rule(scope=tool.scope, ttl=min(tool.ttl_seconds, config.max_ttl_seconds), key_claims=tool.key_claims)
    if ctx.method in HINTED_METHODS:
        method = config.methods.get(ctx.method)
        obligation = ctx.obligations.get("cache")
        policy_scope = obligation.get("scope") if isinstance(obligation, Mapping) else None
        if policy_scope == NONE or (method is not None and method.scope == NONE):
            return None
        scope = PRIVATE if policy_scope == PRIVATE else (method.scope if method is not None else None)
        return Rule(scope=scope, ttl=method.ttl_seconds if method is not None else None, honour_hints=True)
    return None


def read_only_rule(config: CacheConfig) -> Rule:
    """The rule for a tool the trusted catalogue calls read-only, when `cache_read_only_tools` allows it."""
    return Rule(scope=PRIVATE, ttl=config.default_ttl_seconds)


Flight = asyncio.Future[tuple[str, bytes] | None]  # resolves to what the leader shares: (entry key, result bytes)


class SingleFlight:
    """Identical concurrent misses make one upstream call: the first caller leads, the others wait for what it
    shares (bounded), and go upstream themselves if it shares nothing usable in time."""

    def __init__(self) -> None:
        self._flights: dict[str, Flight] = {}

    def lead(self, key: str) -> Flight | None:
        """The new flight when the caller leads (and must finish it); None when a flight is under way."""
        if key in self._flights:
            return None
        flight = self._flights[key] = asyncio.get_running_loop().create_future()
        return flight

    async def follow(self, key: str, wait_seconds: float) -> tuple[str, bytes] | None:
        """What the leader shared: (entry key, result bytes), or None (failed, not shareable, or too slow)."""
        flight = self._flights.get(key)
        if flight is None:
            return None
        try:
            async with asyncio.timeout(wait_seconds):
                return await asyncio.shield(flight)
        except TimeoutError:
            return None

    def finish(self, key: str, flight: Flight, shared: tuple[str, bytes] | None) -> None:
        """Release the followers (idempotent; never touches a later flight under the same key)."""
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.done():
            flight.set_result(shared)

    def __len__(self) -> int:
        return len(self._flights)
