"""Policy coverage, the judging half: principals from policy data, sample arguments, what verdicts mean."""

from __future__ import annotations

from proxy.policy.loader import read_source
from proxy.tools.coverage import Verdict, judge, principals_from, roles_in, sample_arguments
from tests.kit import ROOT

POLICIES = ROOT / "policies"


def test_roles_come_from_the_policy_data() -> None:
    assert roles_in(read_source(POLICIES).data) == {"reader", "analyst", "developer", "operator", "admin"}
    labels = [p.label for p in principals_from({"roles": {"x": []}}, [{"sub": "ann", "roles": ["x"]}])]
    assert labels == ["anonymous", "role:x", "ann"]


def test_sample_arguments_follow_the_schema() -> None:
    schema = {"inputSchema": {"properties": {"s": {"type": "string"}, "n": {"type": "number"}, "e": {"enum": ["x"]},
                                             "d": {"type": "string", "default": "dd"}, "b": {"type": "boolean"}}}}
    assert sample_arguments(schema) == {"s": "sample", "n": 1, "e": "x", "d": "dd", "b": False}


def test_verdicts_become_findings() -> None:
    principals = principals_from({"roles": {"admin": []}}, [])
    wipe = {"name": "wipe", "inputSchema": {"properties": {"user_id": {"type": "string"}}}}
    verdicts = {"anonymous": Verdict(True, public_cache=True), "role:admin": Verdict(True, approval=True,
                                                                                     limited=True)}
    found = {f.rule.id: (f.severity.value, f.evidence) for f in judge("wipe", wipe, principals, verdicts, "")}
    assert found == {
        "policy.destructive-without-approval": ("critical", "allowed without approval for anonymous"),
        "policy.anonymous-callable": ("high", "allowed for an anonymous caller from 203.0.113.10"),
        "policy.no-rate-limit": ("medium", "no bucket applies to tools/call wipe for anonymous"),
        "policy.public-cache-identifying-arguments": ("high", "cached as public, and the arguments user_id "
                                                              "identify the caller"),
        "policy.unmentioned-tool": ("low", "the name 'wipe' appears in no policy file"),
    }
    assert list(judge("wipe", wipe, principals, {label: Verdict(False) for label in verdicts}, None)) == []
    assert Verdict(True, approval=True).outcome == "approval" and Verdict(False).outcome == "deny"
