"""Token buckets: specs, keys, and an in-memory store on an injected monotonic clock.

A call is checked against every bucket that applies to it at once and takes `cost` tokens from all of them, or
from none: a call refused by one bucket does not drain the others. The Redis store (shared between replicas)
lives in `proxy.limits.redis_buckets` and answers the same `Decision`.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from proxy.config.limits import CLAIM_PREFIX, KEY_PARTS
from proxy.context import claim_at

MISSING = "-"  # the value of a key part the call does not have (no session, no such claim)
RETRY_CREDIT_SECONDS = 300.0  # how long the retry of an input_required round trip stays free


@dataclass(frozen=True, slots=True)
class Caller:
    """What bucket keys and matches are made from, taken from one call."""

    subject: str
    claims: Mapping[str, Any]
    method: str | None
    tool: str | None
    session: str | None
    client: str | None

    def claim(self, path: str) -> Any:
        return claim_at(self.claims, path)

    def part(self, name: str) -> str:
        if name.startswith(CLAIM_PREFIX):
            value = self.claim(name[len(CLAIM_PREFIX):])
        else:
            if name not in KEY_PARTS:
                raise KeyError(name)
            value = getattr(self, name)  # the KEY_PARTS are field names
        return MISSING if value is None or value == "" else str(value)


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """One configured bucket: `capacity` tokens, refilled at `rate` per second, one bucket per distinct key."""

    name: str
    capacity: int
    rate: float
    key: tuple[str, ...] = ()
    methods: frozenset[str] | None = None  # applies only to these methods (None: all)
    tools: frozenset[str] | None = None  # applies only to tools/call of these tools (None: all)
    claims: Mapping[str, frozenset[str]] | None = None  # applies when each claim has one of the values ("-": none)
    # Seconds an empty bucket takes to fill (the `w` of RateLimit-Policy), and its item in that header: worked out
    # once, not on every call.
    window_seconds: int = field(init=False, repr=False, compare=False)
    policy_item: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        window = max(1, math.ceil(self.capacity / self.rate))
        object.__setattr__(self, "window_seconds", window)
        object.__setattr__(self, "policy_item", f'"{self.name}";q={self.capacity};w={window}')

    def applies(self, caller: Caller) -> bool:
        if self.methods is not None and caller.method not in self.methods:
            return False
        if self.tools is not None and (caller.method != "tools/call" or caller.tool not in self.tools):
            return False
        if self.claims:
            return all(caller.part(CLAIM_PREFIX + path) in values for path, values in self.claims.items())
        return True

    def key_for(self, caller: Caller) -> str:
        """The bucket's storage key for this caller."""
        return f"{self.name}:{_joined([caller.part(part) for part in self.key])}" if self.key else self.name


class BucketState(NamedTuple):
    """One bucket after a check: whole tokens left, and seconds until `cost` fits and until it is full.
    (Made on every call for every bucket: a NamedTuple is built several times faster than a frozen dataclass.)"""

    spec: BucketSpec
    remaining: int
    retry_after: float
    reset_after: float

    @property
    def limited(self) -> bool:
        return self.retry_after > 0


class Decision(NamedTuple):
    allowed: bool
    states: tuple[BucketState, ...]
    degraded: bool = False  # the store was unreachable and the call was let through (fail_open)

    @property
    def deciding(self) -> BucketState | None:
        """The bucket to report: the one that refused longest, or the one with the fewest tokens left."""
        if len(self.states) < 2:
            return self.states[0] if self.states else None
        if not self.allowed:
            return max((state for state in self.states if state.limited), key=lambda state: state.retry_after)
        return min(self.states, key=lambda state: state.remaining / state.spec.capacity)

    @property
    def retry_after(self) -> float:
        deciding = self.deciding
        return deciding.retry_after if deciding is not None and not self.allowed else 0.0


Check = tuple[BucketSpec, str]  # a bucket and the key this call maps to


def round_trip_key(caller: Caller, target: str | None) -> str:
    """Who retries what: the key of an `input_required` round trip's free retry."""
    parts = (caller.subject, caller.session, caller.client, caller.method, target)
    return "~mrtr:" + _joined(part or MISSING for part in parts)  # `~` is never in a bucket name


def _joined(values: Iterable[str]) -> str:
    """Values joined by `|`, with `|` and `\\` escaped so different values never give the same key."""
    return "|".join([_escaped(value) for value in values])


