"""Response caching."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from proxy.config.base import Section

CACHE_HINTED_METHODS = ("server/discover", "tools/list", "prompts/list", "resources/list", "resources/templates/list",
                        "resources/read")


class CacheToolConfig(Section):
    ttl_seconds: float = Field(gt=0)
    """Cache this tool's results this long."""
    scope: Literal["public", "private"] = "private"
    """`private`: per caller; `public`: shared by every caller of the upstream."""
    key_claims: tuple[str, ...] = ()
    """Claims that, with issuer and subject, make up the caller's context (e.g. a tenant)."""


class CacheMethodConfig(Section):
    ttl_seconds: float | None = Field(default=None, gt=0)
    """TTL when the upstream sends no `ttlMs` (hinted methods only)."""
    scope: Literal["public", "private", "none"] | None = None
    """`none` never caches. Unset: the upstream's `cacheScope` (private if absent)."""


class CacheConfig(Section):
    enabled: bool = False
    """Turn the cache stage on."""
    backend: Literal["memory", "redis"] = "memory"
    """`memory` (this process) or `redis` (shared by replicas)."""
    redis_url: str | None = None
    """`redis://[:password@]host:port/db` (or `rediss://`); required for `redis`."""
    namespace: str = "mcp-sidecar:cache"
    """Redis key prefix; one per deployment."""
    op_timeout_seconds: float = Field(default=0.25, gt=0, le=10)
    """Limit for each Redis operation (and connect); slower means the cache is bypassed."""
    max_entries: int = Field(default=10_000, gt=0)
    """Memory backend: most entries kept (least recently used evicted first)."""
    max_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    """Memory backend: most result bytes kept."""
    max_entry_bytes: int = Field(default=1024 * 1024, gt=0)
    """Larger results are never stored."""
    default_ttl_seconds: float = Field(default=60.0, gt=0)
    """TTL for obligations without `ttl_seconds` and for read-only tools."""
    max_ttl_seconds: float = Field(default=3600.0, gt=0)
    """Caps every TTL, the upstream's `ttlMs` included."""
    single_flight_wait_seconds: float = Field(default=10.0, gt=0)
    """How long identical concurrent calls wait for the first one."""
    tools: dict[str, CacheToolConfig] = {}
    """Tools whose `tools/call` results are cached, by name."""
    cache_read_only_tools: bool = False
    """Also cache tools the sidecar's own `tools/list` marks `readOnlyHint: true` (private,
    `default_ttl_seconds`)."""
    methods: dict[str, CacheMethodConfig] = {}
    """Per method rules for the hinted methods (`tools/list`, `resources/read`, ...)."""

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
