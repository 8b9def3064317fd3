"""The policy probe: the shipped policies evaluated in-process by the sidecar's own engine, per tool and principal."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import CacheConfig, PolicyConfig, RateLimitsConfig
from proxy.policy.factory import build_engine
from proxy.policy.loader import read_source
from proxy.runtime.policy_probe import CoverageCheck
from proxy.tools.coverage import principals_from
from tests.kit import ROOT

POLICIES = ROOT / "policies"
READ_ONLY = {"readOnlyHint": True, "openWorldHint": False}
TOOLS = {
    "add": {"name": "add", "annotations": READ_ONLY,
            "inputSchema": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}},
    "delete_file": {"name": "delete_file", "annotations": {"destructiveHint": True},
                    "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}}},
    "wipe": {"name": "wipe", "inputSchema": {"type": "object", "properties": {"target": {"type": "string"}}}},
    "profile": {"name": "profile", "annotations": READ_ONLY,
                "inputSchema": {"type": "object", "properties": {"user_id": {"type": "string"}}}},
}


def check(policies: Path = POLICIES, rate_limits: RateLimitsConfig | None = None,
          cache: CacheConfig | None = None) -> CoverageCheck:
    engine = build_engine(PolicyConfig(directory=str(policies), reload=False), policies, label="test")
    source = read_source(policies)
    text = "\n".join(source.modules.values())
    return CoverageCheck(engine, "upstream", rate_limits or RateLimitsConfig(), cache or CacheConfig(), text)


async def coverage_of(checker: CoverageCheck, given: list[dict] | None = None):
    principals = principals_from(read_source(POLICIES).data, given or [])
    return await checker.run(TOOLS, principals)


async def test_the_shipped_policy_decides_per_role() -> None:
    coverage = await coverage_of(check())
    assert coverage.revision is not None
    assert coverage.decisions["add"]["anonymous"] == "deny"
    assert coverage.decisions["add"]["role:reader"] == "allow"
    assert coverage.decisions["wipe"]["role:operator"] == "approval"  # unannotated counts as destructive
    assert coverage.decisions["wipe"]["role:admin"] == "allow"
    assert coverage.decisions["wipe"]["role:developer"] == "deny"
    rules = {(f.rule.id, f.tool): f for f in coverage.findings}
    assert "role:admin" in rules["policy.destructive-without-approval", "wipe"].evidence
    assert rules["policy.destructive-without-approval", "wipe"].severity.value == "medium"
    assert ("policy.anonymous-callable", "add") not in rules
    assert ("policy.unmentioned-tool", "wipe") in rules and ("policy.unmentioned-tool", "add") not in rules
    assert ("delete_file", "path") in coverage.covered_inputs  # arguments.rego's path_prefix reads it
    assert ("wipe", "target") not in coverage.covered_inputs


async def test_an_open_policy_is_found_callable_anonymously(tmp_path: Path) -> None:
    (tmp_path / "open.rego").write_text("package mcp\n\nimport rego.v1\n\ndecision := {\"allow\": true}\n")
    coverage = await check(tmp_path).run(TOOLS, principals_from({}, []))
    rules = {(f.rule.id, f.tool): f.severity.value for f in coverage.findings}
    assert rules["policy.anonymous-callable", "add"] == "high"
    assert rules["policy.destructive-without-approval", "wipe"] == "critical"
    assert rules["policy.no-rate-limit", "add"] == "medium"


@pytest.mark.parametrize(("buckets", "limited"), [
    ([{"name": "all", "capacity": 5, "refill_per_second": 1}], True),
    ([{"name": "other", "capacity": 5, "refill_per_second": 1, "match": {"tools": ["delete_file"]}}], False),
])
async def test_buckets_are_matched_as_the_rate_limit_stage_matches_them(tmp_path: Path, buckets: list,
                                                                       limited: bool) -> None:
    (tmp_path / "open.rego").write_text("package mcp\n\nimport rego.v1\n\ndecision := {\"allow\": true}\n")
    checker = check(tmp_path, RateLimitsConfig.model_validate({"buckets": buckets}))
    coverage = await checker.run({"add": TOOLS["add"]}, principals_from({}, []))
    assert (not any(f.rule.id == "policy.no-rate-limit" for f in coverage.findings)) is limited


async def test_public_cache_of_caller_identifying_arguments_is_found(tmp_path: Path) -> None:
    (tmp_path / "open.rego").write_text("package mcp\n\nimport rego.v1\n\ndecision := {\"allow\": true}\n")
    cache = CacheConfig.model_validate({"enabled": True, "tools": {"profile": {"ttl_seconds": 60, "scope": "public"},
                                                                   "add": {"ttl_seconds": 60, "scope": "public"}}})
    coverage = await check(tmp_path, cache=cache).run(TOOLS, principals_from({}, []))
    public = [f for f in coverage.findings if f.rule.id == "policy.public-cache-identifying-arguments"]
    assert [(f.tool, f.evidence) for f in public] == [
        ("profile", "cached as public, and the arguments user_id identify the caller")]