def _escaped(value: str) -> str:
    if "|" not in value and "\\" not in value:  # nearly always: no copies
        return value
    return value.replace("\\", "\\\\").replace("|", "\\|")


class BucketStore(Protocol):
    async def take(self, checks: Sequence[Check], cost: int) -> Decision: ...

    async def grant_retry(self, key: str) -> None: ...

    async def redeem_retry(self, key: str) -> bool: ...


class StoreUnavailableError(Exception):
    """The shared store could not answer and the failure mode is fail_closed."""


class MemoryBuckets:
    """Token buckets in this process. No await between reading and writing a bucket, so no lock is needed.

    At most `max_keys` buckets are kept: buckets that are full again are dropped first (nothing is lost), then
    the least recently used ones.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self.clock = clock
        self.max_keys = max_keys
        self.buckets: OrderedDict[str, tuple[float, float, BucketSpec]] = OrderedDict()  # key -> tokens, when, spec
        self.evicted_in_use = 0  # buckets dropped before they were full again
        self.retries = RetryCredits(clock)

    async def take(self, checks: Sequence[Check], cost: int) -> Decision:
        return self.take_now(checks, cost)

    async def grant_retry(self, key: str) -> None:
        self.retries.grant(key)

    async def redeem_retry(self, key: str) -> bool:
        return self.retries.redeem(key)

    def take_now(self, checks: Sequence[Check], cost: int) -> Decision:
        now = self.clock()
        buckets = self.buckets
        levels = [self._level(spec, buckets.get(key), now) for spec, key in checks]
        allowed = min(levels, default=cost) >= cost
        states = []
        for (spec, key), level in zip(checks, levels, strict=True):
            if allowed:
                level -= cost
            buckets[key] = (level, now, spec)
            buckets.move_to_end(key)
            retry = 0.0 if allowed or level >= cost else (cost - level) / spec.rate
            states.append(BucketState(spec, int(level), retry, (spec.capacity - level) / spec.rate))
        if len(buckets) > self.max_keys:
            self._evict(now)
        return Decision(allowed, tuple(states))

    @staticmethod
    def _level(spec: BucketSpec, stored: tuple[float, float, BucketSpec] | None, now: float) -> float:
        if stored is None:
            return float(spec.capacity)
        tokens, updated, _ = stored
        return min(float(spec.capacity), tokens + max(0.0, now - updated) * spec.rate)

    def _evict(self, now: float) -> None:
        """Drop full buckets among the least recently used quarter, then plain LRU down to 90% of max_keys
        (so the next evictions wait for a tenth of max_keys new keys: the scan is paid rarely)."""
        oldest = list(self.buckets.items())[: max(1, len(self.buckets) // 4)]
        for key, stored in oldest:
            spec = stored[2]
            if self._level(spec, stored, now) >= spec.capacity:
                del self.buckets[key]
        target = self.max_keys - max(1, self.max_keys // 10)
        while len(self.buckets) > target:
            _, stored = self.buckets.popitem(last=False)
            if self._level(stored[2], stored, now) < stored[2].capacity:
                self.evicted_in_use += 1


class RetryCredits:
    """Free passes for the retry of an `input_required` round trip (2026-07-28 MRTR), so it is not charged twice.

    A credit is granted only when the first leg was charged and answered `input_required`, so a client cannot
    skip its limits by adding `inputResponses` to fresh calls. Bounded, and credits expire after `ttl` seconds.
    (The Redis store keeps the same credits in Redis, so a retry may land on another replica.)
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, ttl: float = RETRY_CREDIT_SECONDS,
                 max_entries: int = 10_000) -> None:
        self.clock = clock
        self.ttl = ttl
        self.max_entries = max_entries
        self.credits: OrderedDict[str, tuple[int, float]] = OrderedDict()  # key -> count, expiry

    def grant(self, key: str) -> None:
        count, _ = self.credits.pop(key, (0, 0.0))
        self.credits[key] = (count + 1, self.clock() + self.ttl)
        while len(self.credits) > self.max_entries:
            self.credits.popitem(last=False)

    def redeem(self, key: str) -> bool:
        count, expiry = self.credits.pop(key, (0, 0.0))
        if count == 0 or expiry < self.clock():
            return False
        if count > 1:
            self.credits[key] = (count - 1, expiry)
        return True
