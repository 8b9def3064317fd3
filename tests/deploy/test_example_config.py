"""deploy/sidecar.example.yaml: the complete configuration loads, and says what its comments promise."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from proxy.config import load_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "sidecar.example.yaml"
JWKS = "https://idp.internal/realms/acme/protocol/openid-connect/certs"


def load(**env: str):
    return load_config(EXAMPLE, env={"MCP_SIDECAR__AUTH__JWKS_URL": JWKS, **env})


def test_example_loads_with_every_stage_on() -> None:
    config = load()
    assert config.auth.mode == "required" and config.auth.jwks_url == JWKS
    assert config.auth.roles_claim == "realm_access.roles"
    assert config.policy.engine == "rego" and config.cache.enabled and config.cache.cache_read_only_tools
    assert config.telemetry.enabled and config.telemetry.otlp_endpoint.startswith("http")
    assert config.audit.sink == "file" and config.audit.path
    assert config.rate_limits.backend == "memory" and config.rate_limits.buckets
    assert config.server.admin_listen.startswith("127.0.0.1:")  # approvals and purges stay private


def test_buckets_carry_the_names_the_shipped_policy_picks() -> None:
    settings = json.loads((ROOT / "policies" / "data.json").read_text())["settings"]["rate_limit"]
    names = {bucket.name for bucket in load().rate_limits.buckets}
    assert names == set(settings["plans"].values())
    for bucket in load().rate_limits.buckets:
        assert bucket.key == ("subject",)  # one bucket per caller, not one for everybody


def test_commented_redis_variant_loads() -> None:
    lines = EXAMPLE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "share their buckets in Redis" in line)
    block = []
    for line in lines[start + 1:]:
        if not line.startswith("  # "):
            break
        block.append(line[4:])
    redis = yaml.safe_load("\n".join(block))
    assert set(redis) >= {"backend", "redis_url", "key_prefix", "failure_mode"}
    config = load_config(EXAMPLE, env={"MCP_SIDECAR__AUTH__JWKS_URL": JWKS},
                         overrides={f"rate_limits.{key}": value for key, value in redis.items()})
    assert config.rate_limits.backend == "redis" and config.rate_limits.redis_url.startswith("rediss://")
    assert config.rate_limits.key_prefix == redis["key_prefix"]
