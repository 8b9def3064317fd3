"""Token-bucket rate limits."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from proxy.config.base import Section, check_redis_url

# Key parts a bucket can be partitioned by; `claim:<dotted.path>` names a principal claim.
KEY_PARTS = frozenset({"subject", "tool", "method", "session", "client"})
CLAIM_PREFIX = "claim:"


def check_key_part(part: str) -> str:
    """Validate one key part at load time; raises ValueError naming the allowed parts."""
    if part in KEY_PARTS:
        return part
    if part.startswith(CLAIM_PREFIX) and all(part[len(CLAIM_PREFIX):].split(".")):
        return part
    allowed = ", ".join(sorted(KEY_PARTS))
    raise ValueError(f"unknown key part {part!r}: use {allowed} or claim:<dotted.path>")


class BucketMatch(Section):
    """Which calls a bucket applies to; every given condition must hold. Empty: every request."""

    methods: tuple[str, ...] | None = None
    """Apply only to these JSON-RPC methods. Unset: all."""
    tools: tuple[str, ...] | None = None
    """Apply only to `tools/call` of these tools. Unset: all."""
    claims: dict[str, tuple[str, ...]] | None = None
    """Apply only when each listed claim has one of the values (`-`: the claim is absent), e.g. `{plan: [free]}`."""


class BucketConfig(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    """Unique; letters, digits, `_`, `.`, `-`."""
    capacity: int = Field(gt=0)
    """Tokens when full: the burst a caller may spend at once."""
    refill_per_second: float = Field(gt=0)
    """Tokens added back per second; `capacity / refill_per_second` is the window."""
    key: tuple[str, ...] = ()
    """What one bucket is kept per: any of `subject`, `claim:<name>`, `tool`, `method`, `session`, `client`
    (address); empty: one bucket for everyone. A missing value counts as `-`."""
    match: BucketMatch = BucketMatch()
    """Which calls the bucket applies to; every given condition must hold."""

    @field_validator("key")
    @classmethod
    def _key_parts(cls, parts: tuple[str, ...]) -> tuple[str, ...]:
        for part in parts:
            check_key_part(part)
        if len(set(parts)) != len(parts):
            raise ValueError("a key part is listed twice")
        return parts


class RateLimitsConfig(Section):
    backend: Literal["memory", "redis"] = "memory"
    """`memory` (per process) or `redis` (shared between replicas, one Lua script per call)."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    """`redis://`, `rediss://` or `unix://` URL."""
    key_prefix: str = "mcp-sidecar:rl:"
    """Redis key prefix; keys are `<key_prefix><bucket>:<key values>`."""
    failure_mode: Literal["fail_open", "fail_closed"] = "fail_open"
    """When Redis cannot answer: `fail_open` lets calls through (logged, counted), `fail_closed` refuses them."""
    redis_timeout_seconds: float = Field(default=0.25, gt=0)
    """Connect and command timeout; no client-side retries."""
    redis_retry_seconds: float = Field(default=1.0, ge=0)
    """After a Redis failure, apply the failure mode this long before trying Redis again."""
    max_keys: int = Field(default=100_000, gt=0)
    """Memory backend: most buckets kept; full ones are dropped first, then the least recently used."""
    default_cost: int = Field(default=1, ge=0)
    """Tokens a request takes unless a policy obligation says otherwise."""
    buckets: tuple[BucketConfig, ...] = ()
    """The buckets; none: the stage is off."""

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        return check_redis_url(value)

    @model_validator(mode="after")
    def _unique_names(self) -> RateLimitsConfig:
        seen: set[str] = set()
        for index, bucket in enumerate(self.buckets):
            if bucket.name in seen:
                raise ValueError(f"buckets.{index}.name: duplicate bucket name {bucket.name!r}")
            seen.add(bucket.name)
        return self
