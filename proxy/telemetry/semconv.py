"""Telemetry names in one place (OTel MCP semantic conventions), and what a call's span says about it.

Pure functions over the CallContext, its CallRecord and the Reply: no SDK, no aiohttp. Sidecar-specific
attributes live under the one prefix `mcp_sidecar.`.
"""

from __future__ import annotations

from typing import Any

from proxy import mcp
from proxy.context import CallContext, CallRecord
from proxy.reply import Reply

# OTel MCP semantic conventions (semantic-conventions-genai docs/gen-ai/mcp.md).
MCP_METHOD_NAME = "mcp.method.name"
MCP_PROTOCOL_VERSION = "mcp.protocol.version"
MCP_SESSION_ID = "mcp.session.id"
MCP_RESOURCE_URI = "mcp.resource.uri"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_PROMPT_NAME = "gen_ai.prompt.name"
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result"
JSONRPC_REQUEST_ID = "jsonrpc.request.id"
RPC_RESPONSE_STATUS_CODE = "rpc.response.status_code"
ERROR_TYPE = "error.type"
NETWORK_TRANSPORT = "network.transport"
NETWORK_PROTOCOL_NAME = "network.protocol.name"
CLIENT_ADDRESS = "client.address"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"
TOOL_ERROR = "tool_error"
EXECUTE_TOOL = "execute_tool"

# The sidecar's own decisions.
PREFIX = "mcp_sidecar."
DECISION_ID = PREFIX + "decision.id"
OUTCOME = PREFIX + "outcome"
PRINCIPAL = PREFIX + "principal.subject"
POLICY_DECISION = PREFIX + "policy.decision"
POLICY_REASONS = PREFIX + "policy.reasons"
POLICY_REVISION = PREFIX + "policy.revision"
RATE_LIMIT = PREFIX + "rate_limit."  # + bucket, remaining, limit, retry_after_seconds
CACHE_STATUS = PREFIX + "cache.status"
APPROVAL_ID = PREFIX + "approval.id"
APPROVER = PREFIX + "approval.approver"
UPSTREAM_NAME = PREFIX + "upstream.name"
POLICY_DENIAL_REASON = PREFIX + "policy.reason"


TARGET_ATTRIBUTES = {"tools/call": GEN_AI_TOOL_NAME, "prompts/get": GEN_AI_PROMPT_NAME}


def target_attribute(method: str | None) -> str | None:
    """The semconv attribute naming a method's target, if the method has one we put in span names."""
    return TARGET_ATTRIBUTES.get(method or "")


def span_name(ctx: CallContext, resource_uri_in_name: bool = False) -> str:
    """`{mcp.method.name} {target}`; resource URIs only on request (they are unbounded)."""
    method = ctx.method or "mcp"
    if ctx.target and (target_attribute(ctx.method) or (resource_uri_in_name and ctx.method in mcp.TARGET_PARAM)):
        return f"{method} {ctx.target}"
    return method


def call_attributes(ctx: CallContext) -> dict[str, Any]:
    """What both spans of a call say about the message itself."""
    attributes: dict[str, Any] = {MCP_METHOD_NAME: ctx.method or "", MCP_PROTOCOL_VERSION: ctx.protocol_version}
    if ctx.request_id is not None:
        attributes[JSONRPC_REQUEST_ID] = str(ctx.request_id)
    named = target_attribute(ctx.method)
    if named and ctx.target:
        attributes[named] = ctx.target
    elif ctx.target and ctx.method in mcp.TARGET_PARAM:
        attributes[MCP_RESOURCE_URI] = ctx.target
    if ctx.method == "tools/call":
        attributes[GEN_AI_OPERATION_NAME] = EXECUTE_TOOL
    return attributes


def server_attributes(ctx: CallContext) -> dict[str, Any]:
    attributes = call_attributes(ctx)
    attributes[NETWORK_TRANSPORT] = "tcp"
    attributes[NETWORK_PROTOCOL_NAME] = "http"
    if ctx.client_address:
        attributes[CLIENT_ADDRESS] = ctx.client_address
    if ctx.era is mcp.Era.LEGACY and ctx.session_id:  # never for 2026-07-28 (semconv registry)
        attributes[MCP_SESSION_ID] = ctx.session_id
    return attributes


def decision_attributes(record: CallRecord) -> dict[str, Any]:
    """The sidecar's decisions about a call, as span attributes (None values left out)."""
    attributes: dict[str, Any] = {DECISION_ID: record.decision_id, OUTCOME: record.outcome}
    optional = {
        POLICY_DECISION: record.policy_decision,
        POLICY_REVISION: record.policy_revision,
        CACHE_STATUS: record.cache_status,
        APPROVAL_ID: record.approval_id,
        APPROVER: record.approver,
    }
    attributes.update({key: value for key, value in optional.items() if value is not None})
    if record.policy_reasons:
        attributes[POLICY_REASONS] = tuple(record.policy_reasons)
    for key, value in (record.rate_limit or {}).items():
        if isinstance(value, str | int | float | bool):
            attributes[RATE_LIMIT + key] = value
    return attributes


def reply_error(record: CallRecord | None, reply: Reply) -> tuple[str | None, str | None, str | None]:
    """(error.type, JSON-RPC code, description) of a finished call; error.type None means success.

    The sidecar's own refusal wins (policy_denied, rate_limited, ...), then a JSON-RPC error, then an
    `isError` tool result (`tool_error`), then an HTTP failure without a JSON-RPC body. Without a record
    (the upstream's own span) only what the upstream answered counts.
    """
    message = reply.message if reply.message is not None else reply.parsed_body()
    error = message.get("error") if isinstance(message, dict) else None
    code = str(error.get("code")) if isinstance(error, dict) and "code" in error else None
    if record is not None and record.error_type is not None:
        return record.error_type, code, record.error_message or reply.stream_error
    if code is not None:
        description = error.get("message") if isinstance(error, dict) else None
        return code, code, description if isinstance(description, str) else None
    result = message.get("result") if isinstance(message, dict) else None
    if isinstance(result, dict) and result.get("isError") is True:
        return TOOL_ERROR, None, None
    if reply.stream_error is not None:
        return "stream_broken", None, reply.stream_error
    if reply.status >= 400:
        return str(reply.status), None, f"HTTP {reply.status}"
    return None, None, None


def tool_result(reply: Reply) -> Any:
    message = reply.message
    return message.get("result") if isinstance(message, dict) else None
