"""Telemetry names and what a call's span says: span names, call and server attributes, decisions, the error."""

from __future__ import annotations

import pytest

from proxy import mcp
from proxy.context import CallRecord
from proxy.reply import Reply
from proxy.telemetry import semconv
from tests.kit import make_ctx


@pytest.mark.parametrize(("method", "target", "uri_in_name", "name"), [
    ("tools/call", "add", False, "tools/call add"),
    ("prompts/get", "greet", False, "prompts/get greet"),
    ("resources/read", "file:///a", False, "resources/read"),
    ("resources/read", "file:///a", True, "resources/read file:///a"),
    ("tools/list", None, True, "tools/list"),
])
def test_span_names(method: str, target: str | None, uri_in_name: bool, name: str) -> None:
    assert semconv.span_name(make_ctx(method, target=target), uri_in_name) == name


def test_a_message_without_a_method_is_named_mcp() -> None:
    assert semconv.span_name(make_ctx("tools/call").evolve(method=None, target=None)) == "mcp"


def test_sidecar_attributes_share_one_prefix() -> None:
    own = [value for name, value in vars(semconv).items() if name.isupper() and isinstance(value, str)
           and value.startswith("mcp_sidecar")]
    assert own and all(value.startswith(semconv.PREFIX) for value in own) and semconv.PREFIX == "mcp_sidecar."


def test_tool_call_attributes() -> None:
    attributes = semconv.call_attributes(make_ctx(target="add", request_id=7))
    assert attributes == {"mcp.method.name": "tools/call", "mcp.protocol.version": mcp.MODERN_VERSION,
                          "jsonrpc.request.id": "7", "gen_ai.tool.name": "add",
                          "gen_ai.operation.name": "execute_tool"}


def test_resource_and_prompt_attributes_and_notifications_without_id() -> None:
    resource = semconv.call_attributes(make_ctx("resources/read", target="file:///a"))
    assert resource["mcp.resource.uri"] == "file:///a" and "gen_ai.tool.name" not in resource
    prompt = semconv.call_attributes(make_ctx("prompts/get", target="greet"))
    assert prompt["gen_ai.prompt.name"] == "greet" and "gen_ai.operation.name" not in prompt
    notification = semconv.call_attributes(make_ctx("notifications/initialized", target=None, request_id=None))
    assert "jsonrpc.request.id" not in notification


def test_server_attributes_name_the_session_only_for_legacy_calls() -> None:
    legacy = semconv.server_attributes(make_ctx(version="2025-06-18", session_id="s-1"))
    assert legacy["mcp.session.id"] == "s-1" and legacy["client.address"] == "127.0.0.1"
    assert (legacy["network.transport"], legacy["network.protocol.name"]) == ("tcp", "http")
    modern = semconv.server_attributes(make_ctx(session_id="s-1", client_address=None))
    assert "mcp.session.id" not in modern and "client.address" not in modern


def test_decision_attributes_leave_out_what_was_not_decided() -> None:
    record = CallRecord()
    assert semconv.decision_attributes(record) == {"mcp_sidecar.decision.id": record.decision_id,
                                                   "mcp_sidecar.outcome": "allowed"}
    record.policy_decision, record.policy_reasons, record.policy_revision = "deny", ("a", "b"), "r1"
    record.cache_status, record.approval_id = "hit", "ap-1"
    record.rate_limit = {"bucket": "plan-free", "remaining": 3, "nested": {"x": 1}}
    attributes = semconv.decision_attributes(record)
    assert attributes["mcp_sidecar.policy.reasons"] == ("a", "b")
    assert attributes["mcp_sidecar.rate_limit.bucket"] == "plan-free"
    assert attributes["mcp_sidecar.rate_limit.remaining"] == 3
    assert "mcp_sidecar.rate_limit.nested" not in attributes  # span attributes are scalars
    assert (attributes["mcp_sidecar.cache.status"], attributes["mcp_sidecar.approval.id"]) == ("hit", "ap-1")


def result(body: dict, status: int = 200) -> Reply:
    return Reply.json({"jsonrpc": "2.0", "id": 1, **body}, status=status)


def test_reply_error_prefers_the_sidecars_own_refusal() -> None:
    record = CallRecord()
    record.fail("denied", "policy_denied", "Denied by policy: no")
    reply = result({"error": {"code": -31001, "message": "x"}})
    assert semconv.reply_error(record, reply) == ("policy_denied", "-31001", "Denied by policy: no")


def test_reply_error_from_the_answer() -> None:
    record = CallRecord()
    assert semconv.reply_error(record, result({"error": {"code": -32601, "message": "Method not found"}})) == (
        "-32601", "-32601", "Method not found")
    assert semconv.reply_error(record, result({"result": {"isError": True, "content": []}})) == (
        "tool_error", None, None)
    assert semconv.reply_error(record, result({"result": {}})) == (None, None, None)
    assert semconv.reply_error(None, result({"error": {"code": 5, "message": 9}})) == ("5", "5", None)


def test_reply_error_of_broken_streams_and_http_failures() -> None:
    broken = Reply(status=200, stream_error="upstream closed")
    assert semconv.reply_error(CallRecord(), broken) == ("stream_broken", None, "upstream closed")
    assert semconv.reply_error(CallRecord(), Reply(status=502, body=b"Bad Gateway")) == ("502", None, "HTTP 502")


def test_tool_result_is_the_final_result_if_any() -> None:
    assert semconv.tool_result(result({"result": {"content": [1]}})) == {"content": [1]}
    assert semconv.tool_result(Reply()) is None


def test_the_approver_goes_on_the_span_with_the_approval() -> None:
    attributes = semconv.decision_attributes(CallRecord(approval_id="a1", approver="approver-bot"))
    assert attributes[semconv.APPROVAL_ID] == "a1" and attributes[semconv.APPROVER] == "approver-bot"
    assert semconv.APPROVER not in semconv.decision_attributes(CallRecord())
