"""JSON-RPC 2.0 message parsing and serialising, and the standard error codes."""

from __future__ import annotations

from typing import Any

import orjson

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

# MCP 2026-07-28 codes (reserved range -32020..-32099).
HEADER_MISMATCH = -32020

# The sidecar's own codes live outside the JSON-RPC reserved range (-32768..-32000).
POLICY_DENIED = -31001
RATE_LIMITED = -31029
UPSTREAM_UNAVAILABLE = -31002
UPSTREAM_TIMEOUT = -31004
UPSTREAM_BAD_OUTPUT = -31005


NOTIFICATION_PREFIX = "notifications/"  # MCP: every notification's method; any other method is a request


class MessageError(ValueError):
    """A body that is not one valid JSON-RPC message; carries the code to answer with."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_message(body: bytes) -> dict[str, Any]:
    """Parse one JSON-RPC message, raising MessageError with the code the spec prescribes."""
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MessageError(PARSE_ERROR, f"Parse error: {exc.msg}") from None
    if isinstance(message, list):
        raise MessageError(INVALID_REQUEST, "Invalid Request: JSON-RPC batches are not supported")
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise MessageError(INVALID_REQUEST, "Invalid Request: expected a JSON-RPC 2.0 object")
    method = message.get("method")
    has_method = method is not None or "method" in message
    if has_method and not isinstance(method, str):
        raise MessageError(INVALID_REQUEST, "Invalid Request: method must be a string")
    if has_method and "id" not in message and not method.startswith(NOTIFICATION_PREFIX):
        # MCP: a request sent as a notification would skip what only requests pass (rate limits among them).
        raise MessageError(INVALID_REQUEST, f"Invalid Request: {method} is a request and needs an id")
    if not has_method and "result" not in message and "error" not in message:
        raise MessageError(INVALID_REQUEST, "Invalid Request: neither a request nor a response")
    if "id" in message and not _valid_id(message["id"], has_method):
        raise MessageError(INVALID_REQUEST, "Invalid Request: id must be a string or an integer")
    params = message.get("params")
    if params is not None and not isinstance(params, dict | list):
        raise MessageError(INVALID_REQUEST, "Invalid Request: params must be an object")
    return message


def _valid_id(value: Any, request: bool) -> bool:
    """A request's id is a string or an integer (MCP forbids null); a response may carry null (an error answering a
    request whose id could not be read)."""
    if value is None:
        return not request
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def error_message(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def is_response_to(message: Any, request_id: Any) -> bool:
    """Whether a parsed message is the response (result or error) to the request with this id."""
    return isinstance(message, dict) and message.get("id") == request_id and "method" not in message


def result_message(request_id: Any, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def tool_error_result(text: str, structured: dict[str, Any] | None = None) -> dict[str, Any]:
    """A CallToolResult with isError: the shape a model can read and adapt to."""
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": True}
    if structured is not None:
        result["structuredContent"] = structured
    return result


def dumps(message: Any) -> bytes:
    return orjson.dumps(message)
