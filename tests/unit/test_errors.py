"""The one error-to-reply mapping, checked against the table in README.md ("What the client receives when the sidecar
answers itself"): every ProxyError subclass's HTTP status and JSON-RPC code, and the tool-result form for tools/call."""

from __future__ import annotations

from typing import Any

import pytest

from proxy import errors, jsonrpc, mcp
from proxy.errors import (
    ApprovalDeniedError,
    ApprovalUnavailableError,
    AuthUnavailableError,
    BadMessageError,
    ForbiddenError,
    HeaderMismatchError,
    LimiterUnavailableError,
    MethodNotAllowedError,
    OriginRejectedError,
    PayloadTooLargeError,
    PolicyDeniedError,
    ProxyError,
    RateLimitedError,
    SessionLimitError,
    SessionNotFoundError,
    SessionNotOwnedError,
    StreamConflictError,
    ToolDriftError,
    UnauthenticatedError,
    UnsupportedMediaTypeError,
    UpstreamBadOutputError,
    UpstreamError,
    UpstreamTimeoutError,
    error_reply,
    internal_error_reply,
)
from tests.kit import make_ctx

# class -> (HTTP status for a non-tools/call request, JSON-RPC code, answered as a tool result for tools/call)
TABLE: dict[type[ProxyError], tuple[int, int, bool]] = {
    ProxyError: (400, -32600, False),
    HeaderMismatchError: (400, -32020, False),
    UnsupportedMediaTypeError: (415, -32600, False),
    PayloadTooLargeError: (413, -32600, False),
    OriginRejectedError: (403, -32600, False),
    UnauthenticatedError: (401, -31401, False),
    ForbiddenError: (403, -31403, False),
    AuthUnavailableError: (503, -31503, False),
    SessionNotOwnedError: (404, -32600, False),
    PolicyDeniedError: (200, -31001, True),
    ApprovalDeniedError: (200, -31001, True),
    ToolDriftError: (200, -31001, True),
    ApprovalUnavailableError: (503, -31001, True),
    RateLimitedError: (429, -31029, True),
    LimiterUnavailableError: (503, -31029, True),
    SessionNotFoundError: (404, -32600, False),
    MethodNotAllowedError: (405, -32600, False),
    StreamConflictError: (409, -32600, False),
    UpstreamError: (502, -31002, False),
    UpstreamTimeoutError: (504, -31004, False),
    SessionLimitError: (503, -31002, False),
    UpstreamBadOutputError: (502, -31005, False),
}


def subclasses(base: type[ProxyError]) -> set[type[ProxyError]]:
    found = set(base.__subclasses__())
    for child in list(found):
        found |= subclasses(child)
    return found


def test_the_table_names_every_error_class() -> None:
    declared = {value for value in vars(errors).values() if isinstance(value, type) and issubclass(value, ProxyError)}
    assert declared - {BadMessageError} == set(TABLE)
    assert subclasses(ProxyError) - {BadMessageError} <= set(TABLE)


@pytest.mark.parametrize("cls", list(TABLE), ids=lambda cls: cls.__name__)
def test_a_non_tool_request_gets_a_json_rpc_error_with_its_id(cls: type[ProxyError]) -> None:
    status, code, _ = TABLE[cls]
    ctx = make_ctx("prompts/get", target="greet", request_id="r-7")
    reply = error_reply(cls("why", data={"k": 1}, headers={"Retry-After": "3"}), ctx)
    assert reply.status == status and ctx.record.http_status == status
    assert reply.message == {"jsonrpc": "2.0", "id": "r-7", "error": {"code": code, "message": "why", "data": {"k": 1}}}
    assert reply.headers["Retry-After"] == "3" and reply.content_type == "application/json"


@pytest.mark.parametrize("cls", list(TABLE), ids=lambda cls: cls.__name__)
def test_tools_call_refusals_the_model_should_read_are_tool_results(cls: type[ProxyError]) -> None:
    status, code, visible = TABLE[cls]
    ctx = make_ctx("tools/call", target="delete", request_id=3)
    reply = error_reply(cls("not you", data={"decision_id": "d"}, headers={"RateLimit": "x"}), ctx)
    assert reply.headers["RateLimit"] == "x"
    assert reply.message is not None and reply.message["id"] == 3
    if visible:
        assert reply.status == 200
        assert reply.message["result"] == {"content": [{"type": "text", "text": "not you"}], "isError": True,
                                           "structuredContent": {"decision_id": "d"}, "resultType": "complete"}
    else:
        assert reply.status == status and reply.message["error"]["code"] == code


