"""The cache section: per-tool and per-method rules, the Redis backend's URL, and the size limits."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from proxy.config.cache import CACHE_HINTED_METHODS, CacheConfig, CacheMethodConfig, CacheToolConfig


def test_defaults_are_off_in_memory() -> None:
    config = CacheConfig()
    assert config.enabled is False and config.backend == "memory"
    assert config.max_entry_bytes <= config.max_bytes


def test_tool_rules_default_to_private_and_need_a_positive_ttl() -> None:
    rule = CacheToolConfig(ttl_seconds=5)
    assert rule.scope == "private" and rule.key_claims == ()
    with pytest.raises(ValidationError, match="greater than 0"):
        CacheToolConfig(ttl_seconds=0)
    with pytest.raises(ValidationError):
        CacheToolConfig(ttl_seconds=5, scope="shared")  # type: ignore[arg-type]


def test_method_rules_may_leave_ttl_and_scope_to_the_upstream() -> None:
    rule = CacheMethodConfig()
    assert rule.ttl_seconds is None and rule.scope is None
    assert CacheMethodConfig(scope="none").scope == "none"
    with pytest.raises(ValidationError):
        CacheMethodConfig(ttl_seconds=-1)


def test_every_hinted_method_may_be_configured() -> None:
    config = CacheConfig(methods={method: {"ttl_seconds": 1} for method in CACHE_HINTED_METHODS})
    assert set(config.methods) == set(CACHE_HINTED_METHODS)


def test_an_uncacheable_method_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match=r"cannot cache \['tools/call'\]"):
        CacheConfig(methods={"tools/call": {}, "tools/list": {}})


@pytest.mark.parametrize("namespace", ["", "a b", "tab\there"])
def test_namespace_must_be_one_word(namespace: str) -> None:
    with pytest.raises(ValidationError, match="non-empty without whitespace"):
        CacheConfig(namespace=namespace)


def test_redis_backend_needs_a_redis_url() -> None:
    with pytest.raises(ValidationError, match=r"cache\.redis_url"):
        CacheConfig(backend="redis")
    with pytest.raises(ValidationError, match=r"cache\.redis_url"):
        CacheConfig(backend="redis", redis_url="http://redis:6379")
    assert CacheConfig(backend="redis", redis_url="rediss://r:6380/2").redis_url == "rediss://r:6380/2"


def test_an_entry_cannot_be_larger_than_the_whole_cache() -> None:
    with pytest.raises(ValidationError, match="max_entry_bytes cannot exceed"):
        CacheConfig(max_bytes=100, max_entry_bytes=101)
    assert CacheConfig(max_bytes=100, max_entry_bytes=100).max_entry_bytes == 100


@pytest.mark.parametrize("op_timeout", [0, 10.5])
def test_redis_operation_timeout_is_bounded(op_timeout: float) -> None:
    with pytest.raises(ValidationError):
        CacheConfig(op_timeout_seconds=op_timeout)
