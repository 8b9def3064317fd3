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
    tools: tuple[str, ...] | None = None  # tools/call of these tools only
    claims: dict[str, tuple[str, ...]] | None = None  # dotted claim path -> accepted values (e.g. plan: [free])


class BucketConfig(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    capacity: int = Field(gt=0)  # tokens when full: the burst a caller may spend at once
    refill_per_second: float = Field(gt=0)  # tokens added back per second
    key: tuple[str, ...] = ()  # subject | claim:<dotted.path> | tool | method | session | client; () = one bucket
    match: BucketMatch = BucketMatch()

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
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "mcp-sidecar:rl:"  # Redis keys: <key_prefix><bucket>:<key values>
    failure_mode: Literal["fail_open", "fail_closed"] = "fail_open"  # when Redis cannot answer
    redis_timeout_seconds: float = Field(default=0.25, gt=0)  # connect and command timeout
    redis_retry_seconds: float = Field(default=1.0, ge=0)  # after a failure, skip Redis this long
    max_keys: int = Field(default=100_000, gt=0)  # memory backend: buckets kept at most
    default_cost: int = Field(default=1, ge=0)  # tokens a call takes unless policy says otherwise
    buckets: tuple[BucketConfig, ...] = ()  # no buckets: the stage is off

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
