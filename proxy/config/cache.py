"""Response caching."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from proxy.config.base import Section

CACHE_HINTED_METHODS = ("server/discover", "tools/list", "prompts/list", "resources/list", "resources/templates/list",
                        "resources/read")


class CacheToolConfig(Section):
    ttl_seconds: float = Field(gt=0)
    scope: Literal["public", "private"] = "private"
    key_claims: tuple[str, ...] = ()  # claims that, besides issuer and subject, tell callers apart


class CacheMethodConfig(Section):
    ttl_seconds: float | None = Field(default=None, gt=0)  # used when the upstream sends no ttlMs
    scope: Literal["public", "private", "none"] | None = None  # None: the upstream's cacheScope (private if absent)


class CacheConfig(Section):
    enabled: bool = False
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str | None = None  # redis://[:password@]host:port/db
    namespace: str = "mcp-sidecar:cache"  # key prefix in Redis; one per deployment (or per test)
    op_timeout_seconds: float = Field(default=0.25, gt=0, le=10)  # each Redis operation; slower = bypass
    max_entries: int = Field(default=10_000, gt=0)  # memory backend
    max_bytes: int = Field(default=64 * 1024 * 1024, gt=0)  # memory backend, sum of stored entries
    max_entry_bytes: int = Field(default=1024 * 1024, gt=0)  # larger results are never stored
    default_ttl_seconds: float = Field(default=60.0, gt=0)  # obligations without ttl, read-only tools
    max_ttl_seconds: float = Field(default=3600.0, gt=0)  # caps every TTL, the upstream's ttlMs included
    single_flight_wait_seconds: float = Field(default=10.0, gt=0)  # how long identical calls wait for the first
    tools: dict[str, CacheToolConfig] = {}
    cache_read_only_tools: bool = False  # also cache tools whose trusted annotations say readOnlyHint: true
    methods: dict[str, CacheMethodConfig] = {}

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, value: dict[str, CacheMethodConfig]) -> dict[str, CacheMethodConfig]:
        unknown = sorted(set(value) - set(CACHE_HINTED_METHODS))
        if unknown:
            raise ValueError(f"cannot cache {unknown}; cacheable methods: {list(CACHE_HINTED_METHODS)}")
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not value or any(char.isspace() for char in value):
            raise ValueError("must be non-empty without whitespace")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CacheConfig:
        if self.backend == "redis" and not (self.redis_url or "").startswith(("redis://", "rediss://")):
            raise ValueError("cache.redis_url (redis://host:port/db) is required when cache.backend is 'redis'")
        if self.max_entry_bytes > self.max_bytes:
            raise ValueError("cache.max_entry_bytes cannot exceed cache.max_bytes")
        return self
