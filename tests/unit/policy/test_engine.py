"""The policy input document and the checks that turn bad policy results into denials."""

from __future__ import annotations

import pytest

from proxy.catalog import ToolInfo
from proxy.context import Principal
from proxy.policy.engine import INPUT_VERSION, decision_from, policy_input, visible_keys
from tests.kit import make_ctx


def test_input_carries_principal_call_and_trusted_tool_facts() -> None:
    principal = Principal(subject="ann", issuer="https://idp", claims={"plan": "pro"}, roles=frozenset({"b", "a"}))
    ctx = make_ctx("tools/call", target="add", arguments={"a": 1}, principal=principal)
    tool = ToolInfo.from_definition({"name": "add", "inputSchema": {}, "annotations": {"readOnlyHint": True}})
    document = policy_input(ctx, "up", tool)
    assert document["version"] == INPUT_VERSION == 1
    assert document["principal"] == {"sub": "ann", "issuer": "https://idp", "claims": {"plan": "pro"}, "scopes": [],
                                     "roles": ["a", "b"], "authenticated": True}
    assert document["mcp"]["tool"] == {"name": "add", "arguments": {"a": 1}, "known": True,
                                       "annotations": tool.annotations, "hash": tool.hash}
    assert document["mcp"]["tool"]["annotations"]["destructiveHint"] is True  # MCP default applied
    assert document["request"]["client_address"] == "127.0.0.1" and document["request"]["time"].endswith("+00:00")
    assert document["upstream"] == {"name": "up"}


def test_input_for_unknown_tools_prompts_and_resources() -> None:
    unknown = policy_input(make_ctx("tools/call", target="nope"), "up")["mcp"]["tool"]
    assert unknown["known"] is False and unknown["annotations"] is None
    prompt = policy_input(make_ctx("prompts/get", target="greet", arguments={"name": "x"}), "up")["mcp"]
    assert prompt["prompt"] == {"name": "greet", "arguments": {"name": "x"}} and prompt["tool"] is None
    resource = policy_input(make_ctx("resources/read", target="demo://readme"), "up")["mcp"]
    assert resource["resource"] == {"uri": "demo://readme"}


def test_valid_decision() -> None:
    decision = decision_from({"allow": True, "reasons": [], "obligations": {
        "rate_limit": {"buckets": ["plan-pro"], "cost": 2}, "cache": {"scope": "private", "ttl_seconds": 1.5,
                                                                      "key_claims": ["tenant"]},
        "redact": ["password"], "require_approval": True}}, "rev", "id")
    assert decision.allow and decision.revision == "rev" and decision.decision_id == "id"
    assert decision.obligations["require_approval"] is True


def test_a_bare_deny_gets_a_reason() -> None:
    assert decision_from({"allow": False}, "rev").reasons == ("denied by policy",)


@pytest.mark.parametrize("value", [
    None, True, [], {"allow": "true"}, {"reasons": []}, {"allow": True, "reasons": [1]},
    {"allow": True, "obligations": []},
    {"allow": True, "obligations": {"teleport": True}},
    {"allow": True, "obligations": {"rate_limit": {"cost": -1}}},
    {"allow": True, "obligations": {"rate_limit": {"cost": True}}},
    {"allow": True, "obligations": {"rate_limit": {"buckets": "plan-pro"}}},
    {"allow": True, "obligations": {"cache": {"scope": "world"}}},
    {"allow": True, "obligations": {"cache": {"ttl_seconds": "long"}}},
    {"allow": True, "obligations": {"redact": "password"}},
    {"allow": True, "obligations": {"require_approval": "yes"}},
])
def test_undefined_or_ill_typed_results_deny(value) -> None:
    decision = decision_from(value, "rev")
    assert decision.allow is False and decision.reasons[0].startswith("policy decision is")


def test_visible_keys_fail_closed() -> None:
    assert visible_keys(["a", "b"]) == {"a", "b"}
    assert visible_keys(None) == frozenset() and visible_keys({"a": 1}) == frozenset()
    assert visible_keys(["a", 1]) == frozenset()


def test_documented_schema_matches_the_input_the_sidecar_builds() -> None:
    import orjson
    from jsonschema import Draft202012Validator

    from proxy.policy.listing import list_item
    from proxy.policy.narrowing import without_arguments
    from tests.kit import ROOT

    schema = orjson.loads((ROOT / "policies" / "input.schema.json").read_bytes())
    validator = Draft202012Validator(schema)
    tool = ToolInfo.from_definition({"name": "add", "inputSchema": {}})
    listing = ("tools", [list_item("tools", {"name": "add", "inputSchema": {}}, "name")])
    documents = [
        policy_input(make_ctx("tools/call", target="add", arguments={"a": 1}), "up", tool),
        policy_input(make_ctx("tools/call", target="nope"), "up"),
        policy_input(make_ctx("prompts/get", target="greet", arguments={"name": "x"}), "up"),
        policy_input(make_ctx("resources/read", target="demo://readme"), "up"),
        policy_input(make_ctx("tools/list"), "up", listing=listing),
        policy_input(make_ctx("notifications/initialized", request_id=None), "up"),
        orjson.loads((ROOT / "policies" / "examples" / "call-run-query.json").read_bytes()),
    ]
    documents.append(without_arguments(documents[0]))  # what data.mcp.argument_names is evaluated over
    for document in documents:
        validator.validate(document)


def test_policy_engine_off_survives_yaml_and_environment() -> None:
    from proxy.config import load_config

    env = {"MCP_SIDECAR__POLICY__ENGINE": "off", "MCP_SIDECAR__AUTH__MODE": "off",
           "MCP_SIDECAR__UPSTREAM__URL": "http://127.0.0.1:9/mcp"}
    assert load_config(None, env=env).policy.engine == "off"
