"""The sidecar's error tree, and the one function that turns an error into what the client receives."""

from __future__ import annotations

from typing import Any

from proxy import jsonrpc, mcp
from proxy.context import CallContext
from proxy.reply import Reply


class ProxyError(Exception):
    """Base of every refusal or failure the sidecar answers itself."""

    http_status = 400
    code = jsonrpc.INVALID_REQUEST
    outcome = "rejected"
    error_type = "invalid_request"
    # A refusal of tools/call the model should read: answered as a CallToolResult with isError.
    tool_visible = False

    def __init__(self, message: str, *, data: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
        self.headers = headers or {}


class BadMessageError(ProxyError):
    """Malformed JSON (-32700) or an invalid JSON-RPC envelope (-32600)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.error_type = str(code)


class HeaderMismatchError(ProxyError):
    code = jsonrpc.HEADER_MISMATCH
    error_type = str(jsonrpc.HEADER_MISMATCH)


class UnsupportedMediaTypeError(ProxyError):
    http_status = 415


class PayloadTooLargeError(ProxyError):
    http_status = 413


class OriginRejectedError(ProxyError):
    http_status = 403
    error_type = "origin_rejected"


class UnauthenticatedError(ProxyError):
    """No or an invalid bearer token: 401 with a WWW-Authenticate challenge."""

    http_status = 401
    code = -31401
    outcome = "unauthenticated"
    error_type = "unauthenticated"


class ForbiddenError(ProxyError):
    """A valid token without the scopes the sidecar requires: 403 insufficient_scope."""

    http_status = 403
    code = -31403
    outcome = "unauthenticated"
    error_type = "insufficient_scope"


class AuthUnavailableError(ProxyError):
    """Tokens cannot be checked right now (no signing keys could be fetched): fail closed, but not as the caller's
    fault, so clients retry instead of starting a new authorization."""

    http_status = 503
    code = -31503
    outcome = "unauthenticated"
    error_type = "auth_unavailable"


class SessionNotOwnedError(ProxyError):
    """A 2025 session id presented by a principal other than the one that opened it: answered as the MCP SDK answers
    an unknown session (404, -32600 "Session not found"), so a leaked id is useless and its owner's session intact."""

    http_status = 404
    outcome = "rejected"
    error_type = "session_not_owned"


class PolicyDeniedError(ProxyError):
    http_status = 200
    code = jsonrpc.POLICY_DENIED
    outcome = "denied"
    error_type = "policy_denied"
    tool_visible = True


class ToolDriftError(PolicyDeniedError):
    """A call to a tool whose live definition differs from the reviewed tools lock (tools.on_drift: block)."""

    error_type = "tool_drift"


class ApprovalDeniedError(PolicyDeniedError):
    """A call policy sent for approval was refused, timed out, or found the queue full."""

    error_type = "approval_denied"


class ApprovalUnavailableError(ApprovalDeniedError):
    """No approval can be asked for or decided right now (the shared approval store is unreachable): fail closed."""

    http_status = 503
    error_type = "approval_unavailable"


class RateLimitedError(ProxyError):
    http_status = 429
    code = jsonrpc.RATE_LIMITED
    outcome = "limited"
    error_type = "rate_limited"
    tool_visible = True


class SessionNotFoundError(ProxyError):
    """A legacy Mcp-Session-Id the sidecar does not know (ended, reaped, or its upstream process died)."""

    http_status = 404
    error_type = "session_not_found"


class MethodNotAllowedError(ProxyError):
    http_status = 405
    error_type = "method_not_allowed"


class StreamConflictError(ProxyError):
    """A second GET stream for a legacy session that already has one."""

    http_status = 409
    error_type = "stream_conflict"


class LimiterUnavailableError(RateLimitedError):
    """The limits cannot be checked (shared store down with fail_closed, or policy named an unknown bucket)."""

    http_status = 503
    error_type = "rate_limiter_unavailable"


class UpstreamError(ProxyError):
    """The upstream could not be reached, broke off, answered too late or answered garbage."""

    http_status = 502
    code = jsonrpc.UPSTREAM_UNAVAILABLE
    outcome = "upstream_error"
    error_type = "upstream_unavailable"


class UpstreamTimeoutError(UpstreamError):
    http_status = 504
    code = jsonrpc.UPSTREAM_TIMEOUT
    error_type = "upstream_timeout"


class SessionLimitError(UpstreamError):
    """Every legacy session slot (upstream.max_sessions) is taken."""

    http_status = 503
    error_type = "session_limit"


class UpstreamBadOutputError(UpstreamError):
    code = jsonrpc.UPSTREAM_BAD_OUTPUT
    error_type = "upstream_bad_output"


def error_reply(error: ProxyError, ctx: CallContext | None) -> Reply:
    """Map any ProxyError to the reply the client gets; the only place that decides status and shape."""
    request_id = ctx.request_id if ctx is not None else None
    if ctx is not None:
        ctx.record.fail(error.outcome, error.error_type, error.message)
    if error.tool_visible and ctx is not None and ctx.method == "tools/call" and ctx.is_request:
        result = jsonrpc.tool_error_result(error.message, structured=error.data)
        if ctx.era is mcp.Era.MODERN:
            result["resultType"] = "complete"  # required on every 2026-07-28 result
        reply = Reply.json(jsonrpc.result_message(request_id, result), headers=error.headers)
    else:
        body = jsonrpc.error_message(request_id, error.code, error.message, error.data)
        reply = Reply.json(body, status=error.http_status, headers=error.headers)
    if ctx is not None:
        ctx.record.http_status = reply.status
    return reply


def internal_error_reply(ctx: CallContext) -> Reply:
    """The answer when the sidecar itself failed (a bug; the caller logs the traceback): a JSON-RPC internal error."""
    ctx.record.fail("rejected", str(jsonrpc.INTERNAL_ERROR), "internal proxy error")
    return Reply.json(jsonrpc.error_message(ctx.request_id, jsonrpc.INTERNAL_ERROR, "Internal proxy error"), status=500)