def test_legacy_tool_results_carry_no_result_type() -> None:
    ctx = make_ctx("tools/call", version="2025-06-18")
    reply = error_reply(RateLimitedError("slow down"), ctx)
    assert reply.message is not None
    assert reply.message["result"] == {"content": [{"type": "text", "text": "slow down"}], "isError": True}


def test_sidecar_codes_sit_outside_the_reserved_json_rpc_range() -> None:
    own = {code for _, code, _ in TABLE.values()} - {jsonrpc.INVALID_REQUEST, jsonrpc.HEADER_MISMATCH}
    assert own and all(not -32768 <= code <= -32000 for code in own)


@pytest.mark.parametrize(("code", "status"), [(jsonrpc.PARSE_ERROR, 400), (jsonrpc.INVALID_REQUEST, 400)])
def test_bad_messages_carry_their_own_code_and_a_null_id_without_context(code: int, status: int) -> None:
    reply = error_reply(BadMessageError(code, "Parse error"), None)
    assert reply.status == status
    assert reply.message == {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": "Parse error"}}
    assert BadMessageError(code, "x").error_type == str(code)


def test_the_record_learns_outcome_type_and_message() -> None:
    ctx = make_ctx()
    error_reply(UpstreamTimeoutError("too slow"), ctx)
    record = ctx.record
    assert (record.outcome, record.error_type, record.error_message, record.http_status) == (
        "upstream_error", "upstream_timeout", "too slow", 504)


@pytest.mark.parametrize(("cls", "outcome", "error_type"), [
    (PolicyDeniedError, "denied", "policy_denied"), (ApprovalDeniedError, "denied", "approval_denied"),
    (ToolDriftError, "denied", "tool_drift"),
    (RateLimitedError, "limited", "rate_limited"), (LimiterUnavailableError, "limited", "rate_limiter_unavailable"),
    (UnauthenticatedError, "unauthenticated", "unauthenticated"), (ForbiddenError, "unauthenticated",
                                                                   "insufficient_scope"),
    (OriginRejectedError, "rejected", "origin_rejected"), (SessionNotOwnedError, "rejected", "session_not_owned"),
])
def test_outcomes_and_error_types(cls: type[ProxyError], outcome: str, error_type: str) -> None:
    ctx = make_ctx("resources/read", target="file:///x")
    error_reply(cls("m"), ctx)
    assert (ctx.record.outcome, ctx.record.error_type) == (outcome, error_type)


def test_a_tools_call_notification_is_never_answered_with_a_result() -> None:
    ctx = make_ctx("tools/call", request_id=None)
    assert ctx.kind is mcp.Kind.NOTIFICATION
    reply = error_reply(PolicyDeniedError("no"), ctx)
    assert reply.message is not None and "result" not in reply.message and reply.message["id"] is None


def test_no_data_means_no_data_key_and_no_structured_content() -> None:
    error: dict[str, Any] = error_reply(PolicyDeniedError("no"), make_ctx("tools/list")).message or {}
    assert error["error"] == {"code": -31001, "message": "no"}
    result = (error_reply(PolicyDeniedError("no"), make_ctx()).message or {})["result"]
    assert "structuredContent" not in result


def test_headers_default_to_none_and_are_not_shared() -> None:
    first, second = ProxyError("a"), ProxyError("b")
    first.headers["X"] = "1"
    assert second.headers == {} and first.data is None and str(first) == "a"


def test_internal_errors_are_500_with_a_fixed_message() -> None:
    ctx = make_ctx(request_id=9)
    reply = internal_error_reply(ctx)
    assert reply.status == 500
    assert reply.message == {"jsonrpc": "2.0", "id": 9, "error": {"code": -32603, "message": "Internal proxy error"}}
    assert (ctx.record.outcome, ctx.record.error_type) == ("rejected", "-32603")
