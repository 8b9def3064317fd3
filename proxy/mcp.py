"""MCP protocol knowledge: eras, versions, header names, and where a message names its target."""

from __future__ import annotations

import base64
import enum
from typing import Any

MODERN_VERSION = "2026-07-28"
LEGACY_DEFAULT_VERSION = "2025-03-26"  # assumed when a legacy request carries no version header

HEADER_PROTOCOL_VERSION = "mcp-protocol-version"
HEADER_METHOD = "mcp-method"
HEADER_NAME = "mcp-name"
HEADER_SESSION_ID = "mcp-session-id"
HEADER_LAST_EVENT_ID = "last-event-id"
HEADER_PARAM_PREFIX = "mcp-param-"

META_PROTOCOL_VERSION = "io.modelcontextprotocol/protocolVersion"

# Headers the MCP transports define; forwarded upstream as they arrived (plus any Mcp-Param-*).
FORWARDED_REQUEST_HEADERS = frozenset(
    {
        "accept",
        "content-type",
        HEADER_SESSION_ID,
        HEADER_PROTOCOL_VERSION,
        HEADER_LAST_EVENT_ID,
        HEADER_METHOD,
        HEADER_NAME,
        # W3C trace context: the parent of the sidecar's span when params._meta carries none; the tracing
        # stage overwrites it with its own upstream span before forwarding.
        "traceparent",
        "tracestate",
        "baggage",
    }
)

# Methods whose params name a target, and the param that names it.
TARGET_PARAM = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
    "resources/subscribe": "uri",
    "resources/unsubscribe": "uri",
}
# Methods whose target the 2026-07-28 Mcp-Name header must mirror.
NAME_HEADER_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})

LIST_METHODS = frozenset({"tools/list", "prompts/list", "resources/list", "resources/templates/list"})

# The keys the sidecar reads to decide a message. A key differing from one of them only by case is refused: a
# case-insensitive decoder upstream (Go's encoding/json is one) would read it as the key the policy never saw.
ENVELOPE_KEYS = frozenset({"jsonrpc", "id", "method", "params", "result", "error"})
PARAMS_KEYS = frozenset({"name", "arguments", "uri", "_meta", "cursor", "protocolVersion", "capabilities",
                         "clientInfo", "ref", "argument", "level", "requestState"})


class Era(enum.StrEnum):
    MODERN = "modern"  # 2026-07-28 and later: stateless, headers mirror the body
    LEGACY = "legacy"  # 2025-11-25 and earlier: initialize handshake, sessions


class Kind(enum.StrEnum):
    REQUEST = "request"
    NOTIFICATION = "notification"
    RESPONSE = "response"  # a client's answer to a server-to-client request (legacy)
    STREAM = "stream"  # HTTP GET: the legacy standalone server-to-client stream
    SESSION_END = "session_end"  # HTTP DELETE: legacy session termination


def message_kind(message: dict[str, Any]) -> Kind:
    if "method" not in message:
        return Kind.RESPONSE
    return Kind.REQUEST if "id" in message else Kind.NOTIFICATION


def params_of(message: dict[str, Any]) -> dict[str, Any]:
    params = message.get("params")
    return params if isinstance(params, dict) else {}


def meta_of(params: dict[str, Any]) -> dict[str, Any]:
    meta = params.get("_meta")
    return meta if isinstance(meta, dict) else {}


def is_modern_version(version: str | None) -> bool:
    # Revision strings are ISO dates, so string order is date order.
    return version is not None and version >= MODERN_VERSION


def protocol_version(message: dict[str, Any], header_version: str | None) -> str:
    """The protocol revision a message speaks: header, then _meta, then initialize params."""
    if header_version:
        return header_version
    params = params_of(message)
    meta_version = meta_of(params).get(META_PROTOCOL_VERSION)
    if isinstance(meta_version, str):
        return meta_version
    if message.get("method") == "initialize" and isinstance(params.get("protocolVersion"), str):
        return params["protocolVersion"]
    return LEGACY_DEFAULT_VERSION


def era_of(version: str) -> Era:
    return Era.MODERN if is_modern_version(version) else Era.LEGACY


def target_of(method: str | None, params: dict[str, Any]) -> str | None:
    key = TARGET_PARAM.get(method or "")
    value = params.get(key) if key else None
    return value if isinstance(value, str) else None


def decode_header_value(value: str) -> str:
    """Undo the `=?base64?...?=` wrapping 2026-07-28 uses for values that are not safe ASCII."""
    if value.startswith("=?base64?") and value.endswith("?="):
        try:
            return base64.b64decode(value[9:-2], validate=True).decode("utf-8")
        except ValueError:
            return value
    return value


def header_mismatch(message: dict[str, Any], method_header: str | None, name_header: str | None) -> str | None:
    """Why a 2026-07-28 request's Mcp-Method/Mcp-Name headers disagree with its body, or None."""
    method = message.get("method")
    if method_header is None:
        return "Mcp-Method header is required"
    if decode_header_value(method_header) != method:
        return f"Mcp-Method header does not match the body method {method!r}"
    if method not in NAME_HEADER_METHODS:
        return None
    target = target_of(method, params_of(message))
    if name_header is None:
        return "Mcp-Name header is required for " + method
    if decode_header_value(name_header) != target:
        return f"Mcp-Name header does not match the body target {target!r}"
    return None


def ambiguous_key(message: dict[str, Any], params: dict[str, Any]) -> str | None:
    """Why a message's meaning would depend on the reader's parser, or None (the usual case, cleared by a few set
    tests): a protocol key (envelope or params) written with other letter cases, or two keys equal but for case in
    the envelope, the params or the arguments (where policies read arguments by name)."""
    if not ENVELOPE_KEYS.issuperset(message):
        problem = _case_variant(message, ENVELOPE_KEYS)
        if problem is not None:
            return problem
    if not PARAMS_KEYS.issuperset(params):
        problem = _case_variant(params, PARAMS_KEYS)
        if problem is not None:
            return problem
    arguments = params.get("arguments")
    if arguments.__class__ is dict and len(arguments) > 1 and len(set(map(str.lower, arguments))) != len(arguments):
        return _case_variant(arguments, frozenset())
    return None


def _case_variant(node: dict[str, Any], protocol_keys: frozenset[str]) -> str | None:
    folded_protocol_keys = _FOLDED_PROTOCOL_KEYS.get(protocol_keys, frozenset())
    seen: dict[str, str] = {}
    for key in node:
        lower = key.lower() if isinstance(key, str) else key
        if lower in seen:
            return f"keys {seen[lower]!r} and {key!r} differ only by case"
        seen[lower] = key
        if lower in folded_protocol_keys and key not in protocol_keys:
            return f"key {key!r} differs only by case from a protocol key"
    return None


_FOLDED_PROTOCOL_KEYS = {keys: frozenset(key.lower() for key in keys) for keys in (ENVELOPE_KEYS, PARAMS_KEYS)}
