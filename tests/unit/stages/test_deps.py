"""Deps: one frozen record of the shared objects, with fresh defaults and metrics that are always usable."""

from __future__ import annotations

import dataclasses
import time

import pytest

from proxy.approval.book import ApprovalBook
from proxy.catalog import ToolCatalog
from proxy.runtime.app import create_deps
from proxy.stages.deps import Deps
from proxy.upstream import create_upstream
from tests.kit import make_config


def minimal() -> Deps:
    config = make_config()
    upstream = create_upstream(config)  # built, not started: nothing connects
    return Deps(config=config, upstream=upstream, catalog=ToolCatalog(upstream), approvals=ApprovalBook())


def test_deps_are_frozen() -> None:
    deps = minimal()
    with pytest.raises(dataclasses.FrozenInstanceError):
        deps.cache = None  # type: ignore[misc]


def test_optional_features_default_to_off_and_defaults_are_not_shared() -> None:
    first, second = minimal(), minimal()
    assert (first.authenticator, first.audit, first.cache) == (None, None, None)
    assert not first.telemetry.enabled and first.clock is time.monotonic
    assert first.readiness is not second.readiness and first.telemetry is not second.telemetry
    first.readiness.add("upstream", first.upstream.readiness)
    assert [name for name, _ in second.readiness] == []


def test_metrics_are_the_telemetrys_and_usable_when_telemetry_is_off() -> None:
    deps = minimal()
    assert deps.metrics is deps.telemetry.metrics
    deps.metrics.count("policy_reload_failures", which="active")  # a no-op meter: nothing raises
    with pytest.raises(KeyError):
        deps.metrics.count("no_such_counter")


def test_the_app_builds_each_shared_object_from_its_section(tmp_path) -> None:
    secret = tmp_path / "hmac"
    secret.write_text("s" * 40)
    config = make_config(cache__enabled=True, audit__enabled=True, audit__sink="file",
                         audit__path=str(tmp_path / "audit.jsonl"), auth__mode="required",
                         auth__hmac_secret_file=str(secret), auth__issuers=["https://idp"],
                         approval__max_pending=3)
    deps = create_deps(config, create_upstream(config))
    assert deps.cache is not None and deps.cache.catalog is deps.catalog
    assert deps.audit is not None and deps.authenticator is not None
    assert deps.approvals.max_pending == 3
    assert [name for name, _ in deps.readiness] == ["upstream"]  # no JWKS, no Redis: nothing else to ask
    deps.audit.log.close()
