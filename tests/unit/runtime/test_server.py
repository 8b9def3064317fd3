"""What several workers do not share is said once at startup, so a deployment does not assume it is."""

from __future__ import annotations

from proxy.config import load_config
from proxy.runtime.server import per_worker_state
from tests.kit import make_config

BUCKET = {"name": "per-user", "capacity": 10, "refill_per_second": 1, "key": ["subject"]}


def test_a_shared_setup_has_nothing_to_say() -> None:
    config = make_config(server__workers=2, rate_limits__backend="redis", rate_limits__buckets=[BUCKET],
                         policy__engine="rego", approval__backend="redis")
    assert per_worker_state(config) == []


def test_memory_limits_approvals_and_spawned_upstreams_are_each_named() -> None:
    config = make_config(server__workers=2, rate_limits__buckets=[BUCKET], policy__engine="rego")
    said = per_worker_state(config)
    assert len(said) == 2
    assert "rate_limits.backend: redis" in said[0] and "approval.backend: redis" in said[1]

    stdio = load_config(None, env={}, overrides={"upstream.command": ["python", "-m", "proxy.runtime.demo"],
                                                 "auth.mode": "off", "server.workers": 2})
    assert any("run one worker" in line for line in per_worker_state(stdio))


def test_memory_limits_without_buckets_are_no_limits_at_all() -> None:
    assert per_worker_state(make_config(server__workers=2)) == []
